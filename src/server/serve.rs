//! Serving one connection: read, cut requests, answer or park them, write,
//! then settle what the connection needs from epoll and the wheel.
//!
//! [`Server::serve`] is the only place that reads from a socket, and
//! [`Server::settle`] the only place that registers interest, arms a
//! connection's timer or puts it on the revisit list, each derived from the
//! connection's state (`Connection::interest`, `Connection::deadline`,
//! `Connection::needs_visit`). Whatever happened to a connection, whether
//! epoll reported it, a push answered it or a timer fired, ends in `settle`.

use log::debug;
use mio::Token;

use std::io;

use super::Server;
use crate::api::{Context, Outcome, Request, Response, route};
use crate::config::Millis;
use crate::connection::{Fill, ReplyStyle, State};
use crate::guard::Ask;
use crate::http::{self, Head, HttpError};
use crate::inbox::Framed;
use crate::metrics::Endpoint;
use crate::outbox::Flushed;
use crate::store::ConsumerId;

/// Reads one connection may do per visit before the others get a turn.
const READS_PER_VISIT: usize = 16;

impl Server {
    /// Epoll reported readiness for `token`.
    pub(super) fn ready(&mut self, token: usize, event: &mio::event::Event) {
        // An event for a token with no connection is stale: the connection
        // was closed earlier in this same batch of events. (If its slot was
        // reused meanwhile, the new connection gets a spurious visit and its
        // read simply returns WouldBlock.)
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let hung_up = event.is_read_closed() || event.is_error();
        conn.readable |= event.is_readable() || hung_up;
        conn.hung_up |= hung_up;
        self.serve(token);
    }

    /// Does everything there is to do on a connection now: write what is
    /// owed, answer the requests that are complete, read more while the state
    /// wants it (at most [`READS_PER_VISIT`] reads, to be fair), then settle.
    pub(super) fn serve(&mut self, token: usize) {
        let mut reads = 0;
        loop {
            if !self.flush(token) {
                return;
            }
            self.process_input(token);
            if !self.flush(token) {
                return;
            }
            let now = self.now();
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if !conn.readable || !conn.wants_input() || reads == READS_PER_VISIT {
                break;
            }
            reads += 1;
            match conn.fill(&mut self.read_scratch, now) {
                Fill::Data { drained } => conn.readable &= !drained,
                Fill::WouldBlock => conn.readable = false,
                Fill::Closed => {
                    conn.readable = false;
                    if let Some(park) = conn.peer_finished() {
                        self.api.release(park);
                    }
                }
                Fill::Failed(e) => return self.close(token, &format!("read failed: {e}")),
            }
        }
        if let Some(park) = self
            .conns
            .get_mut(token)
            .and_then(|c| c.gone_while_parked())
        {
            self.api.release(park);
        }
        if self.pin_if_held(token) {
            return;
        }
        self.settle(token);
    }

