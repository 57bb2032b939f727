//! `/healthz` and `/metrics` (SPEC.md "Other endpoints"; issue 3
//! "Observability"): the exposition is well-formed Prometheus text 0.0.4,
//! and every number moves when the thing it counts happens, and only then.
//!
//! Scrapes go over one persistent keep-alive connection (a [`Scraper`]), so
//! the scraper's own connection is a constant `1` in
//! `event_syncer_connections_open` and no scrape races the close of the
//! previous one. Counters are compared as deltas between two scrapes around
//! the action that should move them.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One scrape: the text, and every sample by its series as printed
/// (`name` or `name{labels}`).
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    fn parse(text: String) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (series, value) = l
                    .rsplit_once(' ')
                    .unwrap_or_else(|| panic!("sample line without a value: {l:?}"));
                let value: f64 = value
                    .parse()
                    .unwrap_or_else(|e| panic!("sample value in {l:?}: {e}"));
                (series.to_string(), value)
            })
            .collect();
        Scrape { text, samples }
    }

    /// The sample for `series`; panics if the scrape lacks it.
    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in:\n{}", self.text))
    }

    /// The sample for a labelled counter series, `0` if not yet printed
    /// (a series may appear only once it has counted something).
    fn counter(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }

    /// `event_syncer_requests_total` for one endpoint and status.
    fn requests(&self, endpoint: &str, status: u16) -> f64 {
        self.counter(&format!(
            "event_syncer_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}}"
        ))
    }

    /// `event_syncer_requests_total` for one status, over every endpoint.
    fn requests_with_status(&self, status: u16) -> f64 {
        let label = format!("status=\"{status}\"");
        self.samples
            .iter()
            .filter(|(k, _)| k.starts_with("event_syncer_requests_total{") && k.contains(&label))
            .map(|(_, v)| v)
            .sum()
    }

    fn rejected(&self, reason: &str) -> f64 {
        self.counter(&format!(
            "event_syncer_rejected_total{{reason=\"{reason}\"}}"
        ))
    }
}

/// Scrapes `/metrics` over one keep-alive connection.
struct Scraper {
    conn: Raw,
}

impl Scraper {
    fn new(server: &Server) -> Scraper {
        Scraper {
            conn: Raw::connect(server),
        }
    }

    /// One scrape; asserts `200` and the exposition content type.
    fn scrape(&mut self) -> Scrape {
        self.conn.send(&get_req("/metrics"));
        let r = self.conn.read_response(secs(10.0));
        assert_eq!(r.status, 200, "{}", r.text());
        let ctype = r.header("content-type").unwrap_or("");
        assert!(
            ctype.starts_with("text/plain; version=0.0.4"),
            "content type {ctype:?}"
        );
        Scrape::parse(r.text())
    }

    /// Scrapes until `series` reads `want`; panics with the last value at
    /// `deadline`.
    fn wait_for(&mut self, series: &str, want: f64, deadline: Instant) -> Scrape {
        let mut last = self.scrape();
        let ok = poll_until(deadline, || {
            last = self.scrape();
            last.get(series) == want
        });
        assert!(ok, "{series} stayed at {} (want {want})", last.get(series));
        last
    }
}

/// The gauge families interfaces.md names.
const GAUGES: [&str; 6] = [
    "event_syncer_connections_open",
    "event_syncer_consumers_parked",
    "event_syncer_events_live",
    "event_syncer_event_bytes_live",
    "event_syncer_keys",
    "event_syncer_groups",
];

/// The counter families interfaces.md names.
const COUNTERS: [&str; 9] = [
    "event_syncer_requests_total",
    "event_syncer_pushes_total",
    "event_syncer_events_delivered_total",
    "event_syncer_batches_delivered_total",
    "event_syncer_poll_timeouts_total",
    "event_syncer_events_expired_total",
    "event_syncer_connections_accepted_total",
    "event_syncer_connections_refused_total",
    "event_syncer_rejected_total",
];

#[test]
fn healthz_answers_200_ok() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&get_req("/healthz"));
    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        r.header("content-type")
    );
}

