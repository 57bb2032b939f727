//! SPEC.md's "Life cycle", "Command line" and the defaults of its settings
//! table: the startup line, refused settings (exit 2), environment
//! variables, SIGTERM/SIGINT, and the one test that runs with the real 30 s
//! poll timeout.

mod common;

use common::*;
use std::collections::HashMap;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The `name=value` pairs of the startup line.
fn settings(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_end_matches(',').to_string()))
        .collect()
}

fn startup_line(server: &Server) -> String {
    server
        .wait_for_log(LISTENING, secs(1.0))
        .expect("startup line")
}

fn assert_settings(line: &str, want: &[(&str, &str)]) {
    let got = settings(line);
    for (k, v) in want {
        assert_eq!(got.get(*k).map(String::as_str), Some(*v), "{k} in: {line}");
    }
}

// ---------------------------------------------------------------------------
// The startup line.
// ---------------------------------------------------------------------------

/// SPEC: "One startup line with the address and every effective setting,
/// numbers written plainly (bytes as bytes, seconds as seconds)" and
/// "--listen 127.0.0.1:0 picks a free port; the startup line then names it".
#[test]
fn startup_line_names_the_real_port_and_every_default() {
    let server = Server::start(&[]);
    let line = startup_line(&server);
    assert_ne!(server.addr().port(), 0, "{line}");
    assert!(
        line.contains("INFO"),
        "startup line is not at info level: {line}"
    );
    assert_settings(
        &line,
        &[
            ("poll_timeout", "30s"),
            ("event_ttl", "120s"),
            ("max_body", "1048576"),
            ("max_memory", "1073741824"),
            ("header_timeout", "10s"),
            ("idle_timeout", "60s"),
            ("log_level", "info"),
        ],
    );
    let max_conn = settings(&line)
        .get("max_connections")
        .cloned()
        .unwrap_or_default();
    assert!(
        max_conn.parse::<u64>().is_ok_and(|n| n > 0),
        "max_connections={max_conn:?} in: {line}"
    );
    // The address it names is the one that answers.
    assert_eq!(take(&server, "k", "g"), "[]");
}

/// Every flag shows in the startup line as the effective value.
#[test]
fn startup_line_shows_settings_given_as_flags() {
    let server = Server::start(&[
        "--poll-timeout",
        "0.5",
        "--event-ttl",
        "2.25",
        "--max-body",
        "2048",
        "--max-memory",
        "4096",
        "--max-connections",
        "50",
        "--header-timeout",
        "3",
        "--idle-timeout",
        "4.5",
        "--log-level",
        "debug",
    ]);
    assert_settings(
        &startup_line(&server),
        &[
            ("poll_timeout", "0.5s"),
            ("event_ttl", "2.25s"),
            ("max_body", "2048"),
            ("max_memory", "4096"),
            ("max_connections", "50"),
            ("header_timeout", "3s"),
            ("idle_timeout", "4.5s"),
            ("log_level", "debug"),
        ],
    );
}

/// SPEC: "Every setting is a flag and an environment variable."
#[test]
fn startup_line_shows_settings_given_as_environment_variables() {
    let server = Server::launch(
        &[],
        &[
            ("EVENT_SYNCER_LISTEN", "127.0.0.1:0"),
            ("EVENT_SYNCER_POLL_TIMEOUT", "0.75"),
            ("EVENT_SYNCER_EVENT_TTL", "7"),
            ("EVENT_SYNCER_MAX_BODY", "1000"),
            ("EVENT_SYNCER_MAX_MEMORY", "100000"),
            ("EVENT_SYNCER_MAX_CONNECTIONS", "64"),
            ("EVENT_SYNCER_HEADER_TIMEOUT", "1.5"),
            ("EVENT_SYNCER_IDLE_TIMEOUT", "2"),
            // Not `warn`: that would hide the info-level startup line.
            ("EVENT_SYNCER_LOG", "debug"),
        ],
    );
    assert_settings(
        &startup_line(&server),
        &[
            ("poll_timeout", "0.75s"),
            ("event_ttl", "7s"),
            ("max_body", "1000"),
            ("max_memory", "100000"),
            ("max_connections", "64"),
            ("header_timeout", "1.5s"),
            ("idle_timeout", "2s"),
            ("log_level", "debug"),
        ],
    );
    assert_ne!(server.addr().port(), 0);
}

/// A flag beats its environment variable, as with any command-line tool.
#[test]
fn a_flag_overrides_its_environment_variable() {
    let server = Server::start_with_env(
        &["--poll-timeout", "0.25"],
        &[("EVENT_SYNCER_POLL_TIMEOUT", "9")],
    );
    assert_settings(&startup_line(&server), &[("poll_timeout", "0.25s")]);
}

