//! Parked consumers: who waits on which group, in the order they came.
//!
//! A group's parked consumers are an intrusive FIFO through the `parked`
//! slab, so a consumer that hangs up is unlinked in O(1) wherever it is in
//! the queue; each key lists its groups that have someone parked
//! (`waiting`), so a push visits only the groups it wakes. A parked entry
//! remembers how its consumer asked ([`Take`]), so whatever wakes it (a
//! push, a lease running out, a nack) answers it the way it asked.

use super::{ConsumerId, Delivery, ParkKey, Parked, Store, Take};
use crate::config::Millis;

impl Store {
    /// Parks `consumer` at the back of group (`key`, `group`)'s queue. The
    /// caller has just seen [`Store::take`] return nothing.
    pub fn park(&mut self, key: &str, group: &str, consumer: ConsumerId) -> ParkKey {
        self.park_with(key, group, consumer, Take::ALL)
    }

    /// [`Store::park`] for a consumer that asks for its batch as `take`
    /// says; the caller has just seen [`Store::take_with`] return nothing.
    pub fn park_with(
        &mut self,
        key: &str,
        group: &str,
        consumer: ConsumerId,
        take: Take,
    ) -> ParkKey {
        let key_idx = self.key_or_insert(key);
        let group_idx = self.group_or_insert(key_idx, group);
        let tail = self.groups[group_idx as usize].tail;
        self.parks = self.parks.wrapping_add(1);
        let generation = self.parks;
        let entry = self.parked.insert(Parked {
            consumer,
            take,
            generation,
            group: group_idx,
            prev: tail,
            next: None,
        }) as u32;
        let g = &mut self.groups[group_idx as usize];
        match tail {
            Some(t) => self.parked[t as usize].next = Some(entry),
            None => {
                g.head = Some(entry);
                let waiting = &mut self.keys[key_idx as usize].waiting;
                g.waiting_at = Some(waiting.len() as u32);
                waiting.push(group_idx);
            }
        }
        g.tail = Some(entry);
        ParkKey {
            index: entry,
            generation,
        }
    }

    /// Removes a parked consumer that timed out or hung up. It consumes
    /// nothing. Returns false if the key was not parked (already answered).
    pub fn unpark(&mut self, park: ParkKey) -> bool {
        let index = park.index;
        match self.parked.get(index as usize) {
            Some(p) if p.generation == park.generation => {}
            _ => return false,
        }
        let group = self.parked[index as usize].group;
        self.unlink(index);
        self.forget_if_unused(group);
        true
    }

    /// The earliest parked consumer of `group` takes its batch, if there is
    /// one for it: a push, a lease that ran out, a nack.
    pub(super) fn wake_group(&mut self, group: u32, now: Millis) -> Option<Delivery> {
        let head = self.groups[group as usize].head?;
        let take = self.parked[head as usize].take;
        let batch = self.take_from_group(group, now, take)?;
        let consumer = self.parked[head as usize].consumer;
        self.unlink(head);
        Some(Delivery {
            consumer,
            batch,
            take,
        })
    }

    /// Takes a parked entry out of its group's queue (and the group out of
    /// its key's `waiting` list if the queue empties).
    pub(super) fn unlink(&mut self, entry: u32) {
        let p = self.parked.remove(entry as usize);
        match p.prev {
            Some(prev) => self.parked[prev as usize].next = p.next,
            None => self.groups[p.group as usize].head = p.next,
        }
        match p.next {
            Some(next) => self.parked[next as usize].prev = p.prev,
            None => self.groups[p.group as usize].tail = p.prev,
        }
        let g = &mut self.groups[p.group as usize];
        if g.head.is_none()
            && let Some(at) = g.waiting_at.take()
        {
            let waiting = &mut self.keys[g.key as usize].waiting;
            waiting.swap_remove(at as usize);
            if let Some(&moved) = waiting.get(at as usize) {
                self.groups[moved as usize].waiting_at = Some(at);
            }
        }
    }
}
