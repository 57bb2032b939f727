//! Leases: at-least-once delivery for the consumers that ask for it.
//!
//! Without a lease a batch is consumed the moment it is handed out. With
//! one (`lease=SECONDS`), the group's cursor still moves past the batch, so
//! the group's other consumers get the events after it, but the batch is
//! remembered as a [`Lease`]: its sequence range, how many events, when the
//! lease runs out, and its attempt number. Then one of three things ends it:
//!
//! - **ack**: the consumer is done; the lease is forgotten.
//! - **the deadline, or a nack**: the lease is *due*. Its range joins the
//!   group's `due` list, and the group's next batch is its still-live events
//!   (before any newer event), under a new batch id with the attempt one
//!   higher. Until that happens a lease that ran out can still be acked; a
//!   nacked one was given back and is done.
//! - **expiry**: every event of it has outlived the TTL; it ends by itself
//!   and is counted as expired unacked.
//!
//! A group with a lease is never forgotten. The store stays pure: the loop
//! arms a timer at each lease's deadline and calls [`Store::lease_timer`]
//! when it fires; an extended lease simply tells it to wait longer.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;

use super::{Batch, Delivery, Leased, Store, Take};
use crate::config::Millis;

/// The batch is not leased to that group (any more): never was, acked
/// already, or its lease ran out and its events were handed out again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotLeased;

/// What a lease's timer found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseTimer {
    /// The lease is gone (acked, given back, or ended) or already due.
    Gone,
    /// It was extended: fire again at this tick.
    Rearm(Millis),
    /// It ran out: its events are due again, and here is the parked
    /// consumer that takes them now, if there is one.
    Due(Option<Delivery>),
}

/// Lease counters, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Batches acked.
    pub acks: u64,
    /// Batches given back with a nack.
    pub nacks: u64,
    /// Batches of leased events handed out again.
    pub redeliveries: u64,
    /// Leases that ran out unacked.
    pub expiries: u64,
    /// Leased events that expired before they were acked.
    pub events_expired: u64,
}

/// One leased batch.
#[derive(Debug)]
pub(super) struct Lease {
    pub(super) group: u32,
    pub(super) seqs: Range<u64>,
    pub(super) count: usize,
    pub(super) deadline: Millis,
    pub(super) attempt: u32,
    /// Ran out or nacked, waiting to be handed out again.
    pub(super) due: bool,
}

/// Leased events to hand out again: a range, the attempt they were last
/// handed out under, and the lease that can still be acked (none once a
/// part of the range has gone out again).
#[derive(Clone, Debug)]
pub(super) struct Due {
    pub(super) seqs: Range<u64>,
    pub(super) attempt: u32,
    pub(super) lease: Option<u64>,
}

/// A group's side of its leases.
#[derive(Debug, Default)]
pub(super) struct GroupLeases {
    /// Ids of its leases, running or run out.
    pub(super) ids: Vec<u64>,
    /// Leased events to hand out again before any newer event, oldest
    /// first.
    pub(super) due: VecDeque<Due>,
}

impl GroupLeases {
    /// Whether the group still owes anything to a lease.
    pub(super) fn held(&self) -> bool {
        !self.ids.is_empty() || !self.due.is_empty()
    }
}

/// A group's leases, made when it first leases.
pub(super) fn of(group: &mut super::Group) -> &mut GroupLeases {
    group.leases.get_or_insert_with(Box::default)
}

/// Every lease of the store, by batch id.
#[derive(Debug)]
pub(super) struct Leases {
    pub(super) by_id: HashMap<u64, Lease>,
    pub(super) next_id: u64,
    pub(super) stats: LeaseStats,
}

impl Leases {
    pub(super) fn starting_at(first_id: u64) -> Leases {
        Leases {
            by_id: HashMap::new(),
            next_id: first_id,
            stats: LeaseStats::default(),
        }
    }
}

