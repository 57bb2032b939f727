//! Every limit of SPEC.md's "HTTP behaviour" and push sections, crossed on
//! a real server: request heads over 8 KiB, bodies over `--max-body`, live
//! bytes over `--max-memory`, connections over `--max-connections` (and a
//! low file-descriptor limit), slow heads and idle keep-alives, and a client
//! that pipelines without reading.
//!
//! Each test crosses its limit, checks what the offending client sees, and
//! then proves the server still serves everyone else: a limit that protects
//! the server by breaking it is no protection. Timing claims are checked in
//! both directions where the SPEC makes them (not before the timeout, and
//! not long after), always against deadlines, never against sleeps.

mod common;

use common::*;
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The largest request head the server must accept, in bytes, final CRLFCRLF
/// included (SPEC: "request head over 8 KiB `431`").
const MAX_HEAD: usize = 8 * 1024;

/// A `GET /healthz` head of exactly `len` bytes, padded with an `X-Pad`
/// header; `terminated` false leaves off the final blank line, so the head
/// never ends.
fn head_of_len(len: usize, terminated: bool) -> Vec<u8> {
    let prefix = "GET /healthz HTTP/1.1\r\nHost: test\r\nX-Pad: ";
    let suffix = if terminated { "\r\n\r\n" } else { "\r\n" };
    let pad = len - prefix.len() - suffix.len();
    let head = format!("{prefix}{}{suffix}", "p".repeat(pad));
    assert_eq!(head.len(), len);
    head.into_bytes()
}

/// A JSON string of exactly `len` bytes, quotes included.
fn json_string(len: usize) -> String {
    format!("\"{}\"", "a".repeat(len - 2))
}

/// Proves the server still answers a new client at once.
fn assert_serves_others(server: &Server) {
    let started = Instant::now();
    let mut c = Raw::connect(server);
    c.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a bystander's /healthz took {:?}",
        started.elapsed()
    );
}

/// Reads one response and asserts it is the given error status with a JSON
/// error body, then that the server closes the connection.
fn assert_error_then_close(c: &mut Raw, status: u16) {
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, status, "{:?} {}", r.head, r.text());
    assert_json_error(&r.body);
    let rest = c.read_until_close(secs(5.0));
    assert!(
        rest.is_empty(),
        "bytes after the {status}: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

// ---------------------------------------------------------------------------
// Request heads.
// ---------------------------------------------------------------------------

/// A complete head one byte over the limit: `431`, then the server closes.
#[test]
fn a_head_over_8_kib_gets_431_then_close() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&head_of_len(MAX_HEAD + 1, true));
    assert_error_then_close(&mut c, 431);
    assert_serves_others(&server);
}

/// A head that never ends is refused once it passes the limit, without
/// waiting for an end that will not come.
#[test]
fn an_endless_head_gets_431_once_past_8_kib() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&head_of_len(MAX_HEAD + 100, false));
    assert_error_then_close(&mut c, 431);
    assert_serves_others(&server);
}

/// Exactly 8192 bytes, final CRLFCRLF included, is a normal request, and the
/// connection stays usable after it.
#[test]
fn a_head_of_exactly_8_kib_is_served() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&head_of_len(MAX_HEAD, true));
    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    c.send(&get_req("/healthz"));
    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

/// The limit holds for a head that arrives in many small reads: the server
/// must count what it has buffered, not what one read brought.
#[test]
fn a_head_sent_slowly_past_8_kib_gets_431() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    let head = head_of_len(MAX_HEAD + 512, false);
    for piece in head.chunks(512) {
        c.send(piece);
        // Spread the pieces over separate reads on the server; nothing
        // depends on how they are actually grouped.
        thread::sleep(Duration::from_millis(5));
    }
    assert_error_then_close(&mut c, 431);
    assert_serves_others(&server);
}

// ---------------------------------------------------------------------------
// Bodies.
// ---------------------------------------------------------------------------

const MAX_BODY: usize = 1000;

fn body_server() -> Server {
    Server::start(&["--max-body", &MAX_BODY.to_string()])
}

