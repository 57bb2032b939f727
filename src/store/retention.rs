//! Retention: when an event's memory is freed.
//!
//! Every event has the same lifetime, so expiry order is push order and the
//! sweep walks one global FIFO. An event an unwritten answer still holds is
//! not freed when it expires: its key's range is pinned ([`Store::pin`]),
//! the event becomes a "zombie" (counted, never handed out again) and is
//! freed when the last pin moves past it. Expiry is also when groups and
//! keys that became indistinguishable from new ones are forgotten, and when
//! leases whose events are all gone end by themselves.

use super::{Batch, EVENT_OVERHEAD, Pin, Store};
use crate::config::Millis;

impl Store {
    /// Frees every event that has expired by `now`, and forgets groups and
    /// keys that thereby became indistinguishable from new ones. Returns how
    /// many events were freed.
    pub fn expire(&mut self, now: Millis) -> usize {
        let mut freed = 0;
        let mut touched: Vec<u32> = Vec::new();
        while let Some(&(at, key_idx)) = self.expiry.front() {
            if at > now {
                break;
            }
            self.expiry.pop_front();
            let key = &mut self.keys[key_idx as usize];
            // The event this entry stands for is the first one after the
            // zombies (expiry order is push order within a key).
            let Some(event) = key.events.get(key.zombies) else {
                continue;
            };
            debug_assert_eq!(event.expires_at, at);
            let pinned = key.zombies > 0 || key.pins.keys().next().is_some_and(|&p| p <= event.seq);
            if pinned {
                key.zombies += 1;
                self.zombie_events += 1;
                self.zombie_bytes += event.json.len() + EVENT_OVERHEAD;
            } else if let Some(event) = key.events.pop_front() {
                self.live_bytes -= event.json.len() + EVENT_OVERHEAD;
                self.live_events -= 1;
                freed += 1;
            }
            if touched.last() != Some(&key_idx) {
                touched.push(key_idx);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for key_idx in touched {
            self.end_dead_leases(key_idx, now);
            self.forget_unused_in(key_idx);
        }
        freed
    }

    /// Holds the events of `batch` (and every later one of its key) in
    /// memory until [`Store::unpin`], even past their expiry.
    pub fn pin(&mut self, batch: &Batch) -> Pin {
        let key = &mut self.keys[batch.key as usize];
        *key.pins.entry(batch.seqs.start).or_insert(0) += 1;
        Pin {
            key: batch.key,
            seq: batch.seqs.start,
        }
    }

    /// Moves `pin` forward to `seq` (the answer has written everything
    /// before it), freeing expired events no answer holds any more.
    pub fn repin(&mut self, pin: &mut Pin, seq: u64) {
        if seq <= pin.seq {
            return;
        }
        let key = &mut self.keys[pin.key as usize];
        *key.pins.entry(seq).or_insert(0) += 1;
        self.unpin(*pin);
        pin.seq = seq;
    }

    /// Gives back a pin: expired events that no other answer holds are
    /// freed now. Returns how many were.
    pub fn unpin(&mut self, pin: Pin) -> usize {
        let Some(key) = self.keys.get_mut(pin.key as usize) else {
            return 0;
        };
        if let Some(count) = key.pins.get_mut(&pin.seq) {
            *count -= 1;
            if *count == 0 {
                key.pins.remove(&pin.seq);
            }
        }
        let held_from = key.pins.keys().next().copied().unwrap_or(u64::MAX);
        let mut freed = 0;
        while key.zombies > 0 && key.events.front().is_some_and(|e| e.seq < held_from) {
            let Some(event) = key.events.pop_front() else {
                break;
            };
            key.zombies -= 1;
            self.zombie_events -= 1;
            let cost = event.json.len() + EVENT_OVERHEAD;
            self.live_bytes -= cost;
            self.zombie_bytes -= cost;
            self.live_events -= 1;
            freed += 1;
        }
        if freed > 0 {
            self.forget_unused_in(pin.key);
        }
        freed
    }

    /// Bytes of expired events that stay only because an unwritten answer
    /// holds them (part of [`Store::live_bytes`]).
    pub fn zombie_bytes(&self) -> usize {
        self.zombie_bytes
    }

    /// Expired events that stay only because an unwritten answer holds them
    /// (part of [`Store::live_events`]).
    pub fn zombie_events(&self) -> usize {
        self.zombie_events
    }

    /// Forgets the groups of `key_idx` that became indistinguishable from
    /// new ones, then the key itself if nothing is left of it.
    pub(super) fn forget_unused_in(&mut self, key_idx: u32) {
        let Some(key) = self.keys.get(key_idx as usize) else {
            return;
        };
        let groups: Vec<u32> = key.groups.values().copied().collect();
        for group in groups {
            self.forget_if_unused(group);
        }
        self.forget_key_if_unused(key_idx);
    }
}
