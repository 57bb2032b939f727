//! The results: one table on stdout, the same figures as JSON, and a latency
//! chart as SVG.
//!
//! Rows are fixed in [`ROWS`], in the order of the scenarios, so a
//! figure a target could not produce shows as `n/a` rather than vanishing,
//! and two runs always print comparable tables.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::scenarios::Outcome;

#[derive(Clone, Copy)]
enum Unit {
    Count,
    PerSec,
    Micros,
    Millis,
    Secs,
    Bytes,
    Percent,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Count => "",
            Unit::PerSec => "/s",
            Unit::Micros => "µs",
            Unit::Millis => "ms",
            Unit::Secs => "s",
            Unit::Bytes => "B",
            Unit::Percent => "%",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::Count | Unit::PerSec => format!("{}{}", thousands(value.round()), self.name()),
            Unit::Bytes if value.abs() >= 1024.0 * 1024.0 => {
                format!("{:.1} MiB", value / 1024.0 / 1024.0)
            }
            Unit::Bytes if value.abs() >= 10.0 * 1024.0 => format!("{:.1} KiB", value / 1024.0),
            Unit::Bytes => format!("{value:.0} B"),
            Unit::Percent if value >= 10.0 => format!("{value:.0} %"),
            Unit::Percent => format!("{value:.2} %"),
            _ if value >= 100.0 => format!("{value:.0} {}", self.name()),
            _ if value >= 10.0 => format!("{value:.1} {}", self.name()),
            _ => format!("{value:.2} {}", self.name()),
        }
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// (scenario, figure, key in `Outcome::figures`, unit).
const ROWS: &[(&str, &str, &str, Unit)] = &[
    ("push rate", "requests/s", "push.rps", Unit::PerSec),
    ("push rate", "latency p50", "push.p50_us", Unit::Micros),
    ("push rate", "latency p99", "push.p99_us", Unit::Micros),
    (
        "push rate",
        "server CPU (of one core)",
        "push.server_cpu_pct",
        Unit::Percent,
    ),
    (
        "push rate",
        "load generator CPU",
        "push.client_cpu_pct",
        Unit::Percent,
    ),
    (
        "parked capacity",
        "connections asked",
        "parked.asked",
        Unit::Count,
    ),
    (
        "parked capacity",
        "connections held",
        "parked.held",
        Unit::Count,
    ),
    (
        "parked capacity",
        "time to open them",
        "parked.open_s",
        Unit::Secs,
    ),
    (
        "parked capacity",
        "server RSS before",
        "parked.rss_before",
        Unit::Bytes,
    ),
    (
        "parked capacity",
        "server RSS holding them",
        "parked.rss_after",
        Unit::Bytes,
    ),
    (
        "parked capacity",
        "RSS per connection",
        "parked.bytes_per_conn",
        Unit::Bytes,
    ),
    (
        "parked capacity",
        "server CPU while idle",
        "parked.idle_cpu_pct",
        Unit::Percent,
    ),
    ("fan-out", "deliveries", "fanout.delivered", Unit::Count),
    ("fan-out", "answered, p50", "fanout.p50_ms", Unit::Millis),
    ("fan-out", "answered, p99", "fanout.p99_ms", Unit::Millis),
    (
        "fan-out",
        "answered, max (all N)",
        "fanout.max_ms",
        Unit::Millis,
    ),
    (
        "fan-out",
        "push answered after",
        "fanout.push_ms",
        Unit::Millis,
    ),
    ("fan-out", "server CPU", "fanout.cpu_ms", Unit::Millis),
    (
        "fan-out",
        "server CPU per delivery",
        "fanout.cpu_per_delivery_us",
        Unit::Micros,
    ),
    (
        "one group",
        "receivers (want 1)",
        "onegroup.receivers",
        Unit::Count,
    ),
    (
        "one group",
        "still parked",
        "onegroup.still_parked",
        Unit::Count,
    ),
    (
        "one group",
        "delivery after push",
        "onegroup.latency_ms",
        Unit::Millis,
    ),
    ("ping-pong", "p50", "pingpong.p50_us", Unit::Micros),
    ("ping-pong", "p90", "pingpong.p90_us", Unit::Micros),
    ("ping-pong", "p99", "pingpong.p99_us", Unit::Micros),
    ("ping-pong", "max", "pingpong.max_us", Unit::Micros),
    ("churn", "deliveries", "churn.deliveries", Unit::Count),
    (
        "churn",
        "deliveries/s",
        "churn.deliveries_per_s",
        Unit::PerSec,
    ),
    (
        "churn",
        "groups with lost/dup/reordered",
        "churn.faults",
        Unit::Count,
    ),
    (
        "lease churn",
        "deliveries/s (all attempts)",
        "leasechurn.deliveries_per_s",
        Unit::PerSec,
    ),
    (
        "lease churn",
        "batches acked",
        "leasechurn.batches_acked",
        Unit::Count,
    ),
    (
        "lease churn",
        "redeliveries (Batch-Attempt > 1)",
        "leasechurn.redeliveries",
        Unit::Count,
    ),
    (
        "lease churn",
        "acks too late (409)",
        "leasechurn.acks_refused",
        Unit::Count,
    ),
    (
        "lease churn",
        "events lost (want 0)",
        "leasechurn.lost",
        Unit::Count,
    ),
    (
        "lease churn",
        "events acked twice in a group (want 0)",
        "leasechurn.duplicated",
        Unit::Count,
    ),
];

type Figures = BTreeMap<&'static str, f64>;

