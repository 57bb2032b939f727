//! The load generator: one thread, one `mio::Poll`, as many connections as
//! the fd limit allows.
//!
//! A [`Driver`] owns client connections to one server address, keyed by slab
//! index. Scenarios queue request bytes with [`Driver::send`] and call
//! [`Driver::poll`], which drives every socket and hands back [`Note`]s:
//! a whole response (with the instant its request was written and the
//! instant it was read) or a closed connection. Scenarios are plain loops
//! around `poll`, so the generator has no callbacks and no per-scenario code.
//!
//! Sockets are registered once for both directions, edge-triggered as mio
//! always is: a readable socket is read until `WouldBlock`, and pending
//! output is written at once and again on each writable edge. Reads go
//! through one shared buffer; a connection keeps bytes only while a response
//! is incomplete, so 19,000 parked connections cost the generator little.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::sys;
use crate::wire::{self, Parsed};

/// Something that happened on a connection during [`Driver::poll`].
#[derive(Debug)]
pub enum Note {
    /// A whole response arrived. `sent` is when its request was written
    /// (`None` for a response nobody asked for). `lease` is the batch's
    /// `Batch-Id` and `Batch-Attempt`, if it carried them.
    Response {
        conn: usize,
        status: u16,
        lease: Option<wire::Lease>,
        body: Vec<u8>,
        sent: Option<Instant>,
        at: Instant,
    },
    /// The connection is gone (peer closed, reset, or spoke garbage); it has
    /// been removed from the driver.
    Closed { conn: usize, why: String },
}

struct Conn {
    stream: TcpStream,
    /// A non-blocking connect completes on the first writable edge.
    connected: bool,
    output: Vec<u8>,
    written: usize,
    input: Vec<u8>,
    /// When each request still waiting for its response was written.
    sent: VecDeque<Instant>,
}

/// Client connections to one server, driven by one `mio::Poll`.
pub struct Driver {
    poll: Poll,
    events: Events,
    conns: Slab<Conn>,
    addr: SocketAddr,
    scratch: Vec<u8>,
    /// Connections whose handshake has finished, ever: pacing for bursts.
    established: usize,
    /// Connects started, ever: picks the next source address.
    opened: usize,
    /// Loopback source addresses to spread connections over.
    sources: usize,
}

/// Loopback source addresses connections are spread over. Linux looks for a
/// free ephemeral port by scanning, even ports first; past ~14,000
/// connections to one address the scan makes each connect take milliseconds.
/// Four sources keep every scan short (and lift the ~28,000 port ceiling);
/// `EVENT_SYNCER_BENCH_SOURCES` asks for more (up to 254), for runs past
/// 100,000 connections.
const SOURCES: usize = 4;

