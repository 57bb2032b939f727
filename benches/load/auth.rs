//! Push rate with authentication on, beside the same server without it:
//! what SPEC's "Who may do what" costs a busy producer.
//!
//! One server child per mode (no auth, `--jwt-secret-file` with HS256,
//! `--jwt-public-key-file` with ES256), measured in turns, each driven by
//! the same closed loop as the main push-rate scenario. Every connection
//! has a token of its own (distinct `sub`) and sends it with every push, as
//! a real client reuses its token: so the figure is the server's cost with
//! its token cache warm, and the target is at least 0.9x of no auth. A
//! signature check on every request (an ES256 verify costs far more than a
//! small push) would show up here as a ratio well below that.
//!
//! Figures: `auth.{none,hs256,es256}_rps`, `..._p99_us` (each mode's best
//! turn), `auth.{hs256,es256}_ratio` (best over best) and
//! `auth.{hs256,es256}_median_ratio` (median of the ratios within a turn),
//! in the JSON beside the main table's; [`table`] prints them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::driver::{Driver, Note};
use crate::scenarios::{Config, Outcome};
use crate::target::Target;

const SECRET: &[u8] = b"benchmark secret, long enough for HS256";

/// Measurement turns per mode; the push-rate time is split between them.
const TURNS: u32 = 3;

/// One way of running the server: its name, its extra flags, and how a
/// connection's token is made (`None`: no token).
struct Mode {
    name: &'static str,
    args: Vec<String>,
    token: Option<Box<dyn Fn(usize) -> String>>,
}

/// A directory for the key files, removed on drop.
struct KeyDir(PathBuf);

impl Drop for KeyDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn claims(conn: usize) -> serde_json::Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    serde_json::json!({
        "event_syncer": {"push": ["*"], "consume": ["*"]},
        "sub": format!("bench-conn-{conn}"),
        "exp": now + 3600,
    })
}

fn modes(dir: &Path) -> Result<Vec<Mode>, String> {
    use p256::elliptic_curve::Generate;
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok::<String, String>(path.display().to_string())
    };
    let secret_file = write("secret", SECRET)?;
    let ec = p256::SecretKey::generate_from_rng(&mut rand::rng());
    let public = ec
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let private = ec.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    let public_file = write("es256.pem", public.as_bytes())?;
    let hs = EncodingKey::from_secret(SECRET).map_err(|e| e.to_string())?;
    let es = EncodingKey::from_ec_pem(private.as_bytes()).map_err(|e| e.to_string())?;
    let signer = |alg: Algorithm, key: EncodingKey| -> Box<dyn Fn(usize) -> String> {
        Box::new(move |conn| {
            jsonwebtoken::encode(&Header::new(alg), &claims(conn), &key).expect("sign")
        })
    };
    let hs_plain = EncodingKey::from_secret(SECRET).map_err(|e| e.to_string())?;
    Ok(vec![
        Mode {
            name: "none",
            args: Vec::new(),
            token: None,
        },
        // No auth, but every request carries the token anyway: what the
        // bigger request alone costs (bytes written by the client, read and
        // parsed by the server, on the same cores), beside what checking it
        // costs.
        Mode {
            name: "none_token",
            args: Vec::new(),
            token: Some(signer(Algorithm::HS256, hs_plain)),
        },
        Mode {
            name: "hs256",
            args: vec!["--jwt-secret-file".into(), secret_file],
            token: Some(signer(Algorithm::HS256, hs)),
        },
        Mode {
            name: "es256",
            args: vec!["--jwt-public-key-file".into(), public_file],
            token: Some(signer(Algorithm::ES256, es)),
        },
    ])
}

