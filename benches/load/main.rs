//! End-to-end load benchmark of event-syncer, beside a trivial baseline server.
//!
//! `cargo bench --bench load` starts the release server as a child process on
//! a free port, drives it over loopback with the load generator in this
//! directory, and then does the same against a built-in server that answers
//! every request with a fixed `200`, except blocking-gets, which it parks
//! until any push answers them all (see `baseline.rs`). It prints one table
//! (scenario | figure | event-syncer | baseline | ratio) and writes the same
//! figures to `target/bench-load/results.json` and latency CDFs to
//! `target/bench-load/latency.svg`. It exits non-zero if any server answered
//! wrongly (a lost, duplicated or reordered event, a second receiver in one
//! group, a consumer answered with nothing pushed, a leased event never acked
//! or acked twice in one group...).
//!
//! The same numbers can be taken from any server speaking the API:
//! `EVENT_SYNCER_BENCH_URL=http://host:port` (or `-- --url URL`) skips the
//! child process; add `--pid PID` (`EVENT_SYNCER_BENCH_PID`) for its RSS and
//! CPU figures. Other settings, all environment variables:
//!
//! - `EVENT_SYNCER_BENCH_QUICK=1` (or `--quick`): every phase about 5x shorter.
//! - `EVENT_SYNCER_BENCH_PARKED=N`: parked connections (default 10,000; 2,000
//!   quick), capped by both processes' fd limits.
//! - `EVENT_SYNCER_BENCH_SECONDS=S`: push-rate duration (default 10).
//! - `EVENT_SYNCER_BENCH_PIPELINE=D`: requests in flight per push connection
//!   (default 1: closed loop).
//! - `EVENT_SYNCER_BENCH_ONLY=baseline|event-syncer` (or `--baseline-only`):
//!   run one side.
//! - `EVENT_SYNCER_BENCH_BIN=PATH`: the server binary to start.
//! - `EVENT_SYNCER_BENCH_NAME=NAME` (or `--name NAME`): what the table and
//!   the files call the server; for `--url`, by default its host and port.
//!   Files are `results-NAME.json` and `latency-NAME.svg` for a named or
//!   external server, so runs against other servers keep their own.
//! - `EVENT_SYNCER_BENCH_VARIANTS=0`: skip the variants (below).
//! - `EVENT_SYNCER_BENCH_SOURCES=N`: loopback source addresses the load
//!   generator connects from, 127.0.0.1 to 127.0.0.N (default 4), each
//!   with its own ~28,000 ephemeral ports.
//!
//! Against another server (`--url`), any 2xx answers a push (nchan answers
//! `201`), and where its semantics differ from event-syncer's (no consumer
//! groups, a bare event instead of an array) the run reports *findings* in
//! a section of their own; they fail the run only for event-syncer itself.
//!
//! Unless `--url` is given, the run ends with *variants* on fresh
//! processes (`variants.rs`): one instance direct with the access log off
//! and on, and HAProxy with `deploy/haproxy/haproxy.cfg` in front of one
//! and of two instances, each with fan-out and push rate, in one table.
//!
//! `-- --self-test` checks the response parser and the churn and lease-churn
//! verdicts (a `harness = false` target has no test runner).
//!
//! # Layout
//!
//! - `main.rs`: options, the order of the run, the output files.
//! - `target.rs`: the server under test, a child process or a URL.
//! - `baseline.rs`: the trivial server, run as `load --baseline-server`.
//! - `driver.rs`: the load generator, one `mio::Poll` for every connection.
//! - `wire.rs`: requests as bytes, minimal response parsing.
//! - `scenarios.rs`: push rate, parked capacity, fan-out, one group,
//!   ping-pong, churn, lease churn.
//! - `durable.rs`: push rate and fan-out with `--data-dir` in each fsync
//!   mode beside memory only, and the replay time
//!   (`EVENT_SYNCER_BENCH_DURABLE=0` skips it,
//!   `EVENT_SYNCER_BENCH_ONLY=durability` runs only it).
//! - `report.rs`: the table, JSON and SVG.
//! - `variants.rs`: access log on and off, HAProxy in front.
//! - `sys.rs`: fd limit and `/proc` readings.
//! - `auth.rs`: push rate with HS256 and ES256 tokens against no auth.