/// Every sample belongs to a family announced with `# HELP` and `# TYPE`
/// (each once, before its samples); the types are right; every family
/// interfaces.md names is there.
#[test]
fn the_exposition_is_well_formed() {
    let server = Server::start(&[]);
    // Some traffic, so that labelled series exist.
    assert_eq!(push(&server, "k", "1"), 200);
    assert_eq!(bget(&server, "k", "g", Some("0")).0, 200);
    assert_eq!(get(&server, "/nope").0, 404);
    let scrape = Scraper::new(&server).scrape();

    let mut help: HashMap<String, usize> = HashMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for line in scrape.text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(!text.trim().is_empty(), "empty HELP: {line}");
            *help.entry(name.to_string()).or_default() += 1;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("TYPE without a type: {line}"));
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE for {name}"
            );
        } else if line.starts_with('#') || line.is_empty() {
            panic!("stray line: {line:?}");
        } else {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            assert!(name.starts_with("event_syncer_"), "unprefixed: {line}");
            assert_eq!(help.get(name), Some(&1), "no single HELP before {line}");
            let kind = types
                .get(name)
                .unwrap_or_else(|| panic!("no TYPE before {line}"));
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {name}");
            }
        }
    }
    for name in GAUGES {
        assert_eq!(types.get(name).map(String::as_str), Some("gauge"), "{name}");
    }
    for name in COUNTERS {
        assert_eq!(
            types.get(name).map(String::as_str),
            Some("counter"),
            "{name}"
        );
    }
    for name in GAUGES.iter().chain(&COUNTERS) {
        assert!(
            scrape
                .samples
                .keys()
                .any(|k| k == name || k.starts_with(&format!("{name}{{"))),
            "family {name} has no sample"
        );
    }
}

/// `connections_open` counts the scraper and every open client, and drops
/// back when they close; `connections_accepted_total` counts each once.
#[test]
fn connection_gauge_and_accepted_counter_move() {
    let server = Server::start(&[]);
    let mut scraper = Scraper::new(&server);
    let s0 = scraper.scrape();
    assert_eq!(s0.get("event_syncer_connections_open"), 1.0);

    let clients: Vec<Raw> = (0..3)
        .map(|_| {
            let mut c = Raw::connect(&server);
            c.send(&get_req("/healthz"));
            assert_eq!(c.read_response(secs(5.0)).status, 200);
            c
        })
        .collect();
    let s1 = scraper.scrape();
    assert_eq!(s1.get("event_syncer_connections_open"), 4.0);
    assert_eq!(
        s1.get("event_syncer_connections_accepted_total")
            - s0.get("event_syncer_connections_accepted_total"),
        3.0
    );

    drop(clients);
    scraper.wait_for("event_syncer_connections_open", 1.0, secs(5.0));
}

/// Past `--max-connections`, `connections_refused_total` counts the refusal
/// and `connections_open` does not move.
#[test]
fn refused_connections_are_counted() {
    let server = Server::start(&["--max-connections", "2"]);
    let mut scraper = Scraper::new(&server);
    let mut other = Raw::connect(&server);
    other.send(&get_req("/healthz"));
    assert_eq!(other.read_response(secs(5.0)).status, 200);
    let s0 = scraper.scrape();
    assert_eq!(s0.get("event_syncer_connections_open"), 2.0);

    let mut refused = Raw::connect(&server);
    assert!(
        refused.try_read_response(secs(5.0)).is_none() && refused.saw_eof(),
        "the third connection was not closed"
    );
    let s1 = scraper.scrape();
    assert_eq!(
        s1.get("event_syncer_connections_refused_total")
            - s0.get("event_syncer_connections_refused_total"),
        1.0
    );
    assert_eq!(
        s1.get("event_syncer_connections_accepted_total"),
        s0.get("event_syncer_connections_accepted_total")
    );
    assert_eq!(s1.get("event_syncer_connections_open"), 2.0);
}

/// `consumers_parked` is 1 while a consumer waits and 0 once it hangs up.
#[test]
fn parked_gauge_follows_a_consumer() {
    let server = Server::start(&[]);
    let mut scraper = Scraper::new(&server);
    assert_eq!(scraper.scrape().get("event_syncer_consumers_parked"), 0.0);
    let consumer = park(&server, "k", "g");
    scraper.wait_for("event_syncer_consumers_parked", 1.0, secs(5.0));
    drop(consumer);
    let s = scraper.wait_for("event_syncer_consumers_parked", 0.0, secs(5.0));
    assert_eq!(s.get("event_syncer_connections_open"), 1.0);
}