impl Store {
    /// Acknowledges batch `id` of group (`key`, `group`): the lease ends.
    /// Returns how many events the batch held.
    pub fn ack(&mut self, key: &str, group: &str, id: u64) -> Result<usize, NotLeased> {
        let g = self.leased_to(key, group, id)?;
        // Done with: if it was due again, it is not handed out any more.
        of(&mut self.groups[g as usize])
            .due
            .retain(|d| d.lease != Some(id));
        let lease = self.end_lease(id).ok_or(NotLeased)?;
        self.leases.stats.acks += 1;
        self.forget_if_unused(g);
        Ok(lease.count)
    }

    /// Gives batch `id` back now: its events are due again, and the group's
    /// earliest parked consumer, if any, takes them at once (returned). The
    /// batch is no longer leased: a later ack, nack or extend of it is
    /// refused.
    pub fn nack(
        &mut self,
        key: &str,
        group: &str,
        id: u64,
        now: Millis,
    ) -> Result<Option<Delivery>, NotLeased> {
        let g = self.leased_to(key, group, id)?;
        self.leases.stats.nacks += 1;
        self.make_due(id);
        self.end_lease(id);
        Ok(self.wake_group(g, now))
    }

    /// Moves batch `id`'s deadline to `lease` ms after `now` (a lease that
    /// ran out but was not handed out again runs again). Returns the new
    /// deadline, for the caller's timer.
    pub fn extend(
        &mut self,
        key: &str,
        group: &str,
        id: u64,
        lease: Millis,
        now: Millis,
    ) -> Result<Millis, NotLeased> {
        let g = self.leased_to(key, group, id)?;
        let deadline = lease_deadline(now, lease);
        let Some(l) = self.leases.by_id.get_mut(&id) else {
            return Err(NotLeased);
        };
        l.deadline = deadline;
        if std::mem::take(&mut l.due) {
            of(&mut self.groups[g as usize])
                .due
                .retain(|d| d.lease != Some(id));
        }
        Ok(deadline)
    }

    /// Batch `id`'s timer fired at `now`.
    pub fn lease_timer(&mut self, id: u64, now: Millis) -> LeaseTimer {
        let Some(lease) = self.leases.by_id.get(&id) else {
            return LeaseTimer::Gone;
        };
        if lease.due {
            return LeaseTimer::Gone;
        }
        if lease.deadline > now {
            return LeaseTimer::Rearm(lease.deadline);
        }
        let group = lease.group;
        self.leases.stats.expiries += 1;
        self.make_due(id);
        LeaseTimer::Due(self.wake_group(group, now))
    }

    /// Leases outstanding (running, or run out and not handed out again).
    pub fn leased_batches(&self) -> usize {
        self.leases.by_id.len()
    }

    /// The lease counters.
    pub fn lease_stats(&self) -> LeaseStats {
        self.leases.stats
    }

    /// The next batch of `group` from its due list: the still-live events
    /// of the oldest due range, at most `take.limit` of them. Ranges with
    /// nothing live left end here.
    pub(super) fn redeliver(&mut self, group: u32, now: Millis, take: Take) -> Option<Batch> {
        let key = self.groups[group as usize].key;
        while let Some(due) = self.groups[group as usize]
            .leases
            .as_ref()
            .and_then(|l| l.due.front().cloned())
        {
            let (from, to, live) = {
                let events = &self.keys[key as usize].events;
                let from = events.partition_point(|e| e.seq < due.seqs.start);
                let to = events.partition_point(|e| e.seq < due.seqs.end);
                (
                    from,
                    to,
                    from.max(events.partition_point(|e| e.expires_at <= now)),
                )
            };
            self.leases.stats.events_expired += (live.min(to) - from) as u64;
            if let Some(id) = due.lease {
                // Handed out again (or ending): it can no longer be acked.
                self.end_lease(id);
            }
            if live >= to {
                of(&mut self.groups[group as usize]).due.pop_front();
                continue;
            }
            let len = (to - live).min(take.limit.max(1) as usize);
            let (first, end) = {
                let events = &self.keys[key as usize].events;
                let end = if live + len < to {
                    events[live + len].seq
                } else {
                    due.seqs.end
                };
                (events[live].seq, end)
            };
            let queue = &mut of(&mut self.groups[group as usize]).due;
            if end < due.seqs.end {
                if let Some(front) = queue.front_mut() {
                    front.seqs.start = end;
                    front.lease = None;
                }
            } else {
                queue.pop_front();
            }
            self.leases.stats.redeliveries += 1;
            return Some(self.hand_out(group, first..end, len, due.attempt + 1, take, now));
        }
        None
    }

