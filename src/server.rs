//! The event loop: one thread, one `mio::Poll`, every socket.
//!
//! One turn of the loop (see [`Server::run`]): ask the timer wheel how long
//! we may sleep, `poll`, dispatch each readiness event by token, fire the
//! timers that are due, then finish the connections a push or a timer woke.
//! Nothing here knows JSON or HTTP semantics: requests go to
//! [`crate::api`], bytes come and go through [`crate::connection`].
//!
//! Tokens: the listener and the signal pipe have fixed tokens at the top of
//! the range; a connection's token is its index in the `conns` slab.
//!
//! mio is edge-triggered: a readiness event is reported once, when the
//! socket becomes ready. So every read drains until `WouldBlock`, and when
//! the loop stops early on purpose (to be fair to other clients, or because
//! a connection must not read while it is parked or backed up) it writes the
//! token down in `again` or `resume`: epoll will not remind it.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::api::{Api, Outcome, Request, Response, Wake};
use crate::config::{Config, Millis};
use crate::connection::{
    Connection, Fill, Framed, OUTPUT_LIMIT, ReplyStyle, State, TimerKind, next_request,
};
use crate::http::{self, HttpError};
use crate::metrics::Endpoint;
use crate::store::{ConsumerId, ParkKey, Store};
use crate::wheel::{TimerKey, TimerWheel};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);

/// Readiness events taken from the kernel per `poll`.
const EVENTS_PER_POLL: usize = 1024;
/// Reads one connection may do per wake-up before the others get a turn.
const READS_PER_WAKE: usize = 16;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// How long a closing connection waits for the client to hang up.
const LINGER: Millis = 2_000;
/// How long shutdown waits for pending writes before exiting anyway.
const DRAIN: Millis = 5_000;
/// After running out of file descriptors, try accepting again this soon
/// (or as soon as a connection closes).
const ACCEPT_RETRY: Millis = 100;
/// Sweeps of expired events are rounded up to this, so events pushed close
/// together are freed by one wake-up (SPEC.md allows 1 s).
const SWEEP_GRANULARITY: Millis = 100;
/// The `listen(2)` backlog: room for a burst of 10,000 connects. The kernel
/// caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: libc::c_int = 16_384;
/// A warning that a limit is refusing clients repeats at most this often.
const WARN_EVERY: Millis = 10_000;

/// What a timer in the wheel is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The connection's own timer; its kind is in `Connection::timer`.
    Connection(usize),
    /// Free expired events.
    Sweep,
    /// Try `accept` again after running out of file descriptors.
    AcceptRetry,
    /// Shutdown has waited long enough.
    Drain,
}

/// The server: the listener, every connection, the store and the timers.
pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: Signals,
    conns: Slab<Connection>,
    wheel: TimerWheel<Timer>,
    api: Api,
    config: Config,
    start: Instant,
    /// Where every `read` lands before it is appended to a connection.
    scratch: Box<[u8]>,
    /// The answer last built for woken consumers, and what it was built
    /// for: a batch and a framing.
    answer: Vec<u8>,
    answer_for: Option<(Rc<[u8]>, ReplyStyle)>,
    /// Parked consumers a push answered, to write before the pusher's answer.
    wakes: Vec<Wake>,
    /// Connections just answered out of `Parked`: their pipelined input is
    /// processed at the end of the turn.
    resume: Vec<usize>,
    /// Connections that stopped reading before `WouldBlock`.
    again: Vec<usize>,
    fired: Vec<Timer>,
    sweep: Option<TimerKey>,
    accept_paused: bool,
    draining: bool,
    drained: bool,
    warned: Vec<Warned>,
}

