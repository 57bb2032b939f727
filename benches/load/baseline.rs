//! The baseline: the cheapest server that speaks the same wire format. It
//! answers every request at once with a fixed `200` (`{"message":"Data pushed
//! successfully"}` for a POST, `[]` for anything else), except a
//! `GET /blocking-get`, which it parks with no bookkeeping at all: a push is
//! answered, then every parked connection gets `[body]` (one response built
//! once, one `write` each). That is the floor of a fan-out: what
//! writing one answer to each of N sockets costs, with no store, no groups
//! and no timers. It knows no keys or groups, so it serves only the
//! scenarios where every parked consumer should get the push.
//!
//! It runs as a child process of the benchmark (`load --baseline-server`), so
//! that its RSS and CPU are read from `/proc` exactly as the server's are, and
//! it is built the way event-syncer is: one thread, one `mio::Poll`,
//! edge-triggered, httparse for the request head. An idle connection holds
//! its socket and a slab entry only: input is kept only while a request is
//! incomplete, and output only while the socket is full. Whatever
//! event-syncer does beyond this is the cost of being a queue.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
/// Large enough for bursts of thousands of connects; the kernel caps it at
/// `net.core.somaxconn`.
const BACKLOG: libc::c_int = 65_535;

const PUSHED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n{\"message\":\"Data pushed successfully\"}";
const EMPTY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]";

struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    output: Vec<u8>,
    parked: bool,
}

/// What a request asks of the baseline.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `POST`: answer, and broadcast the body to the parked.
    Push,
    /// `GET /blocking-get`: answer nothing until a push.
    Park,
    /// Anything else: answer `[]`.
    Other,
}

/// The two fixed answers, for `--self-test` to check their framing.
pub const ANSWERS: [&[u8]; 2] = [PUSHED, EMPTY];

/// Serves until killed. Prints `listening on http://ADDR` on stderr.
pub fn serve() -> io::Result<()> {
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    // Linux lets `listen` be called again to enlarge the backlog mio chose.
    // SAFETY: the fd is a bound, listening TCP socket owned by `listener`.
    unsafe { libc::listen(listener.as_raw_fd(), BACKLOG) };
    eprintln!("baseline listening on http://{}", listener.local_addr()?);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::new();
    let mut scratch = vec![0u8; 64 * 1024];
    let mut reply = Vec::with_capacity(64 * 1024);
    let mut parked: Vec<usize> = Vec::new();
    let mut pushed: Vec<Vec<u8>> = Vec::new();
    let mut answer = Vec::new();
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in &events {
            if event.token() == LISTENER {
                accept(&listener, &poll, &mut conns);
                continue;
            }
            let id = event.token().0;
            // Closed earlier in this batch: a stale event.
            let Some(conn) = conns.get_mut(id) else {
                continue;
            };
            // Bodies are kept only when someone waits for them, so the
            // push-rate scenario costs the baseline nothing extra.
            let broadcasting = !parked.is_empty();
            let keep = serve_conn(conn, &mut scratch, &mut reply, &mut pushed, broadcasting);
            if conn.parked && !parked.contains(&id) {
                parked.push(id);
            }
            if !keep {
                let mut conn = conns.remove(id);
                let _ = poll.registry().deregister(&mut conn.stream);
                parked.retain(|&p| p != id);
            }
            for body in pushed.drain(..) {
                broadcast(&mut conns, &mut parked, &body, &mut answer);
            }
        }
    }
}

fn accept(listener: &TcpListener, poll: &Poll, conns: &mut Slab<Conn>) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let _ = stream.set_nodelay(true);
                let entry = conns.vacant_entry();
                let token = Token(entry.key());
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                    .is_ok()
                {
                    entry.insert(Conn {
                        stream,
                        input: Vec::new(),
                        output: Vec::new(),
                        parked: false,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of fds or similar: the benchmark stays below the limit, so
            // giving up until the next connect is good enough here.
            Err(e) => {
                eprintln!("baseline: accept: {e}");
                return;
            }
        }
    }
}