mod auth;
mod baseline;
mod driver;
mod durable;
mod report;
mod scenarios;
mod sys;
mod target;
mod variants;
mod wire;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scenarios::{Config, Outcome};
use target::Target;

/// fds kept free on each side of the parked connections: the listener,
/// epoll, std streams, pipes, the control and push connections.
const FD_MARGIN: u64 = 100;

struct Options {
    url: Option<String>,
    name: Option<String>,
    variants: bool,
    pid: Option<u32>,
    quick: bool,
    parked: Option<usize>,
    push_secs: Option<f64>,
    pipeline: usize,
    run_server: bool,
    run_baseline: bool,
    run_durable: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn options() -> Result<Options, String> {
    let only = env("EVENT_SYNCER_BENCH_ONLY");
    let mut o = Options {
        url: env("EVENT_SYNCER_BENCH_URL"),
        name: env("EVENT_SYNCER_BENCH_NAME"),
        variants: env("EVENT_SYNCER_BENCH_VARIANTS").is_none_or(|v| v != "0"),
        pid: env("EVENT_SYNCER_BENCH_PID")
            .map(|p| {
                p.parse()
                    .map_err(|_| format!("EVENT_SYNCER_BENCH_PID={p}: not a pid"))
            })
            .transpose()?,
        quick: env("EVENT_SYNCER_BENCH_QUICK").is_some_and(|v| v != "0"),
        parked: env("EVENT_SYNCER_BENCH_PARKED")
            .map(|n| {
                n.parse()
                    .map_err(|_| format!("EVENT_SYNCER_BENCH_PARKED={n}: not a count"))
            })
            .transpose()?,
        push_secs: env("EVENT_SYNCER_BENCH_SECONDS")
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("EVENT_SYNCER_BENCH_SECONDS={s}: not seconds"))
            })
            .transpose()?,
        pipeline: env("EVENT_SYNCER_BENCH_PIPELINE")
            .map(|d| {
                d.parse()
                    .map_err(|_| format!("EVENT_SYNCER_BENCH_PIPELINE={d}: not a depth"))
            })
            .transpose()?
            .unwrap_or(1)
            .max(1),
        run_server: !matches!(only.as_deref(), Some("baseline" | "durability")),
        run_baseline: !matches!(only.as_deref(), Some("event-syncer" | "durability")),
        run_durable: only.as_deref() != Some("baseline")
            && env("EVENT_SYNCER_BENCH_DURABLE").is_none_or(|v| v != "0"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => o.url = Some(args.next().ok_or("--url needs a URL")?),
            "--pid" => {
                let pid = args.next().ok_or("--pid needs a pid")?;
                o.pid = Some(pid.parse().map_err(|_| format!("--pid {pid}: not a pid"))?);
            }
            "--quick" => o.quick = true,
            "--name" => o.name = Some(args.next().ok_or("--name needs a name")?),
            "--baseline-only" => o.run_server = false,
            // `cargo bench` passes `--bench`, and maybe a filter: ignored.
            _ => {}
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--baseline-server") {
        if let Err(e) = baseline::serve() {
            eprintln!("baseline: {e}");
        }
        return ExitCode::FAILURE;
    }
    if args.iter().any(|a| a == "--self-test") {
        return self_test();
    }
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("load benchmark: {e}");
            ExitCode::FAILURE
        }
    }
}

