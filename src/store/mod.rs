//! The event store: keys, their events, consumer groups and parked consumers.
//!
//! The store is pure bookkeeping. It never touches a socket and never reads
//! the clock: `now` is passed in, so every rule of SPEC.md's blocking-get
//! section is unit-tested below with a fake clock. A parked consumer is an
//! opaque [`ConsumerId`] chosen by the caller (the event loop uses the
//! connection's slab token); the store only remembers the order they came in.
//!
//! # Shape
//!
//! - A **key** holds its events in push order in a `VecDeque`. Sequence
//!   numbers come from one global counter, so they only grow; within a key
//!   they are increasing but not contiguous, and lookups by sequence are a
//!   binary search.
//! - A **group** is a cursor (the next sequence it has not consumed) plus a
//!   FIFO of parked consumers. The FIFO is an intrusive doubly-linked list
//!   through the `parked` slab, so a consumer that hangs up is unlinked in
//!   O(1), whatever its place in the queue.
//! - Each key keeps the list of its groups that have someone parked
//!   (`waiting`), so a push visits only the groups it wakes, not every group
//!   that ever read the key.
//! - Every event has the same lifetime, so expiry order is push order and one
//!   global FIFO of `(expires_at, key)` tells the sweep where to look.
//!
//! A take never returns an expired event, even before the sweep has freed it:
//! it skips events whose `expires_at <= now`.
//!
//! An answer that the socket has not taken yet is not a copy: it names a
//! sequence range of one key, and its bytes are read from here when the
//! socket has room (see `render.rs`). While such an answer waits, its range
//! is **pinned** ([`Store::pin`]): an event of it that expires stays in
//! memory, counted in [`Store::live_bytes`] but never handed out again,
//! until the last answer holding it is written ([`Store::unpin`]). So the
//! memory limit bounds stored events and stalled answers together, and a
//! client that never reads cannot make the server copy a batch.
//!
//! A group that has nobody parked and no retained event before its cursor is
//! indistinguishable from a group that never read: it is forgotten, and
//! recreated on demand. A key with no events and no groups is forgotten too.
//! Without this, memory would grow with every distinct groupId ever seen.

mod groups;
mod leases;
mod parking;
mod reading;
mod restore;
mod retention;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;

use slab::Slab;

use crate::config::Millis;

pub use leases::{LeaseStats, LeaseTimer, NotLeased};
pub use restore::HandOut;

/// Who is parked: the caller's handle for a waiting consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConsumerId(pub usize);

/// A parked consumer's place in its group's queue, for [`Store::unpark`].
/// The generation tells a key whose consumer was already answered from the
/// key of whoever reused its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParkKey {
    index: u32,
    generation: u32,
}

/// Bytes of bookkeeping charged per event on top of its JSON: the `Event`
/// record in its key's deque, its entry in the expiry FIFO, and the
/// allocator's header on the JSON's own allocation.
pub const EVENT_OVERHEAD: usize =
    std::mem::size_of::<Event>() + std::mem::size_of::<(Millis, u32)>() + 16;

/// A range of one key's events held by an unwritten answer; give it back
/// with [`Store::unpin`]. A key with a pin is never forgotten, so its index
/// stays valid while the pin lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pin {
    key: u32,
    seq: u64,
}

/// How a consumer asks for its batch (SPEC.md's `limit`, `lease` and
/// `format`). Kept with a parked consumer, so a push answers it the way it
/// asked. Small on purpose: tens of thousands of consumers park at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Take {
    /// At most this many events.
    pub limit: u32,
    /// Hand the batch out under a lease of this many ms (0: no lease, the
    /// batch is consumed as it is handed out).
    pub lease: u32,
    /// Not the store's business: how the caller will frame the answer,
    /// handed back with a delivery.
    pub envelope: bool,
}

impl Take {
    /// Every unconsumed event, consumed at once, as raw JSON.
    pub const ALL: Take = Take {
        limit: u32::MAX,
        lease: 0,
        envelope: false,
    };
}

/// The lease a batch was handed out under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leased {
    /// The batch's id, for ack, nack and extend.
    pub id: u64,
    /// 1 the first time these events are leased, then 2, 3, ...
    pub attempt: u32,
    /// When the lease runs out unless acked or extended.
    pub deadline: Millis,
}