/// Answers every parked connection with `[body]`, built once.
fn broadcast(conns: &mut Slab<Conn>, parked: &mut Vec<usize>, body: &[u8], answer: &mut Vec<u8>) {
    if parked.is_empty() {
        return;
    }
    answer.clear();
    answer.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ",
    );
    answer.extend_from_slice((body.len() + 2).to_string().as_bytes());
    answer.extend_from_slice(b"\r\n\r\n[");
    answer.extend_from_slice(body);
    answer.push(b']');
    for id in parked.drain(..) {
        let Some(conn) = conns.get_mut(id) else {
            continue;
        };
        conn.parked = false;
        if conn.output.is_empty() {
            match write_some(&mut conn.stream, answer) {
                Ok(n) => conn.output.extend_from_slice(&answer[n..]),
                Err(_) => continue,
            }
        } else {
            conn.output.extend_from_slice(answer);
        }
    }
}

/// Reads, answers and writes; false when the connection is finished. The
/// bodies of pushes go to `pushed` when `broadcasting`.
fn serve_conn(
    conn: &mut Conn,
    scratch: &mut [u8],
    reply: &mut Vec<u8>,
    pushed: &mut Vec<Vec<u8>>,
    broadcasting: bool,
) -> bool {
    if !conn.output.is_empty() && !write_out(conn) {
        return false;
    }
    loop {
        let n = match conn.stream.read(scratch) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        // Parse straight from the shared buffer unless a request is split.
        let owned;
        let data: &[u8] = if conn.input.is_empty() {
            &scratch[..n]
        } else {
            conn.input.extend_from_slice(&scratch[..n]);
            owned = std::mem::take(&mut conn.input);
            &owned
        };
        reply.clear();
        let mut used = 0;
        loop {
            match request_len(&data[used..]) {
                Some(Ok((len, body, kind))) => {
                    match kind {
                        Kind::Push => {
                            reply.extend_from_slice(PUSHED);
                            if broadcasting {
                                pushed.push(data[used + len - body..used + len].to_vec());
                            }
                        }
                        Kind::Park => conn.parked = true,
                        Kind::Other => reply.extend_from_slice(EMPTY),
                    }
                    used += len;
                }
                Some(Err(())) => return false,
                None => break,
            }
        }
        conn.input = data[used..].to_vec();
        if conn.output.is_empty() {
            match write_some(&mut conn.stream, reply) {
                Ok(n) => conn.output.extend_from_slice(&reply[n..]),
                Err(_) => return false,
            }
        } else {
            conn.output.extend_from_slice(reply);
        }
    }
}

/// The length of the first whole request in `data`, its body's length and
/// what it asks; `None` if incomplete, `Some(Err)` if malformed.
fn request_len(data: &[u8]) -> Option<Result<(usize, usize, Kind), ()>> {
    if data.is_empty() {
        return None;
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    let head = match request.parse(data) {
        Ok(httparse::Status::Complete(head)) => head,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Err(())),
    };
    let mut body = 0;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => body = n,
                None => return Some(Err(())),
            }
        }
    }
    let kind = match (request.method, request.path) {
        (Some("POST"), _) => Kind::Push,
        (Some("GET"), Some(path)) if path.starts_with("/blocking-get") => Kind::Park,
        _ => Kind::Other,
    };
    (data.len() >= head + body).then_some(Ok((head + body, body, kind)))
}

fn write_out(conn: &mut Conn) -> bool {
    match write_some(&mut conn.stream, &conn.output) {
        Ok(n) => {
            conn.output.drain(..n);
            if conn.output.is_empty() {
                conn.output = Vec::new();
            }
            true
        }
        Err(_) => false,
    }
}

/// Writes until done or `WouldBlock`; returns how much went out.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(&bytes[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
