//! One client connection: its socket, its buffers, and the state it is in.
//!
//! A connection is a small state machine ([`State`]). Every transition is a
//! method here, and two pure functions derive from the state alone what the
//! connection needs from the outside world: [`Connection::interest`] (what
//! to ask epoll for) and [`Connection::deadline`] (which timer, when). The
//! event loop never sets either by hand: after touching a connection it
//! asks for both and makes the kernel and the wheel agree, so a state can
//! never be left with the wrong timer or a stale interest.
//!
//! ```text
//!            request answered (keep-alive)
//!           +-------------+
//!           v             |
//!  accept -> Reading -----+--- blocking-get waits ---> Parked
//!           |  ^  \                                      |
//!           |  |   `-- answers back up --> Writing       | answered
//!           |  |            |  (client reads) |          | (push or timeout)
//!           |  +------------+-----------------+----------+
//!           |
//!           +-- last answer queued, or the peer sent FIN --> Closing
//!                                    all written --> Lingering --> closed
//! ```
//!
//! Memory is the point of the shape: tens of thousands of connections sit
//! parked at once, so a parked connection owns no buffer at all.

mod io;

use std::net::Shutdown;

use mio::Interest;
use mio::net::TcpStream;

use crate::config::Millis;
use crate::guard::cors::CorsReply;
use crate::inbox::Inbox;
use crate::outbox::Outbox;
use crate::store::ParkKey;
use crate::wheel::TimerKey;

pub use io::Fill;

/// Unsent output above which a connection stops serving its pipelined
/// requests until the client reads: 64 KiB.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// How long a closing connection waits for the client's FIN after the last
/// answer is written.
pub const LINGER: Millis = 2_000;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Receiving a request, or waiting for the next one; earlier answers
    /// may still be going out.
    Reading,
    /// A blocking-get waits for an event. Bytes that arrive meanwhile are
    /// pipelined requests: kept, not parsed, until it is answered. Reading
    /// continues so that a hang-up is seen at once.
    Parked {
        /// Its place in the group's queue.
        park: ParkKey,
        /// How to frame the eventual answer.
        reply: ReplyStyle,
        /// When it is answered `[]`.
        deadline: Millis,
    },
    /// More than [`OUTPUT_LIMIT`] bytes of answers are unsent: the client is
    /// not reading, so its further requests wait until it does.
    Writing,
    /// No further request will be served: the last answer asked to close,
    /// or the peer sent FIN. What is owed is still written in full.
    Closing {
        /// The peer has sent FIN: once the answers are out, close at once.
        peer_done: bool,
    },
    /// All is written and the write side is shut; input is discarded until
    /// the client closes or [`LINGER`] passes (closing with unread input
    /// would reset the connection and could destroy the answer).
    Lingering,
}

/// How a response must be framed for the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyStyle {
    /// Keep the connection open after the answer.
    pub keep_alive: bool,
    /// HTTP/1.`minor_version` of the request.
    pub minor_version: u8,
    /// The request was `HEAD`: the answer has a head and no body (RFC 9110
    /// section 9.3.2), or the client would read the body as the next answer.
    pub head_only: bool,
    /// The CORS headers its answer carries.
    pub cors: CorsReply,
}

impl ReplyStyle {
    /// The style for a refusal that closes the connection.
    pub const CLOSING: ReplyStyle = ReplyStyle {
        keep_alive: false,
        minor_version: 1,
        head_only: false,
        cors: CorsReply::None,
    };
}

/// What a connection's timer is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// A request has begun (or the connection is new) and must arrive
    /// within `--header-timeout`.
    Request,
    /// Nothing is happening between requests: close after `--idle-timeout`.
    Idle,
    /// Answers are owed and the client has taken no byte of them for
    /// `--idle-timeout`: it is gone or stuck.
    Stalled,
    /// A parked blocking-get's deadline.
    Poll,
    /// A lingering connection waits this long for the client to hang up.
    Linger,
}

/// The durations the timers are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `--header-timeout`.
    pub request: Millis,
    /// `--idle-timeout`.
    pub idle: Millis,
}