/// `Content-Length: 1001` is refused from the head alone: the client never
/// sends the body, and still gets its `413`. Nothing is stored.
#[test]
fn a_content_length_over_max_body_gets_413_before_the_body_is_sent() {
    let server = body_server();
    let mut c = Raw::connect(&server);
    c.send(
        format!(
            "POST /push?key=big HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        )
        .as_bytes(),
    );
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_json_error(&r.body);
    assert_eq!(take(&server, "big", "g"), "[]");
    assert_serves_others(&server);
}

/// With `Expect: 100-continue` and a length over the limit, the first and
/// only answer is `413`: no `100 Continue` invites a body that would be
/// refused. Under the limit, the same request does get `100` first.
#[test]
fn expect_100_continue_over_max_body_gets_413_and_no_100() {
    let server = body_server();
    let head = |len: usize| {
        format!(
            "POST /push?key=big HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n\
             Expect: 100-continue\r\n\r\n"
        )
        .into_bytes()
    };
    let mut c = Raw::connect(&server);
    c.send(&head(MAX_BODY + 1));
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 413, "first answer: {:?}", r.head);
    assert_json_error(&r.body);
    assert_eq!(take(&server, "big", "g"), "[]");

    // The control: at the limit the client is invited to send.
    let mut c = Raw::connect(&server);
    c.send(&head(MAX_BODY));
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 100, "first answer: {:?}", r.head);
    c.send(json_string(MAX_BODY).as_bytes());
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_serves_others(&server);
}

/// A chunked body is refused as soon as its running total passes the limit,
/// before the last chunk: the client never finishes it. Nothing is stored.
#[test]
fn a_chunked_body_past_max_body_gets_413_as_it_arrives() {
    let server = body_server();
    let mut c = Raw::connect(&server);
    c.send(b"POST /push?key=chunky HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n");
    // A 1500-byte JSON string in 300-byte chunks: 900 bytes are under the
    // limit and must not be refused; the fourth chunk takes it to 1200.
    let body = json_string(1500);
    let chunk = |part: &[u8]| {
        let mut out = format!("{:X}\r\n", part.len()).into_bytes();
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
        out
    };
    let parts: Vec<&[u8]> = body.as_bytes().chunks(300).collect();
    for part in &parts[..3] {
        c.send(&chunk(part));
    }
    c.assert_silent_until(secs(0.3));
    c.send(&chunk(parts[3]));
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_json_error(&r.body);
    assert_eq!(take(&server, "chunky", "g"), "[]");
    assert_serves_others(&server);
}

/// Exactly `--max-body` bytes is accepted, sent with a length or chunked.
#[test]
fn a_body_of_exactly_max_body_is_accepted() {
    let server = body_server();
    let body = json_string(MAX_BODY);
    let mut c = Raw::connect(&server);
    c.send(&push_req("exact", body.as_bytes()));
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 200, "{}", r.text());

    let mut chunked =
        b"POST /push?key=exact HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    for part in body.as_bytes().chunks(250) {
        chunked.extend_from_slice(format!("{:X}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    c.send(&chunked);
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 200, "{}", r.text());

    assert_eq!(take(&server, "exact", "g"), format!("[{body},{body}]"));
}

// ---------------------------------------------------------------------------
// Memory.
// ---------------------------------------------------------------------------

