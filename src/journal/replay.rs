//! Replay: rebuilding the store from the segments on start.
//!
//! Segments are read oldest first, each whole into memory (one `read` per
//! file: a segment is at most 30 s of traffic), and each record is applied
//! through the store's methods (`store/restore.rs`). A record older than one
//! TTL is skipped: everything it names has expired (`segment.rs`), so it can
//! change nothing that is still live; only the ids it carries count, so that
//! ids continue above every id on disk.
//!
//! A torn or corrupt record ends its file. In the newest file that is the
//! crash this exists for: the file is cut back to the last whole record so
//! that appends continue cleanly. In an older file it is damage: the rest of
//! that file is skipped with a warning, and the next file is read.

use std::path::Path;
use std::time::Instant;

use log::warn;

use super::record::{Decoded, Record, decode};
use super::segment::{self, Segment};
use crate::config::Millis;
use crate::store::{HandOut, Store};

/// What a replay found, for the startup line.
#[derive(Debug, Default, Clone)]
pub struct Replayed {
    /// Segments read.
    pub segments: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Records applied.
    pub applied: u64,
    /// Records skipped as older than the TTL.
    pub skipped: u64,
    /// Bytes cut off torn or corrupt tails.
    pub cut: u64,
    /// The newest record's time.
    pub newest: Millis,
    /// The largest event or batch id on disk.
    pub last_id: u64,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// Replays the segments of `dir` into `store` as of `now`, and returns what
/// it found with the segments, oldest first.
pub fn replay(
    dir: &Path,
    store: &mut Store,
    now: Millis,
    ttl: Millis,
) -> Result<(Replayed, Vec<Segment>), String> {
    let started = Instant::now();
    let mut found = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        if let Some(start) = entry.file_name().to_str().and_then(segment::parse_name) {
            found.push(start);
        }
    }
    found.sort_unstable();
    let mut done = Replayed::default();
    let mut segments = Vec::with_capacity(found.len());
    let mut last_expire = 0;
    for (i, &start) in found.iter().enumerate() {
        let path = segment::path(dir, start);
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut at = 0;
        let mut newest = start;
        // The clock must not start behind a file's name either, or the next
        // segment would sort before it.
        done.newest = done.newest.max(start);
        while at < bytes.len() {
            let (record, len) = match decode(&bytes[at..]) {
                Decoded::Complete(record, len) => (record, len),
                damage => {
                    let newest_file = i + 1 == found.len();
                    let what = if damage == Decoded::Partial {
                        "torn"
                    } else {
                        "corrupt"
                    };
                    done.cut += (bytes.len() - at) as u64;
                    if newest_file {
                        warn!(
                            "{}: {what} record at byte {at} (a crash mid-write): cutting the file there",
                            path.display()
                        );
                        cut(&path, at as u64)?;
                    } else {
                        warn!(
                            "{}: {what} record at byte {at}: skipping the {} bytes after it",
                            path.display(),
                            bytes.len() - at
                        );
                    }
                    break;
                }
            };
            at += len;
            newest = newest.max(record.at());
            done.newest = done.newest.max(record.at());
            done.last_id = done.last_id.max(ids_in(&record));
            if record.at().saturating_add(ttl) <= now {
                done.skipped += 1;
                continue;
            }
            // Expire as the live server did, so replaying a full TTL never
            // holds more than one TTL of events at once.
            if record.at() >= last_expire + 100 {
                last_expire = record.at();
                store.expire(last_expire);
            }
            apply(store, &record);
            done.applied += 1;
        }
        done.segments += 1;
        done.bytes += at as u64;
        segments.push(Segment {
            path,
            start,
            newest,
            bytes: at as u64,
        });
    }
    done.seconds = started.elapsed().as_secs_f64();
    Ok((done, segments))
}

/// Makes the store change as `record` says it did.
fn apply(store: &mut Store, record: &Record<'_>) {
    // Refusals are expected: a lease whose record is older than the
    // segments on disk is unknown here, and one whose events all expired
    // was ended; either way it changes nothing live.
    match *record {
        Record::Push { at, id, key, json } => store.restore_push(key, id, at, json),
        Record::Take(ref hand_out) => store.restore_hand_out(hand_out),
        Record::Due { at, batch } => {
            let _ = store.lease_timer(batch, at);
        }
        Record::Ack {
            key, group, batch, ..
        } => {
            let _ = store.ack(key, group, batch);
        }
        Record::Nack {
            at,
            key,
            group,
            batch,
        } => {
            let _ = store.nack(key, group, batch, at);
        }
        Record::Extend {
            at,
            key,
            group,
            batch,
            lease,
        } => {
            let _ = store.extend(key, group, batch, lease, at);
        }
    }
}

/// The largest id a record carries.
fn ids_in(record: &Record<'_>) -> u64 {
    match *record {
        Record::Push { id, .. } => id,
        // A batch's end is the next event id at the time it was handed out.
        Record::Take(HandOut { batch, end, .. }) => batch.max(end.saturating_sub(1)),
        _ => 0,
    }
}

/// Cuts `path` back to `len` bytes.
fn cut(path: &Path, len: u64) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len))
        .map_err(|e| format!("cannot cut the torn tail of {}: {e}", path.display()))
}
