//! Shared harness for the integration tests: a real `event-syncer` child
//! process on port 0, a real HTTP client (`ureq`) for ordinary calls, and raw
//! `TcpStream` helpers for the wire-level cases a client library hides.
//!
//! Every test starts its own server, so tests share no state and run in
//! parallel. The child's stderr is drained by a thread into a shared buffer
//! for the whole life of the child: a full pipe would block the server's
//! logger, and with it the single-threaded event loop, so the drain never
//! stops. Tests that care about logs wait on that buffer with
//! [`Server::wait_for_log`].
//!
//! Nothing here sleeps for correctness: waits are [`poll_until`] or blocking
//! reads with a deadline, and a missed deadline is a panic that names what
//! was awaited.
//!
//! Each test binary compiles this module on its own and uses only part of it,
//! hence the `dead_code` allowance.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Every environment variable the server reads. They are removed from the
/// child's environment so a developer's shell cannot change a test's outcome;
/// tests that exercise them pass them explicitly.
pub const ENV_VARS: [&str; 13] = [
    "EVENT_SYNCER_LISTEN",
    "EVENT_SYNCER_POLL_TIMEOUT",
    "EVENT_SYNCER_EVENT_TTL",
    "EVENT_SYNCER_MAX_BODY",
    "EVENT_SYNCER_MAX_MEMORY",
    "EVENT_SYNCER_MAX_CONNECTIONS",
    "EVENT_SYNCER_HEADER_TIMEOUT",
    "EVENT_SYNCER_IDLE_TIMEOUT",
    "EVENT_SYNCER_LOG",
    // Who may do what (v2): a shell with one of these set would otherwise
    // make every test's server demand tokens or refuse cross-site calls.
    "EVENT_SYNCER_JWT_SECRET_FILE",
    "EVENT_SYNCER_JWT_PUBLIC_KEY_FILE",
    "EVENT_SYNCER_METRICS_TOKEN_FILE",
    "EVENT_SYNCER_CORS_ORIGIN",
];

/// What the startup line says before the bound address.
pub const LISTENING: &str = "listening on http://";

/// How long a server may take to print its startup line.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// `Instant::now() + d`: deadlines read better as "in 2 s" than as sums.
pub fn after(d: Duration) -> Instant {
    Instant::now() + d
}

/// Shorthand for a deadline `secs` seconds from now.
pub fn secs(secs: f64) -> Instant {
    after(Duration::from_secs_f64(secs))
}

/// Calls `cond` every few milliseconds until it returns true (then true) or
/// `deadline` passes (then false, after one last try).
pub fn poll_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return cond();
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Percent-encodes every byte that is not an unreserved URI character, so any
/// string (spaces, `&`, `+`, UTF-8) can be put in a query as itself.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The stderr of a child as it arrives, plus whether the pipe has closed.
#[derive(Default)]
struct LogState {
    text: String,
    eof: bool,
}

type SharedLog = Arc<(Mutex<LogState>, Condvar)>;

/// A running `event-syncer` child. Killed (SIGKILL) and reaped on drop unless
/// it has already exited.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    log: SharedLog,
}

