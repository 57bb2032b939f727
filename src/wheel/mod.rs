//! The timer wheel: every deadline the server keeps (a parked long-poll's timeout, an event's
//! expiry) lives here, and the event loop asks it two things: how long may I sleep
//! ([`TimerWheel::next_deadline`]) and what is due now ([`TimerWheel::advance`]).
//!
//! It is a hierarchical timing wheel after Varghese and Lauck, "Hashed and Hierarchical Timing
//! Wheels: Data Structures for the Efficient Implementation of a Timer Facility" (SOSP 1987),
//! shaped like tokio's `runtime/time/wheel` (`mod.rs` and `level.rs`): six levels of 64 slots,
//! level `n` slots `64^n` ms wide, so a timer is filed by the highest bit in which its deadline
//! differs from the current time and moves down ("cascades") a level each time the wheel reaches
//! its slot, at most five times before it fires from level 0 at its exact tick.
//!
//! # Why it is shaped so
//!
//! - **Pure.** Time is a plain [`Tick`] count passed in; the wheel never reads the clock, so the
//!   tests drive it with numbers and the event loop decides what "now" is.
//! - **O(1) insert and cancel.** Timers live in one `Vec` slab with a free list; each slot is an
//!   intrusive doubly-linked list of `u32` slab indices, so cancelling unlinks one entry without
//!   searching. A [`TimerKey`] carries a generation counter, so a key whose timer fired or was
//!   cancelled stays dead even after its slab entry is reused.
//! - **Skips empty time.** Each level has a 64-bit occupancy bitmap; finding the next busy slot is
//!   a rotate and a `trailing_zeros`, so advancing 30 s over a sparse wheel costs a few slots, not
//!   30,000 ticks, and a long jump costs work proportional to the timers, not to the ticks.
//! - **Unlink, then fire.** A slot's whole list is taken out (head, tail and bitmap bit cleared)
//!   before any of its timers fires or cascades, so a timer filed again while the list is walked
//!   can never be appended to that same list, and the slot is already consistent whatever
//!   happens next.
//! - **Beyond the range.** The six levels cover 2^36 ms, about 2.2 years. A timer further away
//!   waits in an overflow list (intrusive too, so it cancels in O(1)) and moves into the wheel
//!   once it is in range. The list is looked at only when its earliest member comes in range,
//!   so it costs nothing per tick.
//!
//! # Memory
//!
//! The server keeps one timer per parked connection, 20,000 and more, so an entry is kept small:
//! deadline `u64`, the value, `prev`/`next` `u32` links, a `u32` generation, and where it is
//! filed (a tag byte plus level and slot bytes). For `T = (usize, u8)` (a connection token and a
//! timer kind) that is 8 + 16 (9 bytes padded to `usize` alignment) + 4 + 4 + 4 + 3 = 39, rounded
//! to **40 bytes**; a free entry reuses a spare value of the tag byte as its own discriminant, so
//! the slab entry is 40 bytes too (checked by a `size_of` test), 800 KB for 20,000 timers. The
//! fixed part is 6 × 64 list heads of 8 bytes (3 KiB) and six bitmaps.
//!
//! # Limits
//!
//! At most `u32::MAX - 1` timers can be live at once. A generation is a wrapping `u32`: a key
//! would be mistaken for a new timer only after its slab entry was reused 2^32 times. Each look
//! at the overflow list walks all of it, at most once per top-level slot (12.4 days) crossed:
//! nothing for a server whose timeouts are seconds to minutes, but quadratic for many timers
//! each set years apart. The slab never shrinks: it keeps the high-water mark of live timers.

mod list;
mod slots;

use list::{Entry, List, Place, Timer};
use slots::*;

/// Milliseconds since the server started; the wheel's only notion of time.
pub type Tick = u64;

/// Handle to cancel a timer; stale handles (fired or cancelled) are detected by a generation counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

/// The next thing `advance` has to do, and the tick at which to do it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Expiration {
    /// For a wheel slot, the tick its span starts at; for the overflow list, the tick at which
    /// its earliest possible member certainly fits the wheel.
    deadline: Tick,
    place: Place,
}

/// A hierarchical timer wheel of values of type `T` (see the [module docs](self)).
pub struct TimerWheel<T> {
    entries: Vec<Entry<T>>,
    /// Head of the free list through `Entry::Vacant::next_free`.
    free: u32,
    slots: [[List; SLOTS]; LEVELS],
    /// Bit `s` of `occupied[l]` is set while `slots[l][s]` is non-empty.
    occupied: [u64; LEVELS],
    overflow: List,
    /// No later than the earliest deadline in `overflow`; `None` when it is empty. Cancelling
    /// does not raise it (that would need a scan), so it may be early, which only costs an
    /// extra look at the list.
    overflow_min: Option<Tick>,
    /// Every timer due at or before this tick has fired, except ones inserted since with a
    /// deadline at or before it, which wait in its level-0 slot for the next `advance`.
    elapsed: Tick,
    len: usize,
}

