//! A bounded soak (issue 3, "Proving it"): several client threads open
//! thousands of connections between them and do random valid and invalid
//! things: pushes (with a length or chunked), blocking-gets with short
//! timeouts, pipelined batches, bad JSON, bad queries, garbage bytes,
//! oversized heads, hang-ups and resets in the middle of a request or of a
//! park. Every answer to a well-formed request is checked for its status and
//! shape, and no event may reach one group twice.
//!
//! Afterwards, with every client gone, the server must look idle again:
//! one open connection (the scraper), nobody parked, and once the short TTL
//! has passed no events, keys or groups, with its resident memory back near
//! where it started. A leaked connection, timer, parked consumer or buffer
//! shows up there.
//!
//! The random choices come from a xorshift generator seeded per thread from
//! one seed, printed at the start (override it with `SOAK_SEED`), so a failing
//! run can be replayed. The interleaving of threads is not reproducible, but
//! each thread's script of requests is.

mod common;

use common::*;
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const CONNECTIONS_PER_THREAD: usize = 1000;
/// Parked consumers each thread keeps open at most.
const MAX_HELD: usize = 64;
const KEYS: u64 = 6;
const GROUPS: u64 = 6;
/// The event TTL the soak server runs with, in seconds.
const TTL: f64 = 2.0;
/// How far the server's RSS may stay above its starting point at the end.
const RSS_SLACK: u64 = 16 << 20;
const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// Marsaglia's xorshift64: tiny, fast and reproducible.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` in 100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Events seen per (key, group, pushing thread, push number): a second
/// sighting is a double delivery.
type Seen = Arc<Mutex<HashSet<(u64, u64, u64, u64)>>>;

/// A well-formed request and what its answer must be.
#[derive(Debug, Clone)]
enum Op {
    Push {
        key: u64,
        n: u64,
        chunked: bool,
    },
    PushBadJson {
        key: u64,
    },
    Take {
        key: u64,
        group: u64,
        timeout: &'static str,
    },
    /// A blocking-get on a key nobody pushes to: always `[]`, at its timeout.
    TakeQuiet,
    BadTimeout,
    MissingGroup,
    Healthz,
    NotFound,
    WrongMethod,
    Metrics,
}

/// One client thread's state: its generator and its push counters.
struct Client {
    id: u64,
    rng: XorShift,
    /// Push numbers handed out (some are never sent whole).
    pushes: u64,
    /// Pushes answered `200`.
    stored: u64,
    /// Parked consumers kept open for a while, to hang up later.
    held: Vec<Raw>,
    addr: std::net::SocketAddr,
    seen: Seen,
}

impl Client {
    fn op(&mut self) -> Op {
        let key = self.rng.below(KEYS);
        match self.rng.below(100) {
            0..=29 => {
                self.pushes += 1;
                Op::Push {
                    key,
                    n: self.pushes,
                    chunked: self.rng.chance(25),
                }
            }
            57..=59 => Op::TakeQuiet,
            30..=56 => Op::Take {
                key,
                group: self.rng.below(GROUPS),
                timeout: match self.rng.below(10) {
                    0 => "0.05",
                    1 => "0.1",
                    _ => "0",
                },
            },
            60..=66 => Op::PushBadJson { key },
            67..=72 => Op::BadTimeout,
            73..=77 => Op::MissingGroup,
            78..=85 => Op::Healthz,
            86..=91 => Op::NotFound,
            92..=97 => Op::WrongMethod,
            _ => Op::Metrics,
        }
    }

