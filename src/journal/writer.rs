//! The log's writing side: this turn's records, one `write` for them, the
//! fsync policy, segment rotation and deletion.
//!
//! Records are encoded into one buffer as the API makes them, and written
//! by [`Journal::commit`] in one `write(2)` for everything recorded since
//! the last commit. The loop decides when (`server/durable.rs`): always
//! before the first answer that depends on them leaves, and otherwise as
//! late as it can, so that one loop turn usually pays one `write` however
//! many pushes it served, and a push fanned out to 10,000 consumers too.
//!
//! - `always`: [`Journal::commit`] also `fdatasync`s, on the loop thread;
//!   [`Journal::holds_answers`] tells the loop to hold every answer until
//!   then (group commit: one sync per turn).
//! - `everysec`: the helper thread of `sync.rs` syncs once a second.
//! - `never`: the kernel writes back when it likes.
//!
//! A failed `write` (a full disk, an I/O error) must not leave half a
//! record in the file, nor promise what the disk does not hold: the file is
//! cut back to its last whole record, the records are kept to be written
//! again at the next commit, and while that fails [`Journal::failing`]
//! makes the API refuse pushes (`503`), as Redis refuses writes when its
//! append-only file cannot be written. A failed `fdatasync` with `always`
//! counts as a failed write (the kernel may have dropped the pages).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use log::{error, warn};

use super::lock::DirLock;
use super::record::{Record, encode};
use super::segment::{self, Segment};
use super::sync::{SyncStats, Syncer, sync};
use crate::config::{Fsync, Millis};

/// The segment being appended to.
#[derive(Debug)]
struct Open {
    file: Arc<File>,
    segment: Segment,
}

/// Counters of the writing side, for `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteStats {
    /// Bytes written to segments.
    pub bytes: u64,
    /// `write` calls.
    pub writes: u64,
    /// `write` calls that failed.
    pub errors: u64,
    /// Segments deleted.
    pub deleted: u64,
}

/// The log of one data directory. See the module docs.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    ttl: Millis,
    window: Millis,
    fsync: Fsync,
    /// Records not written yet, framed.
    pending: Vec<u8>,
    /// The newest `at` among them.
    pending_newest: Millis,
    /// Bytes written but not synced, with `always`.
    unsynced: bool,
    /// For the measurements only: sync after every record, no group commit.
    sync_each: bool,
    open: Option<Open>,
    /// Closed segments, oldest first.
    closed: VecDeque<Segment>,
    syncer: Option<Syncer>,
    sync_stats: Arc<SyncStats>,
    stats: WriteStats,
    /// The last write or sync failed: pushes are refused until one works.
    failing: bool,
    /// Held while the journal lives.
    _lock: DirLock,
}

impl Journal {
    /// A journal appending to `dir`, whose segments replay found as
    /// `segments` (oldest first). Events live `ttl` ms.
    pub fn new(
        dir: &Path,
        ttl: Millis,
        fsync: Fsync,
        segments: Vec<Segment>,
        lock: DirLock,
    ) -> std::io::Result<Journal> {
        let sync_stats = Arc::new(SyncStats::default());
        let syncer = match fsync {
            Fsync::Everysec => Some(Syncer::start(
                Arc::clone(&sync_stats),
                Duration::from_secs(1),
            )?),
            Fsync::Always | Fsync::Never => None,
        };
        Ok(Journal {
            dir: dir.to_path_buf(),
            ttl,
            window: segment::window(ttl),
            fsync,
            pending: Vec::with_capacity(64 * 1024),
            pending_newest: 0,
            unsynced: false,
            // A measuring aid, not a setting: see the README's benchmarks.
            sync_each: std::env::var_os("EVENT_SYNCER_SYNC_EACH_RECORD").is_some(),
            open: None,
            closed: segments.into(),
            syncer,
            sync_stats,
            stats: WriteStats::default(),
            failing: false,
            _lock: lock,
        })
    }

    /// Adds `record` to this turn's records.
    pub fn record(&mut self, record: &Record<'_>) {
        encode(record, &mut self.pending);
        self.pending_newest = self.pending_newest.max(record.at());
        if self.sync_each && self.fsync == Fsync::Always {
            self.commit(record.at());
        }
    }