/// An environment variable changes behaviour, not just the startup line:
/// `EVENT_SYNCER_POLL_TIMEOUT=0.5` answers `[]` after half a second.
#[test]
fn environment_poll_timeout_is_used() {
    let server = Server::start_with_env(&[], &[("EVENT_SYNCER_POLL_TIMEOUT", "0.5")]);
    let t0 = Instant::now();
    let (status, body) = bget(&server, "k", "g", None);
    let took = t0.elapsed();
    assert_eq!((status, body.as_str()), (200, "[]"));
    assert!(
        took >= Duration::from_millis(500),
        "answered after {took:?}"
    );
    assert!(
        took <= Duration::from_millis(1500),
        "answered after {took:?}"
    );
}

/// SPEC: "Logs go through log with simple_logger; level set by flag or env
/// var." At debug, requests are logged; at info, they are not.
#[test]
fn log_level_controls_request_logging() {
    let debug = Server::start(&["--log-level", "debug"]);
    let info = Server::start(&[]);
    for s in [&debug, &info] {
        assert_eq!(take(s, "k", "g"), "[]");
    }
    assert!(
        debug.wait_for_log("DEBUG", secs(5.0)).is_some(),
        "no DEBUG line at --log-level debug:\n{}",
        debug.logs()
    );
    fence(&info);
    assert!(
        !info.logs().contains("DEBUG"),
        "DEBUG lines at info:\n{}",
        info.logs()
    );
}

// ---------------------------------------------------------------------------
// Refused settings.
// ---------------------------------------------------------------------------

/// Runs the binary with `args` and `env`, expects exit code 2 and a message
/// on stderr naming one of `names` (compared case-insensitively).
fn assert_refused(args: &[&str], env: &[(&str, &str)], names: &[&str]) {
    let (status, stderr) = run_to_exit(args, env, secs(10.0));
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?} {env:?}: {status}; stderr:\n{stderr}"
    );
    let lower = stderr.to_ascii_lowercase();
    assert!(
        names
            .iter()
            .any(|n| lower.contains(&n.to_ascii_lowercase())),
        "{args:?} {env:?}: stderr names none of {names:?}:\n{stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "{args:?} {env:?} panicked:\n{stderr}"
    );
}

/// SPEC: "Bad settings are refused at start with a clear message and exit
/// code 2." A setting the server wrongly accepts makes it listen (on port 0,
/// so nothing collides) and the test fails on its deadline.
macro_rules! refused {
    ($($name:ident: args $args:expr, env $env:expr, names $names:expr;)*) => {
        $(
            #[test]
            fn $name() {
                assert_refused($args, $env, $names);
            }
        )*
    };
}

const LISTEN0: [&str; 2] = ["--listen", "127.0.0.1:0"];
const POLL: &[&str] = &["poll-timeout", "poll_timeout"];

refused! {
    refuses_poll_timeout_negative: args &[LISTEN0[0], LISTEN0[1], "--poll-timeout", "-1"], env &[], names POLL;
    refuses_poll_timeout_negative_with_equals: args &[LISTEN0[0], LISTEN0[1], "--poll-timeout=-1"], env &[], names POLL;
    refuses_poll_timeout_not_a_number: args &[LISTEN0[0], LISTEN0[1], "--poll-timeout", "abc"], env &[], names POLL;
    refuses_poll_timeout_nan: args &[LISTEN0[0], LISTEN0[1], "--poll-timeout", "nan"], env &[], names POLL;
    refuses_poll_timeout_inf: args &[LISTEN0[0], LISTEN0[1], "--poll-timeout", "inf"], env &[], names POLL;
    refuses_poll_timeout_with_a_unit: args &[LISTEN0[0], LISTEN0[1], "--poll-timeout", "30s"], env &[], names POLL;
    refuses_event_ttl_negative: args &[LISTEN0[0], LISTEN0[1], "--event-ttl=-5"], env &[], names &["event-ttl", "event_ttl"];
    refuses_event_ttl_not_a_number: args &[LISTEN0[0], LISTEN0[1], "--event-ttl", "x"], env &[], names &["event-ttl", "event_ttl"];
    refuses_max_body_zero: args &[LISTEN0[0], LISTEN0[1], "--max-body", "0"], env &[], names &["max-body", "max_body"];
    refuses_max_body_fraction: args &[LISTEN0[0], LISTEN0[1], "--max-body", "1.5"], env &[], names &["max-body", "max_body"];
    refuses_max_body_negative: args &[LISTEN0[0], LISTEN0[1], "--max-body=-1"], env &[], names &["max-body", "max_body"];
    refuses_max_memory_not_a_number: args &[LISTEN0[0], LISTEN0[1], "--max-memory", "lots"], env &[], names &["max-memory", "max_memory"];
    refuses_max_connections_zero: args &[LISTEN0[0], LISTEN0[1], "--max-connections", "0"], env &[], names &["max-connections", "max_connections"];
    refuses_header_timeout_not_a_number: args &[LISTEN0[0], LISTEN0[1], "--header-timeout", "x"], env &[], names &["header-timeout", "header_timeout"];
    refuses_idle_timeout_negative: args &[LISTEN0[0], LISTEN0[1], "--idle-timeout=-1"], env &[], names &["idle-timeout", "idle_timeout"];
    refuses_unknown_log_level: args &[LISTEN0[0], LISTEN0[1], "--log-level", "loud"], env &[], names &["log-level", "log_level"];
    refuses_listen_nonsense: args &["--listen", "nonsense"], env &[], names &["listen"];
    refuses_listen_port_out_of_range: args &["--listen", "127.0.0.1:99999"], env &[], names &["listen"];
    refuses_unknown_flag: args &[LISTEN0[0], LISTEN0[1], "--bogus"], env &[], names &["bogus"];
    refuses_env_poll_timeout_not_a_number: args &LISTEN0, env &[("EVENT_SYNCER_POLL_TIMEOUT", "x")], names POLL;
    refuses_env_max_body_zero: args &LISTEN0, env &[("EVENT_SYNCER_MAX_BODY", "0")], names &["max-body", "max_body"];
    refuses_env_unknown_log_level: args &LISTEN0, env &[("EVENT_SYNCER_LOG", "loud")], names &["log-level", "log_level", "event_syncer_log"];
    refuses_env_listen_nonsense: args &[], env &[("EVENT_SYNCER_LISTEN", "nope")], names &["listen"];
}