impl Server {
    /// Binds the listener and sets up the poll, the signal handlers and the
    /// store. Nothing is accepted until [`Server::run`].
    pub fn bind(config: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        // mio listens with the standard library's backlog of 128; calling
        // listen(2) again on a listening socket just raises it.
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is a valid listening socket we own.
            if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        let store = Store::new(config.event_ttl, config.max_memory);
        Ok(Server {
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            // Reserved, not touched: the kernel maps pages as slots are
            // used, so this costs RSS only for connections really open, and
            // the slab never reallocates (and copies) under a burst.
            conns: Slab::with_capacity(config.max_connections),
            wheel: TimerWheel::new(0),
            api: Api::new(store, config.poll_timeout),
            config,
            start: Instant::now(),
            scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            answer: Vec::with_capacity(256),
            answer_for: None,
            wakes: Vec::new(),
            resume: Vec::new(),
            again: Vec::new(),
            fired: Vec::new(),
            sweep: None,
            accept_paused: false,
            draining: false,
            drained: false,
            warned: Vec::new(),
        })
    }

    /// The address the listener is bound to (with the real port if the
    /// configuration asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs until SIGINT or SIGTERM, then drains and returns. Returns an
    /// error only if the loop itself fails (`epoll_wait` does).
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            let timeout = self.sleep_time();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                // A signal interrupted epoll_wait: just go round again.
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => self.shutdown(),
                    Token(token) => self.ready(token, event),
                }
            }
            self.fire_timers();
            self.finish_woken();
            if self.draining && (self.conns.is_empty() || self.drained) {
                if !self.conns.is_empty() {
                    warn!(
                        "drain time over: closing {} connections with unsent output",
                        self.conns.len()
                    );
                }
                info!("shut down");
                return Ok(());
            }
        }
    }

    /// How long `poll` may sleep: until the next timer, or not at all if
    /// connections are waiting for their turn.
    fn sleep_time(&self) -> Option<Duration> {
        if !self.again.is_empty() || !self.resume.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = self.wheel.next_deadline()?;
        // mio rounds a partial millisecond up, so we never wake early.
        Some(Duration::from_millis(next.saturating_sub(self.now())))
    }

    /// Milliseconds since start, rounded down: a timer due at `t` fires only
    /// once `t` whole milliseconds have passed.
    fn now(&self) -> Millis {
        floor_millis(self.start.elapsed())
    }

    /// The deadline `ms` from now, rounded up: never earlier than asked.
    /// (Rounding down here would let a timer fire up to 1 ms early.)
    fn deadline_in(&self, ms: Millis) -> Millis {
        ceil_millis(self.start.elapsed()).saturating_add(ms)
    }

    // ----- accepting -------------------------------------------------------

    /// Accepts every connection waiting in the backlog (edge-triggered: the
    /// listener will not be reported again until a new one arrives).
    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Interrupted by a signal, or the client gave up before we
                // took it: neither says anything about the next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) if is_out_of_descriptors(&e) => {
                    // The pending connection stays in the backlog and the
                    // listener stays readable; retrying now would spin.
                    // Stop listening until a descriptor is freed.
                    self.pause_accepting(&e);
                    return;
                }
                Err(e) => {
                    error!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        if self.conns.len() >= self.config.max_connections {
            self.api.metrics.connections_refused += 1;
            self.warn_limited(
                "max_connections",
                format_args!(
                    "refusing connections: {} open (--max-connections)",
                    self.conns.len()
                ),
            );
            return; // dropping the stream closes it
        }
        // Small answers should leave at once, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let token = entry.key();
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(token), Interest::READABLE)
        {
            warn!("cannot register connection from {peer}: {e}");
            return;
        }
        entry.insert(Connection::new(stream, peer, Interest::READABLE));
        self.api.metrics.connections_accepted += 1;
        debug!("#{token} accepted from {peer}");
        self.settle_timer(token);
    }

    fn pause_accepting(&mut self, e: &io::Error) {
        if let Some(listener) = &mut self.listener {
            let _ = self.poll.registry().deregister(listener);
        }
        self.accept_paused = true;
        let at = self.deadline_in(ACCEPT_RETRY);
        self.wheel.insert(at, Timer::AcceptRetry);
        self.warn_limited(
            "fds",
            format_args!(
                "out of file descriptors ({e}) with {} connections open: pausing accept",
                self.conns.len()
            ),
        );
    }

    fn resume_accepting(&mut self) {
        if !self.accept_paused {
            return;
        }
        self.accept_paused = false;
        if let Some(listener) = &mut self.listener
            && let Err(e) = self
                .poll
                .registry()
                .register(listener, LISTENER, Interest::READABLE)
        {
            error!("cannot listen again: {e}");
            return;
        }
        self.accept();
    }

    // ----- reading ---------------------------------------------------------

    /// A connection's socket is ready. Write first (it frees the client's
    /// receive window and our memory), then read.
    fn ready(&mut self, token: usize, event: &mio::event::Event) {
        // An event for a token with no connection is stale: the connection
        // was closed earlier in this same batch of events. (If its slot was
        // reused meanwhile, the new connection gets a spurious wake-up and
        // its read simply returns WouldBlock.)
        if !self.conns.contains(token) {
            return;
        }
        if event.is_writable() {
            self.after_io(token);
        }
        // A hang-up or error must be read to the end to be seen; plain data
        // may stop at a short read.
        let hung_up = event.is_read_closed() || event.is_error();
        if event.is_readable() || hung_up {
            self.read_ready(token, hung_up);
        }
    }

    /// Reads until the socket is drained, processing requests as they
    /// complete; stops after [`READS_PER_WAKE`] reads so one fast client
    /// cannot starve the others, and comes back next turn.
    ///
    /// "Drained" is `WouldBlock`, or a read shorter than the buffer: epoll(7)
    /// notes that for stream sockets a short read means the receive queue
    /// was emptied, and data arriving later raises a new edge. That saves one
    /// `read` syscall per request. It does not hold for a hang-up that came
    /// with the data (no new edge follows it), so `to_would_block` is set
    /// when epoll reported one, or when we come back without an event.
    fn read_ready(&mut self, token: usize, to_would_block: bool) {
        for _ in 0..READS_PER_WAKE {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if !conn.wants_input() {
                return;
            }
            let drained = match conn.fill(&mut self.scratch) {
                Fill::Data(n) => n < self.scratch.len() && !to_would_block,
                Fill::WouldBlock => return,
                Fill::Closed => return self.peer_closed(token),
                Fill::Failed(e) => return self.close(token, &format!("read failed: {e}")),
            };
            self.process_input(token);
            if drained {
                return;
            }
        }
        self.again.push(token);
    }

    /// The client shut its side. A parked consumer is dropped at once and
    /// consumes nothing; answers already queued are still written.
    fn peer_closed(&mut self, token: usize) {
        let conn = &mut self.conns[token];
        if conn.pending() == 0 || matches!(conn.state, State::Parked { .. } | State::Closing) {
            return self.close(token, "peer closed");
        }
        conn.state = State::Closing;
        self.after_io(token);
    }

    /// Answers every complete request in the input buffer, in order, until
    /// one parks, the output backs up, or the connection closes.
    fn process_input(&mut self, token: usize) {
        loop {
            let Some(conn) = self.conns.get_mut(token) else {
                return;
            };
            if conn.state != State::Reading {
                break;
            }
            if conn.pending() > OUTPUT_LIMIT {
                conn.state = State::Writing;
                break;
            }
            let input = std::mem::take(&mut conn.input);
            let framed = match next_request(&input, self.config.max_body) {
                Ok(framed) => framed,
                Err(e) => {
                    self.conns[token].input = input;
                    self.protocol_error(token, e);
                    break;
                }
            };
            let (head, body, consumed) = match framed {
                Framed::Partial {
                    expect_continue, ..
                } => {
                    let conn = &mut self.conns[token];
                    if expect_continue && !conn.continue_sent {
                        conn.queue().extend_from_slice(http::CONTINUE);
                        conn.continue_sent = true;
                    }
                    conn.input = input;
                    break;
                }
                Framed::Request {
                    head,
                    body,
                    consumed,
                } => (head, body, consumed),
            };
            let reply = ReplyStyle {
                keep_alive: head.keep_alive && !self.draining,
                minor_version: head.minor_version,
                head_only: head.method == http::Method::Head,
            };
            let request = Request {
                method: head.method,
                path: head.path,
                query: head.query,
                body: &body,
            };
            let (now, open) = (self.now(), self.conns.len());
            let outcome = self
                .api
                .handle(&request, ConsumerId(token), now, open, &mut self.wakes);
            drop(body);
            let mut input = input;
            input.drain(..consumed);
            let conn = &mut self.conns[token];
            conn.input = input;
            conn.continue_sent = false;
            // Every consumer this push answers is answered before the pusher.
            self.deliver_wakes();
            self.schedule_sweep();
            match outcome {
                Outcome::Reply(response) => self.respond(token, &response, reply),
                Outcome::Park { park, wait } => self.park(token, park, reply, wait),
            }
        }
        self.after_io(token);
    }

    /// Parks a blocking-get: the connection waits, holding no buffers, with
    /// one timer at its deadline.
    fn park(&mut self, token: usize, park: ParkKey, reply: ReplyStyle, wait: Millis) {
        let deadline = self.deadline_in(wait);
        debug!("#{token} parked until {deadline} ms");
        self.cancel_timer(token);
        let conn = &mut self.conns[token];
        conn.state = State::Parked { park, reply };
        conn.release_input();
        let key = self.wheel.insert(deadline, Timer::Connection(token));
        self.conns[token].timer = Some((TimerKind::Poll, key));
    }

    /// A request that cannot be framed: answer it, then close, since the
    /// rest of the stream cannot be trusted.
    fn protocol_error(&mut self, token: usize, e: HttpError) {
        let peer = self.conns[token].peer;
        self.warn_limited(
            "protocol",
            format_args!("#{token} {peer}: {} {}, closing", e.status, e.message),
        );
        let response = Response::error(Endpoint::Other, e.status, e.message);
        self.respond(token, &response, ReplyStyle::CLOSING);
    }

    // ----- writing ---------------------------------------------------------

    /// Queues `response` on the connection (written by the next
    /// [`Server::after_io`]) and moves it to its next state.
    fn respond(&mut self, token: usize, response: &Response, reply: ReplyStyle) {
        self.api.metrics.request(response.endpoint, response.status);
        debug!(
            "#{token} {:?} answered {}",
            response.endpoint, response.status
        );
        if response.status == 503 {
            self.warn_limited(
                "memory",
                format_args!(
                    "refusing pushes: {} bytes of events stored (--max-memory)",
                    self.api.store.live_bytes()
                ),
            );
        }
        let conn = &mut self.conns[token];
        let body = response.body.bytes();
        if reply.head_only {
            http::write_response_head(
                conn.queue(),
                response.status,
                response.content_type,
                response.extra,
                body.len(),
                reply.keep_alive,
                reply.minor_version,
            );
        } else {
            http::write_response(
                conn.queue(),
                response.status,
                response.content_type,
                response.extra,
                body,
                reply.keep_alive,
                reply.minor_version,
            );
        }
        conn.served += 1;
        conn.state = if reply.keep_alive {
            State::Reading
        } else {
            State::Closing
        };
        // A finished request restarts the idle clock.
        self.cancel_timer(token);
    }

    fn deliver_wakes(&mut self) {
        let mut wakes = std::mem::take(&mut self.wakes);
        for wake in wakes.drain(..) {
            self.deliver(wake.consumer.0, &wake.body);
        }
        self.wakes = wakes;
        self.answer_for = None;
    }

    /// Answers a parked consumer with a batch shared with other consumers.
    /// Consumers at the same cursor share one body, and nearly all of them
    /// one framing, so the whole response is built once and each of them
    /// gets it with a single `send` from the same bytes.
    fn deliver(&mut self, token: usize, body: &Rc<[u8]>) {
        // A consumer that hung up was unparked when it closed, so the store
        // never names a connection that is gone or not parked.
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let State::Parked { reply, .. } = conn.state else {
            return;
        };
        conn.state = if reply.keep_alive {
            State::Reading
        } else {
            State::Closing
        };
        let built = matches!(&self.answer_for, Some((b, r)) if Rc::ptr_eq(b, body) && *r == reply);
        if !built {
            self.answer.clear();
            http::write_response(
                &mut self.answer,
                200,
                "application/json",
                &[],
                body,
                reply.keep_alive,
                reply.minor_version,
            );
            self.answer_for = Some((Rc::clone(body), reply));
        }
        if let Err(e) = conn.send(&self.answer) {
            // The batch is lost with the connection: at-most-once.
            return self.close(token, &format!("write failed: {e}"));
        }
        conn.served += 1;
        self.api.metrics.request(Endpoint::BlockingGet, 200);
        self.cancel_timer(token);
        self.resume.push(token);
    }

    /// Connections that a push or a timer answered out of `Parked`, and
    /// connections that stopped reading early: serve them before sleeping.
    fn finish_woken(&mut self) {
        while !self.resume.is_empty() || !self.again.is_empty() {
            while let Some(token) = self.resume.pop() {
                if !self.conns.contains(token) {
                    continue;
                }
                self.process_input(token);
                // Pipelined bytes beyond what was read may wait in the
                // kernel, and epoll already told us about them once.
                if self.conns.get(token).is_some_and(|c| !c.input.is_empty()) {
                    self.again.push(token);
                }
            }
            let again = std::mem::take(&mut self.again);
            for token in again {
                if self.conns.contains(token) {
                    self.read_ready(token, true);
                }
            }
            // Reads that hit the per-wake budget again wait for the next
            // turn, after a poll that lets other clients in.
            if self.resume.is_empty() {
                break;
            }
        }
    }

    /// After anything happened on a connection: write what is queued, make
    /// the state transitions that depend on the output draining, set the
    /// connection's timer for its state and tell epoll what it now needs.
    /// This is the one place where those follow from the state.
    fn after_io(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        if let Err(e) = conn.flush() {
            return self.close(token, &format!("write failed: {e}"));
        }
        if self.draining && conn.state == State::Reading && conn.input.is_empty() {
            conn.state = State::Closing;
        }
        match conn.state {
            State::Writing if conn.pending() == 0 => {
                // The client caught up: its waiting requests come next.
                conn.state = State::Reading;
                self.resume.push(token);
                self.again.push(token);
            }
            State::Closing if conn.pending() == 0 && self.draining => {
                return self.close(token, "shutting down");
            }
            _ => {}
        }
        self.settle_timer(token);
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        let interest = conn.interest();
        if interest != conn.registered {
            match self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(token), interest)
            {
                Ok(()) => conn.registered = interest,
                Err(e) => self.close(token, &format!("reregister failed: {e}")),
            }
        }
    }

    // ----- timers ----------------------------------------------------------

    /// Gives the connection the timer its state calls for. A timer of the
    /// right kind already running is kept: a request's deadline counts from
    /// its first byte, not from its latest.
    fn settle_timer(&mut self, token: usize) {
        let conn = &self.conns[token];
        let (kind, after) = match conn.state {
            State::Parked { .. } => return, // set when it parked
            State::Reading if conn.input.is_empty() && conn.served > 0 => {
                (TimerKind::Idle, self.config.idle_timeout)
            }
            State::Reading => (TimerKind::Request, self.config.header_timeout),
            State::Writing => (TimerKind::Idle, self.config.idle_timeout),
            State::Closing if conn.pending() > 0 => (TimerKind::Idle, self.config.idle_timeout),
            State::Closing => (TimerKind::Linger, LINGER),
        };
        if conn.timer.is_some_and(|(k, _)| k == kind) {
            return;
        }
        if kind == TimerKind::Linger {
            // All is written: say so to the client, then wait for its FIN.
            conn.shutdown_write();
        }
        self.cancel_timer(token);
        let key = self
            .wheel
            .insert(self.deadline_in(after), Timer::Connection(token));
        self.conns[token].timer = Some((kind, key));
    }

    fn cancel_timer(&mut self, token: usize) {
        if let Some((_, key)) = self.conns[token].timer.take() {
            self.wheel.cancel(key);
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now();
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(now, &mut fired);
        for timer in fired.drain(..) {
            match timer {
                Timer::Connection(token) => self.connection_timer(token),
                Timer::Sweep => {
                    self.sweep = None;
                    self.api.sweep(now);
                    self.schedule_sweep();
                }
                Timer::AcceptRetry => self.resume_accepting(),
                Timer::Drain => self.drained = true,
            }
        }
        self.fired = fired;
    }

    fn connection_timer(&mut self, token: usize) {
        let Some(conn) = self.conns.get_mut(token) else {
            return;
        };
        // The key of a timer that fired is stale; forget it.
        let Some((kind, _)) = conn.timer.take() else {
            return;
        };
        match kind {
            TimerKind::Poll => {
                let State::Parked { park, reply } = conn.state else {
                    return;
                };
                let response = self.api.timed_out(park);
                self.respond(token, &response, reply);
                self.resume.push(token);
            }
            TimerKind::Request => {
                let peer = conn.peer;
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
                self.respond(token, &response, ReplyStyle::CLOSING);
                self.after_io(token);
            }
            TimerKind::Idle => self.close(token, "idle"),
            TimerKind::Linger => self.close(token, "closed after answering"),
        }
    }

    /// Keeps one sweep timer pending while any event is retained.
    fn schedule_sweep(&mut self) {
        if self.sweep.is_some() {
            return;
        }
        if let Some(at) = self.api.store.next_expiry() {
            let at = at.div_ceil(SWEEP_GRANULARITY) * SWEEP_GRANULARITY;
            self.sweep = Some(self.wheel.insert(at, Timer::Sweep));
        }
    }

    // ----- closing ---------------------------------------------------------

    /// Closes a connection now. A parked consumer is dropped first, so it
    /// consumes nothing.
    fn close(&mut self, token: usize, why: &str) {
        let Some(conn) = self.conns.try_remove(token) else {
            return;
        };
        if let State::Parked { park, .. } = conn.state {
            self.api.release(park);
        }
        if let Some((_, key)) = conn.timer {
            self.wheel.cancel(key);
        }
        debug!("#{token} {} closed: {why}", conn.peer);
        // Dropping the stream closes the descriptor, which also removes it
        // from the epoll set: no descriptor of it was ever duplicated.
        drop(conn);
        self.resume_accepting();
    }

    /// SIGINT or SIGTERM: stop accepting, answer every parked consumer `[]`
    /// without consuming anything, let pending writes finish, then exit.
    fn shutdown(&mut self) {
        let mut asked = false;
        for signal in self.signals.pending() {
            info!("received signal {signal}: draining and shutting down");
            asked = true;
        }
        if !asked || self.draining {
            return;
        }
        self.draining = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let at = self.deadline_in(DRAIN);
        self.wheel.insert(at, Timer::Drain);
        let tokens: Vec<usize> = self.conns.iter().map(|(t, _)| t).collect();
        for token in tokens {
            if let State::Parked { park, reply } = self.conns[token].state {
                self.api.release(park);
                let reply = ReplyStyle {
                    keep_alive: false,
                    ..reply
                };
                self.respond(token, &Response::empty_batch(), reply);
            }
            self.after_io(token);
        }
    }

    /// Logs a warning about a limit refusing clients, at most once per
    /// [`WARN_EVERY`] for each kind, saying how many were held back: a flood
    /// of bad clients must not become a flood of log lines.
    fn warn_limited(&mut self, what: &'static str, message: std::fmt::Arguments<'_>) {
        let now = self.now();
        let entry = match self.warned.iter_mut().position(|w| w.what == what) {
            Some(i) => &mut self.warned[i],
            None => {
                self.warned.push(Warned {
                    what,
                    last: None,
                    held_back: 0,
                });
                let last = self.warned.len() - 1;
                &mut self.warned[last]
            }
        };
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

/// Whole milliseconds in `d`, rounded down: the wheel's notion of "now".
fn floor_millis(d: Duration) -> Millis {
    d.as_millis() as Millis
}

/// Whole milliseconds in `d`, rounded up: where a deadline starts counting.
/// With `now` rounded down and deadlines from a rounded-up start, a timer
/// fires only once its full duration has really passed.
fn ceil_millis(d: Duration) -> Millis {
    floor_millis(d) + Millis::from(!d.subsec_nanos().is_multiple_of(1_000_000))
}

/// One kind of rate-limited warning: when it was last logged and how many
/// were held back since.
struct Warned {
    what: &'static str,
    last: Option<Millis>,
    held_back: u64,
}

/// `EMFILE` (this process) or `ENFILE` (the whole system) and their kin:
/// accept cannot succeed until a descriptor is freed.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
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
}