/// One client connection.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    state: State,
    /// Bytes received and not yet consumed as requests.
    pub inbox: Inbox,
    /// Answers not yet written.
    pub outbox: Outbox,
    /// Epoll said readable and no read has seen the socket empty since.
    /// Edge-triggered epoll will not say it again, so while this is set and
    /// the state wants input, the connection must be visited again.
    pub readable: bool,
    /// Epoll reported a hang-up: a short read no longer proves the socket
    /// empty (no further edge follows a FIN).
    pub hung_up: bool,
    /// The interest epoll has for this socket now.
    pub registered: Interest,
    /// The wheel entry armed for this connection, when it fires, and the
    /// wait it was armed for.
    pub armed: Option<(TimerKey, Millis, TimerKind)>,
    /// When the current request's first byte came (or the connection was
    /// accepted): the header timeout counts from here.
    request_since: Millis,
    /// When the connection last made progress (a request answered, bytes
    /// written): the idle and stall timeouts count from here.
    active_since: Millis,
    /// A request has been answered: between requests the idle timer runs,
    /// not the header timer.
    served: bool,
    /// The connection is on the loop's list of connections to visit.
    pub queued: bool,
    /// Bytes the kernel still held unacknowledged for the client when the
    /// socket was last found full: the kernel's buffers hide a client's
    /// reads from us, this shows them.
    kernel_queue: Option<u32>,
}

impl Connection {
    /// A connection accepted at `now`, registered for `registered`.
    pub fn new(stream: TcpStream, registered: Interest, now: Millis) -> Connection {
        Connection {
            stream,
            state: State::Reading,
            inbox: Inbox::default(),
            outbox: Outbox::default(),
            readable: false,
            hung_up: false,
            registered,
            armed: None,
            request_since: now,
            active_since: now,
            served: false,
            queued: false,
            kernel_queue: None,
        }
    }

    /// Where it is in its life.
    pub fn state(&self) -> State {
        self.state
    }

    // ----- what the state needs --------------------------------------------

    /// What to ask epoll for, from the state alone: readable while a request
    /// or a hang-up can arrive, writable only while output is stuck.
    pub fn interest(&self) -> Interest {
        let read = match self.state {
            State::Reading | State::Parked { .. } | State::Lingering => true,
            State::Closing { peer_done } => !peer_done,
            State::Writing => false,
        };
        match (read, self.outbox.is_empty()) {
            (true, true) => Interest::READABLE,
            (true, false) => Interest::READABLE | Interest::WRITABLE,
            // A connection with nothing to read and nothing to write is
            // closed before it is registered again; WRITABLE is harmless.
            (false, _) => Interest::WRITABLE,
        }
    }

    /// The timer this state needs: what it waits for, and when that is
    /// over. `None` only for a connection about to be closed.
    pub fn deadline(&self, t: &Timeouts) -> Option<(TimerKind, Millis)> {
        Some(match self.state {
            State::Parked { deadline, .. } => (TimerKind::Poll, deadline),
            State::Reading if self.inbox.in_request() || !self.served => {
                (TimerKind::Request, self.request_since + t.request)
            }
            State::Reading if !self.outbox.is_empty() => {
                (TimerKind::Stalled, self.active_since + t.idle)
            }
            State::Reading => (TimerKind::Idle, self.active_since + t.idle),
            State::Writing | State::Closing { .. } => {
                (TimerKind::Stalled, self.active_since + t.idle)
            }
            State::Lingering => (TimerKind::Linger, self.active_since + LINGER),
        })
    }

    /// Whether reading from the socket is useful now. A parked connection
    /// reads (to see a hang-up) until its window is full; a writing one not
    /// at all; a closing one reads only to discard.
    pub fn wants_input(&self) -> bool {
        match self.state {
            State::Reading | State::Parked { .. } => self.inbox.room() > 0,
            State::Closing { peer_done } => !peer_done,
            State::Lingering => true,
            State::Writing => false,
        }
    }

    /// Whether the loop must come back to this connection without waiting
    /// for epoll: the socket may hold bytes the state wants (epoll will not
    /// report them again), or requests sit in the window unparsed (they
    /// waited behind a parked get or a full outbox). This is the one rule
    /// for "come back later".
    pub fn needs_visit(&self) -> bool {
        (self.readable && self.wants_input())
            || (self.state == State::Reading && self.inbox.has_unexamined())
    }

    /// Whether the connection has nothing more to do and can be closed now:
    /// closing, the peer finished, every answer written.
    pub fn is_finished(&self) -> bool {
        self.state == (State::Closing { peer_done: true }) && self.outbox.is_empty()
    }

    /// Whether requests in the window may be served now.
    pub fn serves_requests(&self) -> bool {
        self.state == State::Reading && self.outbox.pending() <= OUTPUT_LIMIT
    }

    // ----- transitions -----------------------------------------------------