impl Server {
    /// Starts the server on `127.0.0.1:0` with `args` appended, and waits for
    /// its startup line. Panics (with the child's stderr) if it does not come
    /// within [`STARTUP_DEADLINE`]. The startup line is logged at info, so
    /// `--log-level warn` or `error` cannot be started this way.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// As [`Server::start`], with extra environment variables for the child.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut full = vec!["--listen", "127.0.0.1:0"];
        full.extend_from_slice(args);
        Server::launch(&full, env)
    }

    /// Starts the binary with exactly `args` (no implicit `--listen`) and
    /// `env`, and waits for the startup line. The caller must make sure the
    /// address it listens on is free (port 0, or `EVENT_SYNCER_LISTEN`).
    pub fn launch(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::from_command(command(args, env))
    }

    /// The address the server really listens on, from its startup line.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the child.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory effects; the pid is our own unreaped
        // child, so it cannot have been recycled for another process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends SIGINT.
    pub fn sigint(&self) {
        self.signal(libc::SIGINT);
    }

    /// Waits for the child to exit; `None` if it is still running at
    /// `deadline`.
    pub fn wait_exit(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let mut status = None;
        poll_until(deadline, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }

    /// Everything the child has written to stderr so far.
    pub fn logs(&self) -> String {
        self.log.0.lock().expect("log lock").text.clone()
    }

    /// Waits until a stderr line contains `needle` and returns that whole
    /// line; `None` if none does by `deadline` or stderr closed without it.
    pub fn wait_for_log(&self, needle: &str, deadline: Instant) -> Option<String> {
        let (lock, cvar) = &*self.log;
        let mut state = lock.lock().expect("log lock");
        loop {
            if let Some(line) = state.text.lines().find(|l| l.contains(needle)) {
                return Some(line.to_string());
            }
            let now = Instant::now();
            if state.eof || now >= deadline {
                return None;
            }
            state = cvar
                .wait_timeout(state, deadline - now)
                .expect("log lock")
                .0;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The command for the server binary with a clean environment: only the
/// `EVENT_SYNCER_*` variables given in `env` are set.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_event-syncer"));
    cmd.args(args).stdin(Stdio::null());
    for var in ENV_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// [`command`] with `RLIMIT_NOFILE` (soft and hard) set to `nofile` in the
/// child only, between fork and exec: tests run in parallel threads, so the
/// test process's own limit must not change.
pub fn command_with_nofile(args: &[&str], nofile: u64) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = command(args, &[]);
    let limit = libc::rlimit {
        rlim_cur: nofile as libc::rlim_t,
        rlim_max: nofile as libc::rlim_t,
    };
    // SAFETY: the closure runs in the forked child before exec and calls
    // only setrlimit(2), which is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd
}

/// Spawns the binary with its stderr drained by a thread into a shared log,
/// so the pipe never fills and tests can read what it logged.
fn spawn_logged(args: &[&str], env: &[(&str, &str)]) -> (Child, SharedLog, thread::JoinHandle<()>) {
    spawn_drained(command(args, env))
}

/// Spawns `cmd` with its stderr drained by a thread into a shared log.
fn spawn_drained(mut cmd: Command) -> (Child, SharedLog, thread::JoinHandle<()>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn event-syncer");
    let stderr = child.stderr.take().expect("piped stderr");
    let log: SharedLog = Arc::default();
    let sink = Arc::clone(&log);
    let drainer = thread::spawn(move || drain(stderr, &sink));
    (child, log, drainer)
}

/// Runs the binary to completion (for settings it must refuse) and returns
/// its exit status and stderr. Panics if it is still running at `deadline`.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)], deadline: Instant) -> (ExitStatus, String) {
    let (mut child, log, drainer) = spawn_logged(args, env);
    let mut status = None;
    poll_until(deadline, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{args:?} {env:?} still running at its deadline; it should have refused to start");
    };
    let _ = drainer.join();
    let text = log.0.lock().expect("log lock").text.clone();
    (status, text)
}

fn drain(mut stderr: impl Read, log: &SharedLog) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match stderr.read(&mut buf) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let (lock, cvar) = &**log;
        let mut state = lock.lock().expect("log lock");
        if n == 0 {
            state.eof = true;
            cvar.notify_all();
            return;
        }
        state.text.push_str(&String::from_utf8_lossy(&buf[..n]));
        cvar.notify_all();
    }
}

// ---------------------------------------------------------------------------
// Ordinary calls through a real HTTP client.
// ---------------------------------------------------------------------------

