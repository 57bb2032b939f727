//! Model-based test of the event store against a reference model that
//! cannot be wrong in the ways the store could.
//!
//! The store keeps a cursor per group, forgets groups and keys it no longer
//! needs, links parked consumers through a slab and frees events lazily in
//! one global expiry FIFO. The model keeps none of that: per key the list of
//! retained events `(seq, json, expires_at)`, per group the set of sequence
//! numbers it was ever given, and the parked consumers in the order they
//! parked. Random sequences of pushes, gets (a take, then a park if it found
//! nothing, as the server does), hang-ups, timeouts, clock steps and sweeps
//! run against both, and after every step the store must agree:
//!
//! - a batch (from a take or a push) holds exactly the group's live
//!   events it was never given, in push order: so no event reaches a group
//!   twice, none is returned after `push time + TTL`, and every event
//!   reaches every group that reads while it is live;
//! - a push wakes exactly the earliest parked consumer of each group parked
//!   on its key, and nobody else;
//! - a hang-up or timeout consumes nothing, a key unparks only once, and
//!   the key of a consumer already answered or gone unparks nobody, even
//!   after a later park reused its slot;
//! - the gauges (`parked`, `live_events`, `live_bytes`, `next_expiry`,
//!   `keys`, `groups`) equal what the model derives, so a sweep frees exactly
//!   what expired and forgetting leaves no group or key behind.
//!
//! The model never forgets a group, so the store agreeing with it on every
//! take and push is what shows that forgetting changes nothing observable.
//! Keys and groups are few and the TTL is a few milliseconds, so sequences
//! hit parked groups, expiry in the middle of a backlog, forgotten groups
//! coming back and the memory limit all the time.

use std::collections::{HashMap, HashSet};

use event_syncer::config::Millis;
use event_syncer::store::{Batch, ConsumerId, Delivery, EVENT_OVERHEAD, ParkKey, PushError, Store};
use proptest::prelude::*;
use proptest::test_runner::Config;

const KEYS: [&str; 3] = ["a", "b", "c"];
const GROUPS: [&str; 3] = ["x", "y", "z"];

#[derive(Clone, Debug)]
enum Op {
    /// `POST /push` to a key, with a JSON body padded by `pad` bytes.
    Push { key: usize, pad: usize },
    /// `GET /blocking-get`: take, and park if there was nothing.
    Get { key: usize, group: usize },
    /// A parked consumer's client closed its connection.
    HangUp(prop::sample::Index),
    /// A parked consumer's poll timeout passed.
    Timeout(prop::sample::Index),
    /// The clock moves forward by this many ms.
    Advance(Millis),
    /// The event loop's expiry timer fires.
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len(), 0..40usize).prop_map(|(key, pad)| Op::Push { key, pad }),
        5 => (0..KEYS.len(), 0..GROUPS.len()).prop_map(|(key, group)| Op::Get { key, group }),
        1 => any::<prop::sample::Index>().prop_map(Op::HangUp),
        1 => any::<prop::sample::Index>().prop_map(Op::Timeout),
        // Mostly steps within one TTL, sometimes far past it.
        3 => prop_oneof![3 => 0..4u64, 2 => 4..25u64, 1 => 25..500u64].prop_map(Op::Advance),
        1 => Just(Op::Sweep),
    ]
}

#[derive(Debug)]
struct Event {
    seq: u64,
    json: Vec<u8>,
    expires_at: Millis,
}

#[derive(Debug)]
struct Consumer {
    id: ConsumerId,
    key: usize,
    group: usize,
    park: ParkKey,
}

/// What the store should look like, kept the naive way.
struct Model {
    now: Millis,
    ttl: Millis,
    max_bytes: usize,
    next_seq: u64,
    next_consumer: usize,
    /// Per key, the events the store should still retain (not yet swept).
    retained: Vec<Vec<Event>>,
    /// Every event ever stored: `(key, seq, pushed_at, expires_at)`.
    history: Vec<(usize, u64, Millis, Millis)>,
    /// Per (key, group): each sequence number it was given, and when.
    given: HashMap<(usize, usize), HashMap<u64, Millis>>,
    /// Per (key, group): every read, as (when, next seq at that time).
    reads: HashMap<(usize, usize), Vec<(Millis, u64)>>,
    /// Per (key, group): the store's next seq when it last got a batch. Only
    /// used to predict how many groups the store must still remember.
    last_batch_end: HashMap<(usize, usize), u64>,
    /// Parked consumers in the order they parked.
    parked: Vec<Consumer>,
    /// Keys of consumers already answered or unparked: a late hang-up or
    /// timer for one of them must find nothing, even once its slot is reused.
    stale: Vec<ParkKey>,
}

