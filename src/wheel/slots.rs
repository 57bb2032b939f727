//! The slot maths of the wheel: which level and slot a deadline is filed in,
//! and when a far timer fits the wheel. Small pure functions over plain
//! ticks, tested at their boundaries in `mod.rs`.

use super::Tick;

/// Bits of a tick that pick a slot within one level: 6, so 2^6 = 64 slots.
pub(super) const SLOT_BITS: u32 = 6;
/// Slots per level: 2^6 = 64, one bit each in a `u64` occupancy bitmap.
pub(super) const SLOTS: usize = 1 << SLOT_BITS;
/// Picks a slot number out of a shifted tick: 64 - 1 = 0b11_1111.
pub(super) const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Levels: 6, each 64 times as wide as the one below; level 0 slots are 1 ms, so level 0 spans
/// 64 ms, level 1 4.1 s, level 2 4.4 min, level 3 4.7 h, level 4 12.4 days, level 5 2.2 years.
pub(super) const LEVELS: usize = 6;
/// Ticks the whole wheel spans: 64^6 = 2^36 ms = 68,719,476,736 ms, about 795 days (2.2 years).
pub(super) const WHEEL_RANGE: Tick = 1 << (SLOT_BITS * LEVELS as u32);
/// Width of one top-level slot: 64^5 = 2^30 ms, about 12.4 days.
pub(super) const TOP_SLOT_RANGE: Tick = slot_range(LEVELS - 1);
/// The end of a list and of the free list; never a valid slab index.
pub(super) const NIL: u32 = u32::MAX;

/// Width in ticks of one slot of `level`: 64^level = 2^(6 × level).
pub(super) const fn slot_range(level: usize) -> Tick {
    1 << (SLOT_BITS * level as u32)
}

/// The level a timer due at `deadline` is filed in when the wheel is at `now`.
///
/// The highest bit in which the two differ picks it: bits `6n..6n+6` belong to level `n`, and
/// above that bit `now` and `deadline` agree, so the timer is in the current slot of every
/// higher level and only the level-`n` slot tells it apart. The low six bits are forced on so
/// that equal ticks still give a bit to look at (level 0). A deadline in the top level's next
/// lap differs in bit 36 or above and is filed in the top level, whose slots then wrap round;
/// [`fits`] keeps that unambiguous.
pub(super) const fn level_for(now: Tick, deadline: Tick) -> usize {
    let masked = (now ^ deadline) | SLOT_MASK;
    let significant = (Tick::BITS - 1 - masked.leading_zeros()) as usize;
    let level = significant / SLOT_BITS as usize;
    if level < LEVELS { level } else { LEVELS - 1 }
}

/// The slot within `level` that `deadline` falls in: its six bits for that level.
pub(super) const fn slot_for(deadline: Tick, level: usize) -> usize {
    ((deadline >> (SLOT_BITS * level as u32)) & SLOT_MASK) as usize
}

/// Whether a timer due at `deadline` (not before `now`) is filed in the wheel rather than in
/// the overflow list.
///
/// The top level is a ring of 64 slots of 2^30 ms, and the slot `now` is in has been cascaded
/// already, so the ring reaches up to, not including, that same slot one lap (2^36 ms) later:
/// between 63 and 64 top slots ahead, depending on where in its top slot `now` is. The limit
/// moves only when `now` enters a new top slot, which is when the overflow list is looked at
/// (see [`overflow_check_at`]). Where the limit is past `u64::MAX`, every later tick fits.
pub(super) const fn fits(now: Tick, deadline: Tick) -> bool {
    match (now & !(TOP_SLOT_RANGE - 1)).checked_add(WHEEL_RANGE) {
        Some(limit) => deadline < limit,
        None => true,
    }
}

/// The first tick at which an overflow timer due at `deadline` [`fits`]: the first top-slot
/// boundary after `deadline - 2^36`. Checking no earlier keeps rechecks to one per top slot;
/// checking no later means a timer with the same deadline inserted afterwards cannot be filed
/// in the wheel while this one still waits, so equal deadlines fire in insertion order.
///
/// `deadline` is at least 2^36, as no earlier deadline overflows.
pub(super) const fn overflow_check_at(deadline: Tick) -> Tick {
    ((deadline - WHEEL_RANGE) & !(TOP_SLOT_RANGE - 1)) + TOP_SLOT_RANGE
}