/// The table, one row per figure, with the baseline and the ratio; the
/// server's column is headed `name`.
pub fn table(name: &str, server: Option<&Outcome>, baseline: Option<&Outcome>) -> String {
    let empty = Figures::new();
    let es = server.map_or(&empty, |o| &o.figures);
    let base = baseline.map_or(&empty, |o| &o.figures);
    let mut rows = vec![[
        "scenario".to_string(),
        "figure".to_string(),
        name.to_string(),
        "baseline".to_string(),
        "ratio".to_string(),
    ]];
    for &(scenario, figure, key, unit) in ROWS {
        let (a, b) = (es.get(key), base.get(key));
        let cell = |v: Option<&f64>| v.map_or("n/a".to_string(), |&v| unit.format(v));
        let ratio = match (a, b) {
            (Some(&a), Some(&b)) if b != 0.0 => format!("{:.2}x", a / b),
            _ => "n/a".to_string(),
        };
        rows.push([scenario.into(), figure.into(), cell(a), cell(b), ratio]);
    }
    let mut widths = [0; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, (cell, &w)) in row.iter().zip(&widths).enumerate() {
            let pad = w - cell.chars().count();
            if c < 2 {
                let _ = write!(line, "| {cell}{} ", " ".repeat(pad));
            } else {
                let _ = write!(line, "| {}{cell} ", " ".repeat(pad));
            }
        }
        line.push('|');
        out.push_str(&line);
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, &w)| {
                    if c < 2 {
                        format!("|{}", "-".repeat(w + 2))
                    } else {
                        format!("|{}:", "-".repeat(w + 1))
                    }
                })
                .collect();
            out.push_str(&rule.concat());
            out.push_str("|\n");
        }
    }
    out
}

/// All figures and the run's context as JSON.
pub fn json(
    context: serde_json::Value,
    server: Option<&Outcome>,
    baseline: Option<&Outcome>,
) -> serde_json::Value {
    let figures = |o: Option<&Outcome>| o.map(|o| serde_json::json!(o.figures));
    let rows: Vec<serde_json::Value> = ROWS
        .iter()
        .map(|&(scenario, figure, key, unit)| {
            let a = server.and_then(|o| o.figures.get(key));
            let b = baseline.and_then(|o| o.figures.get(key));
            let ratio = match (a, b) {
                (Some(&a), Some(&b)) if b != 0.0 => Some(a / b),
                _ => None,
            };
            serde_json::json!({
                "scenario": scenario,
                "figure": figure,
                "key": key,
                "unit": unit.name(),
                "server": a,
                "baseline": b,
                "ratio": ratio,
            })
        })
        .collect();
    let failures: Vec<&String> = [server, baseline]
        .into_iter()
        .flatten()
        .flat_map(|o| &o.failures)
        .collect();
    serde_json::json!({
        "context": context,
        "rows": rows,
        "server": figures(server),
        "baseline": figures(baseline),
        "failures": failures,
    })
}

/// Latency CDFs: push rate and ping-pong of both servers on the left (µs,
/// log scale), the fan-out's per-connection answer times on the right (ms).
pub fn chart(
    path: &Path,
    name: &str,
    server: Option<&Outcome>,
    baseline: Option<&Outcome>,
) -> Result<(), String> {
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(640);
        let mut lines = Vec::new();
        for (who, outcome, dashed) in [(name, server, false), ("baseline", baseline, true)] {
            let Some(outcome) = outcome else { continue };
            for (scenario, color) in [("ping-pong", RED), ("push rate", BLUE)] {
                if let Some(h) = outcome.curves.get(scenario) {
                    lines.push((format!("{scenario}, {who}"), cdf(h, 1e3), color, dashed));
                }
            }
        }
        let (lo, hi) = bounds(lines.iter().flat_map(|l| l.1.iter().map(|p| p.0)));
        let mut chart = ChartBuilder::on(&left)
            .caption("request latency CDF", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d((lo..hi).log_scale(), 0f64..100f64)?;
        chart
            .configure_mesh()
            .x_desc("latency (µs, log scale)")
            .y_desc("percentile")
            .draw()?;
        for (label, points, color, dashed) in lines {
            let style = if dashed {
                color.mix(0.5).stroke_width(2)
            } else {
                color.stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(points, style))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;

        let fanout = server.and_then(|o| o.curves.get("fan-out"));
        let points = fanout.map(|h| cdf(h, 1e6)).unwrap_or_default();
        let hi = points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
        let mut chart = ChartBuilder::on(&right)
            .caption(
                "fan-out: time until each parked consumer is answered",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..hi, 0f64..100f64)?;
        chart
            .configure_mesh()
            .x_desc("since the push was sent (ms)")
            .y_desc("percent of consumers")
            .draw()?;
        chart.draw_series(LineSeries::new(points, RED.stroke_width(2)))?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("{}: {e}", path.display()))
}

/// (value in `scale` units, percentile) points of a histogram's CDF.
fn cdf(h: &Histogram<u64>, scale: f64) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut quantiles: Vec<f64> = (0..=100).map(|q| f64::from(q) / 100.0).collect();
    quantiles.extend([0.995, 0.999, 0.9995, 0.9999]);
    quantiles.sort_by(f64::total_cmp);
    quantiles
        .into_iter()
        .map(|q| ((h.value_at_quantile(q) as f64 / scale).max(0.01), q * 100.0))
        .collect()
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return (1.0, 1000.0);
    }
    (lo * 0.8, hi * 1.25)
}
