//! Model-based test of the store's leases: random pushes, takes (with and
//! without a lease, with and without a limit), acks, nacks, extends, clock
//! steps, lease timers and sweeps, checked against what at-least-once
//! delivery promises, kept the naive way:
//!
//! - every event of a group is acked at most once, and never both acked and
//!   consumed without a lease;
//! - an event is never handed to a consumer of a group while a lease on it
//!   is live for that group (handed out, not acked, not nacked, deadline not
//!   passed);
//! - an ack answers the batch's size, or `409` exactly when the model says
//!   the batch is no longer leased to the group (acked, or handed out again);
//! - every live event is eventually either acked or handed out again: after
//!   the run, firing every lease timer and draining each group with leased
//!   takes that are all acked leaves every unexpired event acked or
//!   consumed exactly once in every group that ever read.
//!
//! The server arms a timer at each lease's deadline and calls
//! `Store::lease_timer` when it fires; the model does the same for every
//! lease it has seen whose deadline has passed, as often as the loop would.

use std::collections::{HashMap, HashSet};

use event_syncer::config::Millis;
use event_syncer::store::{Batch, LeaseTimer, Store, Take};
use proptest::prelude::*;
use proptest::test_runner::Config;

const KEYS: [&str; 2] = ["a", "b"];
const GROUPS: [&str; 2] = ["x", "y"];
/// Long against the leases (a few ms), so most events outlive them; the
/// clock still crosses it sometimes.
const TTL: Millis = 400;

#[derive(Clone, Debug)]
enum Op {
    Push(usize),
    Take {
        key: usize,
        group: usize,
        limit: u32,
        lease: u32,
    },
    Ack(usize),
    Nack(usize),
    Extend(usize, Millis),
    Advance(Millis),
    Timers,
    Sweep,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..KEYS.len()).prop_map(Op::Push),
        5 => (0..KEYS.len(), 0..GROUPS.len(), prop_oneof![Just(u32::MAX), 1..4u32], prop_oneof![1 => Just(0u32), 3 => 1..30u32])
            .prop_map(|(key, group, limit, lease)| Op::Take { key, group, limit, lease }),
        3 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::Nack),
        1 => (any::<usize>(), 1..40u64).prop_map(|(i, ms)| Op::Extend(i, ms)),
        3 => prop_oneof![3 => 0..5u64, 1 => 5..60u64, 1 => 60..500u64].prop_map(Op::Advance),
        2 => Just(Op::Timers),
        1 => Just(Op::Sweep),
    ]
}

/// A batch handed out under a lease, as the consumer sees it.
#[derive(Debug, Clone)]
struct Held {
    key: usize,
    group: usize,
    id: u64,
    events: Vec<u64>,
    /// Still ack-able: not acked, not handed out again.
    leased: bool,
    /// Given back or run out (not live), though maybe still ack-able.
    due: bool,
    deadline: Millis,
}

struct Model {
    now: Millis,
    /// Per key: (event id, expires_at).
    pushed: Vec<Vec<(u64, Millis)>>,
    /// Per (key, group): events acked or consumed without a lease.
    done: HashMap<(usize, usize), HashSet<u64>>,
    /// Every leased batch handed out.
    held: Vec<Held>,
    /// Groups that ever read.
    readers: HashSet<(usize, usize)>,
}

fn ids(store: &Store, batch: &Batch) -> Vec<u64> {
    store
        .batch_events_from(batch, 0)
        .map(|(id, _)| id)
        .collect()
}

impl Model {
    fn got(&mut self, store: &Store, key: usize, group: usize, take: Take, batch: &Batch) {
        let events = ids(store, batch);
        assert!(!events.is_empty() && events.len() <= take.limit as usize);
        let done = self.done.entry((key, group)).or_default();
        for id in &events {
            let expires = self.pushed[key].iter().find(|e| e.0 == *id).map(|e| e.1);
            assert!(
                expires.is_some_and(|at| at > self.now),
                "event {id} handed out expired"
            );
            assert!(
                !done.contains(id),
                "event {id} handed out to {key}/{group} after it was done"
            );
            for h in &self.held {
                let live = h.leased && !h.due && h.deadline > self.now;
                assert!(
                    !(live && h.key == key && h.group == group && h.events.contains(id)),
                    "event {id} handed out while lease {} holds it",
                    h.id
                );
            }
        }
        // Events of batches now handed out again are no longer ack-able there.
        for h in &mut self.held {
            if h.key == key
                && h.group == group
                && h.leased
                && h.events.iter().any(|e| events.contains(e))
            {
                h.leased = false;
            }
        }
        match batch.lease {
            None => {
                assert_eq!(take.lease, 0);
                done.extend(events);
            }
            Some(lease) => self.held.push(Held {
                key,
                group,
                id: lease.id,
                events,
                leased: true,
                due: false,
                deadline: lease.deadline,
            }),
        }
    }

    /// Whether every event of `h` has expired: the store may end such a
    /// lease by itself at any time.
    fn all_expired(&self, h: &Held) -> bool {
        h.events.iter().all(|id| {
            self.pushed[h.key]
                .iter()
                .any(|e| e.0 == *id && e.1 <= self.now)
        })
    }

