//! The data directory's cost: push rate and fan-out with `--data-dir` in
//! each `--fsync` mode, beside memory only, in the same run; and how long a
//! replay takes.
//!
//! Each mode gets a fresh server on a fresh directory under
//! `target/bench-load/`. `always` is measured twice: with group commit (one
//! `fdatasync` per loop turn, the server's behaviour) and with
//! `EVENT_SYNCER_SYNC_EACH_RECORD=1`, a measuring aid that syncs after every
//! record, to show what group commit buys. After the everysec run the server
//! is killed (SIGKILL) and started again on its directory; its startup line
//! says how long the replay of what the push phase wrote took, which is
//! scaled to a full TTL (120 s) of traffic at the memory-only push rate.

use std::path::Path;
use std::time::Duration;

use crate::scenarios::{self, Config, Outcome};
use crate::target::Target;

/// The default `--event-ttl`, in seconds.
const TTL_SECS: f64 = 120.0;

/// A mode: its name, its `--fsync` (none: memory only), extra env vars.
type Mode = (
    &'static str,
    Option<&'static str>,
    &'static [(&'static str, &'static str)],
);

/// One mode's figures.
pub struct Row {
    pub mode: &'static str,
    pub outcome: Outcome,
}

/// What the durability section produced.
pub struct Durable {
    pub rows: Vec<Row>,
    /// (events replayed, seconds, bytes on disk) after the everysec run.
    pub replay: Option<(f64, f64, f64)>,
}

/// Runs every mode against `binary`, with `parked` parked consumers for
/// the fan-out.
pub fn run(binary: &Path, base: &Config, parked: usize, out_dir: &Path) -> Result<Durable, String> {
    let modes: [Mode; 5] = [
        ("memory only", None, &[]),
        ("never", Some("never"), &[]),
        ("everysec", Some("everysec"), &[]),
        ("always", Some("always"), &[]),
        (
            "always, sync per record",
            Some("always"),
            &[("EVENT_SYNCER_SYNC_EACH_RECORD", "1")],
        ),
    ];
    let config = Config {
        push_time: base.push_time,
        warmup: base.warmup,
        idle_time: Duration::ZERO,
        parked,
        pipeline: base.pipeline,
        push_conns: base.push_conns,
        rounds: base.rounds,
        churn_events: base.churn_events,
        settle: base.settle,
        run_id: format!("{}-durable", base.run_id),
    };
    // `EVENT_SYNCER_BENCH_MODES=everysec,never`: only those (by `--fsync`
    // name, or `memory`), e.g. for a long run that replays a full TTL.
    let only: Option<Vec<String>> = std::env::var("EVENT_SYNCER_BENCH_MODES")
        .ok()
        .map(|v| v.split(',').map(|m| m.trim().to_string()).collect());
    let mut rows = Vec::new();
    let mut replay = None;
    for (i, (mode, fsync, env)) in modes.into_iter().enumerate() {
        let name = fsync.unwrap_or("memory");
        if only.as_ref().is_some_and(|o| !o.iter().any(|m| m == name)) {
            continue;
        }
        let dir = out_dir.join(format!("data-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        let dir_arg = dir.to_string_lossy().into_owned();
        let mut args = vec!["--listen", "127.0.0.1:0", "--log-level", "info"];
        if let Some(fsync) = fsync {
            args.extend(["--data-dir", &dir_arg, "--fsync", fsync]);
        }
        eprintln!("== durability: {mode}");
        let mut target = Target::spawn_with_env("event-syncer", binary, &args, env)?;
        let outcome = scenarios::run_some(&mut target, &config, true);
        rows.push(Row { mode, outcome });
        if fsync == Some("everysec") {
            target.kill();
            let bytes = dir_bytes(&dir);
            let again = Target::spawn("event-syncer", binary, &args)?;
            let log = again.recent_log();
            let figure = |name: &str| -> Option<f64> {
                let at = log.find(&format!(" {name}="))? + name.len() + 2;
                log[at..].split_whitespace().next()?.parse().ok()
            };
            if let (Some(events), Some(seconds)) = (figure("events"), figure("replay_seconds")) {
                eprintln!("   replay: {events} events in {seconds} s");
                replay = Some((events, seconds, bytes));
            }
        }
        drop(target);
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(Durable { rows, replay })
}

fn dir_bytes(dir: &Path) -> f64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len() as f64)
        .sum()
}

/// The section's table: each mode's push rate as a ratio to memory only,
/// its latency and its fan-out, then the replay.
pub fn table(d: &Durable) -> String {
    let memory = d
        .rows
        .first()
        .and_then(|r| r.outcome.figures.get("push.rps").copied());
    let mut out = String::from(
        "| durability | push requests/s | vs memory only | server CPU per push | push p50 | push p99 | fan-out last answer |\n|---|---|---|---|---|---|---|\n",
    );
    for row in &d.rows {
        let f = &row.outcome.figures;
        let get = |k: &str| f.get(k).copied();
        let cell = |v: Option<f64>, unit: &str, digits: usize| {
            v.map_or("n/a".to_string(), |v| format!("{v:.digits$} {unit}"))
        };
        let ratio = match (get("push.rps"), memory) {
            (Some(r), Some(m)) if m > 0.0 => format!("{:.2}x", r / m),
            _ => "n/a".into(),
        };
        // CPU per push is steadier than the rate on a shared machine.
        let cpu = match (get("push.server_cpu_pct"), get("push.rps")) {
            (Some(pct), Some(rps)) if rps > 0.0 => Some(pct / 100.0 * 1e6 / rps),
            _ => None,
        };
        out.push_str(&format!(
            "| {} | {} | {ratio} | {} | {} | {} | {} |\n",
            row.mode,
            cell(get("push.rps"), "/s", 0),
            cell(cpu, "µs", 2),
            cell(get("push.p50_us"), "µs", 0),
            cell(get("push.p99_us"), "µs", 0),
            cell(get("fanout.max_ms"), "ms", 1),
        ));
    }
    if let Some((events, seconds, bytes)) = d.replay {
        out.push_str(&format!(
            "\nreplay after SIGKILL (everysec run): {events:.0} events, {:.1} MiB on disk, in {seconds:.3} s",
            bytes / 1024.0 / 1024.0
        ));
        if let Some(rate) = memory
            && events > 0.0
        {
            let full = rate * TTL_SECS;
            out.push_str(&format!(
                "; a full TTL ({TTL_SECS:.0} s) at the memory-only push rate is {full:.0} events: about {:.1} s\n",
                seconds * full / events
            ));
        } else {
            out.push('\n');
        }
    }
    out
}

/// The same figures for `results.json`.
pub fn json(d: &Durable) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = d
        .rows
        .iter()
        .map(|r| serde_json::json!({ "mode": r.mode, "figures": r.outcome.figures }))
        .collect();
    serde_json::json!({
        "modes": rows,
        "replay": d.replay.map(|(events, seconds, bytes)| serde_json::json!({
            "events": events, "seconds": seconds, "disk_bytes": bytes
        })),
    })
}
