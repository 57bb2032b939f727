//! The data directory's part of `/metrics`: bytes written, fsyncs and
//! their duration (a Prometheus histogram), segments on disk, and how long
//! the replay on start took. Read at scrape time, like every gauge.

use std::fmt::Write as _;

use super::Journal;
use super::sync::BUCKETS;
use crate::metrics::family;

/// The data directory's figures: bytes written, fsyncs and their duration
/// (a histogram), segments on disk, and how long the replay on start took.
pub fn render(out: &mut String, j: &Journal, replay_seconds: f64) {
    use std::sync::atomic::Ordering::Relaxed;
    let w = j.write_stats();
    let s = j.sync_stats();
    let counters: [(&str, &str, u64); 4] = [
        (
            "log_bytes_written_total",
            "Bytes appended to the log.",
            w.bytes,
        ),
        (
            "log_writes_total",
            "write calls on the log (one per commit).",
            w.writes,
        ),
        (
            "log_write_errors_total",
            "Failed writes or fsyncs of the log.",
            w.errors + s.errors.load(Relaxed),
        ),
        (
            "log_segments_deleted_total",
            "Log segments deleted whole after the TTL.",
            w.deleted,
        ),
    ];
    for (name, help, value) in counters {
        family(out, name, help, "counter");
        let _ = writeln!(out, "event_syncer_{name} {value}");
    }
    for (name, help, value) in [
        (
            "log_segments",
            "Log segment files in the data directory.",
            j.segments() as f64,
        ),
        (
            "log_disk_bytes",
            "Bytes of the log segments on disk.",
            j.disk_bytes() as f64,
        ),
        (
            "log_replay_seconds",
            "How long the replay of the log on start took.",
            replay_seconds,
        ),
    ] {
        family(out, name, help, "gauge");
        let _ = writeln!(out, "event_syncer_{name} {value}");
    }
    family(
        out,
        "log_fsync_seconds",
        "fdatasync calls on the log and their duration.",
        "histogram",
    );
    let mut cumulative = 0;
    for (bound, count) in BUCKETS.iter().zip(&s.buckets) {
        cumulative += count.load(Relaxed);
        let _ = writeln!(
            out,
            "event_syncer_log_fsync_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let count = s.count.load(Relaxed);
    let sum = s.nanos.load(Relaxed) as f64 / 1e9;
    let _ = writeln!(
        out,
        "event_syncer_log_fsync_seconds_bucket{{le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(out, "event_syncer_log_fsync_seconds_sum {sum}");
    let _ = writeln!(out, "event_syncer_log_fsync_seconds_count {count}");
}
