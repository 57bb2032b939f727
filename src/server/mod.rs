//! The event loop: one thread, one `mio::Poll`, every socket.
//!
//! One turn of the loop ([`Server::run`]): ask the timer wheel how long we
//! may sleep, `poll`, serve each connection epoll reports, fire the timers
//! that are due, then visit the connections that asked to be come back to.
//! Nothing here knows JSON: requests go to the API, bytes come and go
//! through the connection's inbox and outbox.
//!
//! The loop is split by concern:
//!
//! - `clock.rs`: the loop's clock in whole milliseconds, and the `Date`
//!   field;
//! - `accept.rs`: taking new connections, the limit on them, and the
//!   back-off when file descriptors run out;
//! - `serve.rs`: reading, cutting requests, answering or parking them, and
//!   settling a connection's interest and timer afterwards;
//! - `respond.rs`: rendering an answer, and queueing or sending it;
//! - `fanout.rs`: answering parked consumers in the turn of the push;
//! - `timers.rs`: what each timer does when it fires;
//! - `durable.rs`: the data directory: replay on start, the log committed
//!   before the answers it backs, segments retired;
//! - `shutdown.rs`: SIGINT/SIGTERM and the drain;
//! - `access_log.rs`: feeding the access log and writing it once per turn;
//! - `warn.rs`: warnings that a flood of clients cannot turn into a flood
//!   of log lines.
//!
//! Tokens: the listener and the signal pipe have fixed tokens at the top of
//! the range; a connection's token is its index in the `conns` slab.
//!
//! mio is edge-triggered: readiness is reported once, when it begins. So a
//! connection's `readable` flag remembers that epoll said so until a read
//! finds the socket empty, and a connection that stops early (its read
//! budget spent, or its state not wanting input) is put on the `revisit`
//! list by one rule, `Connection::needs_visit`:
//! epoll will not remind us.

mod accept;
mod access_log;
mod clock;
mod durable;
mod fanout;
mod respond;
mod serve;
mod shutdown;
mod timers;
mod warn;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::info;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::access::AccessLog;
use crate::api::{Api, Wake};
use crate::config::{Config, Millis};
use crate::connection::{Connection, Timeouts};
use crate::guard::Guard;
use crate::memory::Meter;
use crate::store::Pin;
use crate::wheel::{TimerKey, TimerWheel};
use clock::{HttpDate, ceil_millis, floor_millis};

const LISTENER: Token = Token(usize::MAX);
const SIGNALS: Token = Token(usize::MAX - 1);

/// Readiness events taken from the kernel per `poll`.
const EVENTS_PER_POLL: usize = 1024;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// The `listen(2)` backlog: room for a burst of 10,000 connects. The kernel
/// caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: libc::c_int = 16_384;

/// What a timer in the wheel is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Look at connection `token`: its [`Connection::deadline`] says what
    /// for. A connection's entry is cancelled when it is replaced or the
    /// connection closes, so one that fires is the connection's own.
    Connection(usize),
    /// Lease `id` may have run out.
    Lease(u64),
    /// Free expired events.
    Sweep,
    /// Try `accept` again after running out of file descriptors.
    AcceptRetry,
    /// Delete log segments that have become useless.
    Retire,
    /// Shutdown has waited long enough.
    Drain,
}

/// Whether new connections are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepting {
    /// The listener is registered.
    Open,
    /// Out of file descriptors: the listener is deregistered until a
    /// connection closes or the one retry timer fires.
    Paused { retry: TimerKey },
    /// Shutting down: the listener is gone.
    Stopped,
}

/// The server: the listener, every connection, the store and the timers.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    local_addr: SocketAddr,
    signals: Signals,
    conns: Slab<Connection>,
    wheel: TimerWheel<Timer>,
    api: Api,
    config: Config,
    timeouts: Timeouts,
    start: Instant,
    /// What the clock read at `start`: 0 without a data directory, the
    /// Unix time in ms with one, so that times in the log mean the same
    /// after a restart (`journal/record.rs`).
    epoch: Millis,
    /// What replay found on start, for the startup line.
    replayed: Option<crate::journal::Replayed>,
    /// Connections whose answers wait for this turn's `fdatasync`
    /// (`--fsync always`): flushed by [`Server::commit_turn`].
    held: Vec<usize>,
    retire: Option<TimerKey>,
    /// Bytes held for clients outside the store: unwritten heads and small
    /// bodies, request bodies arriving. Counted against `--max-memory`.
    meter: Meter,
    /// Where every `read` lands before it is appended to a connection.
    read_scratch: Box<[u8]>,
    /// Where small pieces of an answer are gathered for one `writev`.
    write_scratch: Vec<u8>,
    /// Where a woken consumer's answer head is rendered before it is sent.
    head_scratch: Vec<u8>,
    /// Pins of answers written out, to give back to the store.
    released: Vec<Pin>,
    /// Parked consumers a push or a nack answered, to write before the
    /// answer of the request that woke them.
    wakes: Vec<Wake>,
    /// Connections to come back to this turn, without waiting for epoll.
    revisit: Vec<usize>,
    fired: Vec<Timer>,
    sweep: Option<TimerKey>,
    /// This turn's reading of the clock (see [`Server::now`]).
    clock: Millis,
    accepting: Accepting,
    /// A connection closed while accepting was paused: try again this turn.
    fd_freed: bool,
    draining: bool,
    drained: bool,
    date: HttpDate,
    warned: warn::Warnings,
    /// Who may do what: asked about every request as its head completes.
    guard: Guard,
    /// The access log's lines and the requests it waits to see answered;
    /// `None` (and no cost anywhere) without `--access-log`.
    access: Option<Box<AccessLog>>,
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// A setting cannot be used (an unreadable or malformed key file, an
    /// origin that is not one): the process exits with code 2.
    Settings(String),
    /// The listener, the poll or the signal handlers could not be set up.
    Io(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Settings(message) => f.write_str(message),
            StartError::Io(e) => e.fmt(f),
        }
    }
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> StartError {
        StartError::Io(e)
    }
}

