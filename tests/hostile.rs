//! The tests a hostile or unlucky client would write: clients that never
//! read, read slowly, half-close, stream chunk extensions, pipeline behind a
//! parked get, or hit the server while it is out of file descriptors; a
//! server started under a huge descriptor limit; and a soak that mixes all
//! of them with ordinary traffic.
//!
//! Every threshold comes from SPEC.md, quoted in each test's doc comment.
//! Nothing waits on a bare sleep for correctness: conditions are polled
//! with deadlines, reads have deadlines, and each scenario first proves it
//! really happened (the server answered, the bytes were sent, the limit was
//! reached) so that no test can pass vacuously.
//!
//! Tests that measure CPU time, latency or resident memory take [`serial`]
//! so they do not measure each other on a small machine.

mod common;

use common::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// SPEC: resident memory stays within "the memory limit plus a fixed
/// overhead plus at most 64 KiB of unparsed input per open connection".
const INPUT_PER_CONNECTION: u64 = 64 * KIB;
/// The fixed overhead the tests allow on top of the RSS right after start.
const FIXED_OVERHEAD: u64 = 16 * MIB;
/// The worst `/healthz` latency a bystander may see while others attack.
const BYSTANDER_LATENCY: Duration = if cfg!(debug_assertions) {
    // `cargo test` runs a debug build of the server, about ten times slower
    // per request: a fan-out to the soak's 1,500 parked consumers alone
    // takes a debug loop a few hundred ms. The stall this guards against
    // took seconds.
    Duration::from_millis(1_000)
} else {
    Duration::from_millis(250)
};

/// The RSS bound of SPEC's push section, from the RSS right after start.
fn rss_bound(rss_at_start: u64, max_memory: u64, connections: u64) -> u64 {
    rss_at_start + max_memory + INPUT_PER_CONNECTION * connections + FIXED_OVERHEAD
}

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds off the other measuring tests of this file while it lives.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A blocking-get request for a new group, answered at once if the key has
/// events (`timeout=0`).
fn bget_now(key: &str, group: &str, minor: u8, extra: &str) -> Vec<u8> {
    let path = bget_path(key, group, Some("0"));
    if minor == 0 {
        format!("GET {path} HTTP/1.0\r\n{extra}\r\n").into_bytes()
    } else {
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n").into_bytes()
    }
}

/// The body a group gets for `events`, in push order (SPEC blocking-get
/// rule 4: `[e1,e2,...]`, each exactly as pushed).
fn batch_of(events: &[String]) -> Vec<u8> {
    format!("[{}]", events.join(",")).into_bytes()
}

/// Pushes `events` under `key`, asserting each is stored.
fn push_all(server: &Server, key: &str, events: &[String]) {
    let a = agent();
    for (i, e) in events.iter().enumerate() {
        let (status, body) = push_with(&a, server, key, e);
        assert_eq!(
            status,
            200,
            "push {i} of {} under {key}: {body}",
            events.len()
        );
    }
}

/// How one raw answer transfer ended.
#[derive(Debug)]
struct Transfer {
    /// Bytes received, head included.
    received: usize,
    /// Status and body, once the whole response (by `Content-Length`) is in.
    answer: Option<(u16, Vec<u8>)>,
    /// Why reading stopped short: "eof", "reset: ...", "deadline",
    /// "stopped" (the caller's `stop_at`).
    cut: Option<String>,
    /// When the last byte was taken.
    last_byte: Instant,
}

/// Reads one response off `stream` in reads of at most 64 KiB, at most
/// `rate` bytes per second if given (every read takes bytes: the reader is
/// slow, never stalled). Stops at the full response, or at `stop_at` (a
/// reader that gives up reading), or at `deadline`, or when the server
/// closes or resets.
fn read_answer(
    stream: &mut TcpStream,
    rate: Option<f64>,
    stop_at: Option<Instant>,
    deadline: Instant,
) -> Transfer {
    read_answer_after(stream, &mut Vec::new(), rate, stop_at, deadline)
}

/// As [`read_answer`], for a stream whose bytes already read but not yet
/// consumed are in `buf` (pipelined answers): the answer returned is taken
/// off its front, and bytes of a following answer stay in it.
fn read_answer_after(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    rate: Option<f64>,
    stop_at: Option<Instant>,
    deadline: Instant,
) -> Transfer {
    let started = Instant::now();
    let carried = buf.len();
    let mut tmp = vec![0u8; 64 * 1024];
    let mut last_byte = started;
    let cut = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(buf) {
            let status = parsed.code.expect("status");
            let len: usize = parsed
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| {
                    String::from_utf8_lossy(h.value)
                        .trim()
                        .parse()
                        .expect("length")
                })
                .expect("answers carry Content-Length");
            if buf.len() >= head_len + len {
                let body = buf[head_len..head_len + len].to_vec();
                let received = buf.len();
                buf.drain(..head_len + len);
                return Transfer {
                    received,
                    answer: Some((status, body)),
                    cut: None,
                    last_byte,
                };
            }
        }
        let now = Instant::now();
        if stop_at.is_some_and(|s| now >= s) {
            break "stopped".to_string();
        }
        if now >= deadline {
            break "deadline".to_string();
        }
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64((buf.len() - carried) as f64 / rate);
            if let Some(wait) = due.checked_duration_since(now) {
                thread::sleep(wait);
                continue;
            }
        }
        let wait = (deadline - now).min(Duration::from_millis(200));
        stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .expect("read timeout");
        match stream.read(&mut tmp) {
            Ok(0) => break "eof".to_string(),
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                last_byte = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => break format!("reset: {e}"),
        }
    };
    Transfer {
        received: buf.len(),
        answer: None,
        cut: Some(cut),
        last_byte,
    }
}

/// Asserts `t` is a whole `200` whose body is exactly `expected`.
fn assert_whole(t: &Transfer, expected: &[u8], what: &str) {
    let Some((status, body)) = &t.answer else {
        panic!(
            "{what}: the answer was cut ({:?}) after {} bytes of about {}",
            t.cut,
            t.received,
            expected.len()
        );
    };
    assert_eq!(*status, 200, "{what}: {}", String::from_utf8_lossy(body));
    assert!(
        body == expected,
        "{what}: body of {} bytes differs from the {} bytes pushed",
        body.len(),
        expected.len()
    );
}

/// Sequential `GET /healthz` calls, each on a fresh connection, until `stop`
/// is set; returns (calls made, worst latency). A call that fails counts as
/// the whole time it took.
fn bystander(addr: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<(u64, Duration)> {
    thread::spawn(move || {
        let (mut calls, mut worst) = (0u64, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let mut c = Raw::connect_addr(addr);
            c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let r = c.try_read_response(secs(10.0));
            // A call that fails counts as a slow one: the worst is reported.
            let took = match r {
                Some(r) if r.status == 200 && r.body == b"ok" => started.elapsed(),
                _ => started.elapsed().max(Duration::from_secs(10)),
            };
            worst = worst.max(took);
            calls += 1;
            thread::sleep(Duration::from_millis(10));
        }
        (calls, worst)
    })
}

/// Samples `pid`'s RSS every 20 ms until `stop` is set; returns the peak.
fn rss_sampler(pid: u32, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(rss_bytes(pid));
            thread::sleep(Duration::from_millis(20));
        }
        peak.max(rss_bytes(pid))
    })
}

// ---------------------------------------------------------------------------
// 1. Answers held for clients that never read.
// ---------------------------------------------------------------------------

/// The memory limit of the non-reader test: 20 MiB.
const MEMORY_LIMIT: u64 = 20 * MIB;
/// Clients that ask for the whole backlog and never read it.
const NON_READERS: usize = 60;

