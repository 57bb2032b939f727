//! Variants of the server, measured in the same run as the full scenarios
//! so that their figures compare: one instance direct with the access log
//! off and on, and HAProxy, with the configuration in `deploy/haproxy/`,
//! in front of one and of two instances. Each variant runs fan-out (over
//! fewer parked connections than the full run, since HAProxy holds two
//! descriptors for each) and then the push rate, on fresh processes.
//!
//! "server CPU per push" is the CPU time of the process the load generator
//! talks to, divided by the pushes answered: event-syncer's own when
//! direct, HAProxy's when it is in front. The difference is what the proxy
//! costs per request, besides the latency it adds.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::scenarios::{self, Config, Outcome};
use crate::target::{self, Target};

/// Parked connections for the variants' fan-out: within HAProxy's
/// descriptors (two per connection) under a 20,000 fd limit.
const PARKED: usize = 4_000;

/// One variant's label and what it measured.
pub struct Variant {
    pub label: String,
    pub outcome: Outcome,
}

/// Runs every variant that can run here. HAProxy's are skipped, with a
/// message, where it is not installed.
pub fn run_all(binary: &Path, out_dir: &Path, full: &Config) -> Vec<Variant> {
    let config = Config {
        push_time: full.push_time,
        warmup: full.warmup,
        // The full run measures idle CPU; here it would only add time.
        idle_time: Duration::from_millis(200),
        parked: full.parked.min(PARKED),
        pipeline: full.pipeline,
        push_conns: full.push_conns,
        rounds: full.rounds,
        churn_events: full.churn_events,
        settle: full.settle,
        run_id: format!("{}-variants", full.run_id),
    };
    let mut variants = Vec::new();
    for (label, access) in [
        ("direct, access log off", false),
        ("direct, access log on", true),
    ] {
        let outcome = direct(binary, out_dir, &config, access, label)
            .unwrap_or_else(|why| failed(label, why));
        variants.push(Variant {
            label: label.to_string(),
            outcome,
        });
    }
    let Some(haproxy) = find("haproxy") else {
        eprintln!("!!! haproxy is not installed: the rows through HAProxy are skipped");
        return variants;
    };
    for instances in [1, 2] {
        let label = format!(
            "HAProxy, {instances} instance{}",
            if instances == 1 { "" } else { "s" }
        );
        let outcome = proxied(binary, &haproxy, out_dir, &config, instances, &label)
            .unwrap_or_else(|why| failed(&label, why));
        variants.push(Variant { label, outcome });
    }
    variants
}

fn failed(label: &str, why: String) -> Outcome {
    eprintln!("FAILED {label}: {why}");
    Outcome {
        failures: vec![format!("{label}: {why}")],
        ..Outcome::default()
    }
}

/// One instance, its stderr (and so its access log) to a file.
fn direct(
    binary: &Path,
    out_dir: &Path,
    config: &Config,
    access: bool,
    label: &str,
) -> Result<Outcome, String> {
    let addr = free_addr()?;
    let listen = addr.to_string();
    let mut args = vec!["--listen", listen.as_str(), "--log-level", "info"];
    if access {
        args.push("--access-log");
    }
    let log_path = out_dir.join(if access {
        "access-log-on.txt"
    } else {
        "access-log-off.txt"
    });
    let mut command = target::command(binary, &args);
    command.stderr(file(&log_path)?);
    let mut server = Target::adopt(label, command, addr)?;
    let mut outcome = scenarios::run_some(&mut server, config, true);
    drop(server);
    per_push_cpu(&mut outcome);
    if access {
        let size = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        outcome.figures.insert("access.log_bytes", size as f64);
        eprintln!("   access log: {size} bytes in {}", log_path.display());
    }
    Ok(outcome)
}

