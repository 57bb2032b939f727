//! Keys and groups come and go: made on demand, and forgotten as soon as
//! they would behave exactly like new ones, so memory does not grow with
//! every key and groupId a client ever named.
//!
//! While they are remembered they count against the memory limit like
//! events do, so pushes are refused sooner as groups pile up. A client
//! naming a new groupId with every get (each consuming the same retained
//! event, so each remembered until it expires) would otherwise grow the
//! store without bound and without pushing a byte. New groups are refused
//! only once keys, groups and leases alone fill the limit: refusing them
//! whenever events fill it would leave a full store that no new group may
//! drain. So the store holds at most twice the limit, however it is used.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::mem::size_of;

use super::{Group, Key, Store};

/// What a key costs beside its events and its name (kept twice: in the
/// record and in the index): the record, its index entry, allocator headers.
const KEY_OVERHEAD: usize = size_of::<Key>() + size_of::<(Box<str>, u32)>() + 32;
/// What a group costs beside its name (kept twice: in the record and in its
/// key's table), the same way.
const GROUP_OVERHEAD: usize = size_of::<Group>() + size_of::<(Box<str>, u32)>() + 32;
/// What a lease costs: its record and table entry, its id in its group.
const LEASE_OVERHEAD: usize = 96;

pub(super) fn key_cost(name: &str) -> usize {
    KEY_OVERHEAD + 2 * name.len()
}

fn group_cost(name: &str) -> usize {
    GROUP_OVERHEAD + 2 * name.len()
}

impl Store {
    /// Bytes charged against the memory limit: events (JSON plus
    /// bookkeeping), keys, groups and leases.
    pub fn memory_used(&self) -> usize {
        self.live_bytes + self.bookkeeping_bytes()
    }

    /// Bytes charged for keys, groups and leases.
    pub fn bookkeeping_bytes(&self) -> usize {
        self.bookkeeping + self.leased_batches() * LEASE_OVERHEAD
    }

    /// Whether a get of (`key`, `group`) may go on: the group exists, or a
    /// new one (and its key) keeps keys, groups and leases within the
    /// limit (see the module docs for why events are not counted here).
    pub fn admits_group(&self, key: &str, group: &str) -> bool {
        let (exists, key_cost) = match self.key_index.get(key) {
            Some(&k) => (self.keys[k as usize].groups.contains_key(group), 0),
            None => (false, key_cost(key)),
        };
        exists
            || self
                .bookkeeping_bytes()
                .saturating_add(key_cost + group_cost(group))
                <= self.max_bytes
    }

    pub(super) fn key_or_insert(&mut self, name: &str) -> u32 {
        if let Some(&k) = self.key_index.get(name) {
            return k;
        }
        let k = self.keys.insert(Key {
            name: name.into(),
            events: VecDeque::new(),
            groups: HashMap::new(),
            waiting: Vec::new(),
            pins: BTreeMap::new(),
            zombies: 0,
        }) as u32;
        self.key_index.insert(name.into(), k);
        self.bookkeeping += key_cost(name);
        k
    }

    pub(super) fn group_or_insert(&mut self, key_idx: u32, name: &str) -> u32 {
        if let Some(&g) = self.keys[key_idx as usize].groups.get(name) {
            return g;
        }
        let g = self.groups.insert(Group {
            key: key_idx,
            name: name.into(),
            cursor: 0,
            head: None,
            tail: None,
            waiting_at: None,
            leases: None,
        }) as u32;
        self.keys[key_idx as usize].groups.insert(name.into(), g);
        self.bookkeeping += group_cost(name);
        g
    }

    /// Forgets `group` if nobody is parked in it, it holds no lease and no
    /// retained event lies before its cursor: it would then behave exactly
    /// as a new group.
    pub(super) fn forget_if_unused(&mut self, group: u32) {
        let g = &self.groups[group as usize];
        // A lease is a promise to the group: it keeps the group.
        if g.head.is_some() || g.leases.as_ref().is_some_and(|l| l.held()) {
            return;
        }
        let key = &self.keys[g.key as usize];
        if key.events.front().is_some_and(|e| e.seq < g.cursor) {
            return;
        }
        let g = self.groups.remove(group as usize);
        self.keys[g.key as usize].groups.remove(&g.name);
        self.bookkeeping -= group_cost(&g.name);
        self.forget_key_if_unused(g.key);
    }

    pub(super) fn forget_key_if_unused(&mut self, key_idx: u32) {
        let Some(key) = self.keys.get(key_idx as usize) else {
            return;
        };
        if key.events.is_empty() && key.groups.is_empty() && key.pins.is_empty() {
            let key = self.keys.remove(key_idx as usize);
            self.key_index.remove(&key.name);
            self.bookkeeping -= key_cost(&key.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Take;

    #[test]
    fn keys_and_groups_are_charged_while_remembered_and_given_back() {
        let mut s = Store::new(1_000, 1 << 20);
        let mut woken = Vec::new();
        s.push("k", b"{}", 0, &mut woken).unwrap();
        let after_push = s.memory_used();
        assert_eq!(after_push, s.live_bytes() + key_cost("k"));
        assert!(s.take_with("k", "g1", 1, Take::ALL).is_some());
        assert!(s.take_with("k", "g2", 1, Take::ALL).is_some());
        assert_eq!(
            s.memory_used(),
            after_push + group_cost("g1") + group_cost("g2")
        );
        // The event expires: the groups would behave as new ones, and go.
        s.expire(1_000);
        assert_eq!(s.memory_used(), 0);
        assert_eq!(s.bookkeeping_bytes(), 0);
    }

    #[test]
    fn new_groups_are_refused_once_groups_alone_fill_the_limit() {
        let limit = key_cost("k") + group_cost("g1") + group_cost("g2") + 10;
        let mut s = Store::new(1_000, limit);
        let mut woken = Vec::new();
        s.push("k", b"{}", 0, &mut woken).unwrap();
        // Events fill the rest: a new group may still come and read them.
        while s.push("k", b"{}", 0, &mut woken).is_ok() {}
        assert!(s.admits_group("k", "g1"));
        assert!(s.take_with("k", "g1", 1, Take::ALL).is_some());
        assert!(s.admits_group("k", "g2"));
        assert!(s.take_with("k", "g2", 1, Take::ALL).is_some());
        assert!(!s.admits_group("k", "g3"), "groups alone fill the limit");
        assert!(s.admits_group("k", "g1"), "a remembered group goes on");
        assert!(!s.admits_group("k2", "g"), "a new key costs too");
    }
}