/// Events handed to a consumer: the sequence range `[first, end)` of one
/// key. Read the bytes with [`Store::batch_events`] before the store
/// changes again (or pin them with [`Store::pin`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    key: u32,
    /// Sequence numbers covered, first inclusive, end exclusive.
    pub seqs: Range<u64>,
    /// How many events the batch holds.
    pub len: usize,
    /// The lease it is under, if the consumer asked for one.
    pub lease: Option<Leased>,
}

impl Batch {
    /// Whether `other` holds the same events (whatever its lease).
    pub fn same_events(&self, other: &Batch) -> bool {
        self.key == other.key && self.seqs == other.seqs
    }
}

/// A parked consumer that a push (or a lease given back) has answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Who to answer.
    pub consumer: ConsumerId,
    /// What to answer with.
    pub batch: Batch,
    /// How it asked.
    pub take: Take,
}

/// Why a push was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// Storing the event would take live bytes past the memory limit.
    Full,
}

#[derive(Debug)]
struct Event {
    seq: u64,
    expires_at: Millis,
    json: Box<[u8]>,
}

#[derive(Debug)]
struct Key {
    name: Box<str>,
    events: VecDeque<Event>,
    groups: HashMap<Box<str>, u32>,
    /// Groups of this key with at least one parked consumer.
    waiting: Vec<u32>,
    /// Unwritten answers by the first sequence they hold, with a count:
    /// events from the smallest of them on are not freed when they expire.
    pins: BTreeMap<u64, u32>,
    /// Events at the front of `events` that have expired but are pinned:
    /// their expiry entry is gone, they are freed when the pins move past.
    zombies: usize,
}

#[derive(Debug)]
struct Group {
    key: u32,
    name: Box<str>,
    /// The next sequence number this group has not consumed.
    cursor: u64,
    /// Oldest parked consumer (answered first) and newest.
    head: Option<u32>,
    tail: Option<u32>,
    /// Index in the key's `waiting` list while someone is parked.
    waiting_at: Option<u32>,
    /// Its leases, if it ever had any: boxed, because most groups never
    /// lease and every parked consumer of its own group pays for the field.
    leases: Option<Box<leases::GroupLeases>>,
}

#[derive(Debug)]
struct Parked {
    consumer: ConsumerId,
    take: Take,
    generation: u32,
    group: u32,
    prev: Option<u32>,
    next: Option<u32>,
}

/// Keys, events, groups and parked consumers. See the module docs.
#[derive(Debug)]
pub struct Store {
    ttl: Millis,
    max_bytes: usize,
    next_seq: u64,
    keys: Slab<Key>,
    key_index: HashMap<Box<str>, u32>,
    groups: Slab<Group>,
    parked: Slab<Parked>,
    parks: u32,
    /// `(expires_at, key)` for every retained event, in push order.
    expiry: VecDeque<(Millis, u32)>,
    live_bytes: usize,
    live_events: usize,
    /// Bytes of the keys and groups remembered (`groups.rs`), charged
    /// against the limit like events.
    bookkeeping: usize,
    /// Expired events kept only for unwritten answers, and their bytes.
    zombie_events: usize,
    zombie_bytes: usize,
    leases: leases::Leases,
    /// Batches handed out since the caller last asked, kept only when a
    /// log of changes is wanted ([`Store::record_hand_outs`]).
    hand_outs: Option<Vec<restore::Noted>>,
}

impl Store {
    /// An empty store whose events live `ttl` ms and whose live bytes may not
    /// pass `max_bytes`. Event and batch ids start at 1.
    pub fn new(ttl: Millis, max_bytes: usize) -> Store {
        Store::starting_at(ttl, max_bytes, 1)
    }