    fn bytes(&self, op: &Op) -> Vec<u8> {
        match *op {
            Op::Push { key, n, chunked } => {
                let body = format!(r#"{{"k":{key},"t":{},"n":{n}}}"#, self.id);
                if chunked {
                    let (a, b) = body.split_at(body.len() / 2);
                    format!(
                        "POST /push?key=k{key} HTTP/1.1\r\nHost: soak\r\n\
                         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                        a.len(),
                        b.len()
                    )
                    .into_bytes()
                } else {
                    push_req(&format!("k{key}"), body.as_bytes())
                }
            }
            Op::PushBadJson { key } => push_req(&format!("k{key}"), b"{\"k\":"),
            Op::Take {
                key,
                group,
                timeout,
            } => get_req(&bget_path(
                &format!("k{key}"),
                &format!("g{group}"),
                Some(timeout),
            )),
            Op::TakeQuiet => get_req(&bget_path("quiet", "g", Some("0.02"))),
            Op::BadTimeout => get_req("/blocking-get?key=k0&groupId=g0&timeout=-1"),
            Op::MissingGroup => get_req("/blocking-get?key=k0"),
            Op::Healthz => get_req("/healthz"),
            Op::NotFound => get_req("/no/such/path"),
            Op::WrongMethod => get_req("/push?key=k0"),
            Op::Metrics => get_req("/metrics"),
        }
    }

    /// Checks one answer against what `op` must get.
    fn check(&self, op: &Op, r: &Response, ctx: &str) {
        let json = r
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"));
        let want = |status: u16| {
            assert_eq!(
                r.status,
                status,
                "{ctx}: {op:?} got {:?} {}",
                r.head,
                r.text()
            );
        };
        let error = |status: u16| {
            want(status);
            assert!(json, "{ctx}: {op:?} error without JSON type");
            assert_json_error(&r.body);
        };
        match *op {
            Op::Push { .. } => {
                want(200);
                assert!(json, "{ctx}: push answer type");
                let v: serde_json::Value = serde_json::from_slice(&r.body)
                    .unwrap_or_else(|e| panic!("{ctx}: push answer {e}: {}", r.text()));
                assert_eq!(v["message"], "Data pushed successfully", "{ctx}");
                assert!(v["id"].is_u64(), "{ctx}: push id in {v}");
            }
            Op::PushBadJson { .. } | Op::BadTimeout | Op::MissingGroup => error(400),
            Op::NotFound => error(404),
            Op::WrongMethod => {
                error(405);
                assert_eq!(r.header("allow"), Some("POST, OPTIONS"), "{ctx}");
            }
            Op::Healthz => {
                want(200);
                assert_eq!(r.text(), "ok", "{ctx}");
            }
            Op::TakeQuiet => {
                want(200);
                assert!(json, "{ctx}: take answer type");
                assert_eq!(r.text(), "[]", "{ctx}");
            }
            Op::Metrics => {
                want(200);
                assert!(r.text().contains("# TYPE event_syncer_"), "{ctx}");
            }
            Op::Take { key, group, .. } => {
                want(200);
                assert!(json, "{ctx}: take answer type");
                let events: Vec<serde_json::Value> = serde_json::from_slice(&r.body)
                    .unwrap_or_else(|e| panic!("{ctx}: take answer {e}: {}", r.text()));
                let mut last_n = std::collections::HashMap::new();
                let mut seen = self.seen.lock().expect("seen lock");
                for e in &events {
                    let field = |f: &str| {
                        e[f].as_u64()
                            .unwrap_or_else(|| panic!("{ctx}: event without {f}: {e}"))
                    };
                    let (k, t, n) = (field("k"), field("t"), field("n"));
                    assert_eq!(k, key, "{ctx}: event of key {k} delivered for key {key}");
                    // One thread pushes in order, so its events are in order.
                    let prev = last_n.insert(t, n);
                    assert!(
                        prev.is_none_or(|p| p < n),
                        "{ctx}: events of thread {t} out of order in {}",
                        r.text()
                    );
                    assert!(
                        seen.insert((key, group, t, n)),
                        "{ctx}: event {e} delivered twice to group g{group}"
                    );
                }
            }
        }
    }

    /// Sends `ops` (pipelined in one write, or one at a time) and checks
    /// every answer; stops early if an answer says the connection closes.
    fn exchange(&mut self, c: &mut Raw, ops: &[Op], pipelined: bool, ctx: &str) {
        if pipelined {
            let all: Vec<u8> = ops.iter().flat_map(|op| self.bytes(op)).collect();
            c.send(&all);
        }
        for (i, op) in ops.iter().enumerate() {
            if !pipelined {
                c.send(&self.bytes(op));
            }
            let r = c.try_read_response(secs(20.0)).unwrap_or_else(|| {
                panic!(
                    "{ctx}: no answer to request {i} {op:?} (eof={})",
                    c.saw_eof()
                )
            });
            self.check(op, &r, &format!("{ctx} req {i}"));
            if matches!(op, Op::Push { .. }) {
                self.stored += 1;
            }
            if r.closes() {
                return;
            }
        }
    }

    /// One connection's life, chosen at random.
    fn connection(&mut self, conn: usize) {
        let ctx = format!("thread {} connection {conn}", self.id);
        let mut c = Raw::connect_addr(self.addr);
        match self.rng.below(100) {
            // Ordinary traffic, then a normal close or a reset.
            0..=69 => {
                let count = 1 + self.rng.below(6) as usize;
                let ops: Vec<Op> = (0..count).map(|_| self.op()).collect();
                let pipelined = self.rng.chance(35);
                self.exchange(&mut c, &ops, pipelined, &ctx);
                if self.rng.chance(15) {
                    c.reset();
                }
            }
            // Some requests, then a hang-up in the middle of the next one.
            70..=79 => {
                let ops: Vec<Op> = (0..self.rng.below(3)).map(|_| self.op()).collect();
                self.exchange(&mut c, &ops, false, &ctx);
                let op = self.op();
                let bytes = self.bytes(&op);
                let cut = 1 + self.rng.below(bytes.len() as u64 - 1) as usize;
                let _ = c.stream.write_all(&bytes[..cut]);
                if self.rng.chance(50) {
                    c.reset();
                }
            }
            // A hang-up while parked (or while being answered).
            80..=87 => {
                let key = self.rng.below(KEYS);
                let group = self.rng.below(GROUPS);
                // Half of them wait on keys nobody pushes to: only a hang-up
                // can end their park before the soak is over, so a consumer
                // leaked at hang-up shows in the parked gauge at the end.
                let (key, timeout) = if self.rng.chance(50) {
                    (
                        format!("k{key}"),
                        if self.rng.chance(50) { "1" } else { "5" },
                    )
                } else {
                    (format!("quiet{key}"), "5")
                };
                // Groups of their own (`h`), apart from the checked ones.
                let path = bget_path(&key, &format!("h{group}"), Some(timeout));
                c.send(&get_req(&path));
                if self.rng.chance(50) {
                    thread::sleep(Duration::from_millis(self.rng.below(20)));
                    self.hang_up(c);
                } else {
                    // Held open while this thread goes on, and hung up on
                    // later: many consumers parked at once, leaving at
                    // random times.
                    if self.held.len() >= MAX_HELD {
                        let i = self.rng.below(self.held.len() as u64) as usize;
                        let old = self.held.swap_remove(i);
                        self.hang_up(old);
                    }
                    self.held.push(c);
                }
            }
            // Garbage: a request line no parser can take, a header with no
            // colon, a bad Content-Length or a bad chunk size: 400, close.
            88..=93 => {
                let mut garbage = match self.rng.below(4) {
                    0 => {
                        let mut g = b"@".to_vec();
                        let len = 1 + self.rng.below(200) as usize;
                        g.extend(self.rng.bytes(len));
                        g
                    }
                    1 => b"GET /healthz HTTP/1.1\r\nno colon here".to_vec(),
                    2 => b"POST /push?key=k0 HTTP/1.1\r\nContent-Length: 1x".to_vec(),
                    _ => b"POST /push?key=k0 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz"
                        .to_vec(),
                };
                garbage.extend_from_slice(b"\r\n\r\n");
                self.refused(c, &garbage, 400, &ctx);
            }
            // A head over 8 KiB: 431, close.
            _ => {
                let mut head = b"GET /healthz HTTP/1.1\r\nX-Big: ".to_vec();
                head.extend(std::iter::repeat_n(
                    b'b',
                    8200 + self.rng.below(2000) as usize,
                ));
                head.extend_from_slice(b"\r\n\r\n");
                self.refused(c, &head, 431, &ctx);
            }
        }
    }

    /// Closes `c` with a FIN or, at random, a reset.
    fn hang_up(&mut self, c: Raw) {
        if self.rng.chance(50) {
            c.reset();
        }
    }

    /// Sends a request the server must refuse with `status` and then close.
    fn refused(&mut self, mut c: Raw, bytes: &[u8], status: u16, ctx: &str) {
        c.send(bytes);
        let r = c
            .try_read_response(secs(20.0))
            .unwrap_or_else(|| panic!("{ctx}: no answer to {:?}", String::from_utf8_lossy(bytes)));
        assert_eq!(
            r.status,
            status,
            "{ctx}: {:?} got {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]),
            r.text()
        );
        assert_json_error(&r.body);
        c.read_until_close(secs(20.0));
    }
}

/// The value of an unlabelled sample in a scrape.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

#[test]
fn soak_leaves_the_server_idle_and_its_memory_where_it_was() {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED);
    eprintln!("soak seed {seed} (replay with SOAK_SEED={seed})");
    let server = Server::start(&["--event-ttl", "2", "--poll-timeout", "5"]);
    // Let the server touch what it touches on its first requests before
    // taking the baseline.
    assert_eq!(get(&server, "/metrics").0, 200);
    let rss_start = rss_bytes(server.pid());
    let started = Instant::now();