    /// Answers every complete request in the window, in order, until one
    /// parks, the output backs up, or the connection closes.
    fn process_input(&mut self, token: usize) {
        loop {
            let memory_left = self.memory_left();
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if !conn.serves_requests() {
                break;
            }
            let mut inbox = std::mem::take(&mut conn.inbox);
            let (outcome, reply) =
                match inbox.next_request(self.config.max_body, &self.meter, memory_left) {
                    Err(e) => {
                        inbox.discard(&self.meter);
                        self.conns[token].inbox = inbox;
                        self.protocol_error(token, e);
                        break;
                    }
                    Ok(Framed::Partial) => {
                        conn.inbox = inbox;
                        break;
                    }
                    Ok(Framed::Started { head }) => {
                        // Judged before a byte of the body is read: a refused
                        // upload is not waited for, and `100 Continue` is
                        // sent only to a request that will be served.
                        match self.guard.check(&ask(&head), self.date.unix_seconds()) {
                            Ok(_) => {
                                if head.expect_continue {
                                    conn.outbox.push_bytes(&self.meter, |b| {
                                        b.extend_from_slice(http::CONTINUE)
                                    });
                                }
                                conn.inbox = inbox;
                            }
                            Err(refused) => {
                                // The body will not be read, so the stream
                                // cannot go on: answer, then close.
                                let reply = ReplyStyle {
                                    minor_version: head.minor_version,
                                    cors: refused.cors,
                                    ..ReplyStyle::CLOSING
                                };
                                let response = Response::refused(route(head.path), &refused);
                                if self.access.is_some() {
                                    self.log_request(token, &head);
                                }
                                inbox.discard(&self.meter);
                                self.conns[token].inbox = inbox;
                                self.warn_refused(token, &response);
                                self.respond(token, &response, reply);
                            }
                        }
                        break;
                    }
                    Ok(Framed::Request { head, body }) => {
                        if self.access.is_some() {
                            self.log_request(token, &head);
                        }
                        let verdict = self.guard.check(&ask(&head), self.date.unix_seconds());
                        let reply = ReplyStyle {
                            keep_alive: head.keep_alive && !self.draining,
                            minor_version: head.minor_version,
                            head_only: head.method == http::Method::Head,
                            cors: match verdict {
                                Ok(cors) => cors,
                                Err(refused) => refused.cors,
                            },
                        };
                        let outcome = match verdict {
                            Err(refused) => {
                                let response = Response::refused(route(head.path), &refused);
                                self.warn_refused(token, &response);
                                Outcome::Reply(response)
                            }
                            Ok(_) => {
                                let request = Request {
                                    method: head.method,
                                    path: head.path,
                                    query: head.query,
                                    body,
                                };
                                let context = Context {
                                    now: self.exact_now(),
                                    connections_open: self.conns.len(),
                                    held_elsewhere: self.meter.held(),
                                };
                                self.api.handle(
                                    &request,
                                    ConsumerId(token),
                                    &context,
                                    &mut self.wakes,
                                )
                            }
                        };
                        (outcome, reply)
                    }
                };
            inbox.finish_request(&self.meter);
            let input_finished = inbox.input_finished();
            self.conns[token].inbox = inbox;
            // Every consumer this push answers is answered before the pusher.
            self.deliver_wakes();
            self.schedule_sweep();
            match outcome {
                Outcome::Reply(response) => self.respond(token, &response, reply),
                // The client sent FIN with this get: it is gone, and a
                // consumer that would wait is owed nothing.
                Outcome::Park { park, .. } if input_finished => {
                    self.api.release(park);
                    self.log_forget(token, false);
                }
                Outcome::Park { park, wait } => self.park(token, park, reply, wait),
            }
        }
        if let Some(conn) = self.conns.get_mut(token) {
            conn.input_exhausted();
        }
    }

    /// Parks a blocking-get: the connection waits, holding no buffers, with
    /// one timer at its deadline.
    fn park(&mut self, token: usize, park: crate::store::ParkKey, reply: ReplyStyle, wait: Millis) {
        let deadline = self.deadline_in(wait);
        debug!("#{token} parked until {deadline} ms");
        self.conns[token].park(park, reply, deadline);
        self.log_parked(token);
    }

    /// Says in the log, once in a while, that requests are being refused:
    /// a client whose tokens start failing (expired, or signed with an old
    /// key) is worth one line, a flood of them is not worth more.
    fn warn_refused(&mut self, token: usize, response: &Response) {
        let peer = self.conns[token].peer();
        self.warn_limited(
            "refused",
            format_args!(
                "#{token} {peer}: {:?} refused with {}",
                response.endpoint, response.status
            ),
        );
    }

    /// A request that cannot be framed: answer it, then close, since the
    /// rest of the stream cannot be trusted.
    fn protocol_error(&mut self, token: usize, e: HttpError) {
        let peer = self.conns[token].peer();
        self.warn_limited(
            "protocol",
            format_args!("#{token} {peer}: {} {}, closing", e.status, e.message),
        );
        let mut response = Response::error(Endpoint::Other, e.status, e.message);
        if e.status == 503 {
            response.extra = &[("Retry-After", "1")];
        }
        self.respond(token, &response, ReplyStyle::CLOSING);
    }