    /// Whether records wait for [`Journal::commit`].
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Whether the loop must hold answers until [`Journal::commit`]: with
    /// `always`, while records are not yet on the disk.
    pub fn holds_answers(&self) -> bool {
        // While the disk fails, records wait in memory for it; answers do
        // not (no push is answered `200` meanwhile).
        self.fsync == Fsync::Always && !self.failing && (!self.pending.is_empty() || self.unsynced)
    }

    /// Whether the log cannot be written now: pushes are refused.
    pub fn failing(&self) -> bool {
        self.failing
    }

    /// Writes the records made since the last commit in one `write`, into
    /// the segment of `now`'s window, and with `always` syncs them.
    pub fn commit(&mut self, now: Millis) {
        if !self.pending.is_empty() {
            self.write_pending(now);
        }
        if self.unsynced {
            self.unsynced = false;
            if let Some(open) = &self.open
                && let Err(e) = sync(&open.file, &self.sync_stats)
            {
                error!("fdatasync of {} failed: {e}", open.segment.path.display());
                self.failing = true;
            }
        }
    }

    fn write_pending(&mut self, now: Millis) {
        let start = segment::window_start(now, self.window);
        if self.open.as_ref().is_none_or(|o| o.segment.start != start) {
            self.rotate(start);
        }
        let Some(open) = &mut self.open else {
            // `rotate` could not open the segment and said why; the records
            // wait for the next commit.
            self.stats.errors += 1;
            self.failing = true;
            return;
        };
        self.stats.writes += 1;
        match (&*open.file).write_all(&self.pending) {
            Ok(()) => {
                if self.failing {
                    self.failing = false;
                    warn!("the log can be written again: pushes are taken again");
                }
                self.stats.bytes += self.pending.len() as u64;
                open.segment.bytes += self.pending.len() as u64;
                open.segment.newest = open.segment.newest.max(self.pending_newest);
                match self.fsync {
                    Fsync::Always => self.unsynced = true,
                    Fsync::Everysec => {
                        if let Some(s) = &self.syncer {
                            s.dirty(&open.file);
                        }
                    }
                    Fsync::Never => {}
                }
            }
            Err(e) => {
                self.stats.errors += 1;
                // Part of the buffer may have landed: cut it off, so the
                // file ends in a whole record, and write it all again later.
                let cut = open.file.set_len(open.segment.bytes);
                if !self.failing {
                    error!(
                        "cannot write the log to {}: {e}; refusing pushes until it can be{}",
                        open.segment.path.display(),
                        match cut {
                            Ok(()) => String::new(),
                            Err(e) => format!(" (and cannot cut its torn end: {e})"),
                        }
                    );
                }
                self.failing = true;
                return;
            }
        }
        self.pending.clear();
    }

