//! Keys and groups come and go: made on demand, and forgotten as soon as
//! they would behave exactly like new ones, so memory does not grow with
//! every key and groupId a client ever named.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::{Group, Key, Store};

impl Store {
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
        self.forget_key_if_unused(g.key);
    }

    pub(super) fn forget_key_if_unused(&mut self, key_idx: u32) {
        let Some(key) = self.keys.get(key_idx as usize) else {
            return;
        };
        if key.events.is_empty() && key.groups.is_empty() && key.pins.is_empty() {
            let key = self.keys.remove(key_idx as usize);
            self.key_index.remove(&key.name);
        }
    }
}