impl<T> TimerWheel<T> {
    /// Creates an empty wheel whose current time is `now`.
    pub fn new(now: Tick) -> Self {
        TimerWheel {
            entries: Vec::new(),
            free: NIL,
            slots: [[List::EMPTY; SLOTS]; LEVELS],
            occupied: [0; LEVELS],
            overflow: List::EMPTY,
            overflow_min: None,
            elapsed: now,
            len: 0,
        }
    }

    /// Schedules `value` to fire once `now >= deadline`. A deadline at or before the wheel's current time fires at the next `advance`.
    ///
    /// # Panics
    ///
    /// If `u32::MAX - 1` timers are already live.
    pub fn insert(&mut self, deadline: Tick, value: T) -> TimerKey {
        let timer = |generation| {
            Entry::Occupied(Timer {
                deadline,
                value,
                prev: NIL,
                next: NIL,
                generation,
                place: Place::Overflow,
            })
        };
        let (index, generation) = if self.free != NIL {
            let index = self.free;
            let slot = &mut self.entries[index as usize];
            let Entry::Vacant {
                next_free,
                generation,
            } = *slot
            else {
                unreachable!("timer wheel: free list reaches occupied entry {index}");
            };
            self.free = next_free;
            *slot = timer(generation);
            (index, generation)
        } else {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|&index| index != NIL)
                .unwrap_or_else(|| panic!("timer wheel: more than {} live timers", NIL - 1));
            self.entries.push(timer(0));
            (index, 0)
        };
        self.len += 1;
        self.schedule(index);
        TimerKey { index, generation }
    }

    /// Removes a pending timer in O(1). Returns None if it already fired or was cancelled (stale key, even if its slot was reused).
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        match self.entries.get(key.index as usize) {
            Some(Entry::Occupied(timer)) if timer.generation == key.generation => {}
            _ => return None,
        }
        self.unlink(key.index);
        Some(self.release(key.index))
    }

    /// The earliest tick at which `advance` may have work: never later than the true earliest deadline (it may be earlier, e.g. the start of a higher-level slot that must be cascaded). None when empty.
    ///
    /// A timer inserted with a deadline at or before the wheel's current time counts as due at
    /// the current time, so the event loop's sleep works out to zero.
    pub fn next_deadline(&self) -> Option<Tick> {
        self.next_expiration().map(|expiration| expiration.deadline)
    }

    /// Moves the wheel to `now` and appends to `fired` every timer whose deadline <= now. Never fires one early. Time never goes backwards (a smaller `now` is treated as the current time).
    ///
    /// Timers are appended in deadline order, and those with equal deadlines in insertion order
    /// (a deadline in the past counts as the tick the wheel was at when it was inserted).
    /// The work done is proportional to the slots that hold timers due by `now`, not to the
    /// ticks crossed.
    pub fn advance(&mut self, now: Tick, fired: &mut Vec<T>) {
        let now = now.max(self.elapsed);
        while let Some(expiration) = self.next_expiration() {
            if expiration.deadline > now {
                break;
            }
            // Expirations come in tick order, so no slot between `elapsed` and this one holds a
            // timer; moving time here first means cascaded timers are filed relative to the
            // start of the slot they leave and land in lower levels.
            self.elapsed = self.elapsed.max(expiration.deadline);
            self.process(expiration, fired);
        }
        self.elapsed = now;
    }

    /// How many timers are pending.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The earliest busy wheel slot or overflow check. Each level is one bitmap rotation: the
    /// slots from the current position on, wrapping round, are the ones still ahead (earlier
    /// slots of a lower level belong to a past lap and were emptied when time passed them).
    fn next_expiration(&self) -> Option<Expiration> {
        let mut best: Option<Expiration> = None;
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let position = slot_for(self.elapsed, level);
            let distance = occupied.rotate_right(position as u32).trailing_zeros() as usize;
            let range = slot_range(level);
            // Only the top level wraps (into its next lap), and the sum stays at or below
            // some timer's deadline, so it cannot overflow.
            let deadline = (self.elapsed & !(range - 1)) + distance as Tick * range;
            if best.is_none_or(|best| deadline < best.deadline) {
                best = Some(Expiration {
                    deadline,
                    place: Place::wheel(level, (position + distance) % SLOTS),
                });
            }
        }
        if let Some(earliest) = self.overflow_min {
            let deadline = overflow_check_at(earliest);
            if best.is_none_or(|best| deadline < best.deadline) {
                best = Some(Expiration {
                    deadline,
                    place: Place::Overflow,
                });
            }
        }
        best
    }

    /// Empties the list `expiration` names, then fires its timers (level 0, where a slot is one
    /// tick) or files them again relative to the current time, which puts them in a lower level
    /// (or, from the overflow list, into the wheel once they fit).
    fn process(&mut self, expiration: Expiration, fired: &mut Vec<T>) {
        let list = self.take(expiration.place);
        let fire = matches!(expiration.place, Place::Wheel { level: 0, .. });
        let mut index = list.head;
        while index != NIL {
            let timer = self.timer(index);
            let next = timer.next;
            if fire {
                debug_assert_eq!(timer.deadline, self.elapsed);
                fired.push(self.release(index));
            } else {
                self.schedule(index);
            }
            index = next;
        }
    }

    /// Files the (unlinked) timer at `index` in the list its deadline calls for.
    fn schedule(&mut self, index: u32) {
        let now = self.elapsed;
        let timer = self.timer_mut(index);
        // A past deadline waits in the current level-0 slot, which the next `advance` visits
        // whatever `now` it is given.
        timer.deadline = timer.deadline.max(now);
        let deadline = timer.deadline;
        let place = if fits(now, deadline) {
            let level = level_for(now, deadline);
            Place::wheel(level, slot_for(deadline, level))
        } else {
            self.overflow_min = Some(self.overflow_min.map_or(deadline, |min| min.min(deadline)));
            Place::Overflow
        };
        self.link(index, place);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::mem;

    /// One `assert_eq!` test per line: `name: left => right;`.
    macro_rules! cases {
        ($($name:ident: $left:expr => $right:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    assert_eq!($left, $right);
                }
            )*
        };
    }

    /// Start of level `n`'s second slot when counting from zero: 64^n.
    const fn edge(level: u32) -> Tick {
        1 << (SLOT_BITS * level)
    }

    mod level_for_boundaries {
        use super::*;
        cases! {
            same_tick: level_for(0, 0) => 0;
            edge1_below: level_for(0, 63) => 0;
            edge1: level_for(0, 64) => 1;
            edge1_above: level_for(0, 65) => 1;
            edge2_below: level_for(0, 4095) => 1;
            edge2: level_for(0, 4096) => 2;
            edge2_above: level_for(0, 4097) => 2;
            edge3_below: level_for(0, edge(3) - 1) => 2;
            edge3: level_for(0, edge(3)) => 3;
            edge3_above: level_for(0, edge(3) + 1) => 3;
            edge4_below: level_for(0, edge(4) - 1) => 3;
            edge4: level_for(0, edge(4)) => 4;
            edge4_above: level_for(0, edge(4) + 1) => 4;
            edge5_below: level_for(0, edge(5) - 1) => 4;
            edge5: level_for(0, edge(5)) => 5;
            edge5_above: level_for(0, edge(5) + 1) => 5;
            edge6_below: level_for(0, edge(6) - 1) => 5;
            edge6_wraps_into_top: level_for(0, edge(6)) => 5;
            edge6_above_wraps_into_top: level_for(0, edge(6) + 1) => 5;
            // What counts is the highest differing bit, not the distance: one tick across a
            // window edge climbs levels.
            one_tick_across_edge1: level_for(63, 64) => 1;
            one_tick_across_edge2: level_for(4095, 4096) => 2;
            one_tick_across_edge6: level_for(edge(6) - 1, edge(6)) => 5;
            within_window_mid: level_for(100, 127) => 0;
            next_window_mid: level_for(100, 128) => 1;
        }
    }

    mod slot_for_boundaries {
        use super::*;
        cases! {
            l0_edge_below: slot_for(63, 0) => 63;
            l0_edge: slot_for(64, 0) => 0;
            l0_edge_above: slot_for(65, 0) => 1;
            l1_edge_below: slot_for(63, 1) => 0;
            l1_edge: slot_for(64, 1) => 1;
            l1_edge_above: slot_for(65, 1) => 1;
            l1_wrap_below: slot_for(4095, 1) => 63;
            l1_wrap: slot_for(4096, 1) => 0;
            l2_edge_below: slot_for(4095, 2) => 0;
            l2_edge: slot_for(4096, 2) => 1;
            l2_edge_above: slot_for(4097, 2) => 1;
            l5_edge_below: slot_for(edge(5) - 1, 5) => 0;
            l5_edge: slot_for(edge(5), 5) => 1;
            l5_last: slot_for(edge(6) - 1, 5) => 63;
            l5_wraps: slot_for(edge(6), 5) => 0;
            l5_wraps_above: slot_for(edge(6) + edge(5), 5) => 1;
        }
    }

    mod fits_boundaries {
        use super::*;
        cases! {
            range_below: fits(0, WHEEL_RANGE - 1) => true;
            range: fits(0, WHEEL_RANGE) => false;
            range_above: fits(0, WHEEL_RANGE + 1) => false;
            // The reach moves with the current top slot, not with each tick.
            top_slot_end_below: fits(TOP_SLOT_RANGE - 1, WHEEL_RANGE) => false;
            top_slot_end: fits(TOP_SLOT_RANGE, WHEEL_RANGE) => true;
            top_slot_end_above: fits(TOP_SLOT_RANGE + 1, WHEEL_RANGE) => true;
            reach_from_next_slot_below: fits(TOP_SLOT_RANGE, WHEEL_RANGE + TOP_SLOT_RANGE - 1) => true;
            reach_from_next_slot: fits(TOP_SLOT_RANGE, WHEEL_RANGE + TOP_SLOT_RANGE) => false;
            due_now: fits(12_345, 12_345) => true;
            end_of_time: fits(u64::MAX - 1, u64::MAX) => true;
        }
    }

    mod overflow_check_boundaries {
        use super::*;
        cases! {
            range: overflow_check_at(WHEEL_RANGE) => TOP_SLOT_RANGE;
            range_above: overflow_check_at(WHEEL_RANGE + 1) => TOP_SLOT_RANGE;
            next_slot_below: overflow_check_at(WHEEL_RANGE + TOP_SLOT_RANGE - 1) => TOP_SLOT_RANGE;
            next_slot: overflow_check_at(WHEEL_RANGE + TOP_SLOT_RANGE) => 2 * TOP_SLOT_RANGE;
            next_slot_above: overflow_check_at(WHEEL_RANGE + TOP_SLOT_RANGE + 1) => 2 * TOP_SLOT_RANGE;
            end_of_time: overflow_check_at(u64::MAX) => u64::MAX - WHEEL_RANGE + 1;
        }
    }

    #[test]
    fn overflow_check_is_the_first_tick_that_fits() {
        for deadline in [
            WHEEL_RANGE,
            WHEEL_RANGE + 1,
            WHEEL_RANGE + TOP_SLOT_RANGE - 1,
            WHEEL_RANGE + TOP_SLOT_RANGE,
            u64::MAX / 2,
            u64::MAX,
        ] {
            let at = overflow_check_at(deadline);
            assert!(fits(at, deadline), "{deadline} does not fit at {at}");
            assert!(
                !fits(at - 1, deadline),
                "{deadline} already fits at {}",
                at - 1
            );
        }
    }

    /// The furthest timer the wheel takes lands in a top slot of the next lap that is behind
    /// the current one, never in the current one, which `next_expiration` would read as due.
    mod reach_never_wraps_onto_the_current_top_slot {
        use super::*;
        cases! {
            from_slot_start: slot_for(7 * TOP_SLOT_RANGE + WHEEL_RANGE - 1, 5) => 6;
            from_first_slot: slot_for(WHEEL_RANGE - 1, 5) => 63;
            from_last_slot: slot_for(63 * TOP_SLOT_RANGE + WHEEL_RANGE - 1, 5) => 62;
        }
    }

    mod constants {
        use super::*;
        cases! {
            slots: SLOTS => 64;
            level0_range: slot_range(1) => 64;
            top_slot: TOP_SLOT_RANGE => 1 << 30;
            wheel_range: WHEEL_RANGE => 68_719_476_736;
        }
    }

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn entry_is_40_bytes_for_a_token_and_kind() {
        assert_eq!(size_of::<Timer<(usize, u8)>>(), 40);
        assert_eq!(size_of::<Entry<(usize, u8)>>(), 40);
    }

    /// A timer due at `deadline` on a wheel started at `start` stays put through `deadline - 1`
    /// and fires at `deadline`, whether time jumps there, follows `next_deadline` as the event
    /// loop does, or ticks one by one across the edge.
    fn check_exact(start: Tick, deadline: Tick) {
        assert!(deadline > start);
        let mut fired = Vec::new();

        let mut wheel = TimerWheel::new(start);
        wheel.insert(deadline, "t");
        wheel.advance(deadline - 1, &mut fired);
        assert!(
            fired.is_empty(),
            "jump: fired at {} for {deadline}",
            deadline - 1
        );
        assert_eq!(wheel.len(), 1);
        wheel.advance(deadline, &mut fired);
        assert_eq!(fired, ["t"], "jump: did not fire at {deadline}");
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);

        fired.clear();
        let mut wheel = TimerWheel::new(start);
        wheel.insert(deadline, "t");
        for _ in 0..16 {
            let next = wheel
                .next_deadline()
                .expect("pending timer has a next deadline");
            assert!(next <= deadline, "next_deadline {next} after {deadline}");
            wheel.advance(next, &mut fired);
            if next < deadline {
                assert!(fired.is_empty(), "follow: fired at {next} for {deadline}");
            } else {
                break;
            }
        }
        assert_eq!(fired, ["t"], "follow: did not fire at {deadline}");

        fired.clear();
        let mut wheel = TimerWheel::new(start);
        wheel.insert(deadline, "t");
        for now in deadline.saturating_sub(3).max(start)..deadline {
            wheel.advance(now, &mut fired);
            assert!(fired.is_empty(), "tick: fired at {now} for {deadline}");
        }
        wheel.advance(deadline, &mut fired);
        assert_eq!(fired, ["t"], "tick: did not fire at {deadline}");
    }

    /// One `check_exact` test per line: `name: start, deadline;`.
    macro_rules! exact {
        ($($name:ident: $start:expr, $deadline:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    check_exact($start, $deadline);
                }
            )*
        };
    }

    mod fires_exactly {
        use super::*;
        exact! {
            next_tick: 0, 1;
            edge1_below: 0, 63;
            edge1: 0, 64;
            edge1_above: 0, 65;
            edge2_below: 0, 4095;
            edge2: 0, 4096;
            edge2_above: 0, 4097;
            edge3_below: 0, edge(3) - 1;
            edge3: 0, edge(3);
            edge3_above: 0, edge(3) + 1;
            edge4_below: 0, edge(4) - 1;
            edge4: 0, edge(4);
            edge4_above: 0, edge(4) + 1;
            edge5_below: 0, edge(5) - 1;
            edge5: 0, edge(5);
            edge5_above: 0, edge(5) + 1;
            edge6_below: 0, edge(6) - 1;
            just_past_range: 0, WHEEL_RANGE;
            one_past_range: 0, WHEEL_RANGE + 1;
            half_of_time: 0, u64::MAX / 2;
            end_of_time: 0, u64::MAX;
            mid_window_edge1: 1000, 1024;
            mid_window_edge2: 1000, 4096;
            mid_window_far: 1000, 1000 + 30_000;
            across_top_window: edge(6) - 1, edge(6);
            wrapped_top_slot: edge(6) - TOP_SLOT_RANGE, edge(6) + 5;
            reach_from_slot_start: 7 * TOP_SLOT_RANGE, 7 * TOP_SLOT_RANGE + WHEEL_RANGE - 1;
            reach_from_slot_end: 8 * TOP_SLOT_RANGE - 1, 7 * TOP_SLOT_RANGE + WHEEL_RANGE - 1;
            overflow_from_slot_start: 7 * TOP_SLOT_RANGE, 7 * TOP_SLOT_RANGE + WHEEL_RANGE;
            overflow_from_slot_end: 8 * TOP_SLOT_RANGE - 1, 8 * TOP_SLOT_RANGE - 1 + WHEEL_RANGE;
            overflow_mid_window: 12_345, 12_345 + WHEEL_RANGE;
            late_start_far: u64::MAX / 2, u64::MAX / 2 + WHEEL_RANGE * 3 + 17;
            last_window: u64::MAX - 100, u64::MAX;
        }
    }

    #[test]
    fn fires_in_deadline_order_then_insertion_order() {
        let deadlines = [
            4097,
            63,
            64,
            0,
            65,
            4096,
            64,
            edge(5),
            1,
            4095,
            63,
            edge(3),
            WHEEL_RANGE + 1,
            64,
        ];
        let mut wheel = TimerWheel::new(0);
        for (seq, &deadline) in deadlines.iter().enumerate() {
            wheel.insert(deadline, (deadline, seq));
        }
        let mut fired = Vec::new();
        wheel.advance(u64::MAX / 2, &mut fired);
        let mut expected: Vec<_> = deadlines.iter().copied().zip(0..).collect();
        expected.sort();
        assert_eq!(fired, expected);
    }

    #[test]
    fn equal_deadlines_keep_insertion_order_across_the_overflow_list() {
        // The first waits in the overflow list; by the time the second is inserted the top
        // slot has moved on, and it must not overtake the first.
        let deadline = WHEEL_RANGE + 5;
        let mut wheel = TimerWheel::new(0);
        wheel.insert(deadline, "first");
        let mut fired = Vec::new();
        wheel.advance(TOP_SLOT_RANGE, &mut fired);
        wheel.insert(deadline, "second");
        wheel.advance(deadline, &mut fired);
        assert_eq!(fired, ["first", "second"]);
    }

    #[test]
    fn cancel_returns_the_value_and_it_never_fires() {
        let mut wheel = TimerWheel::new(0);
        let a = wheel.insert(100, 'a');
        wheel.insert(100, 'b');
        assert_eq!(wheel.cancel(a), Some('a'));
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.cancel(a), None, "second cancel");
        let mut fired = Vec::new();
        wheel.advance(1000, &mut fired);
        assert_eq!(fired, ['b']);
    }

    #[test]
    fn cancel_after_fire_returns_none() {
        let mut wheel = TimerWheel::new(0);
        let key = wheel.insert(10, 'a');
        let mut fired = Vec::new();
        wheel.advance(10, &mut fired);
        assert_eq!(fired, ['a']);
        assert_eq!(wheel.cancel(key), None);
    }

    #[test]
    fn stale_key_after_slot_reuse_returns_none() {
        let mut wheel = TimerWheel::new(0);
        let old = wheel.insert(10, 'a');
        assert_eq!(wheel.cancel(old), Some('a'));
        let new = wheel.insert(20, 'b');
        assert_eq!(new.index, old.index, "the slab entry is reused");
        assert_ne!(new, old);
        assert_eq!(wheel.cancel(old), None);
        assert_eq!(wheel.len(), 1);
        let mut fired = Vec::new();
        wheel.advance(20, &mut fired);
        assert_eq!(fired, ['b']);

        // Reused after firing, too.
        let newer = wheel.insert(30, 'c');
        assert_eq!(newer.index, old.index);
        assert_eq!(wheel.cancel(new), None);
        assert_eq!(wheel.cancel(newer), Some('c'));
    }

    #[test]
    fn cancel_of_a_key_from_another_wheel_returns_none() {
        let mut big = TimerWheel::new(0);
        let far = (0..10).map(|i| big.insert(i, i)).last().expect("ten keys");
        let mut small: TimerWheel<u64> = TimerWheel::new(0);
        assert_eq!(small.cancel(far), None);
    }

    #[test]
    fn cancel_head_middle_and_tail_of_one_slot() {
        let mut wheel = TimerWheel::new(0);
        let keys: Vec<_> = (0..5).map(|i| wheel.insert(77, i)).collect();
        for &i in &[0, 2, 4] {
            assert_eq!(wheel.cancel(keys[i]), Some(i));
        }
        let mut fired = Vec::new();
        wheel.advance(76, &mut fired);
        assert!(fired.is_empty());
        wheel.advance(77, &mut fired);
        assert_eq!(fired, [1, 3]);
        for key in keys {
            assert_eq!(wheel.cancel(key), None);
        }
    }

    #[test]
    fn cancel_last_timer_in_slot_clears_it() {
        let mut wheel = TimerWheel::new(0);
        let near = wheel.insert(5, 'n');
        wheel.insert(5000, 'f');
        assert_eq!(wheel.next_deadline(), Some(5));
        wheel.cancel(near);
        let next = wheel.next_deadline().expect("one timer left");
        assert!(next > 5 && next <= 5000, "next_deadline {next}");
    }

    #[test]
    fn cancel_overflow_timer() {
        let mut wheel = TimerWheel::new(0);
        let key = wheel.insert(u64::MAX / 2, 'x');
        assert!(
            wheel
                .next_deadline()
                .is_some_and(|next| next <= u64::MAX / 2)
        );
        assert_eq!(wheel.cancel(key), Some('x'));
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
        let mut fired = Vec::new();
        wheel.advance(u64::MAX / 2, &mut fired);
        assert!(fired.is_empty());
    }

    #[test]
    fn many_timers_in_one_slot_fire_together_in_order() {
        let mut wheel = TimerWheel::new(0);
        for i in 0..10_000 {
            wheel.insert(100, i);
        }
        wheel.insert(99, -1);
        wheel.insert(101, -2);
        let mut fired = Vec::new();
        wheel.advance(99, &mut fired);
        assert_eq!(fired, [-1]);
        fired.clear();
        wheel.advance(100, &mut fired);
        assert_eq!(fired, (0..10_000).collect::<Vec<_>>());
        assert_eq!(wheel.len(), 1);
    }

    #[test]
    fn cascades_through_every_level() {
        // One timer per tick across the level 1/2 edge, stepped over in uneven strides: each
        // batch is exactly the deadlines in (previous now, now].
        let mut wheel = TimerWheel::new(0);
        for deadline in 4000..4200 {
            wheel.insert(deadline, deadline);
        }
        let mut fired = Vec::new();
        let mut prev = 0;
        for now in (3990..4210).step_by(7) {
            fired.clear();
            wheel.advance(now, &mut fired);
            let expected: Vec<_> = (prev + 1..=now)
                .filter(|d| (4000..4200).contains(d))
                .collect();
            assert_eq!(fired, expected, "at {now}");
            prev = now;
        }
        assert!(wheel.is_empty());

        // A single timer filed in the top level cascades down to level 0 one level at a time.
        let deadline = edge(5) + edge(4) + edge(3) + edge(2) + edge(1) + 1;
        let mut wheel = TimerWheel::new(0);
        wheel.insert(deadline, ());
        let mut steps = Vec::new();
        while let Some(next) = wheel.next_deadline() {
            steps.push(next);
            fired.clear();
            let mut done = Vec::new();
            wheel.advance(next, &mut done);
            assert_eq!(done.is_empty(), next < deadline);
        }
        assert_eq!(
            steps,
            [
                edge(5),
                edge(5) + edge(4),
                edge(5) + edge(4) + edge(3),
                edge(5) + edge(4) + edge(3) + edge(2),
                edge(5) + edge(4) + edge(3) + edge(2) + edge(1),
                deadline,
            ]
        );
    }

    #[test]
    fn insert_in_the_past_fires_at_next_advance() {
        let mut wheel = TimerWheel::new(0);
        let mut fired = Vec::new();
        wheel.advance(1000, &mut fired);
        wheel.insert(500, "past");
        wheel.insert(1000, "now");
        wheel.insert(0, "epoch");
        wheel.insert(1001, "next");
        assert_eq!(wheel.next_deadline(), Some(1000));
        wheel.advance(1000, &mut fired);
        assert_eq!(fired, ["past", "now", "epoch"]);
        assert_eq!(wheel.next_deadline(), Some(1001));

        let mut fresh = TimerWheel::new(0);
        fresh.insert(0, "zero");
        fired.clear();
        fresh.advance(0, &mut fired);
        assert_eq!(fired, ["zero"]);
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut wheel = TimerWheel::new(0);
        let mut fired = Vec::new();
        wheel.insert(150, 'b');
        wheel.advance(100, &mut fired);
        wheel.advance(50, &mut fired);
        assert!(fired.is_empty());
        wheel.insert(80, 'a');
        wheel.advance(50, &mut fired);
        assert_eq!(fired, ['a'], "80 is due at the wheel's time of 100");
        wheel.advance(149, &mut fired);
        assert_eq!(fired, ['a']);
        wheel.advance(150, &mut fired);
        assert_eq!(fired, ['a', 'b']);
    }

    #[test]
    fn empty_wheel_has_no_deadline_and_jumps_anywhere() {
        let mut wheel: TimerWheel<()> = TimerWheel::new(42);
        assert_eq!(wheel.next_deadline(), None);
        assert!(wheel.is_empty());
        let mut fired = Vec::new();
        wheel.advance(u64::MAX, &mut fired);
        assert!(fired.is_empty());
        wheel.insert(3, ());
        assert_eq!(wheel.next_deadline(), Some(u64::MAX));
    }

    #[test]
    fn sparse_wheel_skips_empty_ticks() {
        // If advancing walked ticks one by one, these jumps (30 s, then 2^50 ms) would not end.
        let mut wheel = TimerWheel::new(0);
        wheel.insert(30_000, 1);
        wheel.insert(1 << 50, 2);
        let mut fired = Vec::new();
        wheel.advance(29_999, &mut fired);
        assert!(fired.is_empty());
        wheel.advance(30_000, &mut fired);
        assert_eq!(fired, [1]);
        wheel.advance((1 << 50) - 1, &mut fired);
        assert_eq!(fired, [1]);
        wheel.advance(1 << 50, &mut fired);
        assert_eq!(fired, [1, 2]);
    }

    #[test]
    fn far_jump_with_many_timers_fires_them_all_in_order() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut wheel = TimerWheel::new(0);
        let mut deadlines: Vec<Tick> = (0..20_000).map(|_| rng.below(WHEEL_RANGE)).collect();
        for &deadline in &deadlines {
            wheel.insert(deadline, deadline);
        }
        let mut fired = Vec::new();
        wheel.advance(u64::MAX / 4, &mut fired);
        deadlines.sort();
        assert_eq!(fired, deadlines);
        assert!(wheel.is_empty());
    }

    #[test]
    fn far_jump_with_many_overflow_timers_fires_them_all_in_order() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let start = rng.below(1 << 40);
        let mut wheel = TimerWheel::new(start);
        let mut deadlines: Vec<Tick> = (0..1_000)
            .map(|_| start + WHEEL_RANGE + rng.below(1 << 45))
            .collect();
        for &deadline in &deadlines {
            wheel.insert(deadline, deadline);
        }
        deadlines.sort();
        let mut fired = Vec::new();
        let middle = deadlines[500];
        wheel.advance(middle - 1, &mut fired);
        assert_eq!(fired, deadlines[..500]);
        wheel.advance(u64::MAX / 4, &mut fired);
        assert_eq!(fired, deadlines);
    }

    /// Marsaglia's xorshift64: enough randomness for a test, no dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound.max(1)
        }
    }

    /// A deadline relative to `now` from a mix meant to hit every level, its edges, the past and
    /// the overflow list.
    fn random_deadline(rng: &mut XorShift, now: Tick) -> Tick {
        match rng.below(10) {
            0 => now.saturating_sub(rng.below(1000)),
            1 => now,
            2 => now + rng.below(64),
            3 => now + rng.below(4096),
            4 => now + rng.below(1 << 20),
            5 => now + rng.below(1 << 31),
            6 | 7 => {
                let shift = SLOT_BITS * (1 + rng.below(LEVELS as u64) as u32);
                (((now >> shift) + 1 + rng.below(2)) << shift) + rng.below(3) - 1
            }
            8 => now + WHEEL_RANGE - 2 * TOP_SLOT_RANGE + rng.below(3 * TOP_SLOT_RANGE),
            _ => now + rng.below(1 << 40),
        }
    }

    /// Random inserts, cancels (live and stale keys) and advances against a `BTreeMap` keyed by
    /// (deadline, insertion number): every advance must fire exactly the model's due set in that
    /// order, and `next_deadline` must never pass the model's earliest deadline.
    fn check_against_model(seed: u64, steps: usize) {
        let mut rng = XorShift(seed);
        let mut now = rng.below(1 << 40);
        let mut wheel = TimerWheel::new(now);
        let mut model: BTreeMap<(Tick, u64), TimerKey> = BTreeMap::new();
        let mut dead: Vec<TimerKey> = Vec::new();
        let mut fired = Vec::new();
        let mut id = 0;
        for step in 0..steps {
            match rng.below(12) {
                0..=4 => {
                    // A past deadline is due at the current time: the model files it there.
                    let deadline = random_deadline(&mut rng, now).max(now);
                    let key = wheel.insert(deadline, (deadline, id));
                    model.insert((deadline, id), key);
                    id += 1;
                }
                5 => {
                    if !model.is_empty() {
                        let nth = rng.below(model.len() as u64) as usize;
                        let (&entry, &key) = model.iter().nth(nth).expect("nth < len");
                        assert_eq!(wheel.cancel(key), Some(entry), "step {step}");
                        model.remove(&entry);
                        dead.push(key);
                    }
                }
                6 => {
                    if !dead.is_empty() {
                        let key = dead[rng.below(dead.len() as u64) as usize];
                        assert_eq!(wheel.cancel(key), None, "step {step}: stale key");
                    }
                }
                choice => {
                    let target = match choice {
                        7 => now + rng.below(3),
                        8 => now + rng.below(5000),
                        9 => wheel.next_deadline().unwrap_or(now),
                        10 => match model.keys().next() {
                            Some(&(deadline, _)) => deadline - rng.below(2),
                            None => now + rng.below(1 << 32),
                        },
                        _ => match rng.below(4) {
                            0 => now.saturating_sub(rng.below(100)),
                            1 => now + rng.below(1 << 32),
                            2 => now + rng.below(1 << 38),
                            _ => now + rng.below(1 << 44),
                        },
                    };
                    now = now.max(target);
                    fired.clear();
                    wheel.advance(target, &mut fired);
                    let later = model.split_off(&(now + 1, 0));
                    let due = mem::replace(&mut model, later);
                    let expected: Vec<_> = due.keys().copied().collect();
                    assert_eq!(fired, expected, "step {step}: advance to {target}");
                    dead.extend(due.values());
                }
            }
            assert_eq!(wheel.len(), model.len(), "step {step}");
            match model.keys().next() {
                None => assert_eq!(wheel.next_deadline(), None, "step {step}"),
                Some(&(earliest, _)) => {
                    let next = wheel.next_deadline().expect("non-empty wheel");
                    assert!(next <= earliest, "step {step}: next {next} > {earliest}");
                }
            }
        }
    }

    #[test]
    fn matches_model_seed_1() {
        check_against_model(1, 20_000);
    }

    #[test]
    fn matches_model_seed_2() {
        check_against_model(0xdead_beef, 20_000);
    }

    #[test]
    fn matches_model_seed_3() {
        check_against_model(0x1234_5678_9abc_def0, 20_000);
    }
}