/// SPEC, `POST /push`: "Those bytes are the stored events (JSON plus
/// bookkeeping) *and* answers not yet written to slow or stalled consumers:
/// an answer shares the stored bytes rather than copying them, and holds
/// them until it is written. So the server's resident memory stays within
/// the memory limit plus a fixed overhead plus at most 64 KiB of unparsed
/// input per open connection, whatever its clients do."
///
/// About 20 MiB of events (500 KB each, until the first `503`) under one
/// key; then 60 clients with tiny receive windows each ask for the whole
/// backlog as a new group and never read. RSS must stay below
/// start + 20 MiB + 64 KiB per connection + 16 MiB while they hold their
/// answers. Then the events expire (`--event-ttl 12`): the answers still hold
/// their bytes, so those still count, and a 1 MiB push is a `503` with
/// `Retry-After`, nothing stored. Once the non-readers hang up, the bytes
/// are released and pushes succeed again.
#[test]
fn non_readers_share_the_stored_bytes_and_their_answers_count_against_max_memory() {
    let _serial = serial();
    let ttl = 12.0;
    let server = Server::start(&[
        "--max-memory",
        &MEMORY_LIMIT.to_string(),
        "--event-ttl",
        &ttl.to_string(),
    ]);
    let pid = server.pid();
    let rss_at_start = rss_bytes(pid);

    // Fill to the limit: the first 503 says the stored bytes reached it.
    let a = agent();
    let filled_at = Instant::now();
    let mut stored = 0usize;
    loop {
        let (status, body) = push_with(&a, &server, "big", json_event(500_000, stored));
        if status == 503 {
            break;
        }
        assert_eq!(status, 200, "push {stored}: {body}");
        stored += 1;
        assert!(
            stored <= 50,
            "{stored} events of 500 KB stored under a 20 MiB limit"
        );
    }
    assert!(
        stored >= 35,
        "only {stored} events of 500 KB stored before the first 503 (limit 20 MiB)"
    );
    assert!(
        filled_at.elapsed().as_secs_f64() < ttl - 2.0,
        "filling took {:?}: events would expire before the scenario runs",
        filled_at.elapsed()
    );
    assert_eq!(
        metric(&server, "event_syncer_events_live"),
        Some(stored as u64)
    );

    // Every non-reader is owed the whole backlog, about 20 MB.
    let mut non_readers: Vec<Raw> = (0..NON_READERS)
        .map(|i| {
            let mut c = connect_small_rcvbuf(server.addr(), 4096);
            c.send(&bget_now("big", &format!("g{i}"), 1, ""));
            c
        })
        .collect();
    fence(&server);
    // Each one's answer has begun (so it is really held, not refused).
    for (i, c) in non_readers.iter_mut().enumerate() {
        let mut head = [0u8; 12];
        c.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let n = c.stream.peek(&mut head).expect("peek");
        assert_eq!(
            &head[..n.min(12)],
            b"HTTP/1.1 200",
            "non-reader {i} got no 200 answer"
        );
    }

    // RSS while they hold their answers, until the events expire.
    let bound = rss_bound(rss_at_start, MEMORY_LIMIT, NON_READERS as u64 + 2);
    let mut peak = 0;
    let mut live = None;
    let expired = poll_until(after(Duration::from_secs_f64(ttl + 3.0)), || {
        peak = peak.max(rss_bytes(pid));
        live = metric(&server, "event_syncer_events_live");
        live == Some(0)
    });
    assert!(
        peak < bound,
        "RSS reached {peak} bytes with {NON_READERS} non-readers holding a {stored}-event batch; \
         SPEC bound: {rss_at_start} at start + {MEMORY_LIMIT} + 64 KiB per connection + 16 MiB = {bound}"
    );
    assert!(
        expired,
        "events did not expire after the TTL: live = {live:?}"
    );

    // The expired events' bytes are still held by the unwritten answers
    // (all but what the kernel's socket buffers took already), and they
    // count: pushes are refused once those bytes and the new events reach
    // the limit.
    let held = metric(&server, "event_syncer_answer_bytes_held").unwrap_or(0);
    assert!(
        held >= 8 * MIB,
        "only {held} bytes held for {NON_READERS} unwritten answers of {stored} x 500 KB"
    );
    let mut accepted = 0u64;
    let (body, headers) = loop {
        let (status, body, headers) = finish(
            a.post(server.url("/push?key=other"))
                .send(json_event(MIB as usize, 1).as_bytes()),
        );
        if status == 503 {
            break (body, headers);
        }
        assert_eq!(status, 200, "{body}");
        accepted += 1;
        assert!(
            accepted <= 20,
            "20 MiB pushed beside {held} bytes held under a 20 MiB limit"
        );
    };
    let room = MEMORY_LIMIT.saturating_sub(held) / MIB + 1;
    assert!(
        accepted <= room,
        "{accepted} pushes of 1 MiB accepted while {held} bytes were held for unwritten \
         answers under a 20 MiB limit (room for {room})"
    );
    assert!(
        headers.contains_key("retry-after"),
        "503 without Retry-After: {headers:?}"
    );
    assert_json_error(body.as_bytes());
    assert_eq!(metric(&server, "event_syncer_events_live"), Some(accepted));

    // Hanging up releases the bytes.
    for (i, c) in non_readers.drain(..).enumerate() {
        if i % 2 == 0 { c.reset() } else { drop(c) }
    }
    let mut last = 0;
    let ok = poll_until(secs(5.0), || {
        last = push(&server, "other", json_event(MIB as usize, 2));
        last == 200
    });
    assert!(
        ok,
        "pushes still refused ({last}) after every non-reader hung up"
    );
}

// ---------------------------------------------------------------------------
// 2. Chunk extensions.
// ---------------------------------------------------------------------------

/// The body limit of the chunk-extension test. Small, so that whichever way
/// SPEC's "at most the body limit plus 64 KiB of framing" is read (framing
/// alone, or body and framing together), a refusal is due within a few KiB
/// of 64 KiB of framing.
const EXT_MAX_BODY: usize = 16 * 1024;

/// One chunk of 1 byte of data with a valid extension of about 4 KiB
/// (`chunk-ext = ";" token "=" token`), the size line kept under 4 KiB.
fn extension_chunk() -> Vec<u8> {
    format!("1;x={}\r\n1\r\n", "a".repeat(4000)).into_bytes()
}

const CHUNKED_PUSH: &[u8] =
    b"POST /push?key=ext HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";

/// What one attacker saw: bytes it sent before it had an answer, and the
/// answer's status if one came.
#[derive(Debug)]
struct Attack {
    sent: usize,
    status: Option<u16>,
    /// It reached the SPEC bound and waited a second without an answer.
    unanswered_at_bound: bool,
}

