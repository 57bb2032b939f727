//! The wheel's storage: one slab of timers, each slot an intrusive doubly
//! linked list of slab indices, so insert and cancel are O(1) and a key
//! whose timer is gone is recognised by its generation.

use std::mem;

use super::slots::NIL;
use super::{Tick, TimerWheel};

/// Which list an entry is linked into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// Slot `slot` of level `level`.
    Wheel { level: u8, slot: u8 },
    /// Too far away for the wheel yet.
    Overflow,
}

impl Place {
    pub(super) fn wheel(level: usize, slot: usize) -> Self {
        // Both are below 64 by construction (LEVELS = 6, slot_for masks with 63).
        Place::Wheel {
            level: level as u8,
            slot: slot as u8,
        }
    }
}

/// Head and tail of an intrusive list threaded through the slab's `prev`/`next` fields; the tail
/// lets a slot fire its timers in the order they were inserted.
#[derive(Clone, Copy, Debug)]
pub(super) struct List {
    pub(super) head: u32,
    pub(super) tail: u32,
}

impl List {
    pub(super) const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// A pending timer.
pub(super) struct Timer<T> {
    /// When it fires; a deadline in the past is stored as the tick it was inserted at.
    pub(super) deadline: Tick,
    pub(super) value: T,
    pub(super) prev: u32,
    pub(super) next: u32,
    pub(super) generation: u32,
    pub(super) place: Place,
}

/// A slab entry. `Place`'s spare tag values give `Vacant` its discriminant, so this is no larger
/// than `Timer<T>`.
pub(super) enum Entry<T> {
    Occupied(Timer<T>),
    /// Free; `generation` is the one the next timer stored here gets.
    Vacant {
        next_free: u32,
        generation: u32,
    },
}

impl<T> TimerWheel<T> {
    pub(super) fn list_mut(&mut self, place: Place) -> &mut List {
        match place {
            Place::Wheel { level, slot } => &mut self.slots[usize::from(level)][usize::from(slot)],
            Place::Overflow => &mut self.overflow,
        }
    }

    /// Appends `index` to the tail of the list at `place`.
    pub(super) fn link(&mut self, index: u32, place: Place) {
        let list = self.list_mut(place);
        let tail = list.tail;
        list.tail = index;
        if tail == NIL {
            list.head = index;
        }
        if let Place::Wheel { level, slot } = place {
            self.occupied[usize::from(level)] |= 1 << slot;
        }
        if tail != NIL {
            self.timer_mut(tail).next = index;
        }
        let timer = self.timer_mut(index);
        timer.prev = tail;
        timer.next = NIL;
        timer.place = place;
    }

    /// Takes `index` out of whatever list it is in.
    pub(super) fn unlink(&mut self, index: u32) {
        let timer = self.timer(index);
        let (prev, next, place) = (timer.prev, timer.next, timer.place);
        if prev == NIL {
            self.list_mut(place).head = next;
        } else {
            self.timer_mut(prev).next = next;
        }
        if next == NIL {
            self.list_mut(place).tail = prev;
        } else {
            self.timer_mut(next).prev = prev;
        }
        if self.list_mut(place).head == NIL {
            self.mark_empty(place);
        }
    }

    /// Detaches the whole list at `place`, leaving it empty; its entries keep their links to each
    /// other until they are filed again or released.
    pub(super) fn take(&mut self, place: Place) -> List {
        let list = mem::replace(self.list_mut(place), List::EMPTY);
        self.mark_empty(place);
        list
    }

    pub(super) fn mark_empty(&mut self, place: Place) {
        match place {
            Place::Wheel { level, slot } => self.occupied[usize::from(level)] &= !(1 << slot),
            Place::Overflow => self.overflow_min = None,
        }
    }

    /// Frees the (unlinked) entry at `index` and returns its value; the bumped generation makes
    /// every key to it stale.
    pub(super) fn release(&mut self, index: u32) -> T {
        let next_free = self.free;
        let entry = &mut self.entries[index as usize];
        let generation = match entry {
            Entry::Occupied(timer) => timer.generation.wrapping_add(1),
            Entry::Vacant { .. } => unreachable!("timer wheel: releasing vacant entry {index}"),
        };
        let old = mem::replace(
            entry,
            Entry::Vacant {
                next_free,
                generation,
            },
        );
        self.free = index;
        self.len -= 1;
        match old {
            Entry::Occupied(timer) => timer.value,
            Entry::Vacant { .. } => unreachable!("timer wheel: releasing vacant entry {index}"),
        }
    }

    pub(super) fn timer(&self, index: u32) -> &Timer<T> {
        match &self.entries[index as usize] {
            Entry::Occupied(timer) => timer,
            Entry::Vacant { .. } => unreachable!("timer wheel: linked entry {index} is vacant"),
        }
    }

    pub(super) fn timer_mut(&mut self, index: u32) -> &mut Timer<T> {
        match &mut self.entries[index as usize] {
            Entry::Occupied(timer) => timer,
            Entry::Vacant { .. } => unreachable!("timer wheel: linked entry {index} is vacant"),
        }
    }
}