    /// A request was answered at `now`; the connection stays open for the
    /// next one or closes after this answer.
    pub fn answered(&mut self, keep_alive: bool, now: Millis) {
        self.served = true;
        self.active_since = now;
        self.request_since = now;
        self.state = if keep_alive {
            State::Reading
        } else {
            State::Closing { peer_done: false }
        };
    }

    /// A blocking-get waits until `deadline`.
    pub fn park(&mut self, park: ParkKey, reply: ReplyStyle, deadline: Millis) {
        debug_assert_eq!(self.state, State::Reading);
        self.state = State::Parked {
            park,
            reply,
            deadline,
        };
        self.inbox.release();
        self.outbox.release();
    }

    /// Answers backed up past [`OUTPUT_LIMIT`], or drained below it again.
    pub fn check_backlog(&mut self) {
        match self.state {
            State::Reading if self.outbox.pending() > OUTPUT_LIMIT => self.state = State::Writing,
            State::Writing if self.outbox.pending() <= OUTPUT_LIMIT => {
                self.state = State::Reading;
                // Requests that waited in the window come next.
                self.inbox.mark_unexamined();
            }
            _ => {}
        }
    }

    /// Bytes went out at `now`: the client is reading.
    pub fn wrote(&mut self, now: Millis) {
        self.active_since = now;
    }

    /// The first byte of a new request arrived at `now`.
    pub fn request_began(&mut self, now: Millis) {
        self.request_since = now;
    }

    /// The peer sent FIN. Returns the parked consumer to drop, if it was
    /// parked: a FIN while parked means the consumer is gone and is owed
    /// nothing (SPEC.md). Otherwise the requests already received are still
    /// served and every answer owed is written before the close.
    pub fn peer_finished(&mut self) -> Option<ParkKey> {
        match self.state {
            State::Parked { park, .. } => {
                self.state = State::Closing { peer_done: true };
                Some(park)
            }
            State::Reading | State::Writing | State::Closing { .. } | State::Lingering => {
                if self.state != State::Reading || !self.inbox.has_unexamined() {
                    self.state = State::Closing { peer_done: true };
                } else {
                    self.inbox.finish_input();
                }
                None
            }
        }
    }

    /// A parked consumer whose window is full cannot read its way to the FIN
    /// or reset behind its pipelined bytes, and epoll reports a hang-up only
    /// once (perhaps with the very bytes that filled the window): if one was
    /// reported, the consumer is gone. Returns it, to be dropped.
    pub fn gone_while_parked(&mut self) -> Option<ParkKey> {
        if self.hung_up && matches!(self.state, State::Parked { .. }) && !self.wants_input() {
            return self.peer_finished();
        }
        None
    }

    /// After the requests in the window were served: a connection whose
    /// input is finished serves no more.
    pub fn input_exhausted(&mut self) {
        if self.state == State::Reading && self.inbox.input_finished() {
            self.state = State::Closing { peer_done: true };
        }
    }

    /// The server is draining: a connection between requests closes after
    /// what it is owed.
    pub fn drain(&mut self) {
        if self.state == State::Reading && !self.inbox.in_request() {
            self.state = State::Closing { peer_done: false };
        }
    }

    /// Everything owed is written: a closing connection shuts its write side
    /// (the client sees the end of the stream) and lingers for the client's
    /// FIN. Returns true if it moved.
    pub fn linger_if_flushed(&mut self, now: Millis) -> bool {
        if self.state == (State::Closing { peer_done: false }) && self.outbox.is_empty() {
            // ENOTCONN here means the peer already left: nothing to do.
            let _ = self.stream.shutdown(Shutdown::Write);
            self.state = State::Lingering;
            self.active_since = now;
            return true;
        }
        false
    }