/// Streams 1-byte chunks with 4 KiB extensions as fast as the server takes
/// them, until an answer comes. At the SPEC bound (body limit + 64 KiB of
/// framing, plus the head and one chunk of slack) it waits up to a second
/// for the refusal; if none comes it goes on streaming until `end`, as an
/// attacker would.
fn chunk_extension_attack(addr: SocketAddr, end: Instant) -> Attack {
    let bound = CHUNKED_PUSH.len() + EXT_MAX_BODY + 64 * 1024 + 4 * 1024;
    let chunk = extension_chunk();
    let mut c = Raw::connect_addr(addr);
    c.send(CHUNKED_PUSH);
    let mut sent = CHUNKED_PUSH.len();
    let mut unanswered_at_bound = false;
    let mut pending: Vec<u8> = Vec::new();
    c.stream.set_nonblocking(true).expect("nonblocking");
    loop {
        if let Some(r) = c.read_response_now() {
            return Attack {
                sent,
                status: Some(r.status),
                unanswered_at_bound,
            };
        }
        if c.saw_eof() || Instant::now() >= end {
            break;
        }
        if sent >= bound && !unanswered_at_bound {
            c.stream.set_nonblocking(false).expect("blocking");
            if let Some(r) = c.try_read_response(secs(1.0)) {
                return Attack {
                    sent,
                    status: Some(r.status),
                    unanswered_at_bound,
                };
            }
            unanswered_at_bound = true;
            c.stream.set_nonblocking(true).expect("nonblocking");
        }
        if pending.is_empty() {
            for _ in 0..16 {
                pending.extend_from_slice(&chunk);
            }
        }
        match c.stream.write(&pending) {
            Ok(n) => {
                sent += n;
                pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Refused and closed: the answer may be waiting to be read.
            Err(_) => break,
        }
    }
    c.stream.set_nonblocking(false).expect("blocking");
    let status = c.try_read_response(secs(2.0)).map(|r| r.status);
    Attack {
        sent,
        status,
        unanswered_at_bound,
    }
}

/// SPEC, HTTP behaviour: "No request, however framed, costs work out of
/// proportion to its bytes: reading and parsing are linear in what the
/// client sends." And `POST /push`: "A chunked body's framing (sizes,
/// extensions, line ends) counts too: at most the body limit plus 64 KiB of
/// framing" (larger: `413`, nothing stored).
///
/// For 3 s, 8 clients stream `POST /push` bodies of 1-byte chunks each with
/// a valid 4 KiB extension, reconnecting after each refusal. A bystander's
/// `/healthz` on a fresh connection must never take 250 ms or more; each
/// attacker must get `413` by the time it has sent the body limit plus
/// 64 KiB of framing (plus the head and one chunk); nothing is stored.
#[test]
fn chunk_extension_floods_are_refused_and_do_not_stall_the_loop() {
    let _serial = serial();
    let server = Server::start(&["--max-body", &EXT_MAX_BODY.to_string()]);
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let probe = bystander(addr, Arc::clone(&stop));
    let end = after(Duration::from_secs(3));
    let attackers: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                let mut attacks = Vec::new();
                while Instant::now() < end {
                    attacks.push(chunk_extension_attack(addr, end));
                }
                attacks
            })
        })
        .collect();
    let attacks: Vec<Attack> = attackers
        .into_iter()
        .flat_map(|t| t.join().expect("attacker"))
        .collect();
    stop.store(true, Ordering::Relaxed);
    let (calls, worst) = probe.join().expect("bystander");
    let sent: usize = attacks.iter().map(|a| a.sent).sum();
    eprintln!(
        "{} attacks, {sent} bytes sent; bystander: {calls} calls, worst {worst:?}",
        attacks.len()
    );

    let mut faults = Vec::new();
    if worst >= BYSTANDER_LATENCY {
        faults.push(format!(
            "a bystander's /healthz took {worst:?} (limit {BYSTANDER_LATENCY:?}) while \
             {} bytes of chunk extensions arrived",
            sent
        ));
    }
    let late: Vec<&Attack> = attacks.iter().filter(|a| a.unanswered_at_bound).collect();
    if !late.is_empty() {
        faults.push(format!(
            "{} of {} attacks had no answer at the SPEC bound of {} body + 64 KiB framing; e.g. {:?}",
            late.len(),
            attacks.len(),
            EXT_MAX_BODY,
            late[0]
        ));
    }
    let wrong: Vec<&Attack> = attacks
        .iter()
        .filter(|a| a.status.is_some_and(|s| s != 413))
        .collect();
    if !wrong.is_empty() {
        faults.push(format!("attacks not refused with 413: {wrong:?}"));
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
    assert!(
        attacks.iter().filter(|a| a.status == Some(413)).count() >= 8,
        "fewer than 8 refusals seen: {attacks:?}"
    );
    assert!(calls >= 5, "the bystander made only {calls} calls");
    assert_eq!(metric(&server, "event_syncer_events_live"), Some(0));
    assert_eq!(take(&server, "ext", "check"), "[]");
}

/// SPEC, HTTP behaviour: "a chunk extension that breaks the grammar ... is
/// a `400`; then close". RFC 9112 7.1.1: `chunk-ext = *( BWS ";" BWS
/// chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`, a name is a token, and
/// nothing but an extension may follow the size. Each body's data, `"abc"`,
/// is valid JSON, so a server that let the bad line through would store it
/// and answer 200 (the control case shows it does for a good extension).
#[test]
fn chunk_extensions_that_break_the_grammar_get_400() {
    let server = Server::start(&[]);
    let push_with_size_line = |line: &str| {
        let mut c = Raw::connect(&server);
        let mut req = CHUNKED_PUSH.to_vec();
        req.extend_from_slice(format!("{line}\r\n\"abc\"\r\n0\r\n\r\n").as_bytes());
        c.send(&req);
        let r = c.read_response(secs(5.0));
        (r, c)
    };
    let (ok, _) = push_with_size_line("5;x=y");
    assert_eq!(ok.status, 200, "control case: {}", ok.text());
    assert_eq!(take(&server, "ext", "g"), "[\"abc\"]");

    for line in ["5;bad[=x", "5;", "5 ", "5;x=", "5;=x"] {
        let (r, mut c) = push_with_size_line(line);
        assert_eq!(
            r.status,
            400,
            "size line {line:?}: {} {}",
            r.status,
            r.text()
        );
        assert_json_error(&r.body);
        let rest = c.read_until_close(secs(5.0));
        assert!(rest.is_empty(), "bytes after the 400 for {line:?}");
        assert_eq!(take(&server, "ext", "g"), "[]", "{line:?} stored an event");
    }
}

// ---------------------------------------------------------------------------
// 3. Out of descriptors, with clients coming and going.
// ---------------------------------------------------------------------------

/// Client threads of the churn.
const CHURNERS: usize = 12;
/// How long a churning client waits for its answer before leaving.
const CHURN_PATIENCE: Duration = Duration::from_millis(150);
/// How long a served churning client keeps its connection after the answer.
const CHURN_HOLD: Duration = Duration::from_millis(20);

/// What a churn saw: answers received, clients that left unanswered, and
/// the server's CPU time in the first second, the last second and overall.
#[derive(Debug)]
struct Churn {
    /// The most descriptors the server had open at once.
    peak_fds: usize,
    served: u64,
    unserved: u64,
    cpu_first: Duration,
    cpu_last: Duration,
    cpu_total: Duration,
}

