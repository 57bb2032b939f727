//! The data directory (`--data-dir`): an append-only log of what changed
//! the store, replayed on start, in segments that age out whole.
//!
//! The journal knows nothing of sockets or HTTP, and the store knows
//! nothing of files: the API records each change as it makes it
//! ([`record::Record`]), the loop commits them before it writes the answers
//! they back, and on start [`open`] locks the directory and replays it into
//! a fresh store through the store's restore methods.
//!
//! - `record.rs`: a record and its bytes (length, CRC-32, payload);
//! - `segment.rs`: one file per window of time, and when one is useless;
//! - `writer.rs`: this turn's records, one `write`, rotation, deletion;
//! - `sync.rs`: `fdatasync`, timed, and the everysec helper thread;
//! - `replay.rs`: the store rebuilt from the segments;
//! - `lock.rs`: one server per directory.

mod lock;
pub mod record;
mod replay;
pub mod segment;
mod sync;
mod writer;

use std::path::Path;

pub use lock::DirLock;
pub use replay::Replayed;
pub use sync::BUCKETS;
pub use writer::Journal;

use crate::config::{Fsync, Millis};
use crate::store::Store;

/// Opens `dir` (making it if need be), locks it, and replays it into
/// `store` as of `now` (store milliseconds: Unix time). The store's ids go
/// on at `first_id` or above the last id on disk, whichever is greater.
pub fn open(
    dir: &Path,
    ttl: Millis,
    fsync: Fsync,
    store: &mut Store,
    now: Millis,
    first_id: u64,
) -> Result<(Journal, Replayed), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    let lock = DirLock::acquire(dir)?;
    let (replayed, segments) = replay::replay(dir, store, now, ttl)?;
    store.finish_restore(now.max(replayed.newest), first_id.max(replayed.last_id + 1));
    store.record_hand_outs();
    let journal = Journal::new(dir, ttl, fsync, segments, lock)
        .map_err(|e| format!("cannot start the fdatasync thread: {e}"))?;
    Ok((journal, replayed))
}
