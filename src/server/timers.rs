//! What each timer does when it fires, and how a connection's timer is kept
//! in step with its state.
//!
//! A connection has at most one wheel entry, the one in `Connection::armed`,
//! armed by [`Server::arm`] from `Connection::deadline`. While the
//! connection waits for the same thing, an entry that fires no later than
//! needed is kept (a keep-alive connection that answers a request every
//! millisecond does not touch the wheel each time): when it fires, the
//! deadline is derived again, and only if the wait it stands for is really
//! over does anything happen; otherwise it is armed again. A connection that
//! starts waiting for something else is armed afresh. So a fired timer never
//! acts on a state it was not armed for, and 10,000 parked connections are
//! not woken by the header timers they were accepted with.

use log::debug;

use super::{Server, Timer};
use crate::api::{LeaseFired, Response};
use crate::config::Millis;
use crate::connection::{ReplyStyle, State, TimerKind};
use crate::metrics::Endpoint;

/// Sweeps of expired events are rounded up to this, so events pushed close
/// together are freed by one wake-up (SPEC.md allows 1 s).
const SWEEP_GRANULARITY: Millis = 100;

impl Server {
    /// Fires every timer that is due.
    pub(super) fn fire_timers(&mut self) {
        // Exact: serving this turn's events took time, and a timer due
        // meanwhile must not wait for the next turn.
        self.tick();
        let now = self.now();
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(now, &mut fired);
        for timer in fired.drain(..) {
            match timer {
                Timer::Connection(token) => self.connection_timer(token, now),
                Timer::Sweep => {
                    self.sweep = None;
                    self.api.sweep(now);
                    self.schedule_sweep();
                }
                Timer::Lease(id) => match self.api.lease_timer(id, now) {
                    LeaseFired::Nothing => {}
                    LeaseFired::Rearm(at) => {
                        self.wheel.insert(at, Timer::Lease(id));
                    }
                    LeaseFired::Wake(wake) => self.deliver(wake),
                },
                Timer::AcceptRetry => self.resume_accepting(true),
                Timer::Retire => self.retire_segments(now),
                Timer::Drain => self.drained = true,
            }
        }
        self.fired = fired;
    }

    /// Makes the connection's one wheel entry fire no later than its state's
    /// deadline, and not at all if the state has none.
    pub(super) fn arm(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let wanted = conn.deadline(&self.timeouts);
        match (conn.armed, wanted) {
            // The same wait, due no later: when it fires, the deadline is
            // looked at again (a keep-alive connection's idle clock moves
            // with every request, and the wheel need not follow it). Another
            // wait is armed afresh, so that a parked connection is not woken
            // by the header timer it was accepted with.
            (Some((_, armed, kind)), Some((wanted_kind, at)))
                if kind == wanted_kind && armed <= at => {}
            (None, None) => {}
            (armed, wanted) => {
                if let Some((key, ..)) = armed {
                    self.wheel.cancel(key);
                }
                conn.armed = wanted
                    .map(|(kind, at)| (self.wheel.insert(at, Timer::Connection(token)), at, kind));
            }
        }
    }

    fn connection_timer(&mut self, token: usize, now: Millis) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        // The entry that fired is the connection's only one (see `Timer`).
        debug_assert!(
            conn.armed.is_some(),
            "#{token}: a timer fired that was not armed"
        );
        conn.armed = None;
        match conn.deadline(&self.timeouts) {
            Some((kind, deadline)) if deadline <= now => self.time_out(token, kind),
            // The wait is not over (the state moved on): arm for the new one.
            _ => self.settle(token),
        }
    }

    /// The wait `kind` of connection `token` is over.
    fn time_out(&mut self, token: usize, kind: TimerKind) {
        let peer = self.conns[token].peer();
        match kind {
            TimerKind::Poll => {
                let now = self.now();
                let conn = &mut self.conns[token];
                let State::Parked { park, .. } = conn.state() else {
                    return;
                };
                let Some(reply) = conn.unparked(now) else {
                    return;
                };
                let response = self.api.timed_out(park);
                self.respond(token, &response, reply);
                self.serve(token);
            }
            TimerKind::Request => {
                self.warn_limited(
                    "slow request",
                    format_args!(
                        "#{token} {peer}: request not received within --header-timeout, closing"
                    ),
                );
                let response = Response::error(
                    Endpoint::Other,
                    408,
                    "request not received within --header-timeout",
                );
                let meter = self.meter.clone();
                self.conns[token].inbox.discard(&meter);
                self.respond(token, &response, ReplyStyle::CLOSING);
                self.serve(token);
            }
            TimerKind::Idle => self.close(token, "idle"),
            TimerKind::Stalled => {
                let now = self.now();
                if self.conns[token].took_bytes(now) {
                    // Slow, not stalled: wait another idle timeout.
                    return self.settle(token);
                }
                debug!("#{token} {peer}: took no byte of its answers for --idle-timeout");
                self.close(token, "stalled: the client does not read");
            }
            TimerKind::Linger => self.close(token, "closed after answering"),
        }
    }

    /// Keeps one sweep timer pending while any event is retained.
    pub(super) fn schedule_sweep(&mut self) {
        if self.sweep.is_some() {
            return;
        }
        if let Some(at) = self.api.store.next_expiry() {
            let at = at.div_ceil(SWEEP_GRANULARITY) * SWEEP_GRANULARITY;
            self.sweep = Some(self.wheel.insert(at, Timer::Sweep));
        }
    }
}
