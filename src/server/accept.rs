//! Taking new connections: the limit on how many are open, and what to do
//! when the process runs out of file descriptors.
//!
//! Out of descriptors, `accept` fails with `EMFILE` while the pending
//! connection stays in the backlog and the listener stays readable: calling
//! `accept` again at once would spin. So the listener is deregistered and
//! the loop tries again when a connection closes (a descriptor is free) or,
//! failing that, when the **one** retry timer fires. There is never more
//! than one such timer, however often accepting pauses, so clients that keep
//! connecting and leaving at the limit cost a few syscalls per closed
//! connection and nothing per turn.

use std::io;
use std::net::SocketAddr;

use log::{debug, error, warn};
use mio::Interest;
use mio::net::TcpStream;

use super::{Accepting, LISTENER, Server, Timer};
use crate::config::Millis;
use crate::connection::Connection;

/// After running out of file descriptors, try accepting again this soon
/// (or as soon as a connection closes).
const ACCEPT_RETRY: Millis = 100;

impl Server {
    /// Accepts every connection waiting in the backlog (edge-triggered: the
    /// listener will not be reported again until a new one arrives).
    pub(super) fn accept(&mut self) {
        while self.accepting == Accepting::Open {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Interrupted by a signal, or the client gave up before we
                // took it: neither says anything about the next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) if is_out_of_descriptors(&e) => return self.pause_accepting(&e),
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
            let open = self.conns.len();
            self.warn_limited(
                "max_connections",
                format_args!("refusing connections: {open} open (--max-connections)"),
            );
            return; // dropping the stream closes it
        }
        // Small answers should leave at once, not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let now = self.now();
        let entry = self.conns.vacant_entry();
        let token = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, mio::Token(token), Interest::READABLE)
        {
            warn!("cannot register connection from {peer}: {e}");
            return;
        }
        entry.insert(Connection::new(stream, Interest::READABLE, now));
        self.api.metrics.connections_accepted += 1;
        debug!("#{token} accepted from {peer}");
        // A new connection's request may already be here; epoll reports it
        // on the next poll anyway, so settling its timer is all that is due.
        self.settle(token);
    }

    /// Stops listening until a descriptor is freed, with one retry timer.
    fn pause_accepting(&mut self, e: &io::Error) {
        if self.accepting != Accepting::Open {
            return;
        }
        let _ = self.poll.registry().deregister(&mut self.listener);
        let retry = self
            .wheel
            .insert(self.deadline_in(ACCEPT_RETRY), Timer::AcceptRetry);
        self.accepting = Accepting::Paused { retry };
        let open = self.conns.len();
        self.warn_limited(
            "fds",
            format_args!(
                "out of file descriptors ({e}) with {open} connections open: pausing accept"
            ),
        );
    }

    /// Listens again after a pause: the retry timer fired (`timer_fired`) or
    /// a connection closed.
    pub(super) fn resume_accepting(&mut self, timer_fired: bool) {
        let Accepting::Paused { retry } = self.accepting else {
            return;
        };
        if !timer_fired {
            self.wheel.cancel(retry);
        }
        self.accepting = Accepting::Open;
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut self.listener, LISTENER, Interest::READABLE)
        {
            error!("cannot listen again: {e}");
            return;
        }
        // Connections that queued while we were not listening raised no
        // edge we saw: take them now.
        self.accept();
    }

    /// Once per turn: if a connection closed while accepting was paused, a
    /// descriptor is free, so try again now rather than at the timer.
    pub(super) fn accept_if_freed(&mut self) {
        if std::mem::take(&mut self.fd_freed) {
            self.resume_accepting(false);
        }
    }
}

/// `EMFILE` (this process) or `ENFILE` (the whole system) and their kin:
/// accept cannot succeed until a descriptor is freed.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