// ---------------------------------------------------------------------------
// Signals.
// ---------------------------------------------------------------------------

/// SPEC: "SIGINT/SIGTERM: stop accepting, answer every parked consumer []
/// without consuming anything, finish pending writes, exit 0 within a
/// bounded drain time."
fn parked_consumers_are_answered_on(sig: libc::c_int) {
    let mut server = Server::start(&[]);
    push(&server, "k", "1");
    assert_eq!(take(&server, "k", "done"), "[1]");
    let mut parked = [
        park(&server, "k", "done"),
        park(&server, "k2", "a"),
        park(&server, "k2", "b"),
    ];
    wait_parked(&server, 3);

    server.signal(sig);
    for (i, c) in parked.iter_mut().enumerate() {
        let r = c.read_response(secs(5.0));
        assert_eq!((r.status, r.text().as_str()), (200, "[]"), "consumer {i}");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let status = server.wait_exit(secs(6.0)).unwrap_or_else(|| {
        panic!(
            "still running 6 s after signal {sig}; stderr:\n{}",
            server.logs()
        )
    });
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.logs());
}

#[test]
fn sigterm_answers_parked_consumers_and_exits_0() {
    parked_consumers_are_answered_on(libc::SIGTERM);
}

#[test]
fn sigint_answers_parked_consumers_and_exits_0() {
    parked_consumers_are_answered_on(libc::SIGINT);
}

/// SPEC: "stop accepting ... finish pending writes": a ~7 MiB batch (more
/// than a loopback socket's kernel buffers hold, so most of it is still in
/// the server when the signal comes) keeps the server draining; meanwhile
/// new connections are not served, and the batch then arrives whole.
#[test]
fn sigterm_finishes_pending_writes() {
    let mut server = Server::start(&[]);
    let events: Vec<String> = (0..8)
        .map(|i| format!("\"{i}{}\"", "z".repeat(900 * 1024)))
        .collect();
    for e in &events {
        assert_eq!(push(&server, "big", e), 200);
    }
    let mut slow = Raw::connect(&server);
    slow.send(&get_req(&bget_path("big", "g", Some("0"))));
    fence(&server);

    server.sigterm();
    let addr = server.addr();
    let stopped = poll_until(secs(2.0), || {
        let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return true;
        };
        let mut c = Raw::from_stream(stream);
        c.send_lossy(b"GET /fence HTTP/1.1\r\nHost: x\r\n\r\n");
        c.try_read_response(secs(0.3)).is_none()
    });
    assert!(stopped, "still serving new connections after SIGTERM");
    let r = slow.read_response_slowly(64 * 1024, Duration::from_millis(1), secs(5.0));
    assert_eq!(r.status, 200);
    let want = format!("[{}]", events.join(","));
    assert!(
        r.body == want.as_bytes(),
        "batch cut short: {} of {} bytes",
        r.body.len(),
        want.len()
    );
    let status = server.wait_exit(secs(6.0)).expect("exit after drain");
    assert_eq!(status.code(), Some(0));
}

/// An idle server exits promptly and cleanly on SIGTERM.
#[test]
fn sigterm_with_nothing_pending_exits_0_at_once() {
    let mut server = Server::start(&[]);
    let t0 = Instant::now();
    server.sigterm();
    let status = server.wait_exit(secs(5.0)).expect("exit");
    assert_eq!(status.code(), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------
// The real default.
// ---------------------------------------------------------------------------

/// SPEC: poll timeout default `30`, and "fires no earlier than its
/// deadline". Runs the server with no setting but the port: 30 s.
#[test]
fn default_poll_timeout_is_30_seconds() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    let t0 = Instant::now();
    c.send(&get_req(&bget_path("k", "g", None)));
    let r = c.read_response(secs(40.0));
    let took = t0.elapsed();
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert!(took >= Duration::from_secs(30), "answered after {took:?}");
    assert!(
        took <= Duration::from_millis(31_000),
        "answered after {took:?}"
    );
}