    /// Writes what the connection owes, as far as the socket takes it.
    /// Returns false if the connection was closed (the write failed).
    pub(super) fn flush(&mut self, token: usize) -> bool {
        match self.conns.get(token) {
            None => return false,
            Some(conn) if conn.outbox.is_empty() => return true,
            Some(_) => {}
        }
        // The log first: no answer leaves before what it promises.
        if !self.may_write(token, false) {
            return true;
        }
        let now = self.now();
        let Server {
            conns,
            api,
            write_scratch,
            released,
            meter,
            ..
        } = self;
        let Some(conn) = conns.get_mut(token) else {
            return false;
        };
        if conn.outbox.is_empty() {
            return true;
        }
        let result =
            conn.outbox
                .flush(&mut conn.stream, &api.store, meter, write_scratch, released);
        self.wrote(token, result, now)
    }

    /// What a write (a flush, or an answer sent at once) means for the
    /// connection: progress restarts its stall clock, a full socket is
    /// remembered, the state follows the backlog, written bodies give back
    /// their pins. An error closes the connection, and what was owed is
    /// lost with it (a leased batch is handed out again when its lease runs
    /// out). Returns false if the connection was closed.
    pub(super) fn wrote(&mut self, token: usize, result: io::Result<Flushed>, now: Millis) -> bool {
        match result {
            Ok(flushed) => {
                let conn = &mut self.conns[token];
                if flushed.wrote > 0 {
                    conn.wrote(now);
                }
                if !flushed.done {
                    conn.socket_full();
                }
                conn.check_backlog();
                self.release_pins();
                true
            }
            Err(e) => {
                self.close(token, &format!("write failed: {e}"));
                false
            }
        }
    }

    /// After anything happened on a connection: make epoll, the wheel and the
    /// revisit list agree with its state. The one place where those follow
    /// from the state.
    pub(super) fn settle(&mut self, token: usize) {
        let now = self.now();
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        conn.linger_if_flushed(now);
        if conn.is_finished() {
            return self.close(token, "finished");
        }
        conn.outbox.pin_bodies(&mut self.api.store);
        let interest = conn.interest();
        if interest != conn.registered {
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(token), interest)
            {
                Ok(()) => conn.registered = interest,
                Err(e) => return self.close(token, &format!("reregister failed: {e}")),
            }
        }
        self.arm(token);
        let conn = &mut self.conns[token];
        if conn.needs_visit() && !conn.queued {
            conn.queued = true;
            self.revisit.push(token);
        }
    }

    /// Closes a connection now. A parked consumer is dropped first, so it
    /// consumes nothing; what was owed to it is lost with it.
    pub(super) fn close(&mut self, token: usize, why: &str) {
        let Some(mut conn) = self.conns.try_remove(token) else {
            return;
        };
        if let State::Parked { park, .. } = conn.state() {
            self.api.release(park);
        }
        if let Some((key, ..)) = conn.armed {
            self.wheel.cancel(key);
        }
        self.log_forget(token, true);
        conn.outbox.discard(&self.meter, &mut self.released);
        conn.inbox.discard(&self.meter);
        self.release_pins();
        debug!("#{token} {} closed: {why}", conn.peer());
        // Dropping the stream closes the descriptor, which also removes it
        // from the epoll set: no descriptor of it was ever duplicated.
        drop(conn);
        if matches!(self.accepting, super::Accepting::Paused { .. }) {
            self.fd_freed = true;
        }
    }

    /// Gives the store back the pins of answers written out or dropped.
    pub(super) fn release_pins(&mut self) {
        for pin in self.released.drain(..) {
            self.api.store.unpin(pin);
        }
    }

    /// Bytes that may still be taken before `--max-memory`.
    pub(super) fn memory_left(&self) -> usize {
        let held = self.api.store.memory_used() + self.meter.held();
        self.config.max_memory.saturating_sub(held)
    }
}

/// What the guard is asked about a request: its head, in the raw.
fn ask<'a>(head: &Head<'a>) -> Ask<'a> {
    Ask {
        endpoint: route(head.path),
        method: head.method,
        query: head.query,
        authorization: head.authorization(),
        origin: head.origin(),
        sec_fetch_site: head.sec_fetch_site(),
        preflight: head.access_control_request_method().is_some(),
    }
}