    /// Closes the open segment and opens the one of the window at `start`
    /// (appending if it exists: a restart within one window).
    fn rotate(&mut self, start: Millis) {
        if let Some(old) = self.open.take() {
            if self.fsync == Fsync::Always && self.unsynced {
                self.unsynced = false;
                let _ = sync(&old.file, &self.sync_stats);
            }
            self.closed.push_back(old.segment);
        }
        let path = segment::path(&self.dir, start);
        // Replay listed this window's file among the closed ones if it was
        // there: it is the open one again.
        let mut seg = match self.closed.back() {
            Some(last) if last.start == start => self.closed.pop_back(),
            _ => None,
        }
        .unwrap_or(Segment {
            path: path.clone(),
            start,
            newest: start,
            bytes: 0,
        });
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(file) => {
                seg.path = path;
                self.open = Some(Open {
                    file: Arc::new(file),
                    segment: seg,
                });
            }
            Err(e) => error!("cannot open the log segment {}: {e}", path.display()),
        }
    }

    /// Deletes the closed segments that everything they name has outlived
    /// (`segment::useless`). Returns when the next one will be.
    pub fn retire(&mut self, now: Millis) -> Option<Millis> {
        // A quiet server writes nothing, so nothing rotates: close the open
        // segment once its window is over, so that it can age out too.
        if self.pending.is_empty()
            && !self.unsynced
            && self
                .open
                .as_ref()
                .is_some_and(|o| now >= o.segment.start + self.window)
            && let Some(old) = self.open.take()
        {
            self.closed.push_back(old.segment);
        }
        while let Some(oldest) = self.closed.front() {
            if !segment::useless(oldest.newest, now, self.ttl) {
                break;
            }
            if let Err(e) = std::fs::remove_file(&oldest.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(
                    "cannot delete the log segment {}: {e}",
                    oldest.path.display()
                );
                break;
            }
            self.stats.deleted += 1;
            self.closed.pop_front();
        }
        self.next_retirement()
    }

    /// When [`Journal::retire`] next has work: the oldest closed segment's
    /// time, or the open one's once its window has passed.
    pub fn next_retirement(&self) -> Option<Millis> {
        let newest = match self.closed.front() {
            Some(s) => s.newest,
            None => {
                let open = self.open.as_ref()?;
                // It closes at the first commit after its window: check then.
                (open.segment.start + self.window).max(open.segment.newest)
            }
        };
        Some(segment::useless_at(newest, self.ttl))
    }

    /// Writes what is pending and syncs it, whatever the mode: a clean
    /// shutdown loses nothing.
    pub fn close(&mut self, now: Millis) {
        self.commit(now);
        if let Some(open) = &self.open {
            let _ = sync(&open.file, &self.sync_stats);
        }
        if let Some(mut s) = self.syncer.take() {
            s.stop();
        }
    }

    /// Segments on disk, the open one included.
    pub fn segments(&self) -> usize {
        self.closed.len() + usize::from(self.open.is_some())
    }

    /// Bytes of the segments on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.closed.iter().map(|s| s.bytes).sum::<u64>()
            + self.open.as_ref().map_or(0, |o| o.segment.bytes)
    }

    /// The writing counters.
    pub fn write_stats(&self) -> WriteStats {
        self.stats
    }

    /// The fsync counters.
    pub fn sync_stats(&self) -> &SyncStats {
        &self.sync_stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::record::{Decoded, decode};

    fn push(at: Millis, id: u64) -> Record<'static> {
        Record::Push {
            at,
            id,
            key: "k",
            json: b"{}",
        }
    }

    /// A write that fails (here: the segment's descriptor swapped for a
    /// read-only one) leaves the file as it was, keeps the records, makes
    /// the journal refuse pushes, and is made good by the next commit that
    /// can write.
    #[test]
    fn a_failed_write_keeps_its_records_and_the_file_whole() {
        let dir = std::env::temp_dir().join(format!("es-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lock = DirLock::acquire(&dir).unwrap();
        let mut journal = Journal::new(&dir, 120_000, Fsync::Never, Vec::new(), lock).unwrap();
        journal.record(&push(1_000, 1));
        journal.commit(1_000);
        assert!(!journal.failing());
        let open = journal.open.as_mut().unwrap();
        let path = open.segment.path.clone();
        let good = std::fs::metadata(&path).unwrap().len();
        let writable = std::mem::replace(&mut open.file, Arc::new(File::open(&path).unwrap()));

        journal.record(&push(1_001, 2));
        journal.commit(1_001);
        assert!(journal.failing());
        assert!(journal.has_pending(), "the record waits in memory");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        assert_eq!(journal.write_stats().errors, 1);

        journal.open.as_mut().unwrap().file = writable;
        journal.record(&push(1_002, 3));
        journal.commit(1_002);
        assert!(!journal.failing());
        assert!(!journal.has_pending());
        let bytes = std::fs::read(&path).unwrap();
        let mut ids = Vec::new();
        let mut at = 0;
        while let Decoded::Complete(record, len) = decode(&bytes[at..]) {
            if let Record::Push { id, .. } = record {
                ids.push(id);
            }
            at += len;
        }
        assert_eq!(ids, [1, 2, 3], "every record once, in order");
        assert_eq!(at, bytes.len());
        drop(journal);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