    /// As [`Store::new`], with event and batch ids starting at `first_id`
    /// (the server passes the Unix time in microseconds, so ids grow across
    /// restarts too).
    pub fn starting_at(ttl: Millis, max_bytes: usize, first_id: u64) -> Store {
        Store {
            ttl,
            max_bytes,
            next_seq: first_id.max(1),
            keys: Slab::new(),
            key_index: HashMap::new(),
            groups: Slab::new(),
            parked: Slab::new(),
            parks: 0,
            expiry: VecDeque::new(),
            live_bytes: 0,
            live_events: 0,
            bookkeeping: 0,
            zombie_events: 0,
            zombie_bytes: 0,
            leases: leases::Leases::starting_at(first_id.max(1)),
            hand_outs: None,
        }
    }

    /// Stores `json` under `key` and returns its sequence number. Appends to
    /// `woken` the earliest parked consumer of every group waiting on `key`,
    /// each with its group's unconsumed events (which are now consumed).
    ///
    /// Refuses with [`PushError::Full`], storing nothing and dropping
    /// nothing, when the event would take live bytes past the limit.
    pub fn push(
        &mut self,
        key: &str,
        json: &[u8],
        now: Millis,
        woken: &mut Vec<Delivery>,
    ) -> Result<u64, PushError> {
        self.push_within(key, json, now, 0, woken)
    }

    /// [`Store::push`] when `held_elsewhere` bytes of the same memory limit
    /// are already taken outside the store (unwritten answer heads, request
    /// bodies on their way in).
    pub fn push_within(
        &mut self,
        key: &str,
        json: &[u8],
        now: Millis,
        held_elsewhere: usize,
        woken: &mut Vec<Delivery>,
    ) -> Result<u64, PushError> {
        let cost = json.len() + EVENT_OVERHEAD;
        if self
            .memory_used()
            .saturating_add(held_elsewhere)
            .saturating_add(cost)
            > self.max_bytes
        {
            return Err(PushError::Full);
        }
        let key_idx = self.key_or_insert(key);
        let seq = self.next_seq;
        self.next_seq += 1;
        let expires_at = now.saturating_add(self.ttl);
        self.keys[key_idx as usize].events.push_back(Event {
            seq,
            expires_at,
            json: json.into(),
        });
        self.expiry.push_back((expires_at, key_idx));
        self.live_bytes += cost;
        self.live_events += 1;

        // Each waiting group hands its batch to its earliest consumer. A
        // group that still has consumers parked stays in `waiting`.
        let mut i = 0;
        while i < self.keys[key_idx as usize].waiting.len() {
            let group = self.keys[key_idx as usize].waiting[i];
            // A waiting group always has a head; a batch is missing only if
            // the event is already expired (a TTL shorter than a tick).
            let Some(head) = self.groups[group as usize].head else {
                i += 1;
                continue;
            };
            let take = self.parked[head as usize].take;
            let Some(batch) = self.take_from_group(group, now, take) else {
                i += 1;
                continue;
            };
            let consumer = self.parked[head as usize].consumer;
            self.unlink(head);
            woken.push(Delivery {
                consumer,
                batch,
                take,
            });
            // `unlink` swap-removes the group from `waiting` when its queue
            // empties, which moves another group into slot `i`.
            if self.groups[group as usize].waiting_at.is_some() {
                i += 1;
            }
        }
        Ok(seq)
    }

    /// Takes every unconsumed live event of group (`key`, `group`) and marks
    /// them consumed for that group only. `None` when there is nothing.
    pub fn take(&mut self, key: &str, group: &str, now: Millis) -> Option<Batch> {
        self.take_with(key, group, now, Take::ALL)
    }

    /// Takes what `take` asks for from group (`key`, `group`): leased
    /// events due again first, then at most `take.limit` of the group's
    /// unconsumed live events, under a lease if it asks for one. `None` when
    /// there is nothing.
    pub fn take_with(&mut self, key: &str, group: &str, now: Millis, take: Take) -> Option<Batch> {
        let key_idx = *self.key_index.get(key)?;
        let group_idx = match self.keys[key_idx as usize].groups.get(group) {
            Some(&g) => g,
            // A new group starts at the oldest retained event. If there is
            // none live, a new group would be forgotten at once: skip it.
            None => {
                self.first_live(key_idx, 0, now)?;
                self.group_or_insert(key_idx, group)
            }
        };
        self.take_from_group(group_idx, now, take)
    }

