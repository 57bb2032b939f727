//! Answering parked consumers in the turn of the push that woke them.
//!
//! A push hands back, for every group waiting on its key, the earliest
//! parked consumer and its batch. Each is written at once, before the
//! pusher's own answer is queued: by the time the pusher reads its `200`,
//! every consumer it woke has been answered (SPEC.md). A consumer's answer
//! is its head plus a body that shares the stored events, so a fan-out to
//! 10,000 groups copies no event 10,000 times; most go out in the one
//! `writev` made here, and what a socket does not take waits in that
//! connection's outbox, pinned in the store.

use super::Server;
use crate::api::{Body, Response};
use crate::metrics::Endpoint;

impl Server {
    /// Writes the answer of every consumer the last push woke.
    pub(super) fn deliver_wakes(&mut self) {
        let mut wakes = std::mem::take(&mut self.wakes);
        for wake in wakes.drain(..) {
            self.deliver(wake.consumer.0, Body::Batch(wake.body));
        }
        self.wakes = wakes;
    }

    /// Answers the parked consumer on `token` with `body` and writes it now.
    fn deliver(&mut self, token: usize, body: Body) {
        // A consumer that hung up was unparked when it closed, so the store
        // never names a connection that is gone or not parked.
        let now = self.now();
        let Some(reply) = self.conns.get_mut(token).and_then(|c| c.unparked(now)) else {
            debug_assert!(false, "the store woke #{token}, which is not parked");
            return;
        };
        let response = Response::json(Endpoint::BlockingGet, 200, body);
        self.respond(token, &response, reply);
        if self.flush(token) {
            self.settle(token);
        }
    }
}