/// For `window`, `CHURNERS` threads each connect, ask `/healthz` with
/// `Connection: close`, wait at most [`CHURN_PATIENCE`] for the answer, hold
/// the connection [`CHURN_HOLD`] and leave, over and over; meanwhile the server's CPU time is sampled.
fn churn(server: &Server, window: Duration) -> Churn {
    let addr = server.addr();
    let pid = server.pid();
    let served = Arc::new(AtomicU64::new(0));
    let unserved = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let end = started + window;
    let threads: Vec<_> = (0..CHURNERS)
        .map(|_| {
            let (served, unserved) = (Arc::clone(&served), Arc::clone(&unserved));
            thread::spawn(move || {
                while Instant::now() < end {
                    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                    else {
                        unserved.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let mut c = Raw::from_stream(stream);
                    c.send_lossy(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
                    match c.try_read_response(after(CHURN_PATIENCE)) {
                        Some(r) if r.status == 200 => {
                            // A client that reads its answer, then takes a
                            // moment before it hangs up, holds its slot.
                            thread::sleep(CHURN_HOLD);
                            served.fetch_add(1, Ordering::Relaxed)
                        }
                        _ => unserved.fetch_add(1, Ordering::Relaxed),
                    };
                    drop(c);
                }
            })
        })
        .collect();
    let peak_fds = {
        let peak = Arc::new(AtomicUsize::new(0));
        let sink = Arc::clone(&peak);
        let sampler = thread::spawn(move || {
            while Instant::now() < end {
                sink.fetch_max(open_fds(pid), Ordering::Relaxed);
                thread::sleep(Duration::from_millis(2));
            }
        });
        (peak, sampler)
    };
    let at = |t: Duration| {
        if let Some(wait) = (started + t).checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        process_cpu_time(pid)
    };
    let cpu0 = at(Duration::ZERO);
    let cpu1 = at(Duration::from_secs(1));
    let cpu_late = at(window - Duration::from_secs(1));
    let cpu_end = at(window);
    for t in threads {
        t.join().expect("churner");
    }
    peak_fds.1.join().expect("fd sampler");
    Churn {
        peak_fds: peak_fds.0.load(Ordering::Relaxed),
        served: served.load(Ordering::Relaxed),
        unserved: unserved.load(Ordering::Relaxed),
        cpu_first: cpu1 - cpu0,
        cpu_last: cpu_end - cpu_late,
        cpu_total: cpu_end - cpu0,
    }
}

/// SPEC, HTTP behaviour: "Running out of file descriptors must not spin the
/// loop, also while clients keep connecting and leaving."
///
/// The same churn (12 clients connecting, asking, leaving) runs for 4 s
/// against one server twice: first with its descriptor limit as started,
/// then with the soft limit lowered (prlimit) to 1 above what it has open,
/// so that accepting fails with EMFILE while clients keep arriving and
/// leaving. Out of descriptors, the server must use no more CPU than it did
/// serving everyone (1.2 times, plus 50 ms), its CPU use must not climb
/// from the first second to the last, and once the limit is restored new
/// clients are served again.
#[test]
fn running_out_of_descriptors_with_churn_does_not_spin() {
    let _serial = serial();
    let server = Server::start(&[]);
    let pid = server.pid();
    let window = Duration::from_secs(4);

    let free = churn(&server, window);
    eprintln!("with descriptors: {free:?}");
    assert!(
        free.served > 100 && free.unserved < free.served / 10,
        "the baseline churn was hardly served: {free:?}"
    );

    let base = open_fds(pid) as u64;
    let before = set_nofile_soft(pid, base + 1);
    let starved = churn(&server, window);
    // Measured before the limit is restored: a spinning loop keeps spinning.
    let idle_after = {
        let c0 = process_cpu_time(pid);
        thread::sleep(Duration::from_millis(500));
        process_cpu_time(pid) - c0
    };
    set_nofile_soft(pid, before.rlim_cur);
    eprintln!(
        "out of descriptors ({base} open, limit {}): {starved:?}; then idle {idle_after:?} in 500 ms",
        base + 1
    );

    assert!(
        starved.peak_fds as u64 > base,
        "the server never had all its {} descriptors in use: {starved:?}",
        base + 1
    );
    let allowed = free.cpu_total.mul_f64(1.2) + Duration::from_millis(50);
    assert!(
        starved.cpu_total <= allowed,
        "out of descriptors the server used {:?} of CPU in {window:?}, serving everyone {:?} \
         (allowed {allowed:?})",
        starved.cpu_total,
        free.cpu_total
    );
    let climb = starved.cpu_first.mul_f64(1.5) + Duration::from_millis(30);
    assert!(
        starved.cpu_last <= climb,
        "out of descriptors the server's CPU climbed from {:?} in the first second to {:?} in \
         the last",
        starved.cpu_first,
        starved.cpu_last
    );
    assert!(
        idle_after < Duration::from_millis(100),
        "after the churn, still out of descriptors, the idle server used {idle_after:?} of CPU \
         in 500 ms"
    );

    // Descriptors back: served again.
    let mut ok = None;
    let served = poll_until(secs(5.0), || {
        let mut c = Raw::connect(&server);
        c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        ok = c.try_read_response(secs(1.0)).map(|r| r.status);
        ok == Some(200)
    });
    assert!(
        served,
        "no /healthz served after the limit was restored: {ok:?}"
    );
}

// ---------------------------------------------------------------------------
// 4. Half-close.
// ---------------------------------------------------------------------------

/// Eight events of about 900 KB: a backlog of about 7 MB.
fn seven_mb_backlog(seed: usize) -> Vec<String> {
    (0..8).map(|i| json_event(900_000, seed + i)).collect()
}

/// Sends `request`, shuts down the sending side at once, and reads the
/// answer in reads of at most 64 KiB at about 40 MB/s, through a 64 KiB
/// receive window, so the server's writes hit `WouldBlock` many times.
fn half_close_and_read(server: &Server, request: &[u8]) -> Transfer {
    let mut c = connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(request);
    c.shutdown_write();
    read_answer(&mut c.stream, Some(40e6), None, secs(30.0))
}

/// SPEC, HTTP behaviour: "A client that shuts down its sending side after
/// its requests still gets in full every answer already owed to it (a
/// batch handed out, an error, a push's answer)."
///
/// An HTTP/1.0 client, and an HTTP/1.1 client sending `Connection: close`,
/// each ask for a 7 MB backlog and shut down their sending side at once;
/// each must receive the whole batch, byte for byte.
#[test]
fn a_client_that_half_closes_after_its_request_gets_the_whole_answer() {
    let _serial = serial();
    let server = Server::start(&[]);
    let events = seven_mb_backlog(0);
    push_all(&server, "hc", &events);
    let expected = batch_of(&events);

    let t = half_close_and_read(&server, &bget_now("hc", "h10", 0, ""));
    assert_whole(&t, &expected, "HTTP/1.0 half-closed");
    let t = half_close_and_read(&server, &bget_now("hc", "h11", 1, "Connection: close\r\n"));
    assert_whole(&t, &expected, "HTTP/1.1 Connection: close, half-closed");
}

/// SPEC, HTTP behaviour (as above): pipelined requests then a FIN: the
/// push's answer and the batch handed out are both owed, in full.
#[test]
fn a_pipelined_push_and_get_then_half_close_get_both_answers() {
    let _serial = serial();
    let server = Server::start(&[]);
    let mut events = seven_mb_backlog(20);
    push_all(&server, "hp", &events);
    let last = json_event(900_000, 99);
    let mut req = push_req("hp", last.as_bytes());
    req.extend_from_slice(&bget_now("hp", "g", 1, ""));
    let mut c = connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&req);
    c.shutdown_write();
    let mut carry = Vec::new();
    let pushed = read_answer_after(&mut c.stream, &mut carry, None, None, secs(10.0));
    let Some((status, body)) = pushed.answer else {
        panic!("push answer cut: {:?}", pushed.cut)
    };
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    events.push(last);
    let t = read_answer_after(&mut c.stream, &mut carry, Some(40e6), None, secs(30.0));
    assert_whole(&t, &batch_of(&events), "the batch behind a pipelined push");
}

/// SPEC, blocking-get rule 2: "When the client closes its connection (or
/// shuts down its sending side), drop the consumer at once and consume
/// nothing for it."
#[test]
fn a_parked_consumer_that_half_closes_is_dropped_and_consumes_nothing() {
    let server = Server::start(&[]);
    let c = park(&server, "hk", "g");
    wait_parked(&server, 1);
    c.shutdown_write();
    let mut parked = None;
    let dropped = poll_until(secs(1.0), || {
        parked = parked_gauge(&server);
        parked == Some(0)
    });
    assert!(
        dropped,
        "a half-closed parked consumer is still parked: {parked:?}"
    );
    assert_eq!(push(&server, "hk", "\"for the next one\""), 200);
    assert_eq!(take(&server, "hk", "g"), "[\"for the next one\"]");
}

// ---------------------------------------------------------------------------
// 5. Slow readers and stalled readers.
// ---------------------------------------------------------------------------

/// The idle timeout of the reader tests, in seconds.
const IDLE: f64 = 2.0;

/// A server with `--idle-timeout 2` and a 9 MB backlog under `slow`.
fn slow_reader_server() -> (Server, Vec<u8>) {
    let server = Server::start(&["--idle-timeout", &IDLE.to_string()]);
    let events: Vec<String> = (0..10).map(|i| json_event(900_000, 40 + i)).collect();
    push_all(&server, "slow", &events);
    (server, batch_of(&events))
}

/// SPEC, HTTP behaviour: "a client that reads its answer slowly is
/// disconnected only if it takes no byte for the idle timeout".
///
/// With `--idle-timeout 2`, a client reads a 9 MB batch at about 1.5 MB/s
/// through a 64 KiB receive window: the transfer takes about 6 s, three
/// idle timeouts, but every read takes bytes. It must get every byte.
#[test]
fn a_slow_but_steady_reader_gets_every_byte() {
    let _serial = serial();
    let (server, expected) = slow_reader_server();
    let mut c = connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&bget_now("slow", "g", 1, ""));
    let started = Instant::now();
    let t = read_answer(&mut c.stream, Some(1.5e6), None, secs(30.0));
    assert_whole(&t, &expected, "a reader at 1.5 MB/s with --idle-timeout 2");
    assert!(
        started.elapsed() > Duration::from_secs_f64(2.0 * IDLE),
        "the transfer took only {:?}: not longer than the idle timeout",
        started.elapsed()
    );
}

