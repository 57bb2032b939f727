//! The scenarios of issue 4, each a loop around [`Driver::poll`] with a
//! deadline on every wait.
//!
//! Each scenario records its figures under fixed names (`push.rps`,
//! `fanout.p99_ms`, ...) that `report` turns into table rows, and keeps its
//! latency histograms for the chart. Against the baseline, which parks
//! blocking-gets without keys or groups and answers all of them on any push,
//! the scenarios that mean something run: push rate, parked capacity,
//! fan-out (its floor: one write per parked socket) and a plain request
//! round trip (ping-pong). The baseline has no groups and no leases, so one
//! group, churn and lease churn are event-syncer's only. A scenario that
//! cannot go on returns `Err`; one whose server answered wrongly records a
//! failure and goes on, so that one run shows every problem at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use crate::driver::{Driver, Note};
use crate::sys;
use crate::target::Target;
use crate::wire;

/// The knobs of a run (see `main` for the variables that set them).
pub struct Config {
    pub push_time: Duration,
    pub warmup: Duration,
    pub idle_time: Duration,
    pub parked: usize,
    pub pipeline: usize,
    pub push_conns: usize,
    pub rounds: usize,
    pub churn_events: u64,
    /// Waits for the "rest stay parked" check of one group.
    pub settle: Duration,
    /// Prefix of every key, unique per run, so that runs against a
    /// long-lived server never see each other's events.
    pub run_id: String,
}

/// What one target's run produced.
#[derive(Default)]
pub struct Outcome {
    pub figures: BTreeMap<&'static str, f64>,
    /// Latency histograms in nanoseconds, by scenario.
    pub curves: BTreeMap<&'static str, Histogram<u64>>,
    /// Wrong answers and broken invariants; any makes the run fail.
    pub failures: Vec<String>,
    /// Where the server's semantics differ from event-syncer's (no
    /// consumer groups, a bare event instead of an array): reported in a
    /// section of their own. For event-syncer itself each is a failure too.
    pub findings: Vec<String>,
}

