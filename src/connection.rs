//! One client connection: its socket, its buffers, and the state it is in.
//!
//! A connection is a small state machine ([`State`]). The event loop owns
//! the transitions (they need the store and the timer wheel); this module
//! owns what a state means for the socket: which readiness to ask epoll for
//! ([`Connection::interest`]), how bytes come in ([`Connection::fill`]) and
//! go out ([`Connection::flush`], [`Connection::send`]), and how requests are
//! cut out of the byte stream ([`next_request`]).
//!
//! Memory is the point of the shape. Tens of thousands of connections sit
//! parked at once, so a parked connection owns no buffers at all: its input
//! buffer is released once its request is parsed (unless pipelined bytes
//! wait behind it) and its output buffer is empty. The answer that unparks
//! it is written straight from a response shared by every consumer that gets
//! the same batch; only a remainder the socket would not take is copied into
//! the connection.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};

use mio::Interest;
use mio::net::TcpStream;

use crate::http::{self, Framing, Head, HttpError, Status};
use crate::store::ParkKey;
use crate::wheel::TimerKey;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for a request or the rest of one; earlier answers may still
    /// be draining.
    Reading,
    /// A blocking-get waits for an event. Bytes that arrive meanwhile are
    /// pipelined requests: they are kept, not parsed, until it is answered.
    /// Readable readiness stays on so a hang-up is seen at once.
    Parked {
        /// Its place in the group's queue.
        park: ParkKey,
        /// How to frame the eventual answer.
        reply: ReplyStyle,
    },
    /// More than [`OUTPUT_LIMIT`] bytes of answers are unsent: the client is
    /// not reading, so its further requests wait until it does.
    Writing,
    /// The last answer is queued. Once it is written, the write side is shut
    /// and input is discarded until the client closes or the linger timer
    /// fires (closing with unread input would reset the connection and could
    /// destroy the answer before the client reads it).
    Closing,
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
}

impl ReplyStyle {
    /// The style for a refusal that closes the connection.
    pub const CLOSING: ReplyStyle = ReplyStyle {
        keep_alive: false,
        minor_version: 1,
        head_only: false,
    };
}

/// Why a connection's timer was set: each state waits for one thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// A request has begun (or the connection is new) and must arrive
    /// within `--header-timeout`.
    Request,
    /// Nothing is happening between requests; close after `--idle-timeout`.
    Idle,
    /// A parked blocking-get's deadline.
    Poll,
    /// A closing connection waits this long for the client to hang up.
    Linger,
}

/// Unsent output above which a connection stops reading requests.
pub const OUTPUT_LIMIT: usize = 1 << 20;

/// Input kept for a parked connection before it stops reading: pipelined
/// requests beyond this wait in the kernel's buffer.
pub const PARKED_INPUT_LIMIT: usize = 64 * 1024;

/// The outcome of one `read`.
#[derive(Debug)]
pub enum Fill {
    /// This many bytes were appended to the input buffer.
    Data(usize),
    /// Nothing to read until epoll says so again.
    WouldBlock,
    /// The peer closed its side (`read` returned 0).
    Closed,
    /// The connection is broken (e.g. reset by peer).
    Failed(io::Error),
}

/// One client connection.
#[derive(Debug)]
pub struct Connection {
    /// The socket.
    pub stream: TcpStream,
    /// The peer's address, for logs.
    pub peer: SocketAddr,
    /// Where it is in its life.
    pub state: State,
    /// Bytes received and not yet consumed as requests.
    pub input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
    /// The one timer this connection has running, if any.
    pub timer: Option<(TimerKind, TimerKey)>,
    /// The interest epoll currently has for this socket.
    pub registered: Interest,
    /// `100 Continue` was sent for the request now arriving.
    pub continue_sent: bool,
    /// Requests answered so far: a connection that has sent none is held to
    /// the header timeout, one between requests to the idle timeout.
    pub served: u64,
}

impl Connection {
    /// A new connection, registered for `registered`.
    pub fn new(stream: TcpStream, peer: SocketAddr, registered: Interest) -> Connection {
        Connection {
            stream,
            peer,
            state: State::Reading,
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            timer: None,
            registered,
            continue_sent: false,
            served: 0,
        }
    }