impl Model {
    fn new(ttl: Millis, max_bytes: usize) -> Model {
        Model {
            now: 0,
            ttl,
            max_bytes,
            next_seq: 1,
            next_consumer: 0,
            retained: KEYS.iter().map(|_| Vec::new()).collect(),
            history: Vec::new(),
            given: HashMap::new(),
            reads: HashMap::new(),
            last_batch_end: HashMap::new(),
            parked: Vec::new(),
            stale: Vec::new(),
        }
    }

    fn live_bytes(&self) -> usize {
        self.retained
            .iter()
            .flatten()
            .map(|e| e.json.len() + EVENT_OVERHEAD)
            .sum()
    }

    /// The group's batch if it read now: its live events it never got.
    fn expected_batch(&self, key: usize, group: usize) -> Vec<(u64, Vec<u8>)> {
        let given = self.given.get(&(key, group));
        self.retained[key]
            .iter()
            .filter(|e| self.now < e.expires_at)
            .filter(|e| !given.is_some_and(|g| g.contains_key(&e.seq)))
            .map(|e| (e.seq, e.json.clone()))
            .collect()
    }

    /// Checks `batch` is exactly what the group should get now, then records
    /// it as given.
    fn deliver(&mut self, store: &Store, key: usize, group: usize, batch: &Batch) {
        let expected = self.expected_batch(key, group);
        assert!(
            !expected.is_empty(),
            "a batch for {key}/{group} when none was due"
        );
        let got: Vec<&[u8]> = store.batch_events(batch).collect();
        let want: Vec<&[u8]> = expected.iter().map(|(_, j)| j.as_slice()).collect();
        assert_eq!(got, want, "batch for {key}/{group} at {}", self.now);
        assert_eq!(batch.len, expected.len(), "batch.len");
        assert!(
            expected.iter().all(|(s, _)| batch.seqs.contains(s)),
            "batch.seqs {:?} misses one of {:?}",
            batch.seqs,
            expected.iter().map(|(s, _)| s).collect::<Vec<_>>()
        );
        assert_eq!(
            batch.seqs.start, expected[0].0,
            "batch starts at its first event"
        );
        let now = self.now;
        let given = self.given.entry((key, group)).or_default();
        for (seq, _) in &expected {
            assert!(given.insert(*seq, now).is_none(), "seq {seq} given twice");
        }
        self.last_batch_end.insert((key, group), self.next_seq);
    }

    fn read(&mut self, key: usize, group: usize) {
        let at = (self.now, self.next_seq);
        self.reads.entry((key, group)).or_default().push(at);
    }

    /// How many groups the store must remember: those with someone parked
    /// or with a retained event before the end of their last batch (the
    /// store forgets every other one).
    fn expected_groups(&self) -> HashSet<(usize, usize)> {
        let mut groups: HashSet<(usize, usize)> =
            self.parked.iter().map(|c| (c.key, c.group)).collect();
        for (&(key, group), &end) in &self.last_batch_end {
            if self.retained[key].first().is_some_and(|e| e.seq < end) {
                groups.insert((key, group));
            }
        }
        groups
    }

    fn check_gauges(&self, store: &Store) {
        let at = self.now;
        for c in &self.parked {
            let due = self.expected_batch(c.key, c.group);
            assert!(due.is_empty(), "{c:?} still parked with {due:?} due");
        }
        assert_eq!(store.parked(), self.parked.len(), "parked at {at}");
        let live: usize = self.retained.iter().map(Vec::len).sum();
        assert_eq!(store.live_events(), live, "live_events at {at}");
        assert_eq!(store.live_bytes(), self.live_bytes(), "live_bytes at {at}");
        let next = self.retained.iter().flatten().map(|e| e.expires_at).min();
        assert_eq!(store.next_expiry(), next, "next_expiry at {at}");
        let groups = self.expected_groups();
        assert_eq!(
            store.groups(),
            groups.len(),
            "groups at {at}: want {groups:?}"
        );
        let keys = (0..KEYS.len())
            .filter(|&k| !self.retained[k].is_empty() || groups.iter().any(|&(gk, _)| gk == k))
            .count();
        assert_eq!(store.keys(), keys, "keys at {at}");
    }