/// A `ureq` agent that returns 4xx/5xx as responses instead of errors, with
/// a generous overall timeout so a hung server fails the test instead of
/// hanging it. Keep one per thread to reuse its keep-alive connection.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Reads a `ureq` response into (status, body, headers lowercased).
pub fn finish(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> (u16, String, HashMap<String, String>) {
    let mut resp = resp.expect("HTTP call");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .expect("read body");
    (status, body, headers)
}

/// `GET path` with a fresh agent: (status, body).
pub fn get(server: &Server, path: &str) -> (u16, String) {
    get_with(&agent(), server, path)
}

/// `GET path` with `agent`: (status, body).
pub fn get_with(agent: &ureq::Agent, server: &Server, path: &str) -> (u16, String) {
    let (status, body, _) = finish(agent.get(server.url(path)).call());
    (status, body)
}

/// `POST /push?key=KEY` with `body`; `key` is percent-encoded here. Returns
/// the status.
pub fn push(server: &Server, key: &str, body: impl AsRef<[u8]>) -> u16 {
    push_with(&agent(), server, key, body).0
}

/// `POST /push?key=KEY` with `agent`: (status, body).
pub fn push_with(
    agent: &ureq::Agent,
    server: &Server,
    key: &str,
    body: impl AsRef<[u8]>,
) -> (u16, String) {
    let url = server.url(&format!("/push?key={}", enc(key)));
    let (status, body, _) = finish(agent.post(url).send(body.as_ref()));
    (status, body)
}

/// The path of a blocking-get; `key` and `group` are percent-encoded here,
/// `timeout` is put in the query as given (so tests can send bad ones).
pub fn bget_path(key: &str, group: &str, timeout: Option<&str>) -> String {
    let mut p = format!("/blocking-get?key={}&groupId={}", enc(key), enc(group));
    if let Some(t) = timeout {
        p.push_str("&timeout=");
        p.push_str(t);
    }
    p
}

/// `GET /blocking-get` with a fresh agent: (status, body).
pub fn bget(server: &Server, key: &str, group: &str, timeout: Option<&str>) -> (u16, String) {
    get(server, &bget_path(key, group, timeout))
}

/// A blocking-get that must not wait (`timeout=0`); asserts `200` and
/// returns the body.
pub fn take(server: &Server, key: &str, group: &str) -> String {
    let (status, body) = bget(server, key, group, Some("0"));
    assert_eq!(status, 200, "take {key}/{group}: {body}");
    body
}

/// Asserts `body` is a JSON error object `{"error":"<non-empty>"}`.
pub fn assert_json_error(body: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "error body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    });
    let msg = v.get("error").and_then(|m| m.as_str());
    assert!(
        matches!(msg, Some(m) if !m.is_empty()),
        "error body lacks a non-empty \"error\" string: {v}"
    );
}

/// Returns once the server has handled every request whose bytes reached it
/// before this call: it makes a round trip on a new connection (`GET
/// /fence`: a 404 that touches no queue state, though it counts in the
/// `endpoint="other"` request metric). The loop handles ready sockets in
/// the order they became ready, so a request written earlier, e.g. a
/// blocking-get that should now be parked, has been handled when the fence's
/// answer comes back.
pub fn fence(server: &Server) {
    let mut c = Raw::connect(server);
    c.send(b"GET /fence HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.read_response(secs(10.0));
}

/// The value of the `event_syncer_consumers_parked` gauge, if `/metrics`
/// serves it.
pub fn parked_gauge(server: &Server) -> Option<u64> {
    metric(server, "event_syncer_consumers_parked")
}

/// The value of the metric line that starts with `name` followed by a space
/// (so `name` may include labels), if `/metrics` answers 200 and has it.
pub fn metric(server: &Server, name: &str) -> Option<u64> {
    let (status, body) = get(server, "/metrics");
    if status != 200 {
        return None;
    }
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Waits until `n` consumers are parked: a [`fence`], then, when the server
/// has `/metrics`, until its parked gauge reads `n` (panics after 10 s).
pub fn wait_parked(server: &Server, n: u64) {
    fence(server);
    if parked_gauge(server).is_some() {
        let mut last = None;
        let ok = poll_until(secs(10.0), || {
            last = parked_gauge(server);
            last == Some(n)
        });
        assert!(ok, "expected {n} parked consumers, gauge says {last:?}");
    }
}

// ---------------------------------------------------------------------------
// Raw sockets.
// ---------------------------------------------------------------------------

/// One parsed HTTP response, as read off a raw socket.
#[derive(Debug, Clone)]
pub struct Response {
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub version: u8,
    pub status: u16,
    pub reason: String,
    /// Header names as sent; look them up with [`Response::header`].
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The exact bytes of the status line and headers, up to and including
    /// the blank line.
    pub head: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (lossy), for messages and comparisons.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the response says the connection will close.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// A raw client connection with a read buffer, so that responses arriving
/// together (pipelining) are split correctly.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl Raw {
    /// Connects to the server (panics if the connection fails).
    pub fn connect(server: &Server) -> Raw {
        Raw::connect_addr(server.addr())
    }

    /// Connects to `addr`, with Nagle off so small writes go out at once.
    pub fn connect_addr(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Wraps a connected stream (e.g. one made with a custom timeout).
    pub fn from_stream(stream: TcpStream) -> Raw {
        let _ = stream.set_nodelay(true);
        Raw {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes what it can of `bytes`, ignoring errors: for connections the
    /// server may already have closed or reset.
    pub fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Writes `bytes` in pieces of `chunk` bytes, each its own `write`.
    pub fn send_in_pieces(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk) {
            self.send(piece);
        }
    }

    /// Reads whatever arrives before `deadline` into the buffer; returns
    /// false once the deadline passes without new bytes. Sets `eof` when the
    /// peer closes (or resets).
    fn fill(&mut self, deadline: Instant) -> bool {
        if self.eof {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let wait = (deadline - now).max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(wait))
            .expect("read timeout");
        let mut tmp = [0u8; 64 * 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(_) => {
                // A reset: the server dropped the connection.
                self.eof = true;
                false
            }
        }
    }

    /// Reads until one full response is buffered, or `deadline`, or the peer
    /// closes. `None` unless a full response arrived.
    pub fn try_read_response(&mut self, deadline: Instant) -> Option<Response> {
        loop {
            if let Some(resp) = self.parse_buffered() {
                return Some(resp);
            }
            if !self.fill(deadline) && (self.eof || Instant::now() >= deadline) {
                return None;
            }
        }
    }

    /// Reads one full response; panics (with what was received) if none
    /// arrives by `deadline`.
    pub fn read_response(&mut self, deadline: Instant) -> Response {
        match self.try_read_response(deadline) {
            Some(r) => r,
            None => panic!(
                "no full response (eof={}); buffered {:?}",
                self.eof,
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    /// Reads one full response the way a slow client would: reads of at most
    /// `chunk` bytes with `pause` between them, so the server's writes to
    /// this socket keep hitting a full buffer. Panics at `deadline`.
    pub fn read_response_slowly(
        &mut self,
        chunk: usize,
        pause: Duration,
        deadline: Instant,
    ) -> Response {
        let mut tmp = vec![0u8; chunk];
        loop {
            if let Some(resp) = self.parse_buffered() {
                return resp;
            }
            assert!(
                !self.eof && Instant::now() < deadline,
                "no full response (eof={}) after {} bytes",
                self.eof,
                self.buf.len()
            );
            self.stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .expect("read timeout");
            match self.stream.read(&mut tmp) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(_) => self.eof = true,
            }
            thread::sleep(pause);
        }
    }

    /// Takes a response that is already readable without waiting: the bytes
    /// are in the socket's receive buffer now.
    pub fn read_response_now(&mut self) -> Option<Response> {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut tmp = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.stream.set_nonblocking(false).expect("blocking");
        self.parse_buffered()
    }

    /// Asserts that no response (not even a partial one) arrives before
    /// `deadline` and the connection stays open: the request is parked.
    pub fn assert_silent_until(&mut self, deadline: Instant) {
        while self.fill(deadline) {}
        assert!(
            self.buf.is_empty() && !self.eof,
            "expected silence, got eof={} bytes {:?}",
            self.eof,
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// Reads until the peer closes and returns every byte not yet consumed
    /// as a response. Panics if the connection is still open at `deadline`.
    pub fn read_until_close(&mut self, deadline: Instant) -> Vec<u8> {
        while !self.eof {
            if !self.fill(deadline) && !self.eof && Instant::now() >= deadline {
                panic!(
                    "connection still open at deadline; buffered {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
        std::mem::take(&mut self.buf)
    }

    /// Whether the peer has closed, as seen by the reads so far.
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// Closes our writing half (FIN) but keeps reading.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Closes the connection with a reset (RST) instead of a FIN, as a
    /// crashed client would (SO_LINGER with a zero timeout).
    pub fn reset(self) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: the fd is open (owned by self.stream) and the option value
        // is a properly sized `linger`.
        let rc = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "setsockopt SO_LINGER");
        drop(self.stream);
    }

    /// Parses one response from the front of the buffer, if complete.
    fn parse_buffered(&mut self) -> Option<Response> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return None,
            Err(e) => panic!(
                "malformed response ({e}): {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        };
        let status = parsed.code.expect("status code");
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let mut resp = Response {
            version: parsed.version.expect("version"),
            status,
            reason: parsed.reason.unwrap_or("").to_string(),
            headers,
            body: Vec::new(),
            head: self.buf[..head_len].to_vec(),
        };
        let body_len = if (100..200).contains(&status) || status == 204 || status == 304 {
            0
        } else if let Some(cl) = resp.header("content-length") {
            cl.trim().parse::<usize>().expect("numeric Content-Length")
        } else if resp.header("transfer-encoding").is_some() {
            panic!("chunked responses are not expected from event-syncer: {resp:?}");
        } else if self.eof {
            // Framed by the close of the connection.
            self.buf.len() - head_len
        } else {
            return None;
        };
        if self.buf.len() < head_len + body_len {
            return None;
        }
        resp.body = self.buf[head_len..head_len + body_len].to_vec();
        self.buf.drain(..head_len + body_len);
        Some(resp)
    }
}

/// A `GET` request head for `path` (HTTP/1.1, keep-alive).
pub fn get_req(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// A `POST /push?key=KEY` request with a Content-Length body; `key` is
/// percent-encoded here.
pub fn push_req(key: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /push?key={} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        enc(key),
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// A parked-consumer helper: connects and sends one blocking-get (no
/// `timeout`, so it waits for the server's poll timeout).
pub fn park(server: &Server, key: &str, group: &str) -> Raw {
    let mut c = Raw::connect(server);
    c.send(&get_req(&bget_path(key, group, None)));
    c
}

/// Resident memory of a process, from `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

impl Raw {
    /// Reads until the peer closes, or until `first` passes with nothing
    /// received, or `quiet` passes after the last byte that came; returns
    /// every byte not yet consumed, unparsed. For replies that may be
    /// malformed, bodiless (HEAD) or several to one send, where
    /// [`Raw::read_response`] would panic or misframe.
    pub fn read_until_quiet(&mut self, first: Duration, quiet: Duration) -> Vec<u8> {
        let mut deadline = after(first);
        loop {
            if self.fill(deadline) {
                deadline = after(quiet);
            } else if self.eof || Instant::now() >= deadline {
                break;
            }
        }
        std::mem::take(&mut self.buf)
    }
}

// ---------------------------------------------------------------------------
// Hostile clients: sockets with small buffers, descriptor limits, CPU time.
// ---------------------------------------------------------------------------

impl Server {
    /// Starts the server from a prepared command (e.g. one from [`command`]
    /// with a `pre_exec` that changes its resource limits), and waits for its
    /// startup line. The command's stderr is taken over; panics with the
    /// child's stderr if no startup line comes within [`STARTUP_DEADLINE`].
    pub fn from_command(cmd: Command) -> Server {
        let (child, log, _drainer) = spawn_drained(cmd);
        let mut server = Server {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
        };
        let line = server
            .wait_for_log(LISTENING, after(STARTUP_DEADLINE))
            .unwrap_or_else(|| {
                panic!(
                    "no startup line within {STARTUP_DEADLINE:?}; stderr:\n{}",
                    server.logs()
                )
            });
        let rest = &line[line.find(LISTENING).expect("found above") + LISTENING.len()..];
        let addr = rest.split_whitespace().next().unwrap_or("");
        server.addr = addr
            .trim_end_matches([',', ';', ')'])
            .parse()
            .unwrap_or_else(|e| panic!("startup line address {addr:?}: {e}; line: {line}"));
        server
    }

    /// The startup line (the one naming the address and every setting).
    pub fn startup_line(&self) -> String {
        self.wait_for_log(LISTENING, after(STARTUP_DEADLINE))
            .expect("a started server has a startup line")
    }
}

/// Connects to `addr` from a socket whose receive buffer was set to
/// `rcvbuf` bytes *before* connecting, so the TCP window it offers stays
/// small: a client that does not read then holds only a few KiB of the
/// server's answer in its kernel, and the rest stays with the server.
/// (Linux doubles the value asked for, for its bookkeeping.)
pub fn connect_small_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> Raw {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        panic!("connect_small_rcvbuf speaks IPv4 only: {addr}")
    };
    let size = libc::c_int::try_from(rcvbuf).expect("rcvbuf fits c_int");
    // SAFETY: socket(2) has no memory effects; the descriptor it returns is
    // owned by `stream` at once, so it is closed on every path below.
    let stream = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: the fd is open; the option value is a c_int and the address a
    // properly sized sockaddr_in, both live locals.
    unsafe {
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let rc = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect {addr}: {}", std::io::Error::last_os_error());
    }
    Raw::from_stream(stream)
}

/// Bytes written to `stream` that the kernel has not yet sent to the peer
/// (`SIOCOUTQ`): 0 once everything written has left this socket.
pub fn unsent_bytes(stream: &TcpStream) -> usize {
    let fd = std::os::fd::AsRawFd::as_raw_fd(stream);
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one c_int into `n`.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    assert_eq!(rc, 0, "SIOCOUTQ: {}", std::io::Error::last_os_error());
    usize::try_from(n).expect("non-negative queue length")
}

/// CPU time (user + system) process `pid` has used so far, from
/// `/proc/PID/stat`.
pub fn process_cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    // The command name may hold spaces: fields are counted after its ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of proc(5); `fields` starts at 3.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_secs_f64(ticks as f64 / hz as f64)
}

/// Sets the soft `RLIMIT_NOFILE` of the running process `pid` (its hard
/// limit is kept, so it can be raised back without privileges) and returns
/// the limit it had before.
pub fn set_nofile_soft(pid: u32, soft: u64) -> libc::rlimit {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads `new` and writes `old`, both live locals.
    unsafe {
        let rc = libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old);
        assert_eq!(rc, 0, "prlimit get: {}", std::io::Error::last_os_error());
        let new = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: old.rlim_max,
        };
        let rc = libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut());
        assert_eq!(rc, 0, "prlimit set: {}", std::io::Error::last_os_error());
    }
    old
}

/// Descriptors process `pid` has open now.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

/// A JSON string of exactly `len` bytes (quotes included) whose contents
/// depend on `seed` and on the position, so that a batch compared byte for
/// byte cannot match if any piece is lost, repeated or moved.
pub fn json_event(len: usize, seed: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut s = String::with_capacity(len);
    s.push('"');
    for i in 0..len - 2 {
        let c = ALPHABET[(i / 7 + seed * 13 + i % 5) % ALPHABET.len()];
        s.push(c as char);
    }
    s.push('"');
    s
}

/// A request of exactly `len` bytes: `line` (e.g. `GET /healthz HTTP/1.1`)
/// with `Host` and an `X-Pad` header sized to fit. Panics if `len` is too
/// short for the line.
pub fn padded_req(line: &str, len: usize) -> Vec<u8> {
    let prefix = format!("{line}\r\nHost: t\r\nX-Pad: ");
    let suffix = "\r\n\r\n";
    let pad = len
        .checked_sub(prefix.len() + suffix.len())
        .unwrap_or_else(|| panic!("{line:?} does not fit in {len} bytes"));
    let req = format!("{prefix}{}{suffix}", "p".repeat(pad));
    assert_eq!(req.len(), len);
    req.into_bytes()
}

/// The value of metric `name` (a line starting with `name` and a space),
/// asked for on the keep-alive connection `c`, so that polling does not
/// open connections of its own (the `connections_open` gauge then counts
/// `c` and nothing else of the poller's).
pub fn metric_on(c: &mut Raw, name: &str) -> Option<u64> {
    c.send(&get_req("/metrics"));
    let r = c.read_response(secs(10.0));
    if r.status != 200 {
        return None;
    }
    r.text()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

// ---------------------------------------------------------------------------
// Leased delivery (v2): calls whose answers matter by their headers, and
// POSTs without a body.
// ---------------------------------------------------------------------------

/// `GET path` with `agent`: (status, body, headers lowercased).
pub fn get_full_with(
    agent: &ureq::Agent,
    server: &Server,
    path: &str,
) -> (u16, String, HashMap<String, String>) {
    finish(agent.get(server.url(path)).call())
}

/// `POST path` with an empty body and `agent`: (status, body, headers
/// lowercased). For `/ack`, `/nack` and `/extend`, whose parameters are all
/// in the query.
pub fn post_with(
    agent: &ureq::Agent,
    server: &Server,
    path: &str,
) -> (u16, String, HashMap<String, String>) {
    finish(agent.post(server.url(path)).send_empty())
}

/// The whole `/metrics` exposition; panics unless it is a `200`.
pub fn metrics_text(server: &Server) -> String {
    let (status, body) = get(server, "/metrics");
    assert_eq!(status, 200, "/metrics: {body}");
    body
}

/// The current Unix time in microseconds, the unit SPEC's event ids count in.
pub fn unix_micros() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_micros()).expect("micros fit u64")
}

impl Raw {
    /// Waits until at least one byte of an answer has arrived (or the peer
    /// closed, or `deadline` passed) without parsing it: for clients that
    /// hang up in the middle of an answer. True if bytes arrived.
    pub fn read_some(&mut self, deadline: Instant) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        while !self.fill(deadline) {
            if self.eof || Instant::now() >= deadline {
                return !self.buf.is_empty();
            }
        }
        true
    }
}