/// Pushes fill `--max-memory` until a `503` with `Retry-After`; every event
/// stored before it is still there, in order; the store stays full until the
/// events expire, and then takes pushes again.
#[test]
fn pushes_past_max_memory_get_503_and_room_returns_after_the_ttl() {
    // The TTL is short enough to wait for, long enough that the check that
    // nothing was dropped runs well before anything expires.
    const TTL: f64 = 3.0;
    let server = Server::start(&["--max-memory", "4096", "--event-ttl", "3"]);
    let agent = agent();
    let url = server.url("/push?key=full");
    let push = |body: &str| finish(agent.post(&url).send(body.as_bytes()));
    let first_push = Instant::now();
    // Every event the same size, so that once one is refused, all are.
    let event = |i: usize| format!(r#"{{"i":"{i:04}","pad":"{}"}}"#, "x".repeat(80));
    let mut stored = Vec::new();
    let mut refusal = None;
    for i in 0..1000 {
        let body = event(i);
        let (status, text, headers) = push(&body);
        match status {
            200 => stored.push(body),
            503 => {
                refusal = Some((text, headers));
                break;
            }
            other => panic!("push {i}: unexpected {other} {text}"),
        }
    }
    let (text, headers) = refusal.expect("no 503 after 1000 pushes of ~100 bytes into 4096");
    assert_json_error(text.as_bytes());
    let retry = headers.get("retry-after").expect("503 without Retry-After");
    assert!(
        retry.trim().parse::<u64>().is_ok(),
        "Retry-After is not delay-seconds: {retry:?}"
    );
    assert!(!stored.is_empty(), "the very first push was refused");
    assert!(
        server.wait_for_log("refusing pushes", secs(5.0)).is_some(),
        "no warning that the store is full"
    );

    // Still full: reading does not free anything (other groups may read the
    // events), and a refused push stored nothing.
    let (status, text, _) = push(&event(9999));
    assert_eq!(status, 503, "{text}");

    let (status, body) = bget(&server, "full", "reader", Some("0"));
    assert_eq!(status, 200);
    assert!(
        first_push.elapsed() < Duration::from_secs_f64(TTL),
        "this machine took {:?} to fill 4 KiB: the events may have expired, so \
         the no-loss check below would be meaningless",
        first_push.elapsed()
    );
    let got: Vec<serde_json::Value> = serde_json::from_str(&body).expect("a JSON array");
    let want: Vec<serde_json::Value> = stored
        .iter()
        .map(|s| serde_json::from_str(s).expect("pushed JSON"))
        .collect();
    assert_eq!(got, want, "a full store lost or reordered events");
    assert_serves_others(&server);

    // Expiry frees room: within the TTL plus SPEC's 1 s, plus slack.
    let deadline = after(Duration::from_secs_f64(TTL + 1.0 + 3.0));
    let mut last = (0, String::new());
    let recovered = poll_until(deadline, || {
        let (status, text, _) = push(&event(10_000));
        last = (status, text);
        last.0 == 200
    });
    assert!(recovered, "still refused after the TTL: {last:?}");
    assert!(
        first_push.elapsed() >= Duration::from_secs_f64(TTL),
        "room came back after {:?}, before any event had expired",
        first_push.elapsed()
    );
    let body = take(&server, "full", "reader");
    let got: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let want: serde_json::Value =
        serde_json::from_str(&format!("[{}]", event(10_000))).expect("JSON");
    assert_eq!(
        got, want,
        "the reader should see only the event pushed after the expiry"
    );
}

// ---------------------------------------------------------------------------
// Connections.
// ---------------------------------------------------------------------------

/// Sends `/healthz` on a keep-alive connection and expects `200 ok`.
fn healthz_on(c: &mut Raw) {
    c.send(&get_req("/healthz"));
    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

/// Whether the server closes `c` without answering anything by `deadline`.
fn closed_unanswered(c: &mut Raw, deadline: Instant) -> bool {
    c.try_read_response(deadline).is_none() && c.saw_eof()
}

/// Connects and asks for `/healthz`, writing without panicking if the server
/// has already closed (a refused connection): the `200` if one comes.
fn try_healthz(addr: SocketAddr) -> Option<(Raw, Response)> {
    let mut c = Raw::connect_addr(addr);
    let _ = c.stream.write_all(&get_req("/healthz"));
    let r = c.try_read_response(secs(5.0))?;
    Some((c, r))
}

/// Past `--max-connections` a new connection is closed at once, unanswered,
/// while the open ones keep working; once one closes, a new one is served.
#[test]
fn connections_past_max_connections_are_refused_without_harm() {
    const N: usize = 20;
    let server = Server::start(&["--max-connections", &N.to_string()]);
    let mut open: Vec<Raw> = (0..N)
        .map(|_| {
            let mut c = Raw::connect(&server);
            healthz_on(&mut c);
            c
        })
        .collect();

    let mut extra = Raw::connect(&server);
    assert!(
        closed_unanswered(&mut extra, secs(5.0)),
        "connection {} was not closed by the server",
        N + 1
    );
    for c in &mut open {
        healthz_on(c);
    }

    drop(open.pop());
    let mut served = None;
    let ok = poll_until(secs(10.0), || {
        served = try_healthz(server.addr());
        served.is_some()
    });
    assert!(ok, "no new connection served after one of {N} closed");
    let (mut fresh, r) = served.expect("checked above");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    healthz_on(&mut fresh);
    for c in &mut open {
        healthz_on(c);
    }
}

/// A limit that starts refusing clients says so once, not once per client:
/// twenty refused connections make one warning line.
#[test]
fn refusing_connections_is_warned_once_not_per_client() {
    let server = Server::start(&["--max-connections", "1"]);
    let mut only = Raw::connect(&server);
    healthz_on(&mut only);
    for _ in 0..20 {
        let mut extra = Raw::connect(&server);
        assert!(closed_unanswered(&mut extra, secs(5.0)));
    }
    healthz_on(&mut only);
    let warned = server
        .wait_for_log("refusing connections", secs(5.0))
        .is_some();
    assert!(warned, "no warning that connections are refused");
    let lines = server
        .logs()
        .lines()
        .filter(|l| l.contains("refusing connections"))
        .count();
    assert_eq!(lines, 1, "{}", server.logs());
}

// ----- a low file-descriptor limit -----------------------------------------

/// The file-descriptor limit (soft and hard) the server is started with.
const NOFILE: u64 = 64;

/// [`command_with_nofile`], with stderr piped for [`Spawned`].
fn limits_command(args: &[&str], nofile: u64) -> Command {
    let mut cmd = command_with_nofile(args, nofile);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}

/// A child started from a custom [`Command`]; killed on drop. Its stderr is
/// drained by a thread for its whole life, so the server never blocks on it.
struct Spawned {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Spawned {
    fn new(mut cmd: Command) -> Spawned {
        let mut child = cmd.spawn().expect("spawn event-syncer");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("log lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Spawned { child, log }
    }

    fn logs(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// The startup line, once it has been written.
    fn startup_line(&self) -> String {
        let mut line = None;
        poll_until(after(STARTUP_DEADLINE), || {
            line = self
                .logs()
                .lines()
                .find(|l| l.contains(LISTENING))
                .map(str::to_string);
            line.is_some()
        });
        line.unwrap_or_else(|| panic!("no startup line; stderr:\n{}", self.logs()))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `name=` in a startup line.
fn setting<'a>(line: &'a str, name: &str) -> &'a str {
    let at = line
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"));
    line[at + name.len() + 1..]
        .split_whitespace()
        .next()
        .unwrap_or("")
}

/// With a low fd limit and no `--max-connections`, the default is derived
/// from the limit, and a crowd of clients past it is refused cleanly without
/// busying the loop.
///
/// `EMFILE` itself cannot be provoked from outside: the server refuses a
/// `--max-connections` above what the limit allows (see the next test) and
/// keeps `RESERVED_FDS` descriptors below the limit in reserve, so with every
/// connection slot taken it still has descriptors to accept and close the
/// next client. What a test can check is the property the SPEC asks for
/// ("running out of file descriptors must not spin the loop"): at the
/// connection ceiling, with 200 more clients arriving, the server is nearly
/// idle.
#[test]
fn a_low_fd_limit_caps_connections_and_refusing_does_not_spin() {
    let spawned = Spawned::new(limits_command(&["--listen", "127.0.0.1:0"], NOFILE));
    let pid = spawned.child.id();
    let line = spawned.startup_line();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let nofile_line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    assert_eq!(
        nofile_line.split_whitespace().nth(3),
        Some(NOFILE.to_string().as_str()),
        "the child's soft limit was not lowered: {nofile_line}"
    );
    let max: usize = setting(&line, "max_connections")
        .parse()
        .unwrap_or_else(|e| panic!("max_connections in {line:?}: {e}"));
    assert!(
        max > 0 && (max as u64) < NOFILE,
        "max_connections={max} with a limit of {NOFILE} descriptors: {line}"
    );
    let addr: SocketAddr = line[line.find(LISTENING).expect("startup line") + LISTENING.len()..]
        .split_whitespace()
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    let mut open: Vec<Raw> = (0..max)
        .map(|_| {
            let mut c = Raw::connect_addr(addr);
            healthz_on(&mut c);
            c
        })
        .collect();

    // 200 clients arrive over 2 s, each held open by its client; the server
    // must close every one and stay nearly idle meanwhile.
    let window = Duration::from_secs(2);
    let cpu_before = process_cpu_time(pid);
    let started = Instant::now();
    let mut crowd = Vec::with_capacity(200);
    for i in 0..200u32 {
        let due = started + window * i / 200;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
        crowd.push(Raw::connect_addr(addr));
    }
    if let Some(wait) = (started + window).checked_duration_since(Instant::now()) {
        thread::sleep(wait);
    }
    let wall = started.elapsed();
    let cpu = process_cpu_time(pid) - cpu_before;
    eprintln!(
        "fd limit {NOFILE}: max_connections={max}; server CPU {cpu:?} in {wall:?} of refusals"
    );
    assert!(
        cpu.as_secs_f64() < 0.5 * wall.as_secs_f64(),
        "the server used {cpu:?} of CPU in {wall:?} while refusing connections"
    );
    for (i, c) in crowd.iter_mut().enumerate() {
        assert!(
            closed_unanswered(c, secs(5.0)),
            "extra connection {i} was not closed by the server"
        );
    }
    for c in &mut open {
        healthz_on(c);
    }

    // A slot freed is a slot served; the refusals were counted.
    drop(open.pop());
    let mut served = None;
    let ok = poll_until(secs(10.0), || {
        served = try_healthz(addr);
        served.is_some()
    });
    assert!(ok, "no new connection served after one of {max} closed");
    let (mut c, _) = served.expect("checked above");
    c.send(&get_req("/metrics"));
    let text = c.read_response(secs(5.0)).text();
    let refused = text
        .lines()
        .find_map(|l| l.strip_prefix("event_syncer_connections_refused_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no refused counter in:\n{text}"));
    assert!(refused >= 200.0, "refused counter says {refused}");
}

/// `EMFILE` for real: the server starts with the machine's limit (so its
/// default `--max-connections` is large), then the test lowers its limit
/// under it with prlimit(2). Accepting now fails with "too many open files"
/// while connections wait in the backlog and the listener stays readable.
/// The server must pause accepting rather than spin on it, say so in its
/// log, keep serving the connections it has, and accept again once
/// descriptors are freed.
#[test]
fn running_out_of_descriptors_pauses_accept_without_spinning() {
    let server = Server::start(&[]);
    let pid = server.pid() as libc::pid_t;
    let mut open: Vec<Raw> = (0..4)
        .map(|_| {
            let mut c = Raw::connect(&server);
            healthz_on(&mut c);
            c
        })
        .collect();
    // Only the soft limit is lowered, so it can be raised back without
    // privileges.
    let set_soft = |soft: u64| -> libc::rlimit {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit reads `new` and writes `old`, both live locals.
        unsafe {
            let none = std::ptr::null();
            assert_eq!(libc::prlimit(pid, libc::RLIMIT_NOFILE, none, &mut old), 0);
            let new = libc::rlimit {
                rlim_cur: soft,
                rlim_max: old.rlim_max,
            };
            let rc = libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut());
            assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
        }
        old
    };
    let before = set_soft(24);

    // More clients than descriptors left: the kernel completes their
    // handshakes into the backlog, the server cannot take them.
    let crowd: Vec<Raw> = (0..40).map(|_| Raw::connect(&server)).collect();
    assert!(
        server
            .wait_for_log("out of file descriptors", secs(5.0))
            .is_some(),
        "no warning about running out of descriptors:\n{}",
        server.logs()
    );
    let (cpu0, wall0) = (process_cpu_time(server.pid()), Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let (cpu, wall) = (process_cpu_time(server.pid()) - cpu0, wall0.elapsed());
    assert!(
        cpu < wall / 4,
        "the server used {cpu:?} of CPU in {wall:?} while out of descriptors"
    );
    for c in &mut open {
        healthz_on(c);
    }

    // Give descriptors back: the waiting clients are taken and served.
    set_soft(before.rlim_cur);
    for mut c in crowd {
        healthz_on(&mut c);
    }
}

/// `--max-connections` above what the fd limit allows is a bad setting: exit
/// code 2 with a message naming it, rather than a server that would hit
/// `EMFILE` later.
#[test]
fn max_connections_above_the_fd_limit_is_refused_at_start() {
    let mut spawned = Spawned::new(limits_command(
        &["--listen", "127.0.0.1:0", "--max-connections", "1000"],
        NOFILE,
    ));
    let mut status = None;
    poll_until(secs(10.0), || {
        status = spawned.child.try_wait().expect("try_wait");
        status.is_some()
    });
    let status = status.unwrap_or_else(|| panic!("still running; stderr:\n{}", spawned.logs()));
    // The drain thread may still be copying the last bytes.
    let mut logs = String::new();
    poll_until(secs(2.0), || {
        logs = spawned.logs();
        logs.contains("max-connections")
    });
    assert_eq!(status.code(), Some(2), "stderr:\n{logs}");
    assert!(logs.contains("max-connections"), "stderr:\n{logs}");
}

// ---------------------------------------------------------------------------
// Slow heads and idle connections.
// ---------------------------------------------------------------------------

/// Half a head, then nothing: `408` and a close, not before the timeout.
/// A connection that sends nothing at all is held to the same timeout.
#[test]
fn a_slow_head_gets_408_after_the_header_timeout() {
    let server = Server::start(&["--header-timeout", "0.5"]);
    let started = Instant::now();
    let mut half = Raw::connect(&server);
    half.send(b"GET /healthz HTTP/1.1\r\nHo");
    let started_silent = Instant::now();
    let mut silent = Raw::connect(&server);

    assert_error_then_close(&mut half, 408);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "408 after {waited:?}, before the 0.5 s header timeout"
    );
    assert!(waited < Duration::from_secs(3), "408 only after {waited:?}");

    assert_error_then_close(&mut silent, 408);
    let waited = started_silent.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "silent connection closed after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "closed only after {waited:?}"
    );
    assert_serves_others(&server);
}

/// A keep-alive connection idle after its answer is closed, silently, after
/// `--idle-timeout`: not before it, and not long after.
#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = Server::start(&["--idle-timeout", "0.5"]);
    let mut c = Raw::connect(&server);
    let sent = Instant::now();
    healthz_on(&mut c);
    let rest = c.read_until_close(secs(5.0));
    let idle = sent.elapsed();
    assert!(
        rest.is_empty(),
        "an idle close should say nothing: {:?}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        idle >= Duration::from_millis(500),
        "closed after {idle:?}, before the 0.5 s idle timeout"
    );
    assert!(idle < Duration::from_secs(3), "closed only after {idle:?}");
    assert_serves_others(&server);
}

/// A parked consumer is not idle: with a 0.5 s idle timeout and a 2 s poll
/// timeout it stays open and gets its `[]` at 2 s, whether it parked on a
/// fresh connection or after an earlier request on the same one.
#[test]
fn a_parked_consumer_is_not_idle_closed() {
    let server = Server::start(&["--poll-timeout", "2", "--idle-timeout", "0.5"]);
    let parked_at = Instant::now();
    let mut fresh = park(&server, "k", "fresh");
    let mut reused = Raw::connect(&server);
    healthz_on(&mut reused);
    reused.send(&get_req(&bget_path("k", "reused", None)));

    fresh.assert_silent_until(parked_at + Duration::from_millis(1500));
    reused.assert_silent_until(parked_at + Duration::from_millis(1500));
    for c in [&mut fresh, &mut reused] {
        let r = c.read_response(secs(5.0));
        assert_eq!((r.status, r.text().as_str()), (200, "[]"));
        let waited = parked_at.elapsed();
        assert!(
            waited >= Duration::from_secs(2),
            "answered after {waited:?}"
        );
    }
    assert_serves_others(&server);
}

// ---------------------------------------------------------------------------
// Bounded output.
// ---------------------------------------------------------------------------

/// The growth a flood may cause in the server's memory.
const FLOOD_RSS_BOUND: u64 = 64 << 20;

/// Pipelines `requests` (cycled) on one connection for about 2 s without
/// reading a byte, while another thread times `/healthz` round trips on new
/// connections. Returns the server's RSS growth, the slowest round trip, and
/// the flooded connection (to read from afterwards).
fn flood(server: &Server, requests: &dyn Fn(usize) -> Vec<u8>) -> (u64, Duration, Raw, usize) {
    let rss_before = rss_bytes(server.pid());
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = Arc::clone(&stop);
        let addr = server.addr();
        thread::spawn(move || {
            let mut slowest = Duration::ZERO;
            let mut probes = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let mut c = Raw::connect_addr(addr);
                c.send(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
                let r = c.read_response(secs(10.0));
                assert_eq!(r.status, 200);
                slowest = slowest.max(started.elapsed());
                probes += 1;
                thread::sleep(Duration::from_millis(20));
            }
            assert!(probes > 0, "no probe ran");
            slowest
        })
    };

    let mut c = Raw::connect(server);
    c.stream.set_nonblocking(true).expect("nonblocking");
    // Requests are generated in batches of 64 so writes are large; `ends`
    // records where each request ends in the stream.
    let mut pending: Vec<u8> = Vec::new();
    let mut ends: Vec<u64> = Vec::new();
    let mut generated: u64 = 0;
    let mut written: u64 = 0;
    let end = after(Duration::from_secs(2));
    while Instant::now() < end && written < (256 << 20) {
        if pending.is_empty() {
            for _ in 0..64 {
                let request = requests(ends.len());
                generated += request.len() as u64;
                ends.push(generated);
                pending.extend_from_slice(&request);
            }
        }
        match c.stream.write(&pending) {
            Ok(n) => {
                written += n as u64;
                pending.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(1)),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("flood write failed after {written} bytes: {e}"),
        }
    }
    // Let the server do all it will with what the socket accepted before
    // measuring: a fence is answered after everything already readable.
    fence(server);
    let rss_after = rss_bytes(server.pid());
    stop.store(true, Ordering::Relaxed);
    let slowest = prober.join().expect("prober");
    c.stream.set_nonblocking(false).expect("blocking");
    eprintln!(
        "flood: wrote {written} bytes; rss {rss_before} -> {rss_after}; slowest bystander {slowest:?}"
    );
    let complete = ends.iter().filter(|&&e| e <= written).count();
    (rss_after.saturating_sub(rss_before), slowest, c, complete)
}

/// A client that pipelines blocking-gets and never reads cannot make the
/// server buffer their answers without limit. Each get names a new group of
/// a key holding a 512 KiB event, so each 80-byte request asks for 512 KiB:
/// a server that kept reading would grow by hundreds of MiB in 2 s.
#[test]
fn pipelined_blocking_gets_never_read_keep_output_bounded() {
    let server = Server::start(&[]);
    let event = json_string(512 * 1024);
    assert_eq!(push(&server, "big", &event), 200);
    let request = |i: usize| get_req(&bget_path("big", &format!("g{i}"), Some("0")));
    let (growth, slowest, mut c, complete) = flood(&server, &request);
    assert!(
        growth < FLOOD_RSS_BOUND,
        "the server grew by {growth} bytes for a client that does not read"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a bystander waited {slowest:?}"
    );
    // The flooding client is still served, in order, once it reads.
    for _ in 0..complete.min(8) {
        let r = c.read_response(secs(10.0));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), event.len() + 2);
    }
}