/// SPEC, HTTP behaviour (as above), the other side: a client that stops
/// reading is disconnected once it has taken no byte for the idle timeout,
/// not before. It reads steadily for 1.5 s (close to the idle timeout, so
/// a timer counted from the answer's start would fire too early), then
/// stops; the connection gauge, polled on a connection of its own, must
/// show it closed no sooner than 2 s after the last byte taken, and no
/// later than 3.5 s.
#[test]
fn a_reader_that_stops_is_disconnected_after_the_idle_timeout() {
    let _serial = serial();
    let (server, expected) = slow_reader_server();
    let mut gauge = Raw::connect(&server);
    assert_eq!(
        metric_on(&mut gauge, "event_syncer_connections_open"),
        Some(1)
    );
    let mut c = connect_small_rcvbuf(server.addr(), 64 * 1024);
    c.send(&bget_now("slow", "g", 1, ""));
    let t = read_answer(&mut c.stream, Some(1.5e6), Some(secs(1.5)), secs(10.0));
    assert_eq!(t.cut.as_deref(), Some("stopped"), "{t:?}");
    assert!(
        t.received > 1_000_000 && t.received < expected.len(),
        "read {} bytes before stopping",
        t.received
    );
    let stopped = t.last_byte;
    let mut open = None;
    let closed = poll_until(stopped + Duration::from_secs_f64(IDLE + 3.0), || {
        open = metric_on(&mut gauge, "event_syncer_connections_open");
        open == Some(1)
    });
    let after_stop = stopped.elapsed();
    assert!(
        closed,
        "a reader that stopped is still connected {after_stop:?} after its last byte ({open:?})"
    );
    assert!(
        after_stop >= Duration::from_secs_f64(IDLE - 0.05),
        "disconnected {after_stop:?} after its last byte, before the idle timeout of {IDLE} s"
    );
    assert!(
        after_stop <= Duration::from_secs_f64(IDLE + 1.5),
        "disconnected only {after_stop:?} after its last byte (idle timeout {IDLE} s)"
    );
}

// ---------------------------------------------------------------------------
// 6. Pipelining behind a parked get.
// ---------------------------------------------------------------------------

/// Size of every pipelined request: 64 bytes, so that 1,024 of them are
/// exactly 64 KiB and read boundaries at multiples of 64 KiB fall between
/// requests.
const PIPELINED: usize = 64;

/// The `i`th pipelined request and the status its answer must have: a mix
/// of `GET /healthz` (200 "ok") and an unknown path (404), so the order of
/// the answers is checked, not only their number.
fn pipelined(i: usize) -> (Vec<u8>, u16, bool) {
    match (i * 7 + i / 3) % 5 {
        1 | 3 => (padded_req("GET /nowhere HTTP/1.1", PIPELINED), 404, true),
        _ => (padded_req("GET /healthz HTTP/1.1", PIPELINED), 200, true),
    }
}

/// A blocking-get (with no events: it parks) of exactly 2 × `PIPELINED` bytes
/// followed by `count` pipelined requests, all written in one `write` (by a
/// thread, since the server may leave part of them in the kernel until the
/// get is answered); then another connection pushes an event. The get must
/// be answered with it, and every pipelined request after it, in order.
fn pipeline_behind_parked_get(count: usize) {
    let server = Server::start(&[]);
    let mut bytes = padded_req(
        &format!("GET {} HTTP/1.1", bget_path("pp", "g", None)),
        2 * PIPELINED,
    );
    let mut expected = Vec::new();
    for i in 0..count {
        let (req, status, has_body) = pipelined(i);
        bytes.extend_from_slice(&req);
        expected.push((status, has_body));
    }
    eprintln!(
        "{} bytes pipelined behind a parked get",
        bytes.len() - PIPELINED
    );
    let mut c = Raw::connect(&server);
    let mut writer = c.stream.try_clone().expect("clone");
    let wrote = thread::spawn(move || writer.write_all(&bytes).expect("pipelined write"));
    wait_parked(&server, 1);
    assert_eq!(push(&server, "pp", "\"wake\""), 200);

    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "[\"wake\"]"));
    for (i, (status, has_body)) in expected.iter().enumerate() {
        let Some(r) = c.try_read_response(secs(5.0)) else {
            panic!("pipelined request {i} of {count} behind the parked get was never answered")
        };
        assert_eq!(r.status, *status, "answer {i} of {count} out of order");
        if *has_body && *status == 200 {
            assert_eq!(r.text(), "ok", "answer {i}");
        }
    }
    wrote.join().expect("writer");
}

/// SPEC, HTTP behaviour: "Pipelined requests are answered in order, also
/// when one of them is a parked blocking-get (the ones behind it wait for
/// it, and are all answered after it, however many bytes they take)."
/// 2,048 requests of 64 bytes (128 KiB) behind the parked get.
#[test]
fn two_thousand_requests_pipelined_behind_a_parked_get_are_all_answered() {
    pipeline_behind_parked_get(2048);
}

/// As above, with exactly 64 KiB pipelined behind the parked get (1,024
/// requests of 64 bytes): the read-boundary edge.
#[test]
fn exactly_64_kib_pipelined_behind_a_parked_get_is_all_answered() {
    pipeline_behind_parked_get(1024);
}