fn sources() -> usize {
    std::env::var("EVENT_SYNCER_BENCH_SOURCES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(SOURCES, |n| n.clamp(1, 254))
}

impl Driver {
    pub fn new(addr: SocketAddr) -> io::Result<Driver> {
        Ok(Driver {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            conns: Slab::new(),
            addr,
            scratch: vec![0; 64 * 1024],
            established: 0,
            opened: 0,
            sources: sources(),
        })
    }

    /// Starts a non-blocking connect; requests may be queued at once and go
    /// out when the connection is established.
    pub fn connect(&mut self) -> io::Result<usize> {
        let mut stream = match self.addr {
            SocketAddr::V4(server) if server.ip().is_loopback() => {
                let source = Ipv4Addr::new(127, 0, 0, 1 + (self.opened % self.sources) as u8);
                connect_from(source, server)?
            }
            _ => TcpStream::connect(self.addr)?,
        };
        self.opened += 1;
        // Requests are written whole; Nagle would only delay pipelined ones.
        stream.set_nodelay(true)?;
        let entry = self.conns.vacant_entry();
        let id = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Conn {
            stream,
            connected: false,
            output: Vec::new(),
            written: 0,
            input: Vec::new(),
            sent: VecDeque::new(),
        });
        Ok(id)
    }

    /// How many connects have completed since the driver was made.
    pub fn established(&self) -> usize {
        self.established
    }

    pub fn is_open(&self, conn: usize) -> bool {
        self.conns.contains(conn)
    }

    /// Responses `conn` is still waiting for.
    pub fn in_flight(&self, conn: usize) -> usize {
        self.conns.get(conn).map_or(0, |c| c.sent.len())
    }

    /// Queues one request and writes it if the socket is ready. A failed
    /// write closes the connection; the caller learns it from a later
    /// `poll` as a [`Note::Closed`].
    pub fn send(&mut self, conn: usize, request: &[u8]) {
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        c.output.extend_from_slice(request);
        c.sent.push_back(Instant::now());
        if c.connected {
            // An error is seen again, and reported, on the next readable edge.
            let _ = flush(c);
        }
    }

    /// Closes a connection. `reset` sends an RST instead of a FIN, which
    /// leaves no `TIME_WAIT` behind on this side.
    pub fn close(&mut self, conn: usize, reset: bool) {
        if let Some(mut c) = self.conns.try_remove(conn) {
            if reset {
                sys::set_linger_zero(c.stream.as_raw_fd());
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Closes every connection.
    pub fn close_all(&mut self, reset: bool) {
        let ids: Vec<usize> = self.conns.iter().map(|(id, _)| id).collect();
        for id in ids {
            self.close(id, reset);
        }
    }

    /// Waits up to `timeout` for readiness, drives every ready socket and
    /// appends what happened to `notes`.
    pub fn poll(&mut self, timeout: Option<Duration>, notes: &mut Vec<Note>) -> io::Result<()> {
        let Driver {
            poll,
            events,
            conns,
            scratch,
            established: connects,
            ..
        } = self;
        match poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let registry = poll.registry();
        for event in events.iter() {
            let id = event.token().0;
            // A connection closed earlier in this batch leaves a stale event
            // behind. Slots are only reused by `connect`, never inside this
            // loop, so a missing slot is the whole story.
            let Some(conn) = conns.get_mut(id) else {
                continue;
            };
            if !conn.connected {
                match established(&conn.stream) {
                    Ok(true) => {
                        conn.connected = true;
                        *connects += 1;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        drop_conn(conns, registry, id, format!("connect: {e}"), notes);
                        continue;
                    }
                }
            }
            if let Err(e) = flush(conn) {
                drop_conn(conns, registry, id, format!("write: {e}"), notes);
                continue;
            }
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                read(conns, registry, scratch, id, notes);
            }
        }
        Ok(())
    }
}

/// Reads until `WouldBlock` and turns whole responses into notes.
fn read(
    conns: &mut Slab<Conn>,
    registry: &Registry,
    scratch: &mut [u8],
    id: usize,
    notes: &mut Vec<Note>,
) {
    let Some(conn) = conns.get_mut(id) else {
        return;
    };
    let mut eof = false;
    let mut failure = None;
    loop {
        match conn.stream.read(scratch) {
            // The server closed its side.
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => conn.input.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                failure = Some(format!("read: {e}"));
                break;
            }
        }
    }
    let at = Instant::now();
    let mut used = 0;
    while used < conn.input.len() {
        match wire::parse_response(&conn.input[used..], eof) {
            Parsed::Complete {
                status,
                lease,
                body,
                len,
            } => {
                used += len;
                notes.push(Note::Response {
                    conn: id,
                    status,
                    lease,
                    body,
                    sent: conn.sent.pop_front(),
                    at,
                });
            }
            Parsed::Partial => break,
            Parsed::Invalid(why) => {
                failure = Some(format!("bad response: {why}"));
                break;
            }
        }
    }
    conn.input.drain(..used);
    if conn.input.is_empty() && conn.input.capacity() > 4096 {
        // One large response must not pin its buffer for the whole run.
        conn.input = Vec::new();
    }
    if let Some(why) = failure {
        drop_conn(conns, registry, id, why, notes);
    } else if eof {
        let why = if conn.input.is_empty() {
            "closed by server".to_string()
        } else {
            format!("closed by server mid-response ({} bytes)", conn.input.len())
        };
        drop_conn(conns, registry, id, why, notes);
    }
}

fn drop_conn(
    conns: &mut Slab<Conn>,
    registry: &Registry,
    id: usize,
    why: String,
    notes: &mut Vec<Note>,
) {
    if let Some(mut conn) = conns.try_remove(id) {
        let _ = registry.deregister(&mut conn.stream);
    }
    notes.push(Note::Closed { conn: id, why });
}

/// A non-blocking connect from `source`, with the port chosen at connect
/// time (`IP_BIND_ADDRESS_NO_PORT`), so ports are unique per source address
/// and server address rather than per source address.
fn connect_from(source: Ipv4Addr, server: SocketAddrV4) -> io::Result<TcpStream> {
    let sockaddr = |addr: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns (through
    // `OwnedFd`, which closes it on every early return); every pointer is to
    // a live local of the type and size the call expects.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = OwnedFd::from_raw_fd(fd);
        let one: libc::c_int = 1;
        // Without it the port is picked at bind time: correct, only slower.
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&raw const one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let local = sockaddr(SocketAddrV4::new(source, 0));
        if libc::bind(fd, (&raw const local).cast(), len) < 0 {
            return Err(io::Error::last_os_error());
        }
        let remote = sockaddr(server);
        if libc::connect(fd, (&raw const remote).cast(), len) < 0 {
            let e = io::Error::last_os_error();
            // The handshake goes on; the first writable edge reports it.
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
        }
        Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
    }
}

/// Whether a non-blocking connect has finished, as mio's `TcpStream::connect`
/// documents: an error first, then `peer_addr` fails with `NotConnected`
/// while the handshake is still going.
fn established(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Writes queued output until done or `WouldBlock`; the next writable edge
/// resumes it.
fn flush(conn: &mut Conn) -> io::Result<()> {
    while conn.written < conn.output.len() {
        match conn.stream.write(&conn.output[conn.written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    conn.output.clear();
    conn.written = 0;
    Ok(())
}