/// The same with `/metrics`, whose answer is ~50 times its request.
#[test]
fn pipelined_metrics_never_read_keep_output_bounded() {
    let server = Server::start(&[]);
    let request = |_: usize| get_req("/metrics");
    let (growth, slowest, mut c, complete) = flood(&server, &request);
    assert!(
        growth < FLOOD_RSS_BOUND,
        "the server grew by {growth} bytes for a client that does not read"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "a bystander waited {slowest:?}"
    );
    for _ in 0..complete.min(100) {
        let r = c.read_response(secs(10.0));
        assert_eq!(r.status, 200);
        assert!(r.text().contains("# TYPE event_syncer_"), "{}", r.text());
    }
}

/// A client that names a new groupId with every get, each consuming the
/// same retained event (so each group is remembered until the event
/// expires), cannot grow the store without bound: groups count against
/// `--max-memory`, pushes are refused as they fill it, and once groups
/// alone fill it new ones get `503` while existing groups go on.
#[test]
fn a_new_group_per_get_cannot_grow_the_store_without_bound() {
    const LIMIT: u64 = 65_536;
    let server = Server::start(&["--max-memory", &LIMIT.to_string()]);
    assert_eq!(push(&server, "k", r#"{"n":1}"#), 200);
    let mut refused = None;
    for i in 0..20_000 {
        let (status, body) = bget(&server, "k", &format!("group-{i:05}"), Some("0"));
        match status {
            200 => assert_eq!(body, r#"[{"n":1}]"#, "group {i}"),
            503 => {
                refused = Some(i);
                break;
            }
            other => panic!("get {i}: {other} {body}"),
        }
    }
    let refused = refused.expect("20,000 remembered groups under a 64 KiB limit");
    assert!(refused > 100, "refused after only {refused} groups");
    let held = metric(&server, "event_syncer_bookkeeping_bytes").expect("bookkeeping gauge");
    assert!(
        held <= LIMIT,
        "{held} bytes of groups under a limit of {LIMIT}"
    );
    // The store is full of groups: pushes are refused too, and a group it
    // remembers is still served.
    assert_eq!(push(&server, "k", r#"{"n":2}"#), 503);
    let (status, body) = bget(&server, "k", "group-00000", Some("0"));
    assert_eq!((status, body.as_str()), (200, "[]"));
}