impl Server {
    /// Binds the listener and sets up the poll, the signal handlers and the
    /// store, after reading the key files the settings name. With a data
    /// directory, it is locked and replayed first. Nothing is accepted until
    /// [`Server::run`].
    pub fn bind(config: Config) -> Result<Server, StartError> {
        let guard = Guard::from_config(&config).map_err(StartError::Settings)?;
        let (api, epoch, replayed) = durable::open_store(&config).map_err(StartError::Settings)?;
        Ok(Self::listen(config, api, epoch, replayed, guard)?)
    }

    fn listen(
        config: Config,
        api: Api,
        epoch: Millis,
        replayed: Option<crate::journal::Replayed>,
        guard: Guard,
    ) -> io::Result<Server> {
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
        let access = config.access_log.then(Box::default);
        let mut server = Server {
            poll,
            listener,
            local_addr,
            signals,
            // Grown as connections come, never reserved for the limit: a
            // host with a huge fd limit must not pay for it up front.
            conns: Slab::new(),
            wheel: TimerWheel::new(epoch),
            api,
            timeouts: Timeouts {
                request: config.header_timeout,
                idle: config.idle_timeout,
            },
            config,
            start: Instant::now(),
            epoch,
            replayed,
            held: Vec::new(),
            retire: None,
            meter: Meter::default(),
            read_scratch: vec![0; READ_CHUNK].into_boxed_slice(),
            write_scratch: Vec::with_capacity(crate::render::WINDOW),
            head_scratch: Vec::with_capacity(512),
            released: Vec::new(),
            wakes: Vec::new(),
            revisit: Vec::new(),
            fired: Vec::new(),
            sweep: None,
            clock: epoch,
            accepting: Accepting::Open,
            fd_freed: false,
            draining: false,
            drained: false,
            date: HttpDate::default(),
            warned: warn::Warnings::default(),
            guard,
            access,
        };
        server.resume();
        Ok(server)
    }

    /// The settings of who may do what, as the guard read them, for the
    /// startup line.
    pub fn describe_guard(&self) -> String {
        self.guard.describe()
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
            let polled = self.poll.poll(&mut events, timeout);
            self.tick();
            if let Err(e) = polled {
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
            self.visit_again();
            self.commit_turn();
            self.accept_if_freed();
            self.write_access_log();
            if self.draining && (self.conns.is_empty() || self.drained) {
                self.finish_drain();
                self.close_journal();
                info!("shut down");
                return Ok(());
            }
        }
    }

    /// How long `poll` may sleep: until the next timer, or not at all if
    /// connections are waiting for their turn.
    fn sleep_time(&self) -> Option<Duration> {
        if !self.revisit.is_empty() || !self.held.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = self.wheel.next_deadline()?;
        // mio rounds a partial millisecond up, so we never wake early.
        Some(Duration::from_millis(next.saturating_sub(self.exact_now())))
    }

    /// Connections that stopped early last turn, served once each before
    /// the next poll (a connection that stops early again waits for the
    /// turn after, so the others get theirs).
    fn visit_again(&mut self) {
        let tokens = std::mem::take(&mut self.revisit);
        for &token in &tokens {
            if let Some(conn) = self.conns.get_mut(token) {
                conn.queued = false;
                self.serve(token);
            }
        }
        let mut tokens = tokens;
        tokens.clear();
        if self.revisit.is_empty() {
            self.revisit = tokens;
        }
    }

    /// Milliseconds since start, rounded down: a timer due at `t` fires only
    /// once `t` whole milliseconds have passed. Read once per turn of the
    /// loop (`tick`): the connections' clocks (idle, stall, header timeouts)
    /// need no finer grain, and a fresh reading per use cost more than the
    /// parsing of a request. What must be exact reads the clock itself: a
    /// parked consumer's deadline ([`Server::deadline_in`]) and the `now`
    /// the store judges expiry by ([`Server::exact_now`]).
    fn now(&self) -> Millis {
        self.clock
    }

    /// The clock, read now, for what must not be stale by a turn: no
    /// expired event may ever be handed out.
    fn exact_now(&self) -> Millis {
        self.epoch + floor_millis(self.start.elapsed())
    }

    /// Reads the clock for this turn.
    fn tick(&mut self) {
        self.clock = self.exact_now();
        self.date.refresh();
    }

    /// The deadline `ms` from now, rounded up: never earlier than asked.
    /// (Rounding down here would let a timer fire up to 1 ms early.)
    fn deadline_in(&self, ms: Millis) -> Millis {
        (self.epoch + ceil_millis(self.start.elapsed())).saturating_add(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a parked connection costs in user space, beside the kernel's
    /// socket: its slab entry, its wheel entry. Printed, for the README.
    #[test]
    fn what_a_connection_costs() {
        let entry = std::mem::size_of::<Connection>();
        let timer = std::mem::size_of::<Timer>();
        println!("connection {entry} B, timer value {timer} B");
        assert!(entry <= 192, "a connection grew to {entry} bytes");
    }
}