    /// The parked consumer was answered (by a push or its timeout) at `now`.
    pub fn unparked(&mut self, now: Millis) -> Option<ReplyStyle> {
        let State::Parked { reply, .. } = self.state else {
            return None;
        };
        self.state = State::Reading;
        self.inbox.mark_unexamined();
        self.active_since = now;
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::Meter;

    const T: Timeouts = Timeouts {
        request: 10_000,
        idle: 60_000,
    };

    fn conn() -> Connection {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        std::mem::forget(client);
        let stream = TcpStream::from_std(server);
        Connection::new(stream, Interest::READABLE, 1_000)
    }

    fn park_key() -> ParkKey {
        let mut store = crate::store::Store::new(1000, usize::MAX);
        store.park("k", "g", crate::store::ConsumerId(0))
    }

    #[test]
    fn a_new_connection_must_send_a_request_within_the_header_timeout() {
        let c = conn();
        assert_eq!(c.state(), State::Reading);
        assert_eq!(c.deadline(&T), Some((TimerKind::Request, 11_000)));
        assert_eq!(c.interest(), Interest::READABLE);
        assert!(c.wants_input());
    }

    #[test]
    fn between_requests_the_idle_timer_runs_from_the_last_answer() {
        let mut c = conn();
        c.answered(true, 5_000);
        assert_eq!(c.deadline(&T), Some((TimerKind::Idle, 65_000)));
        c.inbox.append(b"GET");
        c.request_began(7_000);
        assert_eq!(c.deadline(&T), Some((TimerKind::Request, 17_000)));
    }

    #[test]
    fn a_parked_connection_waits_for_its_deadline_and_keeps_reading() {
        let mut c = conn();
        let reply = ReplyStyle::CLOSING;
        c.park(park_key(), reply, 31_000);
        assert_eq!(c.deadline(&T), Some((TimerKind::Poll, 31_000)));
        assert_eq!(c.interest(), Interest::READABLE);
        assert!(c.wants_input());
        assert_eq!(c.unparked(9_000), Some(reply));
        assert_eq!(c.state(), State::Reading);
    }

    #[test]
    fn a_fin_while_parked_gives_the_consumer_back() {
        let mut c = conn();
        let key = park_key();
        c.park(key, ReplyStyle::CLOSING, 31_000);
        assert_eq!(c.peer_finished(), Some(key));
        assert!(c.is_finished(), "nothing is owed to a parked consumer");
    }

    #[test]
    fn a_hang_up_reported_with_the_bytes_that_filled_the_window_drops_the_consumer() {
        let mut c = conn();
        let key = park_key();
        c.park(key, ReplyStyle::CLOSING, 31_000);
        c.hung_up = true;
        assert_eq!(
            c.gone_while_parked(),
            None,
            "room left: reading finds the FIN"
        );
        c.inbox.append(&vec![b'x'; crate::inbox::WINDOW]);
        assert!(!c.wants_input());
        assert_eq!(c.gone_while_parked(), Some(key));
        assert!(c.is_finished());
    }

    #[test]
    fn a_fin_with_requests_waiting_serves_them_first() {
        let mut c = conn();
        c.inbox.append(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(c.peer_finished(), None);
        assert_eq!(c.state(), State::Reading, "the request is still served");
        // Once the loop has served what was there:
        c.input_exhausted();
        assert_eq!(c.state(), State::Closing { peer_done: true });
    }

    #[test]
    fn writing_waits_on_the_stall_timer_and_wants_no_input() {
        let mut c = conn();
        c.answered(true, 2_000);
        c.outbox
            .push_bytes(&Meter::default(), |b| b.resize(OUTPUT_LIMIT + 1, b'x'));
        c.check_backlog();
        assert_eq!(c.state(), State::Writing);
        assert_eq!(c.interest(), Interest::WRITABLE);
        assert!(!c.wants_input());
        assert_eq!(c.deadline(&T), Some((TimerKind::Stalled, 62_000)));
        c.wrote(30_000);
        assert_eq!(
            c.deadline(&T),
            Some((TimerKind::Stalled, 90_000)),
            "a reader that takes bytes is never idle"
        );
    }

    #[test]
    fn closing_flushes_then_lingers() {
        let mut c = conn();
        c.answered(false, 3_000);
        assert_eq!(c.state(), State::Closing { peer_done: false });
        assert_eq!(c.deadline(&T), Some((TimerKind::Stalled, 63_000)));
        assert!(c.linger_if_flushed(4_000));
        assert_eq!(c.state(), State::Lingering);
        assert_eq!(c.deadline(&T), Some((TimerKind::Linger, 4_000 + LINGER)));
        assert_eq!(c.interest(), Interest::READABLE);
    }

    #[test]
    fn a_visit_is_needed_only_while_readable_input_is_wanted_or_requests_wait() {
        let mut c = conn();
        assert!(!c.needs_visit());
        c.readable = true;
        assert!(c.needs_visit());
        c.outbox
            .push_bytes(&Meter::default(), |b| b.resize(OUTPUT_LIMIT + 1, b'x'));
        c.check_backlog();
        assert!(!c.needs_visit(), "a writing connection does not read");
    }
}