    /// Index of the first event of `key_idx` that is live at `now` and not
    /// before `cursor`.
    fn first_live(&self, key_idx: u32, cursor: u64, now: Millis) -> Option<usize> {
        let events = &self.keys[key_idx as usize].events;
        // Expiry order is push order, so both conditions are prefixes.
        let unexpired = events.partition_point(|e| e.expires_at <= now);
        let unconsumed = events.partition_point(|e| e.seq < cursor);
        let start = unexpired.max(unconsumed);
        (start < events.len()).then_some(start)
    }

    /// The group's next batch: leased events due again first (see
    /// `leases.rs`), else its unconsumed live events, at most `take.limit`.
    fn take_from_group(&mut self, group: u32, now: Millis, take: Take) -> Option<Batch> {
        if let Some(batch) = self.redeliver(group, now, take) {
            return Some(batch);
        }
        let g = &self.groups[group as usize];
        let key = g.key;
        let start = self.first_live(key, g.cursor, now)?;
        let events = &self.keys[key as usize].events;
        let len = (events.len() - start).min(take.limit.max(1) as usize);
        let first = events[start].seq;
        let end = events.get(start + len).map_or(self.next_seq, |e| e.seq);
        self.groups[group as usize].cursor = end;
        Some(self.hand_out(group, first..end, len, 1, take, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Millis = 120_000;

    fn store() -> Store {
        Store::new(TTL, usize::MAX)
    }

    fn push(s: &mut Store, key: &str, json: &str, now: Millis) -> Vec<Delivery> {
        let mut woken = Vec::new();
        s.push(key, json.as_bytes(), now, &mut woken).unwrap();
        woken
    }

    fn render(s: &Store, batch: &Batch) -> String {
        let parts: Vec<&str> = s
            .batch_events(batch)
            .map(|b| std::str::from_utf8(b).unwrap())
            .collect();
        format!("[{}]", parts.join(","))
    }

    fn take(s: &mut Store, key: &str, group: &str, now: Millis) -> String {
        match s.take(key, group, now) {
            Some(b) => render(s, &b),
            None => "[]".to_string(),
        }
    }

    #[test]
    fn backlog_is_returned_at_once_in_push_order() {
        let mut s = store();
        push(&mut s, "k", "1", 0);
        push(&mut s, "k", r#"{"a":2}"#, 1);
        push(&mut s, "other", "9", 1);
        assert_eq!(take(&mut s, "k", "g", 2), r#"[1,{"a":2}]"#);
        assert_eq!(take(&mut s, "k", "g", 3), "[]");
    }

    #[test]
    fn groups_are_independent_and_new_groups_see_every_live_event() {
        let mut s = store();
        push(&mut s, "k", "1", 0);
        assert_eq!(take(&mut s, "k", "a", 1), "[1]");
        push(&mut s, "k", "2", 2);
        assert_eq!(take(&mut s, "k", "a", 3), "[2]");
        assert_eq!(take(&mut s, "k", "b", 3), "[1,2]");
        assert_eq!(take(&mut s, "k", "b", 3), "[]");
    }

    #[test]
    fn a_push_wakes_the_earliest_consumer_of_each_group() {
        let mut s = store();
        let _a1 = s.park("k", "a", ConsumerId(1));
        let _a2 = s.park("k", "a", ConsumerId(2));
        let _b1 = s.park("k", "b", ConsumerId(3));
        let _c1 = s.park("other", "a", ConsumerId(4));
        let woken = push(&mut s, "k", "1", 0);
        let who: Vec<usize> = woken.iter().map(|d| d.consumer.0).collect();
        assert_eq!(who, vec![1, 3]);
        assert!(woken.iter().all(|d| render(&s, &d.batch) == "[1]"));
        // Consumer 2 is still parked and gets the next event, alone.
        let woken = push(&mut s, "k", "2", 1);
        let who: Vec<usize> = woken.iter().map(|d| d.consumer.0).collect();
        assert_eq!(who, vec![2]);
        assert_eq!(render(&s, &woken[0].batch), "[2]");
        assert_eq!(s.parked(), 1);
    }

    #[test]
    fn a_hang_up_consumes_nothing_and_the_next_consumer_gets_the_event() {
        let mut s = store();
        let first = s.park("k", "g", ConsumerId(1));
        let _second = s.park("k", "g", ConsumerId(2));
        assert!(s.unpark(first));
        assert!(!s.unpark(first), "a key unparks once");
        let woken = push(&mut s, "k", "1", 0);
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].consumer, ConsumerId(2));
    }

    #[test]
    fn unparking_from_the_middle_keeps_fifo_order() {
        let mut s = store();
        let keys: Vec<ParkKey> = (0..5).map(|i| s.park("k", "g", ConsumerId(i))).collect();
        s.unpark(keys[2]);
        s.unpark(keys[0]);
        let mut order = Vec::new();
        for n in 0..3 {
            for d in push(&mut s, "k", "1", n) {
                order.push(d.consumer.0);
            }
        }
        assert_eq!(order, vec![1, 3, 4]);
        assert_eq!(s.parked(), 0);
    }

    #[test]
    fn expired_events_are_never_returned_even_before_the_sweep() {
        let mut s = Store::new(1000, usize::MAX);
        push(&mut s, "k", "old", 0);
        push(&mut s, "k", "new", 500);
        // At 1000 the first has expired (its TTL is over) though no sweep ran.
        assert_eq!(take(&mut s, "k", "g", 1000), r#"[new]"#);
        assert_eq!(take(&mut s, "k", "h", 1499), r#"[new]"#);
        assert_eq!(take(&mut s, "k", "i", 1500), "[]");
        assert_eq!(s.live_events(), 2, "nothing freed before the sweep");
    }

    #[test]
    fn expire_frees_memory_at_the_deadline_and_not_before() {
        let mut s = Store::new(1000, usize::MAX);
        push(&mut s, "k", "1", 0);
        push(&mut s, "k", "22", 10);
        assert_eq!(s.next_expiry(), Some(1000));
        assert_eq!(s.expire(999), 0);
        assert_eq!(s.expire(1000), 1);
        assert_eq!(s.live_bytes(), 2 + EVENT_OVERHEAD);
        assert_eq!(s.next_expiry(), Some(1010));
        assert_eq!(s.expire(5000), 1);
        assert_eq!((s.live_events(), s.live_bytes(), s.keys()), (0, 0, 0));
        assert_eq!(s.next_expiry(), None);
    }

    #[test]
    fn a_parked_group_sees_a_batch_only_of_live_events() {
        let mut s = Store::new(1000, usize::MAX);
        push(&mut s, "k", "1", 0);
        assert_eq!(take(&mut s, "k", "g", 1), "[1]");
        s.park("k", "late", ConsumerId(7));
        // "late" was parked while event 1 was live only because the caller
        // did not take first; the push at 2000 must not hand it event 1.
        let woken = push(&mut s, "k", "2", 2000);
        assert_eq!(render(&s, &woken[0].batch), "[2]");
    }

    #[test]
    fn memory_limit_refuses_without_dropping() {
        // Two events and their key.
        let limit = 2 * (3 + EVENT_OVERHEAD) + groups::key_cost("k");
        let mut s = Store::new(1000, limit);
        let mut woken = Vec::new();
        assert!(s.push("k", b"abc", 0, &mut woken).is_ok());
        assert!(s.push("k", b"def", 0, &mut woken).is_ok());
        assert_eq!(s.push("k", b"g", 0, &mut woken), Err(PushError::Full));
        assert_eq!(take(&mut s, "k", "g", 1), "[abc,def]");
        // Room comes back as events expire.
        s.expire(1000);
        assert!(s.push("k", b"ghi", 1000, &mut woken).is_ok());
    }

    #[test]
    fn forgotten_groups_and_keys_behave_as_new_ones() {
        let mut s = Store::new(1000, usize::MAX);
        push(&mut s, "k", "1", 0);
        assert_eq!(take(&mut s, "k", "g", 1), "[1]");
        assert_eq!(s.groups(), 1, "g must remember it consumed event 1");
        s.expire(1000);
        assert_eq!((s.groups(), s.keys()), (0, 0), "nothing left to remember");
        push(&mut s, "k", "2", 1001);
        assert_eq!(take(&mut s, "k", "g", 1002), "[2]");
        // A timed-out consumer of an unknown group leaves nothing behind.
        let p = s.park("x", "y", ConsumerId(1));
        s.unpark(p);
        assert_eq!(s.keys(), 1);
        // Polling a group with nothing live creates nothing.
        assert_eq!(take(&mut s, "x", "y", 1003), "[]");
        assert_eq!(take(&mut s, "k", "fresh", 5000), "[]");
        assert_eq!(s.groups(), 1);
    }

    #[test]
    fn sequence_numbers_only_grow() {
        let mut s = store();
        let mut woken = Vec::new();
        let a = s.push("a", b"1", 0, &mut woken).unwrap();
        let b = s.push("b", b"1", 0, &mut woken).unwrap();
        let c = s.push("a", b"1", 0, &mut woken).unwrap();
        assert!(a < b && b < c);
    }

    #[test]
    fn fan_out_hands_identical_batches_to_groups_at_the_same_cursor() {
        let mut s = store();
        for i in 0..100 {
            s.park("k", &format!("g{i}"), ConsumerId(i));
        }
        let woken = push(&mut s, "k", "1", 0);
        assert_eq!(woken.len(), 100);
        assert!(woken.iter().all(|d| d.batch == woken[0].batch));
        assert_eq!(s.parked(), 0);
    }

    #[test]
    fn a_pinned_event_outlives_its_ttl_until_the_last_pin_goes() {
        let mut s = Store::new(1000, usize::MAX);
        push(&mut s, "k", "1", 0);
        push(&mut s, "k", "22", 500);
        let batch = s.take("k", "g", 1).unwrap();
        let first = s.pin(&batch);
        let second = s.pin(&batch);
        assert_eq!(s.expire(1000), 0, "pinned: not freed");
        assert_eq!((s.live_events(), s.zombie_events()), (2, 1));
        assert_eq!(s.zombie_bytes(), 1 + EVENT_OVERHEAD);
        // Still readable for the answer that holds it, never handed out again.
        assert_eq!(render(&s, &batch), "[1,22]");
        assert_eq!(take(&mut s, "k", "h", 1001), "[22]");
        assert_eq!(s.unpin(first), 0, "another answer still holds it");
        assert_eq!(s.unpin(second), 1);
        assert_eq!(
            (s.live_events(), s.zombie_events(), s.zombie_bytes()),
            (1, 0, 0)
        );
        assert_eq!(s.expire(1500), 1);
        assert_eq!((s.live_bytes(), s.keys(), s.groups()), (0, 0, 0));
    }

    #[test]
    fn moving_a_pin_frees_what_the_answer_has_written() {
        let mut s = Store::new(1000, usize::MAX);
        for i in 0..3 {
            push(&mut s, "k", &i.to_string(), 0);
        }
        let batch = s.take("k", "g", 1).unwrap();
        let mut pin = s.pin(&batch);
        s.expire(1000);
        assert_eq!(s.zombie_events(), 3);
        let third = batch.seqs.start + 2;
        s.repin(&mut pin, third);
        assert_eq!(s.zombie_events(), 1, "the two written events are freed");
        s.unpin(pin);
        assert_eq!((s.live_events(), s.keys()), (0, 0));
    }

    #[test]
    fn a_pin_on_one_key_holds_nothing_of_another() {
        let mut s = Store::new(1000, usize::MAX);
        push(&mut s, "a", "1", 0);
        push(&mut s, "b", "2", 0);
        let batch = s.take("a", "g", 1).unwrap();
        let pin = s.pin(&batch);
        assert_eq!(s.expire(1000), 1, "b's event is freed");
        assert_eq!(s.zombie_events(), 1);
        s.unpin(pin);
        assert_eq!(s.live_events(), 0);
    }

    #[test]
    fn pushes_count_bytes_held_elsewhere_against_the_limit() {
        let mut s = Store::new(1000, 100 + EVENT_OVERHEAD);
        let mut woken = Vec::new();
        assert_eq!(
            s.push_within("k", b"1", 0, 100, &mut woken),
            Err(PushError::Full)
        );
        assert!(s.push_within("k", b"1", 0, 99, &mut woken).is_ok());
    }
}
