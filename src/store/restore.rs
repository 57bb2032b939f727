//! The store's side of a data directory: telling the log which batches
//! were handed out, and being rebuilt from that log on start.
//!
//! Every batch, whoever asked for it (a blocking-get, a push waking parked
//! consumers, a nack or a lease running out handing events out again), goes
//! through one place, `hand_out`; with [`Store::record_hand_outs`] on, that
//! place notes it, and the caller drains the notes into its log after each
//! change ([`Store::drain_hand_outs`]). Memory-only servers never turn it
//! on and pay one branch.
//!
//! Replay applies what was recorded rather than asking the store to decide
//! again: a batch's recorded range moves the cursor (or consumes its part
//! of the due list) even if some of its events are no longer on disk, so a
//! rebuilt group never skips or repeats an event the live one did not. The
//! lease operations (a lease running out, ack, nack, extend) are replayed
//! through the ordinary methods, which are deterministic given the time.

use super::leases::{Lease, lease_deadline, of};
use super::{Batch, EVENT_OVERHEAD, Event, Store};
use crate::config::Millis;

/// A batch noted as it was handed out, by group index.
#[derive(Debug, Clone, Copy)]
pub(super) struct Noted {
    group: u32,
    at: Millis,
    first: u64,
    end: u64,
    len: u32,
    attempt: u32,
    lease: u32,
    batch: u64,
}

/// A batch handed out, as the log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOut<'a> {
    /// The key.
    pub key: &'a str,
    /// The groupId.
    pub group: &'a str,
    /// When.
    pub at: Millis,
    /// The first sequence of the batch.
    pub first: u64,
    /// One past the last.
    pub end: u64,
    /// How many events it holds.
    pub len: u32,
    /// 1 when taken from the group's cursor, more when handed out again.
    pub attempt: u32,
    /// The lease it went out under, in ms (0: none).
    pub lease: u32,
    /// Its batch id (0 without a lease).
    pub batch: u64,
}

impl Store {
    /// From now on, note every batch handed out, for
    /// [`Store::drain_hand_outs`].
    pub fn record_hand_outs(&mut self) {
        self.hand_outs.get_or_insert_with(Vec::new);
    }

    /// Notes `batch`, handed out to `group` at `at` as attempt `attempt`
    /// under a lease of `lease` ms (0: none), if hand-outs are recorded.
    pub(super) fn note_hand_out(
        &mut self,
        group: u32,
        batch: &Batch,
        attempt: u32,
        lease: u32,
        at: Millis,
    ) {
        if let Some(noted) = &mut self.hand_outs {
            noted.push(Noted {
                group,
                at,
                first: batch.seqs.start,
                end: batch.seqs.end,
                len: batch.len as u32,
                attempt,
                lease,
                batch: batch.lease.map_or(0, |l| l.id),
            });
        }
    }