/// Writes `flood` to `c` without blocking until the socket takes no more
/// for 200 ms (or all is written); returns the bytes written.
fn write_what_it_takes(c: &mut Raw, flood: &[u8]) -> usize {
    c.stream.set_nonblocking(true).expect("nonblocking");
    let mut written = 0;
    let mut stuck_since = None;
    while written < flood.len() {
        match c.stream.write(&flood[written..]) {
            Ok(n) => {
                written += n;
                stuck_since = None;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *stuck_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(200) {
                    break;
                }
                thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("flood write failed after {written} bytes: {e}"),
        }
    }
    c.stream.set_nonblocking(false).expect("blocking");
    written
}

/// SPEC, blocking-get rule 2: "When the client closes its connection ...,
/// drop the consumer at once and consume nothing for it", also with a
/// pipelined flood behind it that the server has not read.
///
/// Two hang-ups of a parked get with more than 128 KiB pipelined behind it:
/// a close (FIN) once every byte has left the client (144 KiB fits in the
/// server's buffers; a FIN queued behind bytes the server has not taken
/// could never reach it), and a crash (RST) with 1 MiB written. Each time
/// the parked gauge must drop to 0 within 1 s, and a later push goes to the
/// next consumer of the group, not to the one that left.
#[test]
fn a_parked_get_with_a_pipelined_flood_that_hangs_up_is_dropped_at_once() {
    let server = Server::start(&[]);
    let flood_of = |bytes: usize| -> Vec<u8> {
        (0..bytes / PIPELINED)
            .flat_map(|i| pipelined(i).0)
            .collect()
    };
    for (round, (flood_len, crash)) in [(144 * 1024, false), (1 << 20, true)]
        .into_iter()
        .enumerate()
    {
        let mut c = park(&server, "pf", "g");
        wait_parked(&server, 1);
        let written = write_what_it_takes(&mut c, &flood_of(flood_len));
        assert!(
            written > 128 * 1024,
            "round {round}: only {written} bytes of flood written"
        );
        if crash {
            c.reset();
        } else {
            let all_sent = poll_until(secs(2.0), || unsent_bytes(&c.stream) == 0);
            if !all_sent {
                // The server's buffers are smaller than this kernel's
                // default: a FIN could not reach it, so this round proves
                // nothing. Say so, and go on to the crash.
                eprintln!(
                    "!!! round {round} SKIPPED: {} of {written} flood bytes never left the \
                     client, so its FIN could not reach the server",
                    unsent_bytes(&c.stream)
                );
                c.reset();
                poll_until(secs(2.0), || parked_gauge(&server) == Some(0));
                continue;
            }
            drop(c);
        }
        let mut parked = None;
        let dropped = poll_until(secs(1.0), || {
            parked = parked_gauge(&server);
            parked == Some(0)
        });
        assert!(
            dropped,
            "round {round} ({}): the parked get of a client that hung up is still parked \
             1 s later: {parked:?}",
            if crash {
                "RST after 1 MiB"
            } else {
                "FIN after 144 KiB"
            }
        );
        let mut next = park(&server, "pf", "g");
        wait_parked(&server, 1);
        let event = format!("\"event {round}\"");
        assert_eq!(push(&server, "pf", &event), 200);
        let r = next.read_response(secs(2.0));
        assert_eq!(
            (r.status, r.text()),
            (200, format!("[{event}]")),
            "round {round}: the next consumer did not get the event"
        );
    }
}

// ---------------------------------------------------------------------------
// 7. A huge descriptor limit.
// ---------------------------------------------------------------------------

const NR_OPEN: &str = "/proc/sys/fs/nr_open";
/// The largest `fs.nr_open` Linux accepts (`INT_MAX` rounded down to a
/// multiple of `BITS_PER_LONG`, minus its slack).
const HUGE_NOFILE: u64 = 1_073_741_816;
/// SPEC, command line: `--max-connections` defaults to "what the fd limit
/// allows, at most 1,000,000".
const MAX_CONNECTIONS_CAP: &str = "1000000";

/// Restores `fs.nr_open` when dropped, also when the test panics.
struct NrOpenGuard {
    old: String,
}

impl Drop for NrOpenGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(NR_OPEN, &self.old) {
            eprintln!(
                "!!! could not restore {NR_OPEN} to {}: {e}",
                self.old.trim()
            );
        }
    }
}

/// The server with its descriptor limit (soft and hard) set to `nofile`
/// between fork and exec.
fn start_with_nofile(nofile: u64) -> Server {
    Server::from_command(command_with_nofile(&["--listen", "127.0.0.1:0"], nofile))
}

/// Whether this process may raise a hard resource limit
/// (`CAP_SYS_RESOURCE`, bit 24 of the effective capabilities): root in a
/// container often may not.
fn may_raise_hard_limits() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// Starts under `nofile` and checks what SPEC's command-line table asks:
/// the default is capped at 1,000,000 connections (when `capped`: the
/// limit is above it), and memory is not
/// reserved in proportion to it (RSS under 64 MiB), and it serves.
fn assert_starts_small_under(nofile: u64, capped: bool) {
    let server = start_with_nofile(nofile);
    let line = server.startup_line();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).expect("limits");
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(&nofile.to_string())),
        "the child's limit is not {nofile}:\n{limits}"
    );
    let setting = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("max_connections="))
        .unwrap_or_else(|| panic!("no max_connections= in {line:?}"));
    if capped {
        assert_eq!(
            setting, MAX_CONNECTIONS_CAP,
            "with a descriptor limit of {nofile}: {line}"
        );
    }
    let rss = rss_bytes(server.pid());
    assert!(
        rss < 64 * MIB,
        "RSS is {rss} bytes at start with a descriptor limit of {nofile}"
    );
    assert_eq!(get(&server, "/healthz"), (200, "ok".to_string()));
}

/// SPEC, command line: `--max-connections` defaults to "what the fd limit
/// allows, at most 1,000,000", and (push section) memory is bounded by the
/// memory limit plus a fixed overhead, so nothing may be reserved in
/// proportion to the connection limit.
///
/// Under a descriptor limit of 1,073,741,816 (which needs `fs.nr_open`
/// raised: done if root, restored after), and under the default `nr_open`
/// of 1,048,576, the server must start, say `max_connections=1000000`, and
/// stay under 64 MiB of RSS.
#[test]
fn a_huge_descriptor_limit_does_not_abort_the_start() {
    let _serial = serial();
    // SAFETY: geteuid has no memory effects.
    let root = unsafe { libc::geteuid() } == 0;
    if !may_raise_hard_limits() {
        let mut hard = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct we pass.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
            0
        );
        eprintln!(
            "\n!!! SKIPPED both cases ({HUGE_NOFILE} and 1,048,576 descriptors): this process \
             (euid root: {root}) lacks CAP_SYS_RESOURCE, so no child can get a hard limit \
             above {}.\n!!! Only the start under the current limit is checked.\n",
            hard.rlim_max
        );
        assert_starts_small_under(hard.rlim_max, false);
        return;
    }
    let old = std::fs::read_to_string(NR_OPEN).expect("read nr_open");
    let huge = if !root {
        Err("not running as root".to_string())
    } else {
        let guard = NrOpenGuard { old: old.clone() };
        match std::fs::write(NR_OPEN, HUGE_NOFILE.to_string()) {
            Ok(()) => Ok(guard),
            Err(e) => {
                drop(guard);
                Err(format!("cannot write {NR_OPEN}: {e}"))
            }
        }
    };
    match huge {
        Ok(guard) => {
            assert_starts_small_under(HUGE_NOFILE, true);
            drop(guard);
        }
        Err(why) => eprintln!(
            "\n!!! SKIPPED the {HUGE_NOFILE}-descriptor case: {why}.\n!!! Run as root with a \
             writable {NR_OPEN} to check it.\n"
        ),
    }
    if root {
        assert_starts_small_under(1 << 20, true);
    } else {
        eprintln!("!!! SKIPPED the 1,048,576-descriptor case too: raising a hard limit needs root");
    }
    assert_eq!(std::fs::read_to_string(NR_OPEN).expect("nr_open"), old);
}

// ---------------------------------------------------------------------------
// Shutdown.
// ---------------------------------------------------------------------------

/// SPEC, life cycle: "`SIGINT`/`SIGTERM`: stop accepting, answer every
/// parked consumer `[]` without consuming anything, finish pending writes,
/// exit 0 within a bounded drain time." A connection whose last answer is
/// written must not be reset before its client has read it: closing a
/// socket with unread input sends RST, which destroys what is still in
/// flight.
///
/// The client pipelines a blocking-get with a 7 MB backlog and 256 KiB of
/// further requests behind it, reads nothing until SIGTERM, then reads
/// through a 32 KiB window: it must get the whole batch, and no reset
/// before it.
#[test]
fn shutdown_does_not_reset_a_connection_before_its_answer_is_read() {
    let _serial = serial();
    let mut server = Server::start(&[]);
    let events = seven_mb_backlog(60);
    push_all(&server, "sd", &events);
    let mut c = connect_small_rcvbuf(server.addr(), 32 * 1024);
    let mut bytes = bget_now("sd", "g", 1, "");
    for i in 0..4096 {
        bytes.extend_from_slice(&pipelined(i).0);
    }
    let written = write_what_it_takes(&mut c, &bytes);
    assert!(written > 128 * 1024, "only {written} bytes written");
    fence(&server);
    server.sigterm();
    let t = read_answer(&mut c.stream, None, None, secs(20.0));
    assert_whole(&t, &batch_of(&events), "the batch owed at SIGTERM");
    drop(c);
    let status = server.wait_exit(secs(15.0));
    assert!(
        status.is_some_and(|s| s.success()),
        "exit after SIGTERM: {status:?}"
    );
}