    fn ack(&mut self, store: &mut Store, i: usize) {
        let h = self.held[i].clone();
        let got = store.ack(KEYS[h.key], GROUPS[h.group], h.id);
        if h.leased && got.is_err() && self.all_expired(&h) {
            self.held[i].leased = false;
        } else if h.leased {
            assert_eq!(got, Ok(h.events.len()), "ack of {} (leased)", h.id);
            let done = self.done.entry((h.key, h.group)).or_default();
            for id in &h.events {
                assert!(
                    done.insert(*id),
                    "event {id} acked twice in {}/{}",
                    h.key,
                    h.group
                );
            }
            self.held[i].leased = false;
        } else {
            // Either acked already, or handed out again, or ended by expiry.
            assert!(got.is_err(), "ack of {} should be 409", h.id);
        }
    }

    /// Fires every lease timer that is due, as the loop does.
    fn timers(&mut self, store: &mut Store) {
        let now = self.now;
        for h in &mut self.held {
            if h.leased && !h.due && h.deadline <= now {
                match store.lease_timer(h.id, now) {
                    LeaseTimer::Due(None) => h.due = true,
                    LeaseTimer::Gone => h.leased = false, // ended by expiry
                    LeaseTimer::Rearm(at) => h.deadline = at,
                    LeaseTimer::Due(Some(_)) => panic!("nobody is parked in this model"),
                }
            }
        }
    }
}

fn run(ops: &[Op]) {
    let mut store = Store::new(TTL, usize::MAX);
    let mut m = Model {
        now: 0,
        pushed: KEYS.iter().map(|_| Vec::new()).collect(),
        done: HashMap::new(),
        held: Vec::new(),
        readers: HashSet::new(),
    };
    for op in ops {
        match *op {
            Op::Push(key) => {
                let id = store
                    .push(KEYS[key], b"1", m.now, &mut Vec::new())
                    .expect("room");
                m.pushed[key].push((id, m.now + TTL));
            }
            Op::Take {
                key,
                group,
                limit,
                lease,
            } => {
                let take = Take {
                    limit,
                    lease,
                    envelope: false,
                };
                m.readers.insert((key, group));
                if let Some(batch) = store.take_with(KEYS[key], GROUPS[group], m.now, take) {
                    m.got(&store, key, group, take, &batch);
                }
            }
            Op::Ack(i) if !m.held.is_empty() => {
                let i = i % m.held.len();
                m.ack(&mut store, i);
            }
            Op::Nack(i) if !m.held.is_empty() => {
                let h = m.held[i % m.held.len()].clone();
                let got = store.nack(KEYS[h.key], GROUPS[h.group], h.id, m.now);
                if !(h.leased && got.is_err() && m.all_expired(&h)) {
                    assert_eq!(got.is_ok(), h.leased, "nack of {}", h.id);
                }
                // Given back: due again, and no longer leased.
                if let Some(held) = m.held.iter_mut().find(|x| x.id == h.id) {
                    held.leased = false;
                }
            }
            Op::Extend(i, ms) if !m.held.is_empty() => {
                let i = i % m.held.len();
                let h = m.held[i].clone();
                let got = store.extend(KEYS[h.key], GROUPS[h.group], h.id, ms, m.now);
                if h.leased && got.is_err() && m.all_expired(&h) {
                    m.held[i].leased = false;
                } else {
                    assert_eq!(got.is_ok(), h.leased, "extend of {}", h.id);
                }
                if let Ok(deadline) = got {
                    assert!(deadline > m.now + ms);
                    m.held[i].deadline = deadline;
                    m.held[i].due = false;
                }
            }
            Op::Ack(_) | Op::Nack(_) | Op::Extend(..) => {}
            Op::Advance(ms) => m.now += ms,
            Op::Timers => m.timers(&mut store),
            Op::Sweep => {
                store.expire(m.now);
                // Leases whose events all expired end by themselves.
                for h in &mut m.held {
                    let all_gone = h
                        .events
                        .iter()
                        .all(|id| m.pushed[h.key].iter().any(|e| e.0 == *id && e.1 <= m.now));
                    if all_gone {
                        h.leased = false;
                    }
                }
            }
        }
    }
    // Eventually: every lease runs out or is acked, and draining each group
    // that ever read with acked leased takes leaves no live event undone.
    m.now += 40;
    m.timers(&mut store);
    for &(key, group) in &m.readers.clone() {
        let take = Take {
            limit: 2,
            lease: 1_000,
            envelope: false,
        };
        while let Some(batch) = store.take_with(KEYS[key], GROUPS[group], m.now, take) {
            m.got(&store, key, group, take, &batch);
            let last = m.held.len() - 1;
            m.ack(&mut store, last);
        }
        let done = m.done.get(&(key, group)).cloned().unwrap_or_default();
        for &(id, expires) in &m.pushed[key] {
            if expires > m.now {
                assert!(
                    done.contains(&id),
                    "live event {id} never reached {key}/{group}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(Config { cases: 1500, ..Config::default() })]

    #[test]
    fn leases_keep_at_least_once_promises(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops);
    }
}

#[test]
fn a_hand_checked_sequence() {
    run(&[
        Op::Push(0),
        Op::Push(0),
        Op::Take {
            key: 0,
            group: 0,
            limit: 1,
            lease: 10,
        },
        Op::Take {
            key: 0,
            group: 0,
            limit: u32::MAX,
            lease: 10,
        },
        Op::Advance(11),
        Op::Timers,
        Op::Take {
            key: 0,
            group: 0,
            limit: u32::MAX,
            lease: 0,
        },
        Op::Ack(0),
    ]);
}