    /// Hands `f` every batch noted since the last call, oldest first. Call
    /// it right after the change that handed them out: a group is looked
    /// up by its index, and none is forgotten within a push, take, nack or
    /// lease timer.
    pub fn drain_hand_outs(&mut self, mut f: impl FnMut(HandOut<'_>)) {
        let Some(noted) = self.hand_outs.as_mut() else {
            return;
        };
        if noted.is_empty() {
            return;
        }
        let mut noted = std::mem::take(noted);
        for n in &noted {
            let Some(g) = self.groups.get(n.group as usize) else {
                debug_assert!(false, "a group was forgotten before its batch was logged");
                continue;
            };
            f(HandOut {
                key: &self.keys[g.key as usize].name,
                group: &g.name,
                at: n.at,
                first: n.first,
                end: n.end,
                len: n.len,
                attempt: n.attempt,
                lease: n.lease,
                batch: n.batch,
            });
        }
        noted.clear();
        self.hand_outs = Some(noted);
    }

    /// Puts back event `id` of `key`, pushed at `at`. Ids must come in
    /// increasing order (the log's order); one that does not is ignored.
    /// The memory limit is not checked: the event was accepted under it.
    pub fn restore_push(&mut self, key: &str, id: u64, at: Millis, json: &[u8]) {
        if id < self.next_seq {
            return;
        }
        let key_idx = self.key_or_insert(key);
        self.next_seq = id + 1;
        let expires_at = at.saturating_add(self.ttl);
        self.keys[key_idx as usize].events.push_back(Event {
            seq: id,
            expires_at,
            json: json.into(),
        });
        self.expiry.push_back((expires_at, key_idx));
        self.live_bytes += json.len() + EVENT_OVERHEAD;
        self.live_events += 1;
    }

    /// Puts back a batch handed out (see [`HandOut`]): the group's cursor
    /// moves past a fresh batch, a redelivered one consumes its part of the
    /// group's due list, and a leased one is leased again as it was.
    pub fn restore_hand_out(&mut self, h: &HandOut<'_>) {
        let key_idx = self.key_or_insert(h.key);
        let g = self.group_or_insert(key_idx, h.group);
        if h.attempt <= 1 {
            let group = &mut self.groups[g as usize];
            group.cursor = group.cursor.max(h.end);
        } else {
            self.consume_due(g, h.first, h.end);
        }
        if h.lease > 0 && h.batch > 0 {
            self.leases.next_id = self.leases.next_id.max(h.batch + 1);
            self.leases.by_id.insert(
                h.batch,
                Lease {
                    group: g,
                    seqs: h.first..h.end,
                    count: h.len as usize,
                    deadline: lease_deadline(h.at, Millis::from(h.lease)),
                    attempt: h.attempt,
                    due: false,
                },
            );
            of(&mut self.groups[g as usize]).ids.push(h.batch);
        }
    }

    /// What `redeliver` did when it handed out `first..end` again: due
    /// ranges wholly before it had nothing live and were dropped; the one
    /// it came from lost that part, and its lease can no longer be acked.
    fn consume_due(&mut self, g: u32, first: u64, end: u64) {
        loop {
            let Some(front) = self.groups[g as usize]
                .leases
                .as_ref()
                .and_then(|l| l.due.front().cloned())
            else {
                return;
            };
            if front.seqs.start >= end {
                // Not where this batch came from (its due range was in a
                // segment no longer on disk): leave it.
                return;
            }
            if let Some(id) = front.lease {
                self.end_lease(id);
            }
            let queue = &mut of(&mut self.groups[g as usize]).due;
            if front.seqs.end <= first {
                queue.pop_front();
                continue;
            }
            if end < front.seqs.end {
                if let Some(d) = queue.front_mut() {
                    d.seqs.start = end;
                    d.lease = None;
                }
            } else {
                queue.pop_front();
            }
            return;
        }
    }

    /// After a replay at `now`: frees what expired meanwhile, ends leases
    /// and forgets groups and keys with nothing live left, continues ids at
    /// `first_id` or above the last one restored, and starts the lease
    /// counters afresh (they count this run's work).
    pub fn finish_restore(&mut self, now: Millis, first_id: u64) {
        self.expire(now);
        let keys: Vec<u32> = self.keys.iter().map(|(k, _)| k as u32).collect();
        for k in keys {
            self.end_dead_leases(k, now);
            self.forget_unused_in(k);
        }
        self.next_seq = self.next_seq.max(first_id);
        self.leases.next_id = self.leases.next_id.max(first_id);
        self.leases.stats = Default::default();
    }

    /// Every lease still running (not run out nor given back), with its
    /// deadline: the loop arms a timer for each after a replay.
    pub fn running_leases(&self) -> Vec<(u64, Millis)> {
        self.leases
            .by_id
            .iter()
            .filter(|(_, l)| !l.due)
            .map(|(&id, l)| (id, l.deadline))
            .collect()
    }

    /// The next event id the store will give.
    pub fn next_id(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LeaseTimer, Take};

    const TTL: Millis = 10_000;

    /// Runs `live` on a store that notes its batches, then rebuilds a
    /// second store from the pushes and notes alone, as replay does.
    fn replayed(pushes: &[(u64, Millis)], notes: &[HandOut<'_>]) -> Store {
        let mut s = Store::new(TTL, usize::MAX);
        for &(id, at) in pushes {
            s.restore_push("k", id, at, b"1");
        }
        for h in notes {
            s.restore_hand_out(h);
        }
        s
    }

    fn note(s: &mut Store) -> Vec<(u64, u64, u32, u32, u64)> {
        let mut out = Vec::new();
        s.drain_hand_outs(|h| out.push((h.first, h.end, h.attempt, h.lease, h.batch)));
        out
    }

    #[test]
    fn every_way_of_handing_out_is_noted_once_in_order() {
        let mut s = Store::new(TTL, usize::MAX);
        s.record_hand_outs();
        s.park("k", "parked", crate::store::ConsumerId(1));
        let a = s.push("k", b"1", 0, &mut Vec::new()).unwrap_or(0);
        let b = s
            .take_with(
                "k",
                "g",
                1,
                Take {
                    lease: 100,
                    ..Take::ALL
                },
            )
            .and_then(|b| b.lease)
            .map_or(0, |l| l.id);
        assert_eq!(note(&mut s), [(a, a + 1, 1, 0, 0), (a, a + 1, 1, 100, b)]);
        assert!(matches!(s.lease_timer(b, 102), LeaseTimer::Due(None)));
        assert!(note(&mut s).is_empty(), "running out hands nothing out");
        let again = s.take_with("k", "g", 103, Take::ALL);
        assert!(again.is_some());
        assert_eq!(note(&mut s), [(a, a + 1, 2, 0, 0)]);
    }

    #[test]
    fn a_restored_group_continues_from_its_cursor() {
        let notes = [HandOut {
            key: "k",
            group: "g",
            at: 5,
            first: 1,
            end: 3,
            len: 2,
            attempt: 1,
            lease: 0,
            batch: 0,
        }];
        let mut s = replayed(&[(1, 0), (2, 1), (3, 2)], &notes);
        let batch = s.take("k", "g", 6).map(|b| b.seqs);
        assert_eq!(batch, Some(3..4));
        assert_eq!(s.take("k", "other", 6).map(|b| b.seqs), Some(1..4));
        assert_eq!(s.next_id(), 4);
    }

    #[test]
    fn a_restored_lease_runs_out_and_is_handed_out_again_with_a_higher_attempt() {
        let notes = [HandOut {
            key: "k",
            group: "g",
            at: 5,
            first: 1,
            end: 3,
            len: 2,
            attempt: 1,
            lease: 100,
            batch: 50,
        }];
        let mut s = replayed(&[(1, 0), (2, 1)], &notes);
        s.finish_restore(6, 1000);
        assert_eq!(s.running_leases(), [(50, 106)]);
        assert!(s.take("k", "g", 7).is_none(), "leased, not due yet");
        assert!(matches!(s.lease_timer(50, 106), LeaseTimer::Due(None)));
        let again = s.take_with(
            "k",
            "g",
            107,
            Take {
                lease: 100,
                ..Take::ALL
            },
        );
        let lease = again.as_ref().and_then(|b| b.lease);
        assert_eq!(again.map(|b| b.seqs), Some(1..3));
        assert_eq!(
            lease.map(|l| (l.attempt, l.id)),
            Some((2, 1000)),
            "ids go on above"
        );
    }

    #[test]
    fn a_restored_redelivery_consumes_its_part_of_the_due_list() {
        let mut live = Store::new(TTL, usize::MAX);
        live.record_hand_outs();
        let mut pushes = Vec::new();
        for at in 0..3 {
            pushes.push((live.push("k", b"1", at, &mut Vec::new()).unwrap_or(0), at));
        }
        let leased = Take {
            lease: 100,
            ..Take::ALL
        };
        let first = live.take_with("k", "g", 3, leased).and_then(|b| b.lease);
        let id = first.map_or(0, |l| l.id);
        assert!(matches!(live.lease_timer(id, 104), LeaseTimer::Due(None)));
        let part = live.take_with("k", "g", 105, Take { limit: 1, ..leased });
        assert!(part.is_some());
        let mut notes = Vec::new();
        live.drain_hand_outs(|h| {
            notes.push((h.at, h.first, h.end, h.len, h.attempt, h.lease, h.batch))
        });
        let mut s = Store::new(TTL, usize::MAX);
        for &(id, at) in &pushes {
            s.restore_push("k", id, at, b"1");
        }
        for (i, &(at, first, end, len, attempt, lease, batch)) in notes.iter().enumerate() {
            s.restore_hand_out(&HandOut {
                key: "k",
                group: "g",
                at,
                first,
                end,
                len,
                attempt,
                lease,
                batch,
            });
            if i == 0 {
                assert!(matches!(s.lease_timer(id, 104), LeaseTimer::Due(None)));
            }
        }
        // The rest of the due range comes next, in both stores alike.
        let want = live.take("k", "g", 106).map(|b| b.seqs);
        assert_eq!(s.take("k", "g", 106).map(|b| b.seqs), want);
        assert!(want.is_some());
        assert_eq!(s.ack("k", "g", id), Err(crate::store::NotLeased));
    }

    #[test]
    fn finishing_a_restore_drops_what_expired_and_what_is_left_of_it() {
        let notes = [HandOut {
            key: "k",
            group: "g",
            at: 5,
            first: 1,
            end: 2,
            len: 1,
            attempt: 1,
            lease: 100,
            batch: 7,
        }];
        let mut s = replayed(&[(1, 0)], &notes);
        s.finish_restore(TTL, 1);
        assert_eq!(
            (s.live_events(), s.leased_batches(), s.groups(), s.keys()),
            (0, 0, 0, 0)
        );
    }
}