// ---------------------------------------------------------------------------
// The hostile soak.
// ---------------------------------------------------------------------------

/// The soak's memory limit.
const SOAK_MEMORY: u64 = 64 * MIB;
/// The soak's event TTL, in seconds.
const SOAK_TTL: f64 = 2.0;
/// How long the hostile traffic lasts.
const SOAK_TIME: Duration = Duration::from_secs(10);
/// Parked consumers held open at once by the crowd.
const CROWD: usize = 1500;
/// Client threads that open non-readers, and non-readers each holds at once.
const NON_READER_THREADS: usize = 8;
const NON_READERS_EACH: usize = 10;
/// An upper bound on the connections the soak has open at once: the crowd,
/// the non-readers, and a few dozen other clients.
const SOAK_CONNECTIONS: u64 = (CROWD + NON_READER_THREADS * NON_READERS_EACH + 100) as u64;
/// Well-behaved keys, and consumers of each of their two groups.
const GOOD_KEYS: usize = 3;
const CONSUMERS_PER_GROUP: usize = 2;

/// A big event under `fat` that says which it is, so a batch of them can be
/// checked byte for byte.
fn fat_event(n: usize) -> String {
    format!("{{\"seed\":{n},\"pad\":{}}}", json_event(600_000, n))
}

/// Checks a batch of fat events: a JSON array of events each exactly as
/// [`fat_event`] made it, in increasing order. Returns how many.
fn check_fat_batch(body: &[u8], what: &str) -> usize {
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{what}: batch of {} bytes is not JSON: {e}", body.len()));
    let items = v
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not an array"));
    let mut last = None;
    for item in items {
        let seed = item["seed"].as_u64().expect("seed") as usize;
        let pad = serde_json::to_string(&item["pad"]).expect("pad");
        assert!(
            pad == json_event(600_000, seed),
            "{what}: event {seed} altered"
        );
        assert!(
            last.is_none_or(|l| l < seed),
            "{what}: {seed} after {last:?}"
        );
        last = Some(seed);
    }
    items.len()
}

/// Runs `f` on a new thread until `stop`; returns how often it ran, or the
/// message of the first assertion that failed in it (the soak goes on, so
/// that every check is made and reported together).
fn looping(
    stop: &Arc<AtomicBool>,
    mut f: impl FnMut() + Send + 'static,
) -> thread::JoinHandle<Result<u64, String>> {
    let stop = Arc::clone(stop);
    thread::spawn(move || {
        let mut runs = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut f)) {
                return Err(panic_text(&*e));
            }
            runs += 1;
        }
        Ok(runs)
    })
}

/// The message of a caught panic.
fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".to_string())
}

/// One consumer of a well-behaved group: takes batches until the group has
/// received all `total` events (once `total` is known) or `give_up`; checks
/// its own batches are in push order and records what it got.
fn good_consumer(
    server_url: String,
    key: String,
    group: String,
    seen: Arc<Mutex<Vec<u64>>>,
    total: Arc<AtomicU64>,
    give_up: Arc<Mutex<Option<Instant>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let a = agent();
        let url = format!("{server_url}{}", bget_path(&key, &group, Some("1")));
        let mut last: Option<u64> = None;
        loop {
            let done = total.load(Ordering::Relaxed);
            if done != u64::MAX && seen.lock().expect("seen").len() as u64 >= done {
                return;
            }
            if give_up
                .lock()
                .expect("give up")
                .is_some_and(|g| Instant::now() > g)
            {
                return;
            }
            let (status, body, _) = finish(a.get(&url).call());
            assert_eq!(status, 200, "{key}/{group}: {body}");
            let batch: Vec<serde_json::Value> = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{key}/{group}: {e}: {body}"));
            let mut seen = seen.lock().expect("seen");
            for e in batch {
                let n = e["n"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{key}/{group}: {e}"));
                assert_eq!(e["k"].as_str(), Some(key.as_str()), "{key}/{group}: {e}");
                assert!(
                    last.is_none_or(|l| l < n),
                    "{key}/{group}: {n} after {last:?}: out of order or repeated"
                );
                last = Some(n);
                seen.push(n);
            }
        }
    })
}