fn self_test() -> ExitCode {
    let mut result = wire::self_test()
        .and_then(|()| target::self_test())
        .and_then(|()| scenarios::self_test());
    for answer in baseline::ANSWERS {
        if !matches!(wire::parse_response(answer, false), wire::Parsed::Complete { len, .. } if len == answer.len())
        {
            result = Err(format!("baseline answer misframed: {answer:?}"));
        }
    }
    match result {
        Ok(()) => {
            println!("self-test ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("self-test failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when a server answered wrongly.
fn run() -> Result<bool, String> {
    let o = options()?;
    let (before, limit) = sys::raise_fd_limit();
    let target_dir = target_dir();
    let out_dir = target_dir.join("bench-load");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;

    // Start event-syncer first: its fd limit caps the parked count.
    let binary = match &o.url {
        None if o.run_server || o.run_durable => Some(server_binary()?),
        _ => None,
    };
    let mut server = None;
    if o.run_server {
        let mut target = match (&o.url, &binary) {
            (Some(url), _) => Target::external(url, o.pid)?,
            (None, Some(path)) => Target::spawn(
                "event-syncer",
                path,
                &["--listen", "127.0.0.1:0", "--log-level", "info"],
            )?,
            (None, None) => return Err("no server binary".into()),
        };
        if let Some(name) = &o.name {
            target.name = name.clone();
        }
        server = Some(target);
    }
    let name = server
        .as_ref()
        .map_or_else(|| "event-syncer".to_string(), |s| s.name.clone());
    let server_limit = server
        .as_ref()
        .and_then(|s| s.pid)
        .and_then(sys::fd_limit_of);
    let asked = o.parked.unwrap_or(if o.quick { 2_000 } else { 10_000 });
    // The baseline child inherits our limit.
    let room = server_limit
        .unwrap_or(limit.soft)
        .min(limit.soft)
        .saturating_sub(FD_MARGIN);
    let parked = asked
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1);
    let scale = if o.quick { 5 } else { 1 };
    let push_secs = o.push_secs.unwrap_or(10.0) / scale as f64;
    let config = Config {
        push_time: Duration::from_secs_f64(push_secs),
        warmup: Duration::from_millis(1000 / scale),
        idle_time: Duration::from_secs(10 / scale),
        parked,
        pipeline: o.pipeline,
        push_conns: 64,
        rounds: 2_000 / scale as usize,
        churn_events: 2_000 / scale,
        settle: Duration::from_millis(500 / scale),
        run_id: run_id(),
    };

    let hardware = sys::hardware_line();
    let fds = format!(
        "fd limit: benchmark {} -> {} (hard {}), server {}; parked connections {parked}{}",
        before.soft,
        limit.soft,
        limit.hard,
        server_limit.map_or("unknown".to_string(), |l| l.to_string()),
        if parked < asked {
            format!(" (asked {asked}, capped by fd limits)")
        } else {
            String::new()
        },
    );
    eprintln!("{hardware}\n{fds}");

    let mut server_outcome = None;
    if let Some(mut server) = server {
        server_outcome = Some(scenarios::run(&mut server, &config, false));
        // Dropping kills the child before the baseline starts.
    }
    // Push rate with tokens: servers of its own, so only with a local binary.
    if let (Some(outcome), Some(binary)) = (server_outcome.as_mut(), &binary) {
        auth::run(binary, &config, outcome);
    }
    let mut baseline_outcome = None;
    if o.run_baseline {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut baseline = Target::spawn("baseline", &exe, &["--baseline-server"])?;
        baseline_outcome = Some(scenarios::run(&mut baseline, &config, true));
    }

    let variants = match &binary {
        Some(binary) if o.variants => variants::run_all(binary, &out_dir, &config),
        _ => Vec::new(),
    };

    let durable = match &binary {
        Some(binary) if o.run_durable => {
            Some(durable::run(binary, &config, parked.min(2_000), &out_dir)?)
        }
        _ => None,
    };

    let table = report::table(&name, server_outcome.as_ref(), baseline_outcome.as_ref());
    println!();
    println!("{hardware}");
    println!("{fds}");
    println!(
        "push rate {push_secs} s on {} connections, pipeline {}; {} ping-pong rounds; {} churn and lease churn events{}",
        config.push_conns,
        config.pipeline,
        config.rounds,
        config.churn_events,
        if o.quick { "; QUICK run" } else { "" }
    );
    println!();
    print!("{table}");
    if let Some(outcome) = server_outcome.as_ref().filter(|_| binary.is_some()) {
        println!();
        print!("{}", auth::table(outcome));
    }
    if !variants.is_empty() {
        println!();
        print!("{}", variants::table(&variants));
    }
    let findings: Vec<&String> = [&server_outcome, &baseline_outcome]
        .into_iter()
        .flatten()
        .flat_map(|o: &Outcome| &o.findings)
        .collect();
    if !findings.is_empty() {
        println!("\nFINDINGS: where {name} differs from event-syncer's semantics");
        for finding in &findings {
            println!("  - {finding}");
        }
    }
    if let Some(durable) = &durable {
        println!();
        print!("{}", durable::table(durable));
    }

    let context = serde_json::json!({
        "hardware": hardware,
        "fd_limit": { "benchmark_soft_before": before.soft, "benchmark_soft": limit.soft, "hard": limit.hard, "server": server_limit },
        "quick": o.quick,
        "server_url": o.url,
        "server_name": name,
        "parked_asked": asked,
        "parked": parked,
        "push_seconds": push_secs,
        "push_connections": config.push_conns,
        "pipeline": config.pipeline,
        "ping_pong_rounds": config.rounds,
        "churn_events": config.churn_events,
        "lease_churn_events": config.churn_events,
        "unix_time": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    });
    let mut json = report::json(context, server_outcome.as_ref(), baseline_outcome.as_ref());
    if let Some(durable) = &durable {
        json["durability"] = durable::json(durable);
    }
    json["variants"] = variants::json(&variants);
    json["findings"] = serde_json::json!(findings);
    let suffix = if name == "event-syncer" {
        String::new()
    } else {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("-{safe}")
    };
    let json_path = out_dir.join(format!("results{suffix}.json"));
    let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, text + "\n").map_err(|e| format!("{}: {e}", json_path.display()))?;
    let svg_path = out_dir.join(format!("latency{suffix}.svg"));
    report::chart(
        &svg_path,
        &name,
        server_outcome.as_ref(),
        baseline_outcome.as_ref(),
    )?;
    println!("\nwrote {} and {}", json_path.display(), svg_path.display());

    let failures: Vec<&String> = [&server_outcome, &baseline_outcome]
        .into_iter()
        .flatten()
        .chain(variants.iter().map(|v| &v.outcome))
        .chain(
            durable
                .iter()
                .flat_map(|d| d.rows.iter().map(|r| &r.outcome)),
        )
        .flat_map(|o: &Outcome| &o.failures)
        .collect();
    if failures.is_empty() {
        return Ok(true);
    }
    eprintln!("\n{} FAILURE(S):", failures.len());
    for failure in failures {
        eprintln!("  - {failure}");
    }
    Ok(false)
}

/// Where cargo put this benchmark: `<target>/release/deps/load-HASH`, so the
/// target directory is three levels up (this follows `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|dir| dir.join("release").is_dir())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The event-syncer binary: `EVENT_SYNCER_BENCH_BIN`, else what
/// `cargo build --release --bin event-syncer` makes (a no-op when `cargo
/// bench` has just built it; cargo holds no lock while a bench runs), else,
/// without cargo, the binary cargo built for this bench (`CARGO_BIN_EXE_*`).
fn server_binary() -> Result<PathBuf, String> {
    if let Some(path) = env("EVENT_SYNCER_BENCH_BIN") {
        return Ok(PathBuf::from(path));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    eprintln!("cargo build --release --bin event-syncer");
    match Command::new(cargo)
        .args(["build", "--release", "--bin", "event-syncer"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
    {
        Ok(status) if status.success() => Ok(target_dir().join("release").join("event-syncer")),
        Ok(status) => Err(format!(
            "cargo build --release --bin event-syncer: {status}"
        )),
        Err(e) => option_env!("CARGO_BIN_EXE_event-syncer")
            .map(PathBuf::from)
            .filter(|path| path.is_file())
            .ok_or_else(|| format!("cannot run cargo: {e}")),
    }
}

/// A key prefix no earlier run used.
fn run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("bench-{}-{now}", std::process::id())
}