/// A push succeeded: any 2xx (event-syncer answers 200, nchan 201).
pub fn pushed(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Runs every scenario that applies to `target`.
pub fn run(target: &mut Target, config: &Config, baseline: bool) -> Outcome {
    let mut bench = Bench {
        target,
        config,
        baseline,
        outcome: Outcome::default(),
        notes: Vec::new(),
    };
    let name = bench.target.name.clone();
    let step = |bench: &mut Bench, scenario: &str, result: Result<(), String>| {
        if let Err(why) = result {
            let mut why = format!("{name}: {scenario}: {why}");
            let died = bench.target.exit_status();
            if !died.is_empty() {
                why.push_str(&format!(
                    "; the server{died}, last log:\n{}",
                    bench.target.recent_log()
                ));
            }
            eprintln!("FAILED {why}");
            bench.outcome.failures.push(why);
        }
    };
    eprintln!("== {name} at http://{}", bench.target.host);
    let parked = bench.parked_capacity();
    match parked {
        Ok(Some(mut held)) => {
            let fanout = bench.fan_out(&mut held);
            step(&mut bench, "fan-out", fanout);
            // The baseline knows no groups: every parked connection gets
            // every push, so this scenario does not apply to it.
            if !baseline {
                let group = bench.one_group(&mut held);
                step(&mut bench, "one group", group);
            }
            held.driver.close_all(true);
        }
        Ok(None) => {}
        Err(why) => step(&mut bench, "parked capacity", Err(why)),
    }
    let pingpong = bench.ping_pong();
    step(&mut bench, "ping-pong", pingpong);
    if !baseline {
        let churn = bench.churn();
        step(&mut bench, "churn", churn);
        // The baseline has no leases.
        let lease_churn = bench.lease_churn();
        step(&mut bench, "lease churn", lease_churn);
    }
    let push = bench.push_rate();
    step(&mut bench, "push rate", push);
    bench.outcome
}

/// Push rate alone, or with parked capacity and fan-out first: for the
/// variants of the server (access log on, a proxy in front) compared with
/// the full run in the same run.
pub fn run_some(target: &mut Target, config: &Config, fan_out: bool) -> Outcome {
    let mut bench = Bench {
        target,
        config,
        baseline: false,
        outcome: Outcome::default(),
        notes: Vec::new(),
    };
    let name = bench.target.name.clone();
    eprintln!("== {name} at http://{}", bench.target.host);
    let mut errors = Vec::new();
    if fan_out {
        match bench.parked_capacity() {
            Ok(Some(mut held)) => {
                if let Err(why) = bench.fan_out(&mut held) {
                    errors.push(format!("{name}: fan-out: {why}"));
                }
                held.driver.close_all(true);
            }
            Ok(None) => {}
            Err(why) => errors.push(format!("{name}: parked capacity: {why}")),
        }
    }
    if let Err(why) = bench.push_rate() {
        errors.push(format!("{name}: push rate: {why}"));
    }
    for why in &errors {
        eprintln!("FAILED {why}");
    }
    bench.outcome.failures.extend(errors);
    bench.outcome
}

/// Connections left open by parked capacity for fan-out and one group.
struct Held {
    driver: Driver,
    /// Connection ids still waiting, in the order they were opened.
    conns: Vec<usize>,
    control: usize,
    key: String,
}

struct Bench<'a> {
    target: &'a mut Target,
    config: &'a Config,
    baseline: bool,
    outcome: Outcome,
    notes: Vec<Note>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 10 minutes at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

const MS: f64 = 1e6;
const US: f64 = 1e3;

impl Bench<'_> {
    fn figure(&mut self, name: &'static str, value: f64) {
        self.outcome.figures.insert(name, value);
    }

    /// A semantic difference from event-syncer: a finding about another
    /// server, a failure of event-syncer itself.
    fn differ(&mut self, what: String) {
        eprintln!("FINDING {}: {what}", self.target.name);
        let line = format!("{}: {what}", self.target.name);
        if !self.target.external {
            self.outcome.failures.push(line.clone());
        }
        self.outcome.findings.push(line);
    }

    fn fail(&mut self, why: String) {
        eprintln!("FAILED {}: {why}", self.target.name);
        self.outcome
            .failures
            .push(format!("{}: {why}", self.target.name));
    }

    fn driver(&self) -> Result<Driver, String> {
        Driver::new(self.target.addr).map_err(|e| format!("epoll: {e}"))
    }

    fn connect(&self, driver: &mut Driver) -> Result<usize, String> {
        driver.connect().map_err(|e| format!("connect: {e}"))
    }

    /// Polls once, at most `timeout`, into `self.notes`.
    fn poll(&mut self, driver: &mut Driver, timeout: Duration) -> Result<(), String> {
        driver
            .poll(Some(timeout), &mut self.notes)
            .map_err(|e| format!("poll: {e}"))
    }

    /// Sends `request` on `conn` and waits for its response; notes for other
    /// connections are kept in `others`.
    fn exchange(
        &mut self,
        driver: &mut Driver,
        conn: usize,
        request: &[u8],
        others: &mut Vec<Note>,
    ) -> Result<(u16, Vec<u8>), String> {
        driver.send(conn, request);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            self.poll(driver, Duration::from_millis(100))?;
            let mut answer = None;
            for note in self.notes.drain(..) {
                match note {
                    Note::Response {
                        conn: c,
                        status,
                        body,
                        ..
                    } if c == conn => answer = Some((status, body)),
                    Note::Closed { conn: c, why } if c == conn => {
                        return Err(format!("control connection: {why}"));
                    }
                    other => others.push(other),
                }
            }
            if let Some(answer) = answer {
                return Ok(answer);
            }
        }
        Err(format!(
            "no answer within 10 s to {:?}",
            String::from_utf8_lossy(request)
        ))
    }

    /// The server's `event_syncer_consumers_parked` gauge, if it has one.
    /// Asked with `?key=` of the held key, which event-syncer ignores, so
    /// that a proxy hashing on the key asks the instance holding it.
    fn parked_gauge(
        &mut self,
        held: &mut Held,
        others: &mut Vec<Note>,
    ) -> Result<Option<u64>, String> {
        if self.baseline {
            return Ok(None);
        }
        let path = format!("/metrics?key={}", wire::encode(&held.key));
        let request = wire::get(&self.target.host, &path);
        let (status, body) = self.exchange(&mut held.driver, held.control, &request, others)?;
        if status != 200 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .lines()
            .find(|l| {
                l.strip_prefix("event_syncer_consumers_parked")
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64))
    }

    /// Waits until the server reports `want` parked consumers, polling
    /// `/metrics`; without that gauge, waits `fallback` instead. Returns the
    /// last reading.
    fn wait_parked(
        &mut self,
        held: &mut Held,
        want: u64,
        fallback: Duration,
        others: &mut Vec<Note>,
    ) -> Result<Option<u64>, String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let Some(parked) = self.parked_gauge(held, others)? else {
                let until = Instant::now() + fallback;
                while Instant::now() < until {
                    self.poll(&mut held.driver, Duration::from_millis(50))?;
                    others.append(&mut self.notes);
                }
                return Ok(None);
            };
            if parked == want || Instant::now() >= deadline {
                return Ok(Some(parked));
            }
            self.poll(&mut held.driver, Duration::from_millis(20))?;
            others.append(&mut self.notes);
        }
    }

    /// Opens N connections, each a blocking-get of its own group on one key,
    /// and measures what holding them costs the server.
    fn parked_capacity(&mut self) -> Result<Option<Held>, String> {
        let n = self.config.parked;
        let pid = self.target.pid;
        let mut driver = self.driver()?;
        let control = self.connect(&mut driver)?;
        let key = format!("{}-fanout", self.config.run_id);
        let mut held = Held {
            driver,
            conns: Vec::with_capacity(n),
            control,
            key,
        };
        let mut others = Vec::new();
        // Make sure the control connection is up before RSS is sampled.
        self.exchange(
            &mut held.driver,
            control,
            &wire::get(&self.target.host, "/healthz"),
            &mut others,
        )?;
        let rss_before = pid.and_then(sys::rss_bytes);
        let bar = ProgressBar::new(n as u64).with_message(format!("opening {n} connections"));
        bar.set_style(
            ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} {per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let started = Instant::now();
        let deadline = started + Duration::from_secs(60);
        // At most this many handshakes in flight, so a burst never overflows
        // the server's accept queue (net.core.somaxconn is often 4096).
        const IN_FLIGHT: usize = 512;
        let base = held.driver.established();
        let mut answered = 0usize;
        let mut closed = 0usize;
        while held.conns.len() < n {
            if Instant::now() > deadline {
                bar.abandon();
                return Err(format!(
                    "opened only {} of {n} connections in 60 s",
                    held.conns.len()
                ));
            }
            let in_flight = held.conns.len() - (held.driver.established() - base);
            if in_flight < IN_FLIGHT {
                let conn = held
                    .driver
                    .connect()
                    .map_err(|e| format!("connect #{}: {e}", held.conns.len()))?;
                let group = format!("g{}", held.conns.len());
                held.driver.send(
                    conn,
                    &wire::blocking_get(&self.target.host, &held.key, &group),
                );
                held.conns.push(conn);
                bar.inc(1);
                // Drive sockets every so often even when under the cap.
                if !held.conns.len().is_multiple_of(64) {
                    continue;
                }
            }
            self.poll(&mut held.driver, Duration::from_millis(5))?;
            others.append(&mut self.notes);
        }
        bar.finish_and_clear();
        // Every handshake done, every request written.
        while held.driver.established() - base < n {
            if Instant::now() > deadline {
                return Err("handshakes did not complete in 60 s".into());
            }
            self.poll(&mut held.driver, Duration::from_millis(10))?;
            others.append(&mut self.notes);
        }
        // Opened: every handshake done and every request written. Waiting
        // for the server to report them parked is not part of it (the
        // baseline has no gauge and just waits 2 s).
        let open_time = started.elapsed();
        let parked = self.wait_parked(&mut held, n as u64, Duration::from_secs(2), &mut others)?;
        if let Some(parked) = parked {
            self.figure("parked.gauge", parked as f64);
            if parked != n as u64 {
                self.fail(format!(
                    "parked capacity: /metrics reports {parked} parked consumers, {n} expected"
                ));
            }
        }
        let rss_after = pid.and_then(sys::rss_bytes);
        // Idle: nothing happens, the server should do nothing.
        let cpu_before = pid.and_then(sys::cpu_ns);
        let idle_start = Instant::now();
        while idle_start.elapsed() < self.config.idle_time {
            self.poll(&mut held.driver, Duration::from_millis(100))?;
            others.append(&mut self.notes);
        }
        let cpu_after = pid.and_then(sys::cpu_ns);
        let idle = idle_start.elapsed();
        for note in others.drain(..) {
            match note {
                Note::Response {
                    conn, status, body, ..
                } => {
                    answered += 1;
                    if answered <= 3 {
                        self.fail(format!(
                            "parked capacity: connection {conn} was answered while nothing was pushed: {status} {}",
                            String::from_utf8_lossy(&body)
                        ));
                    }
                }
                Note::Closed { conn, why } => {
                    closed += 1;
                    if closed <= 3 {
                        self.fail(format!("parked capacity: connection {conn}: {why}"));
                    }
                }
            }
        }
        held.conns.retain(|&c| held.driver.is_open(c));
        let still = n - answered.min(n) - closed.min(n);
        self.figure("parked.asked", n as f64);
        self.figure("parked.held", still as f64);
        self.figure("parked.open_s", open_time.as_secs_f64());
        if let (Some(before), Some(after)) = (rss_before, rss_after) {
            self.figure("parked.rss_before", before as f64);
            self.figure("parked.rss_after", after as f64);
            self.figure(
                "parked.bytes_per_conn",
                (after as f64 - before as f64) / n as f64,
            );
        }
        if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
            self.figure(
                "parked.idle_cpu_pct",
                (after - before) as f64 / idle.as_nanos() as f64 * 100.0,
            );
        }
        eprintln!(
            "   parked capacity: {still} of {n} held, opened in {:.1} s",
            open_time.as_secs_f64()
        );
        if still < n {
            held.driver.close_all(true);
            return Ok(None);
        }
        Ok(Some(held))
    }

    /// One push to the key all N parked groups wait on.
    fn fan_out(&mut self, held: &mut Held) -> Result<(), String> {
        let n = held.conns.len();
        let pid = self.target.pid;
        let event = br#"{"fanout":1}"#;
        let want = [b"[".as_slice(), event, b"]"].concat();
        let push = wire::push(&self.target.host, &held.key, event);
        let cpu_before = pid.and_then(sys::cpu_ns);
        let sent = Instant::now();
        held.driver.send(held.control, &push);
        let mut latency = histogram();
        let mut push_done = None;
        let mut received = 0;
        let mut wrong = 0;
        let mut bare = 0;
        let mut last = sent;
        let deadline = sent + Duration::from_secs(30);
        while (received < n || push_done.is_none()) && Instant::now() < deadline {
            self.poll(&mut held.driver, Duration::from_millis(100))?;
            for note in std::mem::take(&mut self.notes) {
                match note {
                    Note::Response {
                        conn, at, status, ..
                    } if conn == held.control => {
                        push_done = Some(at);
                        if !pushed(status) {
                            self.fail(format!("fan-out: push answered {status}"));
                        }
                    }
                    Note::Response {
                        conn,
                        status,
                        body,
                        at,
                        ..
                    } => {
                        received += 1;
                        last = last.max(at);
                        latency.saturating_record(nanos(at - sent));
                        if status == 200 && body == event && bare == 0 {
                            bare += 1;
                            self.differ(
                                "a blocking-get is answered with the bare event, not a JSON array of events"
                                    .into(),
                            );
                        } else if (status != 200 || body != want) && body != event && wrong < 3 {
                            wrong += 1;
                            self.fail(format!(
                                "fan-out: connection {conn} got {status} {:?}, want 200 {:?}",
                                String::from_utf8_lossy(&body),
                                String::from_utf8_lossy(&want)
                            ));
                        }
                    }
                    Note::Closed { conn, why } => {
                        self.fail(format!("fan-out: connection {conn}: {why}"));
                    }
                }
            }
        }
        let cpu_after = pid.and_then(sys::cpu_ns);
        if received < n {
            self.fail(format!(
                "fan-out: {received} of {n} consumers answered within 30 s"
            ));
        }
        self.figure("fanout.delivered", received as f64);
        self.figure("fanout.p50_ms", latency.value_at_quantile(0.5) as f64 / MS);
        self.figure("fanout.p99_ms", latency.value_at_quantile(0.99) as f64 / MS);
        self.figure("fanout.max_ms", (last - sent).as_secs_f64() * 1e3);
        if let Some(done) = push_done {
            self.figure("fanout.push_ms", (done - sent).as_secs_f64() * 1e3);
        }
        if let (Some(before), Some(after)) = (cpu_before, cpu_after) {
            let cost = (after - before) as f64;
            self.figure("fanout.cpu_ms", cost / MS);
            if received > 0 {
                self.figure("fanout.cpu_per_delivery_us", cost / US / received as f64);
            }
        }
        self.outcome.curves.insert("fan-out", latency);
        eprintln!(
            "   fan-out: {received} of {n} answered, last after {:.1} ms",
            (last - sent).as_secs_f64() * 1e3
        );
        Ok(())
    }

    /// N consumers of one group on a fresh key; one push reaches one of them.
    fn one_group(&mut self, held: &mut Held) -> Result<(), String> {
        held.conns.retain(|&c| held.driver.is_open(c));
        let n = held.conns.len();
        held.key = format!("{}-onegroup", self.config.run_id);
        let request = wire::blocking_get(&self.target.host, &held.key, "g");
        for &conn in &held.conns {
            held.driver.send(conn, &request);
        }
        let mut others = Vec::new();
        self.wait_parked(held, n as u64, Duration::from_secs(2), &mut others)?;
        let event = br#"{"one":1}"#;
        let sent = Instant::now();
        held.driver.send(
            held.control,
            &wire::push(&self.target.host, &held.key, event),
        );
        let mut receivers = 0;
        let mut first = None;
        let mut closed = 0;
        let deadline = sent + Duration::from_secs(10);
        let mut settle_until = None;
        loop {
            let now = Instant::now();
            if settle_until.is_some_and(|until| now >= until) || now >= deadline {
                break;
            }
            self.poll(&mut held.driver, Duration::from_millis(20))?;
            others.append(&mut self.notes);
            for note in others.drain(..) {
                match note {
                    Note::Response { conn, .. } if conn == held.control => {}
                    Note::Response { at, .. } => {
                        receivers += 1;
                        if first.is_none() {
                            first = Some(at);
                            settle_until = Some(at + self.config.settle);
                        }
                    }
                    Note::Closed { .. } => closed += 1,
                }
            }
        }
        let gauge = self.parked_gauge(held, &mut others)?;
        self.figure("onegroup.receivers", f64::from(receivers));
        let still = n.saturating_sub(receivers as usize + closed);
        self.figure("onegroup.still_parked", still as f64);
        if let Some(first) = first {
            self.figure("onegroup.latency_ms", (first - sent).as_secs_f64() * 1e3);
        }
        if receivers > 1 {
            self.differ(format!(
                "no consumer groups: {receivers} of {n} consumers of one group received one event, \
                 event-syncer gives it to exactly 1"
            ));
        } else if receivers != 1 {
            self.fail(format!(
                "one group: {receivers} of {n} consumers of one group received the event, want exactly 1"
            ));
        }
        if closed > 0 {
            self.fail(format!(
                "one group: {closed} connections closed by the server"
            ));
        }
        if let Some(gauge) = gauge
            && gauge != (n - 1) as u64
        {
            self.fail(format!(
                "one group: /metrics reports {gauge} parked after the push, want {}",
                n - 1
            ));
        }
        // The server must drop consumers whose client left.
        for &conn in &held.conns {
            held.driver.close(conn, true);
        }
        held.conns.clear();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.parked_gauge(held, &mut others)? {
                Some(0) | None => break,
                Some(left) if Instant::now() >= deadline => {
                    self.fail(format!(
                        "one group: {left} consumers still parked 10 s after their clients closed"
                    ));
                    break;
                }
                Some(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        eprintln!("   one group: {receivers} receiver(s), {still} still parked");
        Ok(())
    }

    /// One consumer, one pusher: push-sent to response-received. Against the
    /// baseline, a plain request round trip.
    fn ping_pong(&mut self) -> Result<(), String> {
        let mut driver = self.driver()?;
        let consumer = self.connect(&mut driver)?;
        let pusher = self.connect(&mut driver)?;
        let key = format!("{}-pingpong", self.config.run_id);
        let get = wire::blocking_get(&self.target.host, &key, "pp");
        let health = wire::get(&self.target.host, "/healthz");
        let mut latency = histogram();
        let warmup = 50;
        let mut others = Vec::new();
        for round in 0..warmup + self.config.rounds {
            let recorded = round >= warmup;
            if self.baseline {
                let start = Instant::now();
                self.exchange(&mut driver, consumer, &health, &mut others)?;
                if recorded {
                    latency.saturating_record(nanos(start.elapsed()));
                }
                continue;
            }
            driver.send(consumer, &get);
            // A round trip on the other connection: the server has read the
            // consumer's request before it answers this, so it is parked.
            self.exchange(&mut driver, pusher, &health, &mut others)?;
            let event = format!(r#"{{"r":{round}}}"#);
            let want = format!("[{event}]");
            driver.send(
                pusher,
                &wire::push(&self.target.host, &key, event.as_bytes()),
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            let (mut pushed, mut got) = (None, None);
            while (pushed.is_none() || got.is_none()) && Instant::now() < deadline {
                self.poll(&mut driver, Duration::from_millis(100))?;
                for note in others.drain(..).chain(self.notes.drain(..)) {
                    match note {
                        Note::Response {
                            conn, sent, status, ..
                        } if conn == pusher => {
                            pushed = sent;
                            if !self::pushed(status) {
                                return Err(format!("push answered {status}"));
                            }
                        }
                        Note::Response {
                            status, body, at, ..
                        } => {
                            if status != 200 || body != want.as_bytes() {
                                return Err(format!(
                                    "round {round}: consumer got {status} {:?}, want {want:?}",
                                    String::from_utf8_lossy(&body)
                                ));
                            }
                            got = Some(at);
                        }
                        Note::Closed { conn, why } => {
                            return Err(format!("connection {conn}: {why}"));
                        }
                    }
                }
            }
            let (Some(pushed), Some(got)) = (pushed, got) else {
                return Err(format!("round {round}: no delivery within 10 s"));
            };
            if recorded {
                latency.saturating_record(nanos(got.saturating_duration_since(pushed)));
            }
        }
        self.figure(
            "pingpong.p50_us",
            latency.value_at_quantile(0.5) as f64 / US,
        );
        self.figure(
            "pingpong.p90_us",
            latency.value_at_quantile(0.9) as f64 / US,
        );
        self.figure(
            "pingpong.p99_us",
            latency.value_at_quantile(0.99) as f64 / US,
        );
        self.figure("pingpong.max_us", latency.max() as f64 / US);
        eprintln!(
            "   ping-pong: p50 {:.1} µs over {} rounds",
            latency.value_at_quantile(0.5) as f64 / US,
            self.config.rounds
        );
        self.outcome.curves.insert("ping-pong", latency);
        Ok(())
    }

    /// 20 groups of 3 looping consumers, 2 pushers: every group must see
    /// every event once, each pusher's events in order.
    fn churn(&mut self) -> Result<(), String> {
        const GROUPS: usize = 20;
        const PER_GROUP: usize = 3;
        const PUSHERS: u64 = 2;
        let total = self.config.churn_events;
        let key = format!("{}-churn", self.config.run_id);
        let mut driver = self.driver()?;
        let mut group_of = BTreeMap::new();
        let mut requests = Vec::new();
        for group in 0..GROUPS {
            requests.push(wire::blocking_get(
                &self.target.host,
                &key,
                &format!("c{group}"),
            ));
            for _ in 0..PER_GROUP {
                let conn = self.connect(&mut driver)?;
                group_of.insert(conn, group);
                driver.send(conn, &requests[group]);
            }
        }
        let control = self.connect(&mut driver)?;
        let mut held = Held {
            driver,
            conns: Vec::new(),
            control,
            key: key.clone(),
        };
        let mut others = Vec::new();
        self.wait_parked(
            &mut held,
            (GROUPS * PER_GROUP) as u64,
            Duration::from_millis(500),
            &mut others,
        )?;
        let mut driver = held.driver;
        let pushers: Vec<usize> = (0..PUSHERS)
            .map(|_| self.connect(&mut driver))
            .collect::<Result<_, _>>()?;
        // Pusher p sends p, p + 2, p + 4, ...: each pusher's numbers grow, so
        // order within a group can be checked per pusher.
        let mut next: Vec<u64> = (0..PUSHERS).collect();
        let host = self.target.host.clone();
        let push = |i: u64| wire::push(&host, &key, format!(r#"{{"i":{i}}}"#).as_bytes());
        let started = Instant::now();
        for (p, &conn) in pushers.iter().enumerate() {
            if next[p] < total {
                driver.send(conn, &push(next[p]));
                next[p] += PUSHERS;
            }
        }
        let mut batches: Vec<Vec<Vec<u64>>> = vec![Vec::new(); GROUPS];
        let mut delivered = 0u64;
        let mut last = started;
        let want = total * GROUPS as u64;
        let deadline = started + Duration::from_secs(60);
        let mut grace_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= deadline || grace_until.is_some_and(|until| now >= until) {
                break;
            }
            self.poll(&mut driver, Duration::from_millis(20))?;
            for note in others.drain(..).chain(self.notes.drain(..)) {
                match note {
                    Note::Response { conn, .. } if conn == control => {}
                    Note::Response { conn, status, .. } if pushers.contains(&conn) => {
                        if !pushed(status) {
                            return Err(format!("push answered {status}"));
                        }
                        let p = pushers.iter().position(|&c| c == conn).unwrap_or(0);
                        if next[p] < total {
                            driver.send(conn, &push(next[p]));
                            next[p] += PUSHERS;
                        }
                    }
                    Note::Response {
                        conn,
                        status,
                        body,
                        at,
                        ..
                    } => {
                        let Some(&group) = group_of.get(&conn) else {
                            continue;
                        };
                        let numbers = match (status, wire::event_numbers(&body)) {
                            (200, Some(numbers)) => numbers,
                            _ => {
                                return Err(format!(
                                    "group c{group} got {status} {:?}",
                                    String::from_utf8_lossy(&body)
                                ));
                            }
                        };
                        if !numbers.is_empty() {
                            delivered += numbers.len() as u64;
                            last = at;
                            batches[group].push(numbers);
                        }
                        driver.send(conn, &requests[group]);
                    }
                    Note::Closed { conn, why } => {
                        return Err(format!("connection {conn}: {why}"));
                    }
                }
            }
            if delivered >= want && grace_until.is_none() {
                // Late duplicates would arrive now.
                grace_until = Some(Instant::now() + Duration::from_millis(200));
            }
        }
        driver.close_all(true);
        let elapsed = last.saturating_duration_since(started).as_secs_f64();
        self.figure("churn.deliveries", delivered as f64);
        if elapsed > 0.0 {
            self.figure("churn.deliveries_per_s", delivered as f64 / elapsed);
        }
        let mut faults = 0;
        for (group, batches) in batches.iter().enumerate() {
            if let Err(why) = check_group(batches, total, PUSHERS) {
                faults += 1;
                self.fail(format!("churn: group c{group} {why}"));
            }
        }
        self.figure("churn.faults", f64::from(faults));
        eprintln!(
            "   churn: {delivered} of {want} deliveries in {elapsed:.2} s, {faults} groups at fault"
        );
        Ok(())
    }

    /// 10 groups of 3 looping consumers under 0.2 s leases, 2 pushers. One
    /// batch in three is not acked (half of those by hanging up), so its
    /// events come back; in the end every group must have acked every event
    /// once, and no event twice.
    fn lease_churn(&mut self) -> Result<(), String> {
        const GROUPS: usize = 10;
        const PER_GROUP: usize = 3;
        const PUSHERS: u64 = 2;
        const LIMIT: usize = 10;
        let total = self.config.churn_events;
        let key = format!("{}-lease", self.config.run_id);
        let host = self.target.host.clone();
        let gets: Vec<Vec<u8>> = (0..GROUPS)
            .map(|group| {
                wire::blocking_get_with(
                    &host,
                    &key,
                    &format!("l{group}"),
                    &format!("&lease=0.2&limit={LIMIT}&format=envelope&timeout=1"),
                )
            })
            .collect();
        let acks = |group: usize, batch: u64| wire::ack(&host, &key, &format!("l{group}"), batch);
        let mut driver = self.driver()?;
        let mut consumers = BTreeMap::new();
        for (group, get) in gets.iter().enumerate() {
            for _ in 0..PER_GROUP {
                let conn = self.connect(&mut driver)?;
                consumers.insert(conn, Consumer::Getting { group });
                driver.send(conn, get);
            }
        }
        let control = self.connect(&mut driver)?;
        let mut held = Held {
            driver,
            conns: Vec::new(),
            control,
            key: key.clone(),
        };
        let mut others = Vec::new();
        self.wait_parked(
            &mut held,
            (GROUPS * PER_GROUP) as u64,
            Duration::from_millis(500),
            &mut others,
        )?;
        let mut driver = held.driver;
        let pushers: Vec<usize> = (0..PUSHERS)
            .map(|_| self.connect(&mut driver))
            .collect::<Result<_, _>>()?;
        let mut next: Vec<u64> = (0..PUSHERS).collect();
        let push = |i: u64| wire::push(&host, &key, format!(r#"{{"i":{i}}}"#).as_bytes());
        let started = Instant::now();
        for (p, &conn) in pushers.iter().enumerate() {
            if next[p] < total {
                driver.send(conn, &push(next[p]));
                next[p] += PUSHERS;
            }
        }
        // Event id -> the `i` pushed with it, from the pushes' answers.
        let mut pushed = BTreeMap::new();
        // Every (id, i) handed out, checked against `pushed` at the end: a
        // consumer may see an event before its pusher learns the id.
        let mut handed_out = Vec::new();
        let mut acked: Vec<Vec<Vec<u64>>> = vec![Vec::new(); GROUPS];
        let mut acked_ids: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); GROUPS];
        let mut answers = [0u64; GROUPS];
        let (mut deliveries, mut redeliveries, mut refused) = (0u64, 0u64, 0u64);
        let mut bad_batches = Vec::new();
        let mut last = started;
        let deadline = started + Duration::from_secs(60);
        let mut grace_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= deadline || grace_until.is_some_and(|until| now >= until) {
                break;
            }
            self.poll(&mut driver, Duration::from_millis(20))?;
            // Out of `self`: handling a note may connect or record a failure.
            others.append(&mut self.notes);
            for note in others.drain(..) {
                let (conn, status, lease, body, at) = match note {
                    Note::Response { conn, .. } if conn == control => continue,
                    Note::Response {
                        conn,
                        status,
                        lease,
                        body,
                        at,
                        ..
                    } => (conn, status, lease, body, at),
                    Note::Closed { conn, why } => {
                        return Err(format!("connection {conn}: {why}"));
                    }
                };
                if let Some(p) = pushers.iter().position(|&c| c == conn) {
                    let Some(id) = wire::pushed_id(&body).filter(|_| status == 200) else {
                        return Err(format!(
                            "push answered {status} {:?}",
                            String::from_utf8_lossy(&body)
                        ));
                    };
                    // Pusher p sent p, p + 2, ...: this answer is for the
                    // one before `next[p]`.
                    pushed.insert(id, next[p] - PUSHERS);
                    if next[p] < total {
                        driver.send(conn, &push(next[p]));
                        next[p] += PUSHERS;
                    }
                    continue;
                }
                let Some(consumer) = consumers.remove(&conn) else {
                    continue;
                };
                let group = match consumer {
                    Consumer::Acking { group, ids } => {
                        match (status, wire::acked_count(&body)) {
                            (200, Some(n)) => {
                                if n != ids.len() as u64 {
                                    self.fail(format!(
                                        "lease churn: group l{group} acked a batch of {} events, answer {:?}",
                                        ids.len(),
                                        String::from_utf8_lossy(&body)
                                    ));
                                }
                                acked_ids[group].extend(ids.iter().copied());
                                acked[group].push(ids);
                            }
                            // The lease ran out before the ack arrived: the
                            // events go out again, as they should.
                            (409, _) => refused += 1,
                            _ => {
                                return Err(format!(
                                    "group l{group}: ack answered {status} {:?}",
                                    String::from_utf8_lossy(&body)
                                ));
                            }
                        }
                        group
                    }
                    Consumer::Getting { group } => {
                        let Some(events) = wire::envelope_events(&body).filter(|_| status == 200)
                        else {
                            return Err(format!(
                                "group l{group} got {status} {:?}",
                                String::from_utf8_lossy(&body)
                            ));
                        };
                        if !events.is_empty() {
                            let Some(lease) = lease else {
                                return Err(format!(
                                    "group l{group}: a leased batch without Batch-Id: {:?}",
                                    String::from_utf8_lossy(&body)
                                ));
                            };
                            deliveries += events.len() as u64;
                            last = at;
                            if lease.attempt > 1 {
                                redeliveries += 1;
                            }
                            let ids: Vec<u64> = events.iter().map(|&(id, _)| id).collect();
                            // Rules 5 and 1: at most `limit`, in push order.
                            if ids.len() > LIMIT || ids.windows(2).any(|w| w[0] >= w[1]) {
                                bad_batches.push(format!(
                                    "group l{group}, batch {}: {ids:?}",
                                    lease.batch
                                ));
                            }
                            handed_out.extend(events);
                            let n = answers[group];
                            answers[group] += 1;
                            match Fate::of(n) {
                                Fate::Ack => {
                                    driver.send(conn, &acks(group, lease.batch));
                                    consumers.insert(conn, Consumer::Acking { group, ids });
                                    continue;
                                }
                                Fate::Ignore => {}
                                Fate::HangUp => {
                                    driver.close(conn, true);
                                    let conn = self.connect(&mut driver)?;
                                    consumers.insert(conn, Consumer::Getting { group });
                                    driver.send(conn, &gets[group]);
                                    continue;
                                }
                            }
                        }
                        group
                    }
                };
                consumers.insert(conn, Consumer::Getting { group });
                driver.send(conn, &gets[group]);
            }
            let all_pushed = pushed.len() as u64 >= total;
            if all_pushed
                && grace_until.is_none()
                && acked_ids
                    .iter()
                    .all(|ids| pushed.keys().all(|id| ids.contains(id)))
            {
                // Longer than a lease: a batch leased twice would come back now.
                grace_until = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        driver.close_all(true);
        let elapsed = last.saturating_duration_since(started).as_secs_f64();
        let pushed_ids: Vec<u64> = pushed.keys().copied().collect();
        let (mut lost, mut duplicated) = (0, 0);
        for (group, batches) in acked.iter().enumerate() {
            let verdict = check_acks(&pushed_ids, batches);
            lost += verdict.lost.len();
            duplicated += verdict.duplicated.len();
            for (what, ids) in [
                ("never acked", &verdict.lost),
                ("acked in two batches", &verdict.duplicated),
                ("acked but never pushed", &verdict.unknown),
            ] {
                if !ids.is_empty() {
                    self.fail(format!(
                        "lease churn: group l{group}: {} events {what} (first ids: {:?})",
                        ids.len(),
                        &ids[..ids.len().min(5)]
                    ));
                }
            }
        }
        let mislabelled: Vec<&(u64, u64)> = handed_out
            .iter()
            .filter(|(id, i)| pushed.get(id).is_some_and(|pushed| pushed != i))
            .collect();
        if let Some((id, i)) = mislabelled.first() {
            self.fail(format!(
                "lease churn: {} elements carry the data of another event (first: id {id} with i {i}, pushed as i {})",
                mislabelled.len(),
                pushed[id]
            ));
        }
        if let Some(first) = bad_batches.first() {
            self.fail(format!(
                "lease churn: {} batches over the limit of {LIMIT} or out of push order (first: {first})",
                bad_batches.len()
            ));
        }
        let batches_acked: usize = acked.iter().map(Vec::len).sum();
        self.figure("leasechurn.deliveries", deliveries as f64);
        if elapsed > 0.0 {
            self.figure("leasechurn.deliveries_per_s", deliveries as f64 / elapsed);
        }
        self.figure("leasechurn.batches_acked", batches_acked as f64);
        self.figure("leasechurn.redeliveries", redeliveries as f64);
        self.figure("leasechurn.acks_refused", refused as f64);
        self.figure("leasechurn.lost", lost as f64);
        self.figure("leasechurn.duplicated", duplicated as f64);
        eprintln!(
            "   lease churn: {deliveries} deliveries in {elapsed:.2} s, {batches_acked} batches acked, \
             {redeliveries} redeliveries, {lost} lost, {duplicated} acked twice"
        );
        Ok(())
    }

    /// Closed-loop POSTs on `push_conns` keep-alive connections.
    fn push_rate(&mut self) -> Result<(), String> {
        const KEYS: usize = 4;
        let mut driver = self.driver()?;
        let requests: Vec<Vec<u8>> = (0..KEYS)
            .map(|k| {
                let key = format!("{}-push{k}", self.config.run_id);
                wire::push(&self.target.host, &key, br#"{"n":1}"#)
            })
            .collect();
        let mut key_of = BTreeMap::new();
        for c in 0..self.config.push_conns {
            let conn = self.connect(&mut driver)?;
            key_of.insert(conn, c % KEYS);
            for _ in 0..self.config.pipeline {
                driver.send(conn, &requests[c % KEYS]);
            }
        }
        let started = Instant::now();
        let measure_from = started + self.config.warmup;
        let stop_at = measure_from + self.config.push_time;
        let mut latency = histogram();
        let mut completed = 0u64;
        let mut errors = 0u64;
        let mut notes = Vec::with_capacity(1024);
        let pid = self.target.pid;
        let me = std::process::id();
        let mut cpu_at_start = None;
        let mut cpu_at_stop = None;
        loop {
            let now = Instant::now();
            if now >= stop_at + Duration::from_secs(10) {
                return Err("in-flight pushes not answered 10 s after the end".into());
            }
            if now >= measure_from && cpu_at_start.is_none() {
                cpu_at_start = Some((now, pid.and_then(sys::cpu_ns), sys::cpu_ns(me)));
            }
            if now >= stop_at && cpu_at_stop.is_none() {
                cpu_at_stop = Some((now, pid.and_then(sys::cpu_ns), sys::cpu_ns(me)));
            }
            if now >= stop_at && key_of.keys().all(|&c| driver.in_flight(c) == 0) {
                break;
            }
            driver
                .poll(Some(Duration::from_millis(100)), &mut notes)
                .map_err(|e| format!("poll: {e}"))?;
            for note in notes.drain(..) {
                match note {
                    Note::Response {
                        conn,
                        status,
                        sent,
                        at,
                        ..
                    } => {
                        if !pushed(status) {
                            errors += 1;
                        }
                        if let Some(sent) = sent
                            && sent >= measure_from
                            && at <= stop_at
                        {
                            completed += 1;
                            latency.saturating_record(nanos(at - sent));
                        }
                        if at < stop_at
                            && let Some(&k) = key_of.get(&conn)
                        {
                            driver.send(conn, &requests[k]);
                        }
                    }
                    Note::Closed { conn, why } => {
                        return Err(format!("connection {conn}: {why}"));
                    }
                }
            }
        }
        if errors > 0 {
            self.fail(format!(
                "push rate: {errors} pushes answered other than 2xx"
            ));
        }
        let rate = completed as f64 / self.config.push_time.as_secs_f64();
        self.figure("push.rps", rate);
        self.figure("push.p50_us", latency.value_at_quantile(0.5) as f64 / US);
        self.figure("push.p99_us", latency.value_at_quantile(0.99) as f64 / US);
        eprintln!("   push rate: {rate:.0} requests/s");
        if let (Some((t0, server0, me0)), Some((t1, server1, me1))) = (cpu_at_start, cpu_at_stop) {
            let window = (t1 - t0).as_nanos() as f64 / 100.0;
            if let (Some(a), Some(b)) = (server0, server1) {
                self.figure("push.server_cpu_pct", (b - a) as f64 / window);
            }
            if let (Some(a), Some(b)) = (me0, me1) {
                self.figure("push.client_cpu_pct", (b - a) as f64 / window);
            }
        }
        self.outcome.curves.insert("push rate", latency);
        Ok(())
    }
}

/// Checks one group's batches, in the order they arrived: every event
/// `0..total` exactly once, and each pusher's events (`i % pushers`) in
/// increasing order.
pub fn check_group(batches: &[Vec<u64>], total: u64, pushers: u64) -> Result<(), String> {
    let mut seen = vec![false; usize::try_from(total).unwrap_or(0)];
    let mut last: Vec<Option<u64>> = vec![None; usize::try_from(pushers).unwrap_or(1)];
    for (b, batch) in batches.iter().enumerate() {
        for &i in batch {
            let Some(slot) = seen.get_mut(i as usize) else {
                return Err(format!("received event {i}, which was never pushed"));
            };
            if *slot {
                return Err(format!("received event {i} twice (again in batch {b})"));
            }
            *slot = true;
            let stream = &mut last[(i % pushers) as usize];
            if let Some(previous) = *stream
                && previous > i
            {
                let place = if batch.contains(&previous) {
                    "in the same response"
                } else {
                    "in an earlier response (responses in order of arrival)"
                };
                return Err(format!(
                    "received event {i} after {previous} {place}, batch {b}: reordered"
                ));
            }
            *stream = Some(i);
        }
    }
    let lost: Vec<usize> = (0..seen.len()).filter(|&i| !seen[i]).collect();
    if let Some(first) = lost.first() {
        return Err(format!(
            "lost {} of {total} events (first: {first})",
            lost.len()
        ));
    }
    Ok(())
}

/// Where a lease-churn consumer is: waiting for a batch, or for the answer
/// to its ack of one (with the batch's event ids).
enum Consumer {
    Getting { group: usize },
    Acking { group: usize, ids: Vec<u64> },
}

/// What a lease-churn consumer does with its group's `n`th non-empty batch.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    Ack,
    /// Asks for the next batch and lets the lease run out.
    Ignore,
    /// Closes the connection (RST) and asks again on a new one.
    HangUp,
}

impl Fate {
    /// One batch in three is not acked: one in six hangs up, one in six is
    /// ignored.
    fn of(n: u64) -> Fate {
        match n % 6 {
            0 => Fate::HangUp,
            3 => Fate::Ignore,
            _ => Fate::Ack,
        }
    }
}

/// What one group's acked batches say about the events pushed, each list of
/// ids sorted.
#[derive(Debug, Default, PartialEq)]
pub struct AckVerdict {
    /// Pushed, never in an acked batch.
    pub lost: Vec<u64>,
    /// In two or more acked batches (or twice in one).
    pub duplicated: Vec<u64>,
    /// In an acked batch, never pushed.
    pub unknown: Vec<u64>,
}

/// Checks one group's acked batches against the pushed event ids. Batches
/// that were handed out and not acked do not count: at-least-once delivery
/// may repeat their events, but only once they are acked are they done.
pub fn check_acks(pushed: &[u64], acked: &[Vec<u64>]) -> AckVerdict {
    let mut times: BTreeMap<u64, usize> = BTreeMap::new();
    for &id in acked.iter().flatten() {
        *times.entry(id).or_default() += 1;
    }
    let pushed: BTreeSet<u64> = pushed.iter().copied().collect();
    AckVerdict {
        lost: pushed
            .iter()
            .copied()
            .filter(|id| !times.contains_key(id))
            .collect(),
        duplicated: times
            .iter()
            .filter(|&(_, &n)| n > 1)
            .map(|(&id, _)| id)
            .collect(),
        unknown: times
            .keys()
            .copied()
            .filter(|id| !pushed.contains(id))
            .collect(),
    }
}

/// Checks of the churn and lease-churn verdicts, run by `--self-test`.
pub fn self_test() -> Result<(), String> {
    macro_rules! verdict {
        ($batches:expr, $ok:expr) => {
            let batches: Vec<Vec<u64>> = $batches;
            if check_group(&batches, 4, 2).is_ok() != $ok {
                return Err(format!("check_group({batches:?}) should be ok: {}", $ok));
            }
        };
    }
    verdict!(vec![vec![0, 1], vec![2, 3]], true);
    verdict!(vec![vec![1, 0, 3], vec![2]], true);
    verdict!(vec![vec![0, 1, 2]], false);
    verdict!(vec![vec![0, 1, 2, 3, 3]], false);
    verdict!(vec![vec![2, 1], vec![0, 3]], false);
    verdict!(vec![vec![0, 1, 2, 3, 4]], false);
    macro_rules! acks {
        ($acked:expr, $lost:expr, $duplicated:expr, $unknown:expr) => {
            let acked: Vec<Vec<u64>> = $acked;
            let want = AckVerdict {
                lost: $lost,
                duplicated: $duplicated,
                unknown: $unknown,
            };
            let got = check_acks(&[10, 11, 12, 13], &acked);
            if got != want {
                return Err(format!("check_acks({acked:?}) = {got:?}, want {want:?}"));
            }
        };
    }
    acks!(vec![vec![10, 11], vec![12, 13]], vec![], vec![], vec![]);
    acks!(vec![vec![12, 13], vec![10, 11]], vec![], vec![], vec![]);
    acks!(vec![vec![10, 11], vec![13]], vec![12], vec![], vec![]);
    acks!(
        vec![vec![10, 11], vec![11, 12, 13]],
        vec![],
        vec![11],
        vec![]
    );
    acks!(vec![vec![10, 10, 11, 12, 13]], vec![], vec![10], vec![]);
    acks!(vec![vec![10, 11, 12, 13, 14]], vec![], vec![], vec![14]);
    acks!(vec![], vec![10, 11, 12, 13], vec![], vec![]);
    if (0..6).map(Fate::of).filter(|&f| f != Fate::Ack).count() != 2 {
        return Err("Fate::of must leave one batch in three unacked".into());
    }
    Ok(())
}