    /// A batch of `group` as it goes out: under a new lease if `take` asks
    /// for one.
    pub(super) fn hand_out(
        &mut self,
        group: u32,
        seqs: Range<u64>,
        len: usize,
        attempt: u32,
        take: Take,
        now: Millis,
    ) -> Batch {
        let key = self.groups[group as usize].key;
        let lease = (take.lease > 0).then(|| {
            let id = self.leases.next_id;
            self.leases.next_id += 1;
            let deadline = lease_deadline(now, Millis::from(take.lease));
            self.leases.by_id.insert(
                id,
                Lease {
                    group,
                    seqs: seqs.clone(),
                    count: len,
                    deadline,
                    attempt,
                    due: false,
                },
            );
            of(&mut self.groups[group as usize]).ids.push(id);
            Leased {
                id,
                attempt,
                deadline,
            }
        });
        let batch = Batch {
            key,
            seqs,
            len,
            lease,
        };
        self.note_hand_out(group, &batch, attempt, take.lease, now);
        batch
    }

    /// Ends the leases of `key_idx`'s groups whose events have all expired
    /// by `now`, and drops due ranges with nothing live left.
    pub(super) fn end_dead_leases(&mut self, key_idx: u32, now: Millis) {
        let Some(key) = self.keys.get(key_idx as usize) else {
            return;
        };
        let live_from = key
            .events
            .iter()
            .find(|e| e.expires_at > now)
            .map_or(self.next_seq, |e| e.seq);
        let groups: Vec<u32> = key.groups.values().copied().collect();
        for g in groups {
            let Some(held) = &self.groups[g as usize].leases else {
                continue;
            };
            let dead: Vec<u64> = held
                .ids
                .iter()
                .copied()
                .filter(|id| {
                    self.leases
                        .by_id
                        .get(id)
                        .is_some_and(|l| l.seqs.end <= live_from)
                })
                .collect();
            for id in dead {
                if let Some(lease) = self.end_lease(id) {
                    self.leases.stats.events_expired += lease.count as u64;
                }
            }
            of(&mut self.groups[g as usize])
                .due
                .retain(|d| d.seqs.end > live_from);
        }
    }

    /// The group index of (`key`, `group`) if batch `id` is leased to it.
    fn leased_to(&self, key: &str, group: &str, id: u64) -> Result<u32, NotLeased> {
        let key_idx = *self.key_index.get(key).ok_or(NotLeased)?;
        let g = *self.keys[key_idx as usize]
            .groups
            .get(group)
            .ok_or(NotLeased)?;
        match self.leases.by_id.get(&id) {
            Some(lease) if lease.group == g => Ok(g),
            _ => Err(NotLeased),
        }
    }

    /// Marks lease `id` due and queues its range, oldest range first.
    fn make_due(&mut self, id: u64) {
        let Some(lease) = self.leases.by_id.get_mut(&id) else {
            return;
        };
        if std::mem::replace(&mut lease.due, true) {
            return;
        }
        let due = Due {
            seqs: lease.seqs.clone(),
            attempt: lease.attempt,
            lease: Some(id),
        };
        let queue = &mut of(&mut self.groups[lease.group as usize]).due;
        let at = queue.partition_point(|d| d.seqs.start < due.seqs.start);
        queue.insert(at, due);
    }

