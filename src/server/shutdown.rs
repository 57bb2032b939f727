//! SIGINT and SIGTERM: stop accepting, answer every parked consumer `[]`
//! without consuming anything, let what is owed go out, then exit.
//!
//! A connection between requests is closed like any other after its last
//! answer: write side shut, then a linger for the client's FIN, so a reset
//! cannot destroy an answer the client has not read yet. The drain is
//! bounded: after [`DRAIN`] the loop exits whatever is left.

use log::{info, warn};

use super::{Accepting, Server, Timer};
use crate::api::Response;
use crate::config::Millis;
use crate::connection::{ReplyStyle, State};

/// How long shutdown waits for pending writes before exiting anyway.
const DRAIN: Millis = 5_000;

impl Server {
    /// The signal pipe is readable: SIGINT or SIGTERM arrived.
    pub(super) fn shutdown(&mut self) {
        let mut asked = false;
        for signal in self.signals.pending() {
            info!("received signal {signal}: draining and shutting down");
            asked = true;
        }
        if !asked || self.draining {
            return;
        }
        self.draining = true;
        if let Accepting::Paused { retry } = self.accepting {
            self.wheel.cancel(retry);
        }
        if self.accepting == Accepting::Open {
            let _ = self.poll.registry().deregister(&mut self.listener);
        }
        self.accepting = Accepting::Stopped;
        let at = self.deadline_in(DRAIN);
        self.wheel.insert(at, Timer::Drain);
        let now = self.now();
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for token in tokens {
            let conn = &mut self.conns[token];
            if let State::Parked { park, .. } = conn.state()
                && let Some(reply) = conn.unparked(now)
            {
                self.api.release(park);
                let reply = ReplyStyle {
                    keep_alive: false,
                    ..reply
                };
                self.respond(token, &Response::empty_batch(), reply);
            }
            self.conns[token].drain();
            self.serve(token);
        }
    }

    /// The drain is over: say what is left behind.
    pub(super) fn finish_drain(&mut self) {
        if !self.conns.is_empty() {
            warn!(
                "drain time over: closing {} connections with unsent output",
                self.conns.len()
            );
        }
    }
}