/// HAProxy with deploy/haproxy/haproxy.cfg in front of `instances` fresh
/// instances (the servers past them taken out of the file).
fn proxied(
    binary: &Path,
    haproxy: &Path,
    out_dir: &Path,
    config: &Config,
    instances: usize,
    label: &str,
) -> Result<Outcome, String> {
    let mut servers = Vec::new();
    for _ in 0..instances {
        servers.push(Target::spawn(
            "event-syncer",
            binary,
            &["--listen", "127.0.0.1:0", "--log-level", "info"],
        )?);
    }
    let addr = free_addr()?;
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg");
    let text =
        std::fs::read_to_string(&deploy).map_err(|e| format!("{}: {e}", deploy.display()))?;
    let socket = out_dir.join(format!("haproxy-{instances}.sock"));
    let mut conf = String::new();
    for line in text.lines() {
        let mut line = line
            .replace("127.0.0.1:8080", &addr.to_string())
            .replace("/run/haproxy/event-syncer.sock", &socket.to_string_lossy());
        let server = (1..=3).find(|i| line.trim_start().starts_with(&format!("server es{i} ")));
        if let Some(i) = server {
            match servers.get(i - 1) {
                Some(s) => line = line.replace(&format!("127.0.0.1:303{i}"), &s.host),
                None => continue,
            }
        }
        conf.push_str(&line);
        conf.push('\n');
    }
    let conf_path = out_dir.join(format!("haproxy-{instances}.cfg"));
    std::fs::write(&conf_path, conf).map_err(|e| format!("{}: {e}", conf_path.display()))?;
    let conf_arg = conf_path.to_string_lossy().into_owned();
    let mut command = target::command(haproxy, &["-f", &conf_arg, "-db"]);
    command.stderr(file(&out_dir.join(format!("haproxy-{instances}.log")))?);
    let mut proxy = Target::adopt(label, command, addr)?;
    let mut outcome = scenarios::run_some(&mut proxy, config, true);
    drop(proxy);
    drop(servers);
    per_push_cpu(&mut outcome);
    Ok(outcome)
}

/// CPU time per push answered of the process measured (µs).
fn per_push_cpu(outcome: &mut Outcome) {
    let f = &mut outcome.figures;
    if let (Some(&cpu_pct), Some(&rps)) = (f.get("push.server_cpu_pct"), f.get("push.rps"))
        && rps > 0.0
    {
        f.insert("push.server_cpu_per_push_us", cpu_pct / 100.0 / rps * 1e6);
    }
}

fn file(path: &Path) -> Result<Stdio, String> {
    File::create(path)
        .map(Stdio::from)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// A loopback port free now (the kernel's pick for port 0).
fn free_addr() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("bind 127.0.0.1:0: {e}"))
}

/// A tool on PATH or in the sbin directories a user's PATH may lack.
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// (column, figure key, decimals, unit).
const COLUMNS: &[(&str, &str, usize, &str)] = &[
    ("push/s", "push.rps", 0, ""),
    ("push p50", "push.p50_us", 0, " µs"),
    ("push p99", "push.p99_us", 0, " µs"),
    ("CPU per push", "push.server_cpu_per_push_us", 1, " µs"),
    ("fan-out N", "fanout.delivered", 0, ""),
    ("fan-out p50", "fanout.p50_ms", 1, " ms"),
    ("fan-out all", "fanout.max_ms", 1, " ms"),
];

/// The variants' table: one row each, and push/s as a ratio of the first.
pub fn table(variants: &[Variant]) -> String {
    let mut rows = vec![
        std::iter::once("variant (same run)".to_string())
            .chain(COLUMNS.iter().map(|c| c.0.to_string()))
            .chain(["push/s vs first".to_string()])
            .collect::<Vec<_>>(),
    ];
    let first = variants
        .first()
        .and_then(|v| v.outcome.figures.get("push.rps"))
        .copied();
    for v in variants {
        let mut row = vec![v.label.clone()];
        for &(_, key, decimals, unit) in COLUMNS {
            row.push(
                v.outcome
                    .figures
                    .get(key)
                    .map_or("n/a".into(), |x| format!("{x:.decimals$}{unit}")),
            );
        }
        let rps = v.outcome.figures.get("push.rps").copied();
        row.push(match (rps, first) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "n/a".into(),
        });
        rows.push(row);
    }
    let mut widths = vec![0; rows[0].len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        for (c, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            if c == 0 {
                out.push_str(&format!("| {cell}{pad} "));
            } else {
                out.push_str(&format!("| {pad}{cell} "));
            }
        }
        out.push_str("|\n");
        if i == 0 {
            for (c, &w) in widths.iter().enumerate() {
                let dash = "-".repeat(w + 1);
                out.push_str(&if c == 0 {
                    format!("|{dash}-")
                } else {
                    format!("|{dash}:")
                });
            }
            out.push_str("|\n");
        }
    }
    out
}

/// The variants as JSON.
pub fn json(variants: &[Variant]) -> serde_json::Value {
    serde_json::Value::Array(
        variants
            .iter()
            .map(|v| {
                serde_json::json!({
                    "label": v.label,
                    "figures": v.outcome.figures,
                    "failures": v.outcome.failures,
                })
            })
            .collect(),
    )
}
