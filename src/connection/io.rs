//! A connection's I/O beyond the outbox: reading into the window, and
//! telling a slow reader from a gone one.

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;

use super::{Connection, State};
use crate::config::Millis;

/// The outcome of one `read`.
#[derive(Debug)]
pub enum Fill {
    /// This many bytes arrived; `drained` if the socket is now empty.
    Data {
        /// Whether the read was short: the receive queue is empty.
        drained: bool,
    },
    /// Nothing to read until epoll says so again.
    WouldBlock,
    /// The peer shut its write side (`read` returned 0).
    Closed,
    /// The connection is broken (e.g. reset by peer).
    Failed(io::Error),
}

impl Connection {
    /// The peer's address, for logs. Asked of the kernel when needed rather
    /// than kept: tens of thousands of parked connections would each carry
    /// 32 bytes for a log line most never get.
    pub fn peer(&self) -> Peer {
        Peer(self.stream.peer_addr().ok())
    }

    /// Reads once into `scratch` (at most what the window has room for) and
    /// appends what came to the window; a closing connection throws it away.
    pub fn fill(&mut self, scratch: &mut [u8], now: Millis) -> Fill {
        let discard = matches!(self.state, State::Closing { .. } | State::Lingering);
        let room = if discard {
            scratch.len()
        } else {
            self.inbox.room().min(scratch.len())
        };
        loop {
            return match self.stream.read(&mut scratch[..room]) {
                // The peer shut its write side: no more requests will come.
                Ok(0) => Fill::Closed,
                Ok(n) => {
                    if !discard {
                        if self.inbox.is_empty() {
                            self.request_began(now);
                        }
                        self.inbox.append(&scratch[..n]);
                    }
                    Fill::Data {
                        drained: n < room && !self.hung_up,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Fill::WouldBlock,
                // A signal arrived during the syscall: simply try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Fill::Failed(e),
            };
        }
    }

    /// The socket was found full: remember how much the kernel holds.
    pub fn socket_full(&mut self) {
        self.kernel_queue = self.unacknowledged();
    }

    /// The stall timer ran out: whether the client has taken bytes since the
    /// socket was last found full. A client reading slowly from the
    /// kernel's buffers gives the server no chance to write (and so to see
    /// progress) for a long while; the kernel's count of unacknowledged
    /// bytes shows that it reads. If it did, its clock restarts at `now`.
    pub fn took_bytes(&mut self, now: Millis) -> bool {
        let queue = self.unacknowledged();
        let took =
            matches!((self.kernel_queue, queue), (Some(before), Some(after)) if after < before);
        self.kernel_queue = queue;
        if took {
            self.active_since = now;
        }
        took
    }

    /// Bytes written to the socket that the client has not acknowledged
    /// (`SIOCOUTQ`); `None` if the kernel will not say.
    fn unacknowledged(&self) -> Option<u32> {
        use std::os::fd::AsRawFd;
        let mut queued: libc::c_int = 0;
        // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int through the pointer,
        // which points at a live c_int; the descriptor is our open socket.
        let rc = unsafe { libc::ioctl(self.stream.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
        (rc == 0).then(|| u32::try_from(queued).unwrap_or(0))
    }
}

/// A peer's address as logs show it: `?` once the kernel has forgotten it
/// (the connection was reset).
#[derive(Debug, Clone, Copy)]
pub struct Peer(Option<SocketAddr>);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(addr) => write!(f, "{addr}"),
            None => f.write_str("?"),
        }
    }
}