    /// Forgets lease `id`; a due range of it stays, but can no longer be
    /// acked under that id.
    pub(super) fn end_lease(&mut self, id: u64) -> Option<Lease> {
        let lease = self.leases.by_id.remove(&id)?;
        let g = of(&mut self.groups[lease.group as usize]);
        g.ids.retain(|&l| l != id);
        if lease.due {
            for d in g.due.iter_mut().filter(|d| d.lease == Some(id)) {
                d.lease = None;
            }
        }
        Some(lease)
    }
}

/// The tick at which a lease of `lease` ms taken at `now` runs out. `now` is
/// rounded down, so one tick more keeps it from running out early.
pub(super) fn lease_deadline(now: Millis, lease: Millis) -> Millis {
    now.saturating_add(lease).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ConsumerId;

    const TTL: Millis = 10_000;

    fn store() -> Store {
        Store::new(TTL, usize::MAX)
    }

    fn push(s: &mut Store, json: &str, now: Millis) -> u64 {
        s.push("k", json.as_bytes(), now, &mut Vec::new()).unwrap()
    }

    fn leased(ms: u32) -> Take {
        Take {
            lease: ms,
            ..Take::ALL
        }
    }

    fn limited(limit: u32, lease: u32) -> Take {
        Take {
            limit,
            lease,
            envelope: false,
        }
    }

    /// The ids of a batch's events.
    fn ids(s: &Store, b: &Batch) -> Vec<u64> {
        s.batch_events_from(b, 0).map(|(id, _)| id).collect()
    }

    #[test]
    fn a_lease_hands_out_the_batch_and_an_ack_ends_it_once() {
        let mut s = store();
        let a = push(&mut s, "1", 0);
        let b = s.take_with("k", "g", 1, leased(500)).unwrap();
        let lease = b.lease.unwrap();
        assert_eq!((lease.attempt, lease.deadline), (1, 502));
        assert_eq!(ids(&s, &b), [a]);
        assert_eq!(s.leased_batches(), 1);
        assert_eq!(s.ack("k", "g", lease.id), Ok(1));
        assert_eq!(s.ack("k", "g", lease.id), Err(NotLeased), "a second ack");
        assert_eq!(s.nack("k", "g", lease.id, 2), Err(NotLeased));
        assert_eq!(s.leased_batches(), 0);
        assert_eq!(s.lease_timer(lease.id, 502), LeaseTimer::Gone);
        assert!(
            s.take_with("k", "g", 600, leased(500)).is_none(),
            "acked: never again"
        );
    }

    #[test]
    fn other_consumers_of_the_group_get_the_events_after_a_leased_batch() {
        let mut s = store();
        push(&mut s, "1", 0);
        let first = s.take_with("k", "g", 1, leased(500)).unwrap();
        let two = push(&mut s, "2", 2);
        let second = s.take_with("k", "g", 3, Take::ALL).unwrap();
        assert_eq!(ids(&s, &second), [two]);
        assert!(first.lease.is_some() && second.lease.is_none());
    }

    #[test]
    fn a_lease_that_runs_out_is_handed_out_again_before_newer_events() {
        let mut s = store();
        let one = push(&mut s, "1", 0);
        let first = s
            .take_with("k", "g", 1, leased(500))
            .unwrap()
            .lease
            .unwrap();
        let two = push(&mut s, "2", 100);
        assert_eq!(
            s.lease_timer(first.id, 501),
            LeaseTimer::Rearm(502),
            "not yet"
        );
        assert_eq!(s.lease_timer(first.id, 502), LeaseTimer::Due(None));
        // Run out but not handed out again: still acknowledgeable...
        let again = s.take_with("k", "g", 600, leased(500)).unwrap();
        assert_eq!(ids(&s, &again), [one], "the old events come first");
        let lease = again.lease.unwrap();
        assert_eq!(lease.attempt, 2);
        assert_ne!(lease.id, first.id, "a new batch of its own");
        // ...but not once they went out again.
        assert_eq!(s.ack("k", "g", first.id), Err(NotLeased));
        let newer = s.take_with("k", "g", 601, Take::ALL).unwrap();
        assert_eq!(ids(&s, &newer), [two]);
        assert_eq!(s.lease_stats().redeliveries, 1);
        assert_eq!(s.lease_stats().expiries, 1);
    }

    #[test]
    fn an_expired_lease_not_yet_handed_out_again_can_be_acked() {
        let mut s = store();
        push(&mut s, "1", 0);
        let lease = s
            .take_with("k", "g", 1, leased(500))
            .unwrap()
            .lease
            .unwrap();
        assert_eq!(s.lease_timer(lease.id, 600), LeaseTimer::Due(None));
        assert_eq!(s.ack("k", "g", lease.id), Ok(1));
        assert!(
            s.take_with("k", "g", 700, Take::ALL).is_none(),
            "acked events stay done"
        );
    }

    #[test]
    fn a_parked_consumer_takes_a_lease_that_runs_out_at_once() {
        let mut s = store();
        let one = push(&mut s, "1", 0);
        let lease = s
            .take_with("k", "g", 1, leased(500))
            .unwrap()
            .lease
            .unwrap();
        s.park_with("k", "g", ConsumerId(7), leased(300));
        let LeaseTimer::Due(Some(d)) = s.lease_timer(lease.id, 502) else {
            panic!("the parked consumer must be answered");
        };
        assert_eq!(d.consumer, ConsumerId(7));
        assert_eq!(ids(&s, &d.batch), [one]);
        assert_eq!(
            d.batch.lease.map(|l| (l.attempt, l.deadline)),
            Some((2, 803))
        );
        assert_eq!(s.parked(), 0);
    }

    #[test]
    fn a_nack_gives_the_batch_back_now() {
        let mut s = store();
        let one = push(&mut s, "1", 0);
        let lease = s
            .take_with("k", "g", 1, leased(500))
            .unwrap()
            .lease
            .unwrap();
        s.park("k", "g", ConsumerId(3));
        let d = s
            .nack("k", "g", lease.id, 10)
            .unwrap()
            .expect("a parked consumer");
        assert_eq!((d.consumer, ids(&s, &d.batch)), (ConsumerId(3), vec![one]));
        assert_eq!(
            d.batch.lease, None,
            "the taker asked for no lease: consumed"
        );
        assert_eq!(
            s.nack("k", "g", lease.id, 11),
            Err(NotLeased),
            "handed out again"
        );
        assert_eq!(s.lease_stats().nacks, 1);
    }

    #[test]
    fn a_nacked_batch_is_no_longer_leased_even_before_anyone_takes_it() {
        let mut s = store();
        let one = push(&mut s, "1", 0);
        let lease = s
            .take_with("k", "g", 1, leased(500))
            .unwrap()
            .lease
            .unwrap();
        assert_eq!(s.nack("k", "g", lease.id, 2), Ok(None));
        assert_eq!(s.ack("k", "g", lease.id), Err(NotLeased));
        assert_eq!(s.leased_batches(), 0);
        let again = s.take_with("k", "g", 3, leased(500)).unwrap();
        assert_eq!(
            (ids(&s, &again), again.lease.unwrap().attempt),
            (vec![one], 2)
        );
    }

    #[test]
    fn extend_moves_the_deadline_and_revives_a_lease_that_ran_out() {
        let mut s = store();
        push(&mut s, "1", 0);
        let lease = s
            .take_with("k", "g", 1, leased(500))
            .unwrap()
            .lease
            .unwrap();
        assert_eq!(s.extend("k", "g", lease.id, 2_000, 100), Ok(2_101));
        assert_eq!(s.lease_timer(lease.id, 502), LeaseTimer::Rearm(2_101));
        assert_eq!(s.lease_timer(lease.id, 2_101), LeaseTimer::Due(None));
        assert_eq!(s.extend("k", "g", lease.id, 1_000, 2_200), Ok(3_201));
        assert!(
            s.take_with("k", "g", 2_300, Take::ALL).is_none(),
            "leased again: not due"
        );
        assert_eq!(
            s.extend("k", "x", lease.id, 1_000, 2_300),
            Err(NotLeased),
            "another group"
        );
        assert_eq!(s.ack("other", "g", lease.id), Err(NotLeased), "another key");
    }

    #[test]
    fn limit_cuts_batches_with_and_without_a_lease() {
        let mut s = store();
        let all: Vec<u64> = (0..5).map(|i| push(&mut s, &i.to_string(), 0)).collect();
        let a = s.take_with("k", "g", 1, limited(2, 0)).unwrap();
        assert_eq!(ids(&s, &a), all[..2]);
        let b = s.take_with("k", "g", 1, limited(2, 500)).unwrap();
        assert_eq!(ids(&s, &b), all[2..4]);
        let c = s.take_with("k", "g", 1, limited(2, 0)).unwrap();
        assert_eq!(ids(&s, &c), all[4..]);
        // The leased two come back in pieces of one, with their attempt.
        let lease = b.lease.unwrap();
        s.lease_timer(lease.id, 502);
        let d = s.take_with("k", "g", 600, limited(1, 500)).unwrap();
        assert_eq!(
            (ids(&s, &d), d.lease.unwrap().attempt),
            (all[2..3].to_vec(), 2)
        );
        let e = s.take_with("k", "g", 600, limited(1, 0)).unwrap();
        assert_eq!(ids(&s, &e), all[3..4]);
        assert!(s.take_with("k", "g", 600, Take::ALL).is_none());
    }

    #[test]
    fn a_lease_whose_events_all_expired_ends_by_itself() {
        let mut s = store();
        push(&mut s, "1", 0);
        let lease = s
            .take_with("k", "g", 1, leased(300_000))
            .unwrap()
            .lease
            .unwrap();
        assert_eq!(s.groups(), 1);
        s.expire(TTL);
        assert_eq!(s.leased_batches(), 0);
        assert_eq!(s.lease_stats().events_expired, 1);
        assert_eq!(s.ack("k", "g", lease.id), Err(NotLeased));
        assert_eq!((s.groups(), s.keys()), (0, 0), "nothing left to remember");
    }

    #[test]
    fn a_redelivery_hands_out_only_live_events_and_counts_the_rest() {
        let mut s = store();
        let one = push(&mut s, "1", 0);
        let two = push(&mut s, "2", 5_000);
        let lease = s
            .take_with("k", "g", 5_001, leased(6_000))
            .unwrap()
            .lease
            .unwrap();
        assert_eq!(lease.deadline, 11_002);
        // Event 1 expires at 10,000; the lease runs out at 11,002.
        s.lease_timer(lease.id, 11_002);
        let again = s.take_with("k", "g", 11_002, Take::ALL).unwrap();
        assert_eq!(ids(&s, &again), [two]);
        assert_ne!(one, two);
        assert_eq!(s.lease_stats().events_expired, 1);
    }

    #[test]
    fn a_group_with_a_lease_is_not_forgotten() {
        let mut s = store();
        push(&mut s, "1", 0);
        let lease = s
            .take_with("k", "g", 1, leased(500))
            .unwrap()
            .lease
            .unwrap();
        let p = s.park("k", "g", ConsumerId(1));
        s.unpark(p);
        assert_eq!(s.groups(), 1);
        assert_eq!(s.ack("k", "g", lease.id), Ok(1));
        assert_eq!(
            s.groups(),
            1,
            "it consumed event 1, which is still retained"
        );
    }
}
