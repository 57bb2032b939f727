//! Warnings about limits that refuse clients, at most one per kind every
//! [`WARN_EVERY`], each saying how many were held back: a flood of bad
//! clients must not become a flood of log lines (nor a slow loop: every
//! line is a write to stderr).

use log::warn;

use super::Server;
use crate::config::Millis;

/// A warning that a limit is refusing clients repeats at most this often.
const WARN_EVERY: Millis = 10_000;

/// One kind of rate-limited warning: when it was last logged and how many
/// were held back since.
#[derive(Debug)]
struct Warned {
    what: &'static str,
    last: Option<Millis>,
    held_back: u64,
}

/// Every kind of warning seen so far (a handful).
#[derive(Debug, Default)]
pub(super) struct Warnings(Vec<Warned>);

impl Server {
    /// Logs `message` unless a warning of kind `what` was logged less than
    /// [`WARN_EVERY`] ago.
    pub(super) fn warn_limited(&mut self, what: &'static str, message: std::fmt::Arguments<'_>) {
        let now = self.now();
        let list = &mut self.warned.0;
        let i = match list.iter().position(|w| w.what == what) {
            Some(i) => i,
            None => {
                list.push(Warned {
                    what,
                    last: None,
                    held_back: 0,
                });
                list.len() - 1
            }
        };
        let entry = &mut list[i];
        if entry.last.is_some_and(|last| now < last + WARN_EVERY) {
            entry.held_back += 1;
            return;
        }
        match std::mem::take(&mut entry.held_back) {
            0 => warn!("{message}"),
            n => warn!(
                "{message} ({n} more like it in the last {} s)",
                WARN_EVERY / 1000
            ),
        }
        entry.last = Some(now);
    }
}