    /// Every event reached every group that read while it was live, at or
    /// before that read, and no group got an event before its push or after
    /// its expiry.
    fn check_history(&self) {
        for (&(key, group), reads) in &self.reads {
            let given = self.given.get(&(key, group));
            for &(at, seq_bound) in reads {
                for &(k, seq, pushed_at, expires_at) in &self.history {
                    if k != key || seq >= seq_bound || at >= expires_at {
                        continue;
                    }
                    let when = given.and_then(|g| g.get(&seq));
                    assert!(
                        when.is_some_and(|&w| w <= at),
                        "{key}/{group} read at {at} but never got seq {seq} \
                         (pushed {pushed_at}, expires {expires_at})"
                    );
                }
            }
        }
        for (&(key, group), given) in &self.given {
            for (&seq, &at) in given {
                let &(k, _, pushed_at, expires_at) = self
                    .history
                    .iter()
                    .find(|h| h.1 == seq)
                    .expect("given seq was pushed");
                assert_eq!(k, key, "{key}/{group} got seq {seq} of another key");
                assert!(
                    pushed_at <= at && at < expires_at,
                    "seq {seq} given at {at}"
                );
            }
        }
    }
}

fn step(store: &mut Store, model: &mut Model, op: &Op) {
    match *op {
        Op::Push { key, pad } => {
            let json =
                format!(r#"{{"n":{},"p":"{}"}}"#, model.next_seq, "x".repeat(pad)).into_bytes();
            let mut woken: Vec<Delivery> = Vec::new();
            // Keys and groups count against the limit too; the model keeps
            // events only, and takes the store's word for the rest.
            let booked = store.bookkeeping_bytes();
            let result = store.push(KEYS[key], &json, model.now, &mut woken);
            if model.live_bytes() + booked + json.len() + EVENT_OVERHEAD > model.max_bytes {
                assert_eq!(result, Err(PushError::Full));
                assert!(woken.is_empty(), "a refused push woke someone");
                return;
            }
            assert_eq!(result, Ok(model.next_seq), "push's sequence number");
            model.retained[key].push(Event {
                seq: model.next_seq,
                json,
                expires_at: model.now + model.ttl,
            });
            model
                .history
                .push((key, model.next_seq, model.now, model.now + model.ttl));
            model.next_seq += 1;

            // The earliest parked consumer of each group parked on the key.
            let mut heads: Vec<usize> = Vec::new();
            for (i, c) in model.parked.iter().enumerate() {
                if c.key == key && !heads.iter().any(|&h| model.parked[h].group == c.group) {
                    heads.push(i);
                }
            }
            let mut want: Vec<ConsumerId> = heads.iter().map(|&i| model.parked[i].id).collect();
            let mut got: Vec<ConsumerId> = woken.iter().map(|d| d.consumer).collect();
            want.sort_by_key(|c| c.0);
            got.sort_by_key(|c| c.0);
            assert_eq!(got, want, "who a push to {key} woke");

            for d in &woken {
                let c = model
                    .parked
                    .iter()
                    .find(|c| c.id == d.consumer)
                    .expect("woken was parked");
                let (k, g) = (c.key, c.group);
                model.read(k, g);
                model.deliver(store, k, g, &d.batch);
            }
            let answered: Vec<ParkKey> = heads.iter().map(|&i| model.parked[i].park).collect();
            model
                .parked
                .retain(|c| !woken.iter().any(|d| d.consumer == c.id));
            // Nothing parked since, so no slot was reused: an answered
            // consumer that hangs up now is not parked.
            for park in answered {
                assert!(!store.unpark(park), "an answered consumer unparked");
                model.stale.push(park);
            }
        }
        Op::Get { key, group } => {
            model.read(key, group);
            match store.take(KEYS[key], GROUPS[group], model.now) {
                Some(batch) => model.deliver(store, key, group, &batch),
                None => {
                    let due = model.expected_batch(key, group);
                    assert!(
                        due.is_empty(),
                        "take found nothing for {key}/{group}, due {due:?}"
                    );
                    let id = ConsumerId(model.next_consumer);
                    model.next_consumer += 1;
                    let park = store.park(KEYS[key], GROUPS[group], id);
                    model.parked.push(Consumer {
                        id,
                        key,
                        group,
                        park,
                    });
                }
            }
        }
        Op::HangUp(index) | Op::Timeout(index) => {
            // A late one for a consumer that is gone first: it must change
            // nothing, whoever has its slot now (the gauges check that).
            if !model.stale.is_empty() {
                let park = model.stale[index.index(model.stale.len())];
                assert!(!store.unpark(park), "a stale {park:?} unparked someone");
            }
            if model.parked.is_empty() {
                return;
            }
            let c = model.parked.remove(index.index(model.parked.len()));
            assert!(store.unpark(c.park), "{c:?} was parked");
            assert!(!store.unpark(c.park), "{c:?} unparked twice");
            model.stale.push(c.park);
        }
        Op::Advance(ms) => model.now += ms,
        Op::Sweep => {
            let now = model.now;
            let mut expired = 0;
            for events in &mut model.retained {
                let before = events.len();
                events.retain(|e| now < e.expires_at);
                expired += before - events.len();
            }
            assert_eq!(
                store.expire(now),
                expired,
                "events freed by a sweep at {now}"
            );
        }
    }
}

fn run(ttl: Millis, max_bytes: usize, ops: &[Op]) {
    let mut store = Store::new(ttl, max_bytes);
    let mut model = Model::new(ttl, max_bytes);
    for op in ops {
        step(&mut store, &mut model, op);
        model.check_gauges(&store);
    }
    // Every group reads once more at the end: nothing live may be missing.
    for (key, key_name) in KEYS.iter().enumerate() {
        for (group, group_name) in GROUPS.iter().enumerate() {
            model.read(key, group);
            match store.take(key_name, group_name, model.now) {
                Some(batch) => model.deliver(&store, key, group, &batch),
                None => assert!(model.expected_batch(key, group).is_empty()),
            }
        }
    }
    model.check_gauges(&store);
    model.check_history();
}

proptest! {
    #![proptest_config(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn store_agrees_with_the_model(
        ttl in 1..=20u64,
        // Mostly unlimited; sometimes room for only a few events.
        max_bytes in prop_oneof![
            3 => Just(usize::MAX),
            1 => (1..6usize).prop_map(|n| n * (EVENT_OVERHEAD + 30)),
        ],
        ops in prop::collection::vec(op(), 1..200),
    ) {
        run(ttl, max_bytes, &ops);
    }
}

