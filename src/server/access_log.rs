//! Feeding the access log (`--access-log`) from the loop: what a request
//! said when its head was read, what its answer was, and one write of the
//! turn's lines at the end of the turn.
//!
//! Every call here is a no-op without `--access-log`: the loop holds no log
//! then, and nothing is read, rendered or remembered.

use std::time::SystemTime;

use super::Server;
use crate::access::{Answer, Fields};
use crate::api::Response;
use crate::connection::ReplyStyle;
use crate::http::{self, Head};

impl Server {
    /// The request whose head connection `token` has just sent.
    pub(super) fn log_request(&mut self, token: usize, head: &Head<'_>) {
        let Server {
            access,
            conns,
            start,
            ..
        } = self;
        let Some(log) = access.as_deref_mut() else {
            return;
        };
        // A key that does not decode is refused with a 400; its line then
        // simply has no key.
        let key = http::query_param(head.query, "key").ok().flatten();
        let group = http::query_param(head.query, "groupId").ok().flatten();
        let fields = Fields {
            forwarded_for: head.x_forwarded_for(),
            method: head.method,
            path: head.path,
            key: key.as_deref(),
            group: group.as_deref(),
        };
        log.begin(token, &fields, micros(*start), || {
            conns[token].peer().to_string()
        });
    }

    /// The request connection `token` sent is parked.
    pub(super) fn log_parked(&mut self, token: usize) {
        if let Some(log) = self.access.as_deref_mut() {
            log.park(token);
        }
    }

    /// Connection `token`'s request will never be answered: its consumer
    /// was dropped, or the connection is `closed`.
    pub(super) fn log_forget(&mut self, token: usize, closed: bool) {
        if let Some(log) = self.access.as_deref_mut() {
            log.forget(token, closed);
        }
    }

    /// Connection `token`'s request is answered with `response`.
    pub(super) fn log_answer(&mut self, token: usize, response: &Response, reply: ReplyStyle) {
        let Server {
            access,
            conns,
            start,
            ..
        } = self;
        let Some(log) = access.as_deref_mut() else {
            return;
        };
        let unix_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let answer = Answer {
            status: response.status,
            bytes: if reply.head_only {
                0
            } else {
                response.body.len()
            },
            now_us: micros(*start),
            unix_ms,
        };
        log.answered(token, answer, || conns[token].peer().to_string());
    }

    /// The end of a turn: this turn's lines, in one write to stderr (where
    /// the logger writes). A failed write loses those lines and nothing
    /// else; the loop must not stop for its log.
    pub(super) fn write_access_log(&mut self) {
        if let Some(log) = self.access.as_deref_mut() {
            let _ = log.flush(&mut std::io::stderr().lock());
        }
    }
}

/// The access log's clock: microseconds since the server started.
fn micros(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}