    /// What to ask epoll for, derived from the state alone: readable while a
    /// request or a hang-up can arrive, writable only while output is stuck.
    pub fn interest(&self) -> Interest {
        let reading = match self.state {
            State::Reading | State::Parked { .. } | State::Closing => true,
            State::Writing => false,
        };
        match (reading, self.pending() > 0) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, _) => Interest::WRITABLE,
        }
    }

    /// Whether this connection should read more now. A parked connection
    /// reads (to see a hang-up) up to [`PARKED_INPUT_LIMIT`]; a writing one
    /// does not read at all.
    pub fn wants_input(&self) -> bool {
        match self.state {
            State::Reading | State::Closing => true,
            State::Parked { .. } => self.input.len() < PARKED_INPUT_LIMIT,
            State::Writing => false,
        }
    }

    /// Unsent output bytes.
    pub fn pending(&self) -> usize {
        self.output.len() - self.written
    }

    /// Reads once into `scratch` and appends what came to the input buffer
    /// (a closing connection throws it away).
    pub fn fill(&mut self, scratch: &mut [u8]) -> Fill {
        loop {
            return match self.stream.read(scratch) {
                // The peer shut its write side: no more requests will come.
                Ok(0) => Fill::Closed,
                Ok(n) => {
                    if self.state != State::Closing {
                        self.input.extend_from_slice(&scratch[..n]);
                    }
                    Fill::Data(n)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Fill::WouldBlock,
                // A signal arrived during the syscall: simply try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Fill::Failed(e),
            };
        }
    }

    /// Queues bytes behind anything already unsent. Call [`Connection::flush`]
    /// to write them.
    pub fn queue(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Writes `bytes` now, if nothing else is waiting to go out, and copies
    /// whatever the socket does not take into the output buffer. The bytes
    /// may be shared with other connections: they are copied only if the
    /// socket is full.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut sent = 0;
        if self.pending() == 0 {
            sent = loop {
                match self.stream.write(bytes) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
        }
        self.output.extend_from_slice(&bytes[sent..]);
        Ok(())
    }

    /// Writes queued output until it is all gone or the socket is full
    /// (`WouldBlock`: epoll will say when it drains). Releases the buffer's
    /// memory once everything is written, so idle and parked connections
    /// hold none.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.written < self.output.len() {
            match self.stream.write(&self.output[self.written..]) {
                // A zero-length write on a non-empty buffer means the
                // socket cannot take more, ever.
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.output.clear();
        self.written = 0;
        if self.output.capacity() > 64 * 1024 {
            self.output = Vec::new();
        }
        Ok(())
    }

    /// Drops the input buffer's memory if nothing is in it: a parked
    /// connection then costs no buffer at all.
    pub fn release_input(&mut self) {
        if self.input.is_empty() {
            self.input = Vec::new();
        }
    }

    /// Shuts the write side after the last answer, so the client sees the
    /// end of the stream while we keep reading to let it finish sending.
    pub fn shutdown_write(&self) {
        // ENOTCONN here means the peer already left: nothing to do.
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// One request cut out of a connection's input.
#[derive(Debug)]
pub enum Framed<'a> {
    /// Not all of it is here yet.
    Partial {
        /// The head is complete; the body is still arriving.
        head_done: bool,
        /// The client waits for `100 Continue` before sending the body.
        expect_continue: bool,
    },
    /// A whole request.
    Request {
        /// Its head.
        head: Head<'a>,
        /// Its body, decoded if it was chunked.
        body: Cow<'a, [u8]>,
        /// Bytes of input it took, head and body.
        consumed: usize,
    },
}

/// Cuts the first request out of `input`. A body over `max_body` is refused
/// as soon as its size is known: from `Content-Length` before any of it is
/// read (and before `100 Continue` would be sent), from a chunked body as
/// soon as the running total passes the limit.
pub fn next_request(input: &[u8], max_body: usize) -> Result<Framed<'_>, HttpError> {
    // The common case after every answer: nothing pipelined behind it.
    if input.is_empty() {
        return Ok(Framed::Partial {
            head_done: false,
            expect_continue: false,
        });
    }
    let head = match http::parse_head(input)? {
        Status::Partial => {
            return Ok(Framed::Partial {
                head_done: false,
                expect_continue: false,
            });
        }
        Status::Complete(head) => head,
    };
    let expect_continue = head.expect_continue && head.minor_version == 1;
    let rest = &input[head.len..];
    let (body, used) = match head.framing {
        Framing::Empty => (Cow::Borrowed(&[][..]), 0),
        Framing::Length(n) if n > max_body => return Err(TOO_LARGE),
        Framing::Length(n) if rest.len() < n => {
            return Ok(Framed::Partial {
                head_done: true,
                expect_continue,
            });
        }
        Framing::Length(n) => (Cow::Borrowed(&rest[..n]), n),
        Framing::Chunked => match http::decode_chunked(rest, max_body)? {
            Status::Partial => {
                return Ok(Framed::Partial {
                    head_done: true,
                    expect_continue,
                });
            }
            Status::Complete((body, used)) => (Cow::Owned(body), used),
        },
    };
    let consumed = head.len + used;
    Ok(Framed::Request {
        head,
        body,
        consumed,
    })
}

const TOO_LARGE: HttpError = HttpError {
    status: 413,
    message: "request body is larger than --max-body",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(input: &[u8]) -> Result<Framed<'_>, HttpError> {
        next_request(input, 16)
    }

    #[test]
    fn a_body_is_partial_until_it_is_all_here() {
        let req = b"POST /push?key=k HTTP/1.1\r\nContent-Length: 3\r\n\r\n123GET";
        for end in 0..req.len() - 3 {
            assert!(
                matches!(frame(&req[..end]), Ok(Framed::Partial { .. })),
                "prefix {end}"
            );
        }
        match frame(req) {
            Ok(Framed::Request { body, consumed, .. }) => {
                assert_eq!(&*body, b"123");
                assert_eq!(consumed, req.len() - 3);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn content_length_over_the_limit_is_refused_before_the_body() {
        let req =
            b"POST /push?key=k HTTP/1.1\r\nContent-Length: 17\r\nExpect: 100-continue\r\n\r\n";
        assert_eq!(frame(req).unwrap_err().status, 413);
        let req =
            b"POST /push?key=k HTTP/1.1\r\nContent-Length: 16\r\nExpect: 100-continue\r\n\r\n";
        assert!(matches!(
            frame(req),
            Ok(Framed::Partial {
                head_done: true,
                expect_continue: true
            })
        ));
    }

    #[test]
    fn chunked_bodies_are_decoded_and_bounded() {
        let req = b"POST /push HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[1\r\n1\r\n]\r\n0\r\n\r\n";
        match frame(req) {
            Ok(Framed::Request { body, consumed, .. }) => {
                assert_eq!(&*body, b"[1]");
                assert_eq!(consumed, req.len());
            }
            other => panic!("{other:?}"),
        }
        let big = b"POST /push HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n";
        assert_eq!(frame(big).unwrap_err().status, 413);
    }
}