/// SPEC, as a whole, against clients that misbehave at once: non-readers
/// (push section: memory stays within the limit plus a fixed overhead plus
/// 64 KiB per connection), slow readers and half-closers (HTTP behaviour:
/// they get their answers in full), chunk-extension floods and pipeline
/// floods (work in proportion to bytes; a slow reader never blocks anyone
/// else), resets mid-request (nothing stored), next to ordinary traffic:
/// well-behaved groups whose events must arrive exactly once and in order
/// (blocking-get rule 2), a crowd of 1,500 parked consumers woken by one
/// push, and a bystander whose `/healthz` must stay under 250 ms. Then
/// every gauge returns to idle: one connection (the one asking), nothing
/// parked, and after the TTL no events and no bytes.
#[test]
fn hostile_soak() {
    let _serial = serial();
    let server = Arc::new(Server::start(&[
        "--event-ttl",
        &SOAK_TTL.to_string(),
        "--max-memory",
        &SOAK_MEMORY.to_string(),
    ]));
    let addr = server.addr();
    let pid = server.pid();
    let rss_at_start = rss_bytes(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let probe = bystander(addr, Arc::clone(&stop));
    let rss = rss_sampler(pid, Arc::clone(&stop));
    let mut loops = Vec::new();

    // A steady backlog of about 6 MB under `fat`: 600 KB every 200 ms.
    {
        let server = Arc::clone(&server);
        let a = agent();
        let mut n = 0;
        loops.push(looping(&stop, move || {
            push_with(&a, &server, "fat", fat_event(n));
            n += 1;
            thread::sleep(Duration::from_millis(200));
        }));
    }
    let fat_groups = Arc::new(AtomicUsize::new(0));
    let new_fat_group = {
        let g = Arc::clone(&fat_groups);
        move || format!("f{}", g.fetch_add(1, Ordering::Relaxed))
    };
    thread::sleep(Duration::from_millis(500)); // lets the backlog begin; not a correctness wait

    // Non-readers: each asks for the fat backlog and never reads; held for
    // a second, then dropped (half reset, half closed).
    for _ in 0..NON_READER_THREADS {
        let group = new_fat_group.clone();
        let mut round = 0;
        loops.push(looping(&stop, move || {
            let held: Vec<Raw> = (0..NON_READERS_EACH)
                .map(|_| {
                    let mut c = connect_small_rcvbuf(addr, 4096);
                    c.send_lossy(&bget_now("fat", &group(), 1, ""));
                    c
                })
                .collect();
            thread::sleep(Duration::from_secs(1));
            for c in held {
                if round % 2 == 0 {
                    c.reset();
                }
            }
            round += 1;
        }));
    }
    // Slow readers: 2 MB/s through a 64 KiB window; every byte must come.
    let fat_batches = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (group, batches) = (new_fat_group.clone(), Arc::clone(&fat_batches));
        loops.push(looping(&stop, move || {
            let mut c = connect_small_rcvbuf(addr, 64 * 1024);
            c.send(&bget_now("fat", &group(), 1, ""));
            let t = read_answer(&mut c.stream, Some(2e6), None, secs(20.0));
            let (status, body) = t
                .answer
                .unwrap_or_else(|| panic!("slow reader cut: {:?}", t.cut));
            assert_eq!(status, 200);
            batches.fetch_add(check_fat_batch(&body, "slow reader"), Ordering::Relaxed);
        }));
    }
    // Half-closers: HTTP/1.0, FIN right after the request.
    {
        let (group, batches) = (new_fat_group.clone(), Arc::clone(&fat_batches));
        loops.push(looping(&stop, move || {
            let mut c = connect_small_rcvbuf(addr, 64 * 1024);
            c.send(&bget_now("fat", &group(), 0, ""));
            c.shutdown_write();
            let t = read_answer(&mut c.stream, None, None, secs(20.0));
            let (status, body) = t
                .answer
                .unwrap_or_else(|| panic!("half-closer cut: {:?}", t.cut));
            assert_eq!(status, 200);
            batches.fetch_add(check_fat_batch(&body, "half-closer"), Ordering::Relaxed);
        }));
    }
    // Chunk-extension floods, each stopped at 256 KiB or an answer.
    for _ in 0..2 {
        loops.push(looping(&stop, move || {
            let mut c = Raw::connect_addr(addr);
            c.send_lossy(CHUNKED_PUSH);
            let chunk = extension_chunk();
            let mut flood = Vec::new();
            while flood.len() < 256 * 1024 {
                flood.extend_from_slice(&chunk);
            }
            write_what_it_takes(&mut c, &flood);
            let _ = c.try_read_response(secs(2.0));
        }));
    }
    // Pipeline floods behind a parked get, then a crash.
    {
        let mut i = 0;
        loops.push(looping(&stop, move || {
            let mut c = Raw::connect_addr(addr);
            let mut bytes = get_req(&bget_path("void", &format!("v{i}"), None));
            for j in 0..3000 {
                bytes.extend_from_slice(&pipelined(j).0);
            }
            write_what_it_takes(&mut c, &bytes);
            c.reset();
            i += 1;
            thread::sleep(Duration::from_millis(50));
        }));
    }
    // Resets mid-request: half a push into a well-behaved key, then RST.
    loops.push(looping(&stop, move || {
        let mut c = Raw::connect_addr(addr);
        c.send_lossy(b"POST /push?key=good0 HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n{\"k\":\"good0\",\"n\":");
        c.reset();
        thread::sleep(Duration::from_millis(10));
    }));

    // Well-behaved groups.
    let give_up: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut good = Vec::new();
    let mut consumers = Vec::new();
    for k in 0..GOOD_KEYS {
        let key = format!("good{k}");
        let total = Arc::new(AtomicU64::new(u64::MAX));
        for g in 0..2 {
            let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
            for _ in 0..CONSUMERS_PER_GROUP {
                consumers.push(good_consumer(
                    server.url(""),
                    key.clone(),
                    format!("g{g}"),
                    Arc::clone(&seen),
                    Arc::clone(&total),
                    Arc::clone(&give_up),
                ));
            }
            good.push((key.clone(), g, seen, Arc::clone(&total)));
        }
        let (server, stop, total) = (Arc::clone(&server), Arc::clone(&stop), Arc::clone(&total));
        loops.push(thread::spawn(move || {
            let a = agent();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let event = format!("{{\"k\":\"{key}\",\"n\":{n}}}");
                let (status, body) = push_with(&a, &server, &key, &event);
                match status {
                    200 => n += 1,
                    // Full: try again (nothing was stored).
                    503 => thread::sleep(Duration::from_millis(20)),
                    _ => panic!("push {key} {n}: {status} {body}"),
                }
                thread::sleep(Duration::from_millis(5));
            }
            total.store(n, Ordering::Relaxed);
            Ok(n)
        }));
    }

    // The crowd: parked consumers of one key, each its own group, woken by
    // one push halfway through.
    let started = Instant::now();
    let mut crowd: Vec<Raw> = (0..CROWD)
        .map(|i| {
            let mut c = Raw::connect_addr(addr);
            c.send(&get_req(&bget_path("crowd", &format!("c{i}"), None)));
            c
        })
        .collect();
    fence(&server);
    if let Some(wait) = (started + SOAK_TIME / 2).checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
    assert_eq!(push(&server, "crowd", "\"wake up\""), 200);
    for (i, c) in crowd.iter_mut().enumerate() {
        let r = c.read_response(secs(10.0));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "[\"wake up\"]"),
            "crowd consumer {i}"
        );
    }
    drop(crowd);
    if let Some(wait) = (started + SOAK_TIME).checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }

    // Wind down: the well-behaved consumers get 5 s to catch up.
    *give_up.lock().expect("give up") = Some(after(Duration::from_secs(5)));
    stop.store(true, Ordering::Relaxed);
    let mut faults = Vec::new();
    let mut runs = Vec::new();
    for t in loops {
        match t.join().unwrap_or_else(|e| Err(panic_text(&*e))) {
            Ok(n) => runs.push(n),
            Err(e) => faults.push(format!("a client failed: {e}")),
        }
    }
    for c in consumers {
        if let Err(e) = c.join() {
            faults.push(format!(
                "a well-behaved consumer failed: {}",
                panic_text(&*e)
            ));
        }
    }
    let (calls, worst) = probe.join().expect("bystander");
    let peak = rss.join().expect("rss sampler");
    eprintln!(
        "soak: runs per client {runs:?}; {} fat events delivered to slow readers and \
         half-closers; bystander {calls} calls, worst {worst:?}; RSS {rss_at_start} -> peak {peak}",
        fat_batches.load(Ordering::Relaxed)
    );

    for (key, g, seen, total) in &good {
        let total = total.load(Ordering::Relaxed);
        let mut seen = seen.lock().expect("seen").clone();
        seen.sort_unstable();
        let dups = seen.windows(2).filter(|w| w[0] == w[1]).count();
        seen.dedup();
        if total <= 100 {
            faults.push(format!("{key}: only {total} events pushed"));
        }
        if dups > 0 {
            faults.push(format!("{key}/g{g}: {dups} events delivered twice"));
        }
        if seen.len() as u64 != total {
            faults.push(format!(
                "{key}/g{g}: {} of {total} events delivered",
                seen.len()
            ));
        }
    }
    if fat_batches.load(Ordering::Relaxed) == 0 {
        faults.push("no slow reader or half-closer got any fat event".to_string());
    }
    let bound = rss_bound(rss_at_start, SOAK_MEMORY, SOAK_CONNECTIONS);
    if peak >= bound {
        faults.push(format!(
            "RSS peaked at {peak} bytes; SPEC bound {bound} (start {rss_at_start} + \
             {SOAK_MEMORY} + 64 KiB x {SOAK_CONNECTIONS} connections + 16 MiB)"
        ));
    }
    if worst >= BYSTANDER_LATENCY {
        faults.push(format!(
            "a bystander's /healthz took {worst:?} during the soak ({calls} calls)"
        ));
    }

    // Back to idle.
    let mut gauge = Raw::connect(&server);
    let mut last = Vec::new();
    let idle = poll_until(after(Duration::from_secs_f64(SOAK_TTL + 5.0)), || {
        last = [
            "event_syncer_connections_open",
            "event_syncer_consumers_parked",
            "event_syncer_events_live",
            "event_syncer_event_bytes_live",
        ]
        .iter()
        .map(|m| metric_on(&mut gauge, m))
        .collect();
        last == [Some(1), Some(0), Some(0), Some(0)]
    });
    if !idle {
        faults.push(format!(
            "gauges after the soak (connections, parked, events, bytes): {last:?}"
        ));
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}