/// `POST /push?key=K` with a small JSON body and maybe a bearer token.
fn push_request(host: &str, key: &str, token: Option<&str>) -> Vec<u8> {
    let body = br#"{"n":1}"#;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let mut r = format!(
        "POST /push?key={key} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         {auth}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Runs the three modes and records their figures in `outcome`.
pub fn run(binary: &Path, config: &Config, outcome: &mut Outcome) {
    let dir = KeyDir(std::env::temp_dir().join(format!("{}-auth", config.run_id)));
    let result = std::fs::create_dir_all(&dir.0)
        .map_err(|e| format!("{}: {e}", dir.0.display()))
        .and_then(|()| modes(&dir.0));
    let modes = match result {
        Ok(m) => m,
        Err(why) => {
            outcome.failures.push(format!("auth push rate: {why}"));
            return;
        }
    };
    // All three servers at once, measured in turns: on a shared machine
    // the load drifts, and turns spread the drift over every mode instead
    // of charging it to whichever ran last. Each mode's best turn counts:
    // interference only ever lowers a rate.
    let mut targets = Vec::new();
    for mode in &modes {
        let mut args = vec!["--listen", "127.0.0.1:0", "--log-level", "info"];
        args.extend(mode.args.iter().map(String::as_str));
        match Target::spawn("event-syncer", binary, &args) {
            Ok(t) => targets.push(t),
            Err(why) => {
                outcome
                    .failures
                    .push(format!("auth push rate ({}): {why}", mode.name));
                return;
            }
        }
    }
    let turn = Config {
        push_time: (config.push_time / TURNS).max(Duration::from_millis(500)),
        warmup: config.warmup / TURNS,
        run_id: config.run_id.clone(),
        ..*config
    };
    // Per turn, each mode's rate over no auth's in the same turn: the
    // median of these is the figure least moved by a burst of load.
    let mut paired: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..TURNS {
        let mut none_rps = None;
        for (i, (mode, target)) in modes.iter().zip(&targets).enumerate() {
            match push_rate(target, &turn, mode) {
                Ok((rps, p99)) => {
                    match (i, none_rps) {
                        (0, _) => none_rps = Some(rps),
                        (_, Some(base)) if base > 0.0 => paired[i - 1].push(rps / base),
                        _ => {}
                    }
                    eprintln!(
                        "   push rate ({}, turn {round}): {rps:.0} requests/s",
                        mode.name
                    );
                    let (rps_key, p99_key) = figure_keys(mode.name);
                    let best = outcome.figures.get(rps_key).copied().unwrap_or(0.0);
                    if rps > best {
                        outcome.figures.insert(rps_key, rps);
                        outcome.figures.insert(p99_key, p99);
                    }
                }
                Err(why) => {
                    let why = format!("auth push rate ({}): {why}", mode.name);
                    outcome.failures.push(why);
                    return;
                }
            }
        }
    }
    for (ratios, key) in paired.iter_mut().zip([
        "auth.none_token_median_ratio",
        "auth.hs256_median_ratio",
        "auth.es256_median_ratio",
    ]) {
        ratios.sort_by(f64::total_cmp);
        if let Some(&median) = ratios.get(ratios.len() / 2) {
            outcome.figures.insert(key, median);
        }
    }
    let none = outcome.figures.get("auth.none_rps").copied();
    for (name, key) in [
        ("none_token", "auth.none_token_ratio"),
        ("hs256", "auth.hs256_ratio"),
        ("es256", "auth.es256_ratio"),
    ] {
        let with = outcome.figures.get(figure_keys(name).0).copied();
        if let (Some(a), Some(b)) = (with, none)
            && b > 0.0
        {
            outcome.figures.insert(key, a / b);
        }
    }
}

fn figure_keys(mode: &str) -> (&'static str, &'static str) {
    match mode {
        "none" => ("auth.none_rps", "auth.none_p99_us"),
        "none_token" => ("auth.none_token_rps", "auth.none_token_p99_us"),
        "hs256" => ("auth.hs256_rps", "auth.hs256_p99_us"),
        _ => ("auth.es256_rps", "auth.es256_p99_us"),
    }
}

/// The closed loop of the main push-rate scenario, with `mode`'s tokens:
/// (requests/s, p99 latency in µs). Any answer but 200 is an error: a
/// refused token would make a fast but meaningless figure.
fn push_rate(target: &Target, config: &Config, mode: &Mode) -> Result<(f64, f64), String> {
    let mut driver = Driver::new(target.addr).map_err(|e| format!("epoll: {e}"))?;
    let mut request_of = BTreeMap::new();
    for c in 0..config.push_conns {
        let conn = driver.connect().map_err(|e| format!("connect: {e}"))?;
        let token = mode.token.as_ref().map(|t| t(c));
        let key = format!("{}-auth{}", config.run_id, c % 4);
        let request = push_request(&target.host, &key, token.as_deref());
        for _ in 0..config.pipeline {
            driver.send(conn, &request);
        }
        request_of.insert(conn, request);
    }
    let measure_from = Instant::now() + config.warmup;
    let stop_at = measure_from + config.push_time;
    let mut latency =
        Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3).map_err(|e| e.to_string())?;
    let (mut completed, mut refused) = (0u64, 0u64);
    let mut notes = Vec::with_capacity(1024);
    loop {
        let now = Instant::now();
        if now >= stop_at + Duration::from_secs(10) {
            return Err("in-flight pushes not answered 10 s after the end".into());
        }
        if now >= stop_at && request_of.keys().all(|&c| driver.in_flight(c) == 0) {
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
                    refused += u64::from(status != 200);
                    if let Some(sent) = sent
                        && sent >= measure_from
                        && at <= stop_at
                    {
                        completed += 1;
                        let ns = u64::try_from((at - sent).as_nanos()).unwrap_or(u64::MAX);
                        latency.saturating_record(ns);
                    }
                    if at < stop_at
                        && let Some(r) = request_of.get(&conn)
                    {
                        driver.send(conn, r);
                    }
                }
                Note::Closed { conn, why } => return Err(format!("connection {conn}: {why}")),
            }
        }
    }
    if refused > 0 {
        return Err(format!("{refused} pushes answered other than 200"));
    }
    let rps = completed as f64 / config.push_time.as_secs_f64();
    Ok((rps, latency.value_at_quantile(0.99) as f64 / 1e3))
}

/// The rows of the auth scenario: rate and p99 per mode, and the ratios to
/// no auth (the figure with a target: at least 0.9x).
pub fn table(outcome: &Outcome) -> String {
    let f = |k: &str| outcome.figures.get(k).copied();
    let cell =
        |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.0}{unit}"));
    let ratio = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}x"));
    let modes = ["none", "none_token", "hs256", "es256"];
    let row = |label: &str, cells: Vec<String>| format!("| {label} | {} |\n", cells.join(" | "));
    let mut out = String::from(
        "| push rate with auth | no auth | no auth, token sent anyway | HS256 | ES256 |\n\
         |---|---:|---:|---:|---:|\n",
    );
    out.push_str(&row(
        "requests/s",
        modes
            .iter()
            .map(|m| cell(f(figure_keys(m).0), "/s"))
            .collect(),
    ));
    out.push_str(&row(
        "latency p99",
        modes
            .iter()
            .map(|m| cell(f(figure_keys(m).1), " µs"))
            .collect(),
    ));
    let ratios = |suffix: &str| {
        let mut cells = vec!["1.00x".to_string()];
        cells.extend(
            modes[1..]
                .iter()
                .map(|m| ratio(f(&format!("auth.{m}_{suffix}")))),
        );
        cells
    };
    out.push_str(&row(
        "ratio to no auth, best turns (target >= 0.9x)",
        ratios("ratio"),
    ));
    out.push_str(&row(
        "ratio to no auth, median of same-turn ratios",
        ratios("median_ratio"),
    ));
    out
}