/// The model itself, checked on a sequence whose answer is worked out by
/// hand: a take, a park after an empty take, a push waking the parked
/// consumer of one group only, and a read after expiry.
#[test]
fn model_agrees_with_a_hand_checked_sequence() {
    let ops = [
        Op::Push { key: 0, pad: 0 },
        Op::Get { key: 0, group: 0 },
        Op::Get { key: 0, group: 0 },
        Op::Get { key: 0, group: 1 },
        Op::Push { key: 0, pad: 1 },
        Op::Advance(10),
        Op::Get { key: 0, group: 2 },
        Op::Sweep,
    ];
    let mut store = Store::new(10, usize::MAX);
    let mut model = Model::new(10, usize::MAX);
    for op in &ops {
        step(&mut store, &mut model, op);
        model.check_gauges(&store);
    }
    // x got seq 1, parked, and was woken with 2; y read once and got 1; z
    // came after both expired and parked; the sweep freed both events.
    let got = |g: usize| {
        let mut seqs: Vec<u64> = model
            .given
            .get(&(0, g))
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        seqs.sort_unstable();
        seqs
    };
    assert_eq!((got(0), got(1), got(2)), (vec![1, 2], vec![1], vec![]));
    assert_eq!((store.parked(), store.live_events()), (1, 0));
}

/// An answered consumer's `ParkKey` stays stale after its slab slot is
/// reused by a later park, even in another group: unparking it must not
/// unpark the newcomer.
#[test]
fn a_stale_park_key_does_not_unpark_a_later_consumer() {
    let mut store = Store::new(1000, usize::MAX);
    let answered = store.park("k", "g", ConsumerId(1));
    let mut woken = Vec::new();
    store.push("k", b"1", 0, &mut woken).unwrap();
    assert_eq!(woken[0].consumer, ConsumerId(1));
    let _later = store.park("k", "h", ConsumerId(2));
    assert!(!store.unpark(answered), "consumer 1 was answered already");
    assert_eq!(store.parked(), 1, "consumer 2 is still parked");
}
