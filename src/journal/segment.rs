//! Segments: the log is cut into one file per time window, so that it ages
//! out whole files instead of being rewritten.
//!
//! A segment is named by the start of its window, in store milliseconds
//! (Unix time), zero-padded so that names sort as times do:
//! `00001733050000000.log`. Its window is [`window`] long: an eighth of the
//! event TTL, at most 30 s and at least 50 ms, so the directory holds about
//! one TTL plus two windows of traffic whatever the TTL.
//!
//! # When a segment is useless
//!
//! Every record refers to events pushed no later than the record itself: a
//! push to its own event, a batch, lease, ack, nack or extend to events
//! pushed before it. Every event lives exactly the TTL. So once `ttl` has
//! passed since a segment's newest record, every event any of its records
//! names has expired: its pushes are dead, its leases have ended by the
//! store's own rule (a lease whose events have all expired ends), and the
//! cursors it moved only skip expired events, so a group whose cursor was
//! recorded only there behaves as a new group would, which is the store's
//! forgetting rule. [`useless`] is that rule, a pure function of the
//! segment's newest record time, `now` and the TTL. It keeps a segment that
//! holds a lease taken late on old events (the lease is newer than the
//! events), which a rule on the newest *push* alone would delete too early.

use std::path::{Path, PathBuf};

use crate::config::Millis;

/// The longest window of one segment.
pub const MAX_WINDOW: Millis = 30_000;
/// The shortest: with a tiny TTL, do not make a file per record.
pub const MIN_WINDOW: Millis = 50;

/// Segment files end with this.
const SUFFIX: &str = ".log";

/// The window of one segment under TTL `ttl`: an eighth of it, within
/// [`MIN_WINDOW`] and [`MAX_WINDOW`].
pub fn window(ttl: Millis) -> Millis {
    (ttl / 8).clamp(MIN_WINDOW, MAX_WINDOW)
}

/// The start of the window `at` falls in.
pub fn window_start(at: Millis, window: Millis) -> Millis {
    at - at % window
}

/// Whether a closed segment whose newest record happened at `newest` can
/// be deleted at `now`: everything it names has expired (module docs).
pub fn useless(newest: Millis, now: Millis, ttl: Millis) -> bool {
    now >= newest.saturating_add(ttl)
}

/// When [`useless`] turns true.
pub fn useless_at(newest: Millis, ttl: Millis) -> Millis {
    newest.saturating_add(ttl)
}

/// The file of the segment whose window starts at `start`.
pub fn path(dir: &Path, start: Millis) -> PathBuf {
    dir.join(format!("{start:020}{SUFFIX}"))
}

/// The window start a segment's file name stands for, if it is one.
pub fn parse_name(name: &str) -> Option<Millis> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment on disk: where it is, its window start, its newest record
/// time and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Its file.
    pub path: PathBuf,
    /// Its window's start.
    pub start: Millis,
    /// When its newest record happened (its window start if none).
    pub newest: Millis,
    /// Its bytes.
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_an_eighth_of_the_ttl_within_bounds() {
        assert_eq!(window(120_000), 15_000);
        assert_eq!(window(2_000), 250);
        assert_eq!(window(3_600_000), MAX_WINDOW);
        assert_eq!(window(100), MIN_WINDOW);
    }

    #[test]
    fn window_starts_at_the_boundaries() {
        assert_eq!(window_start(14_999, 15_000), 0);
        assert_eq!(window_start(15_000, 15_000), 15_000);
        assert_eq!(window_start(15_001, 15_000), 15_000);
    }

    #[test]
    fn a_segment_is_useless_exactly_one_ttl_after_its_newest_record() {
        let ttl = 1000;
        assert!(!useless(5000, 5999, ttl));
        assert!(useless(5000, 6000, ttl));
        assert!(useless(5000, 6001, ttl));
        assert_eq!(useless_at(5000, ttl), 6000);
    }

    #[test]
    fn names_sort_as_times_and_parse_back() {
        let dir = Path::new("/d");
        let a = path(dir, 999);
        let b = path(dir, 1000);
        assert!(a < b);
        let name = b.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(parse_name(name), Some(1000));
        assert_eq!(parse_name("lock"), None);
        assert_eq!(parse_name("12.log"), None);
        assert_eq!(parse_name("0000000000000000000x.log"), None);
    }
}