    let seen: Seen = Arc::default();
    let threads: Vec<_> = (0..THREADS as u64)
        .map(|id| {
            let mut client = Client {
                id,
                rng: XorShift::new(seed ^ (id + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)),
                pushes: 0,
                stored: 0,
                held: Vec::new(),
                addr: server.addr(),
                seen: Arc::clone(&seen),
            };
            thread::spawn(move || {
                for conn in 0..CONNECTIONS_PER_THREAD {
                    client.connection(conn);
                }
                for c in std::mem::take(&mut client.held) {
                    client.hang_up(c);
                }
                client.stored
            })
        })
        .collect();
    let mut pushes = 0;
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(n) => pushes += n,
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        std::panic::resume_unwind(e);
    }
    let traffic = started.elapsed();

    let mut scraper = Raw::connect(&server);
    let mut scrape = || {
        scraper.send(&get_req("/metrics"));
        let r = scraper.read_response(secs(10.0));
        assert_eq!(r.status, 200);
        r.text()
    };
    // Every client has closed, so nothing should wait for a timer (the
    // longest is the 2 s linger for a client that never closes, and ours
    // all did); the deadline stays below the 5 s a leaked park could
    // take to time out and hide the leak.
    let mut text = String::new();
    let idle = poll_until(secs(4.0), || {
        text = scrape();
        sample(&text, "event_syncer_connections_open") == 1.0
            && sample(&text, "event_syncer_consumers_parked") == 0.0
    });
    assert!(idle, "connections or consumers left over:\n{text}");
    let emptied = poll_until(after(Duration::from_secs_f64(TTL + 1.0 + 3.0)), || {
        text = scrape();
        ["events_live", "event_bytes_live", "keys", "groups"]
            .iter()
            .all(|g| sample(&text, &format!("event_syncer_{g}")) == 0.0)
    });
    assert!(emptied, "the store did not empty after the TTL:\n{text}");

    let rss_end = rss_bytes(server.pid());
    let delivered = seen.lock().expect("seen lock").len();
    eprintln!(
        "soak: {} connections, {pushes} pushes, {delivered} deliveries checked in {traffic:?}; \
         rss {rss_start} -> {rss_end}",
        THREADS * CONNECTIONS_PER_THREAD
    );
    assert!(
        rss_end <= rss_start + RSS_SLACK,
        "RSS grew from {rss_start} to {rss_end} bytes over the soak"
    );
    // The soak really crossed the paths it claims to.
    let counter = |series: &str| sample(&text, series);
    for series in [
        "event_syncer_batches_delivered_total",
        "event_syncer_poll_timeouts_total",
        "event_syncer_events_expired_total",
        "event_syncer_rejected_total{reason=\"bad_request\"}",
        "event_syncer_rejected_total{reason=\"head_too_large\"}",
    ] {
        assert!(counter(series) > 0.0, "the soak never moved {series}");
    }
    assert!(delivered > 0, "no delivery was checked");
    assert_eq!(
        sample(&text, "event_syncer_pushes_total"),
        pushes as f64,
        "every push the clients saw succeed, and no other, is counted"
    );
}