/// Live events, their bytes, keys and groups follow pushes and reads, and
/// fall to zero within a second of the events' expiry, which
/// `events_expired_total` counts.
#[test]
fn store_gauges_follow_pushes_reads_and_expiry() {
    const TTL: f64 = 2.0;
    let server = Server::start(&["--event-ttl", "2"]);
    let mut scraper = Scraper::new(&server);
    let s0 = scraper.scrape();
    for g in GAUGES.iter().skip(2) {
        assert_eq!(s0.get(g), 0.0, "{g} on an empty server");
    }

    let bodies = [r#"{"a":1}"#, "[1,2,3]"];
    for b in bodies {
        assert_eq!(push(&server, "k", b), 200);
    }
    let pushed = Instant::now();
    assert_eq!(take(&server, "k", "g1"), r#"[{"a":1},[1,2,3]]"#);
    assert_eq!(take(&server, "k", "g2"), r#"[{"a":1},[1,2,3]]"#);
    let s1 = scraper.scrape();
    assert!(
        pushed.elapsed() < Duration::from_secs_f64(TTL),
        "too slow to observe the events before their expiry"
    );
    assert_eq!(s1.get("event_syncer_events_live"), 2.0);
    let json_bytes: usize = bodies.iter().map(|b| b.len()).sum();
    assert!(
        s1.get("event_syncer_event_bytes_live") >= json_bytes as f64,
        "event_bytes_live {} < the JSON alone ({json_bytes})",
        s1.get("event_syncer_event_bytes_live")
    );
    assert_eq!(s1.get("event_syncer_keys"), 1.0);
    assert_eq!(s1.get("event_syncer_groups"), 2.0);
    assert_eq!(
        s1.get("event_syncer_pushes_total") - s0.get("event_syncer_pushes_total"),
        2.0
    );

    // Expiry is at most TTL after `pushed`; SPEC frees memory within 1 s of
    // it; 0.2 s of slack for the scrape.
    let s2 = scraper.wait_for(
        "event_syncer_events_live",
        0.0,
        pushed + Duration::from_secs_f64(TTL + 1.2),
    );
    assert_eq!(s2.get("event_syncer_event_bytes_live"), 0.0);
    assert_eq!(s2.get("event_syncer_keys"), 0.0);
    assert_eq!(s2.get("event_syncer_groups"), 0.0);
    assert_eq!(
        s2.get("event_syncer_events_expired_total") - s0.get("event_syncer_events_expired_total"),
        2.0
    );
}

/// One push to three parked groups: one push, three events delivered in
/// three batches. A take of two waiting events: two events, one batch. An
/// empty take delivers nothing.
#[test]
fn deliveries_are_counted_per_group_and_per_batch() {
    let server = Server::start(&[]);
    let mut scraper = Scraper::new(&server);
    let mut consumers: Vec<Raw> = ["a", "b", "c"]
        .iter()
        .map(|g| park(&server, "fan", g))
        .collect();
    scraper.wait_for("event_syncer_consumers_parked", 3.0, secs(5.0));
    let s0 = scraper.scrape();

    assert_eq!(push(&server, "fan", "1"), 200);
    for c in &mut consumers {
        let r = c.read_response(secs(5.0));
        assert_eq!((r.status, r.text().as_str()), (200, "[1]"));
    }
    let s1 = scraper.scrape();
    let delta = |a: &Scrape, b: &Scrape, name: &str| b.get(name) - a.get(name);
    assert_eq!(delta(&s0, &s1, "event_syncer_pushes_total"), 1.0);
    assert_eq!(delta(&s0, &s1, "event_syncer_events_delivered_total"), 3.0);
    assert_eq!(delta(&s0, &s1, "event_syncer_batches_delivered_total"), 3.0);
    assert_eq!(s1.get("event_syncer_consumers_parked"), 0.0);

    assert_eq!(push(&server, "fan", "2"), 200);
    assert_eq!(push(&server, "fan", "3"), 200);
    assert_eq!(take(&server, "fan", "a"), "[2,3]");
    assert_eq!(take(&server, "fan", "a"), "[]");
    let s2 = scraper.scrape();
    assert_eq!(delta(&s1, &s2, "event_syncer_pushes_total"), 2.0);
    assert_eq!(delta(&s1, &s2, "event_syncer_events_delivered_total"), 2.0);
    assert_eq!(delta(&s1, &s2, "event_syncer_batches_delivered_total"), 1.0);
}

/// A consumer whose wait runs out is one `poll_timeouts_total`.
#[test]
fn poll_timeouts_are_counted() {
    let server = Server::start(&[]);
    let mut scraper = Scraper::new(&server);
    let s0 = scraper.scrape();
    assert_eq!(
        bget(&server, "quiet", "g", Some("0.2")),
        (200, "[]".to_string())
    );
    let s1 = scraper.scrape();
    assert_eq!(
        s1.get("event_syncer_poll_timeouts_total") - s0.get("event_syncer_poll_timeouts_total"),
        1.0
    );
    assert_eq!(
        s1.get("event_syncer_events_delivered_total"),
        s0.get("event_syncer_events_delivered_total")
    );
}

/// Requests are counted by endpoint and status, and refusals by reason:
/// 400 (bad JSON, bad query), 413, 431, 503 and 408, each exactly once.
#[test]
fn requests_and_rejections_are_counted_by_endpoint_status_and_reason() {
    let server = Server::start(&[
        "--max-body",
        "100",
        "--max-memory",
        "2048",
        "--header-timeout",
        "0.5",
    ]);
    let mut scraper = Scraper::new(&server);
    let s0 = scraper.scrape();

    let mut c = Raw::connect(&server);
    let mut call = |req: Vec<u8>| {
        c.send(&req);
        c.read_response(secs(5.0)).status
    };
    assert_eq!(call(push_req("k", b"{}")), 200);
    assert_eq!(call(push_req("k", b"{nope")), 400);
    assert_eq!(call(get_req("/blocking-get?key=k")), 400);
    assert_eq!(call(get_req(&bget_path("k", "g", Some("0")))), 200);
    assert_eq!(call(get_req("/healthz")), 200);
    assert_eq!(call(get_req("/nope")), 404);
    assert_eq!(call(get_req("/push?key=k")), 405);
    // Fill the store: pushes of ~90 bytes until the first 503.
    let mut filled = 0.0;
    loop {
        match call(push_req("k", format!("\"{}\"", "m".repeat(88)).as_bytes())) {
            200 => filled += 1.0,
            503 => break,
            other => panic!("filling push: {other}"),
        }
        assert!(filled < 100.0, "no 503 with --max-memory 2048");
    }

    let once = |req: &[u8], want: u16| {
        let mut c = Raw::connect(&server);
        c.send(req);
        assert_eq!(c.read_response(secs(5.0)).status, want);
    };
    once(&push_req("k", &[b'1'; 101]), 413);
    once(
        &[
            &b"GET /healthz HTTP/1.1\r\nX-Pad: "[..],
            &[b'p'; 9000],
            b"\r\n\r\n",
        ]
        .concat(),
        431,
    );
    once(b"GET /healthz HTTP/1.1\r\nHo", 408);

    let s1 = scraper.scrape();
    let d = |f: &dyn Fn(&Scrape) -> f64| f(&s1) - f(&s0);
    assert_eq!(d(&|s| s.requests("push", 200)), 1.0 + filled);
    assert_eq!(d(&|s| s.requests("push", 400)), 1.0);
    assert_eq!(d(&|s| s.requests("push", 405)), 1.0);
    assert_eq!(d(&|s| s.requests("push", 503)), 1.0);
    assert_eq!(d(&|s| s.requests("blocking_get", 400)), 1.0);
    assert_eq!(d(&|s| s.requests("blocking_get", 200)), 1.0);
    assert_eq!(d(&|s| s.requests("healthz", 200)), 1.0);
    assert_eq!(d(&|s| s.requests("other", 404)), 1.0);
    assert_eq!(d(&|s| s.requests("metrics", 200)), 1.0, "the first scrape");
    assert_eq!(d(&|s| s.requests_with_status(413)), 1.0);
    assert_eq!(d(&|s| s.requests_with_status(431)), 1.0);
    assert_eq!(d(&|s| s.requests_with_status(408)), 1.0);
    assert_eq!(d(&|s| s.rejected("bad_request")), 2.0);
    assert_eq!(d(&|s| s.rejected("body_too_large")), 1.0);
    assert_eq!(d(&|s| s.rejected("head_too_large")), 1.0);
    assert_eq!(d(&|s| s.rejected("memory_full")), 1.0);
    assert_eq!(d(&|s| s.rejected("timeout")), 1.0);
    assert_eq!(d(&|s| s.get("event_syncer_pushes_total")), 1.0 + filled);
}

/// The `promtool` binary to check the exposition with: `$PROMTOOL`, or
/// `promtool` on `PATH`.
fn promtool() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Some(p.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
}

/// `promtool check metrics` accepts a real scrape. Without promtool the
/// check is skipped, and says so.
#[test]
fn promtool_accepts_the_exposition() {
    let server = Server::start(&[]);
    assert_eq!(push(&server, "k", "1"), 200);
    assert_eq!(bget(&server, "k", "g", Some("0")).0, 200);
    assert_eq!(push(&server, "k", "{bad"), 400);
    let text = Scraper::new(&server).scrape().text;
    let Some(tool) = promtool() else {
        eprintln!("promtool not found (set PROMTOOL or put it on PATH): check skipped");
        return;
    };
    let mut child = Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {}: {e}", tool.display()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- scrape:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
