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
//! - `lock.rs`: one server per directory;
//! - `exposition.rs`: its figures in `/metrics`.

pub mod exposition;
mod lock;
pub mod record;
mod replay;
pub mod segment;
mod sync;
mod writer;

use std::path::Path;

pub use lock::DirLock;
pub use replay::Replayed;
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

#[cfg(test)]
mod tests {
    //! The store and the log together, on a fake clock: what a segment
    //! holds, when it goes, and what a replay then brings back.

    use super::record::Record;
    use super::*;
    use crate::store::Take;

    const TTL: Millis = 1000;

    struct Rig {
        dir: std::path::PathBuf,
        store: Store,
        journal: Journal,
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("es-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn rig(dir: &Path, now: Millis) -> Rig {
        let mut store = Store::new(TTL, usize::MAX);
        let (journal, _) = open(dir, TTL, Fsync::Never, &mut store, now, 1).expect("open");
        Rig {
            dir: dir.to_path_buf(),
            store,
            journal,
        }
    }

    impl Rig {
        /// What the API does for a push.
        fn push(&mut self, at: Millis) -> u64 {
            let id = self
                .store
                .push("k", b"1", at, &mut Vec::new())
                .expect("room");
            self.journal.record(&Record::Push {
                at,
                id,
                key: "k",
                json: b"1",
            });
            self.journal.commit(at);
            id
        }

        /// What the API does for a leased blocking-get.
        fn lease(&mut self, at: Millis, ms: u32) -> Option<u64> {
            let take = Take {
                lease: ms,
                ..Take::ALL
            };
            let batch = self.store.take_with("k", "g", at, take)?;
            let Rig { store, journal, .. } = self;
            store.drain_hand_outs(|h| journal.record(&Record::Take(h)));
            journal.commit(at);
            batch.lease.map(|l| l.id)
        }

        fn files(&self) -> Vec<Millis> {
            let mut starts: Vec<Millis> = std::fs::read_dir(&self.dir)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().to_str().and_then(segment::parse_name))
                .collect();
            starts.sort_unstable();
            starts
        }
    }

    #[test]
    fn a_segment_goes_exactly_one_ttl_after_its_newest_record_and_not_a_tick_before() {
        let dir = temp_dir("exact");
        let mut r = rig(&dir, 0);
        r.push(0);
        r.push(100);
        r.push(130); // the next window (125 ms)
        assert_eq!(r.files(), [0, 125]);
        assert_eq!(r.journal.next_retirement(), Some(1100));
        assert_eq!(r.journal.retire(1099), Some(1100));
        assert_eq!(r.files(), [0, 125], "one ms early: kept");
        r.journal.retire(1100);
        assert_eq!(r.files(), [125], "its newest event expired at 1100");
        // The open segment, quiet, closes after its window and goes too.
        r.journal.retire(1129);
        assert_eq!(r.files(), [125]);
        r.journal.retire(1130);
        assert!(r.files().is_empty());
        drop(r);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_segment_holding_a_live_lease_is_kept_and_the_lease_comes_back() {
        let dir = temp_dir("lease");
        let mut r = rig(&dir, 0);
        let first = r.push(0);
        r.push(600);
        // A lease taken late on both events, in a segment with no push.
        let id = r.lease(900, 5000).expect("a leased batch");
        r.journal.retire(1000);
        assert_eq!(r.files(), [500, 875], "the first push's segment went");
        r.journal.retire(1600);
        assert_eq!(
            r.files(),
            [875],
            "the lease's segment stays while it may be live"
        );
        drop(r);
        // At 1599 the second event still lives, and so does the lease.
        let mut store = Store::new(TTL, usize::MAX);
        let (_journal, replayed) =
            open(&dir, TTL, Fsync::Never, &mut store, 1599, 1).expect("open");
        assert_eq!(replayed.segments, 1);
        assert_eq!(store.running_leases(), [(id, 5901)]);
        assert_eq!(store.ack("k", "g", id), Ok(2), "ackable after the replay");
        assert!(store.next_id() > first + 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn damage_inside_an_older_file_skips_its_rest_and_the_next_file_is_read() {
        let dir = temp_dir("damage");
        let mut r = rig(&dir, 0);
        let a = r.push(0);
        r.push(10);
        let c = r.push(200);
        drop(r);
        let older = segment::path(&dir, 0);
        let mut bytes = std::fs::read(&older).expect("read");
        let len = bytes.len();
        bytes[len - 3] ^= 0x55;
        std::fs::write(&older, &bytes).expect("write");
        let mut store = Store::new(TTL, usize::MAX);
        let (_journal, replayed) = open(&dir, TTL, Fsync::Never, &mut store, 300, 1).expect("open");
        assert_eq!((replayed.applied, replayed.segments), (2, 2));
        let ids: Vec<u64> = store
            .take("k", "g", 300)
            .map(|b| store.batch_events_from(&b, 0).map(|(id, _)| id).collect())
            .unwrap_or_default();
        assert_eq!(ids, [a, c]);
        assert_eq!(
            std::fs::metadata(&older).map(|m| m.len()).ok(),
            Some(len as u64),
            "not cut"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_replay_skips_what_expired_and_ids_go_on_above_the_disk() {
        let dir = temp_dir("skip");
        let mut r = rig(&dir, 0);
        let a = r.push(0);
        let b = r.push(500);
        drop(r);
        let mut store = Store::new(TTL, usize::MAX);
        let (_journal, replayed) =
            open(&dir, TTL, Fsync::Never, &mut store, 1200, 1).expect("open");
        assert_eq!((replayed.applied, replayed.skipped), (1, 1));
        assert_eq!(store.take("k", "g", 1200).map(|b| b.seqs), Some(b..b + 1));
        assert!(store.next_id() > b && b > a);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
