//! Answering parked consumers in the turn of the push that woke them (or
//! the nack, or the lease that ran out).
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
use crate::api::Wake;

impl Server {
    /// Writes the answer of every consumer the last request woke.
    pub(super) fn deliver_wakes(&mut self) {
        let mut wakes = std::mem::take(&mut self.wakes);
        for wake in wakes.drain(..) {
            self.deliver(wake);
        }
        self.wakes = wakes;
    }

    /// Answers a parked consumer and writes the answer now.
    pub(super) fn deliver(&mut self, wake: Wake) {
        let token = wake.consumer.0;
        // A consumer that hung up was unparked when it closed, so the store
        // never names a connection that is gone or not parked.
        let now = self.now();
        let Some(reply) = self.conns.get_mut(token).and_then(|c| c.unparked(now)) else {
            debug_assert!(false, "the store woke #{token}, which is not parked");
            return;
        };
        if self.respond_now(token, &wake.response, reply) {
            self.settle(token);
        }
    }
}
