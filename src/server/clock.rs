//! The loop's clock: whole milliseconds, rounded down for "now" and up for
//! where a deadline starts, so that no timer fires early; and the `Date`
//! field, formatted once a second rather than once per answer.

use std::time::{Duration, SystemTime};

use crate::config::Millis;

/// The `Date` field value, formatted once a second (RFC 9110 section
/// 6.6.1: every response from an origin server with a clock carries one).
#[derive(Debug, Default)]
pub(super) struct HttpDate {
    second: u64,
    text: String,
}

impl HttpDate {
    /// Reads the wall clock (once per turn) and formats it again if a
    /// second has passed.
    pub(super) fn refresh(&mut self) {
        let now = SystemTime::now();
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if second != self.second || self.text.is_empty() {
            self.second = second;
            self.text = httpdate::fmt_http_date(now);
        }
    }

    pub(super) fn now(&self) -> &str {
        &self.text
    }

    /// The Unix time in seconds, as of this turn.
    pub(super) fn unix_seconds(&self) -> u64 {
        self.second
    }
}

/// Whole milliseconds in `d`, rounded down: the wheel's notion of "now".
pub(super) fn floor_millis(d: Duration) -> Millis {
    d.as_millis() as Millis
}

/// Whole milliseconds in `d`, rounded up: where a deadline starts counting.
/// With `now` rounded down and deadlines from a rounded-up start, a timer
/// fires only once its full duration has really passed.
pub(super) fn ceil_millis(d: Duration) -> Millis {
    floor_millis(d) + Millis::from(!d.subsec_nanos().is_multiple_of(1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_and_now_rounds_down() {
        let at = |ms: u64, ns: u32| Duration::from_millis(ms) + Duration::from_nanos(u64::from(ns));
        assert_eq!((floor_millis(at(5, 0)), ceil_millis(at(5, 0))), (5, 5));
        assert_eq!((floor_millis(at(5, 1)), ceil_millis(at(5, 1))), (5, 6));
        assert_eq!(
            (floor_millis(at(5, 999_999)), ceil_millis(at(5, 999_999))),
            (5, 6)
        );
        // A 750 ms wait begun at 5.0001 ms is due at 756: the wheel fires it
        // once floor(now) >= 756, i.e. after at least 750.9999 ms.
        let start = at(5, 100_000);
        let deadline = ceil_millis(start) + 750;
        assert!(Duration::from_millis(deadline) >= start + Duration::from_millis(750));
    }

    #[test]
    fn the_date_is_an_imf_fixdate() {
        let mut date = HttpDate::default();
        date.refresh();
        let text = date.now().to_string();
        assert_eq!(text.len(), 29, "{text}");
        assert!(text.ends_with(" GMT"), "{text}");
        assert!(httpdate::parse_http_date(&text).is_ok());
    }
}
