//! Getting the log onto the disk: `fdatasync`, timed, and for
//! `--fsync everysec` the helper thread that does it once a second so the
//! event loop never waits on the disk.
//!
//! The helper does nothing else (SPEC.md's life cycle allows exactly that
//! thread). The loop hands it the files it wrote since the last sync
//! through a mutex it holds for a push onto a `Vec`; the helper wakes every
//! second, takes the list and syncs each file. A segment the loop has
//! closed stays open in the list (shared with an `Arc`) until its last sync.
//! The timings land in atomics that `/metrics` reads.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::error;

/// Upper bounds, in seconds, of the fsync duration histogram's buckets.
pub const BUCKETS: [f64; 10] = [
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0,
];

/// Counters shared by the loop and the helper.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// `fdatasync` calls.
    pub count: AtomicU64,
    /// Their total duration, in nanoseconds.
    pub nanos: AtomicU64,
    /// How many took at most each of [`BUCKETS`] (not cumulative).
    pub buckets: [AtomicU64; BUCKETS.len()],
    /// Calls that failed.
    pub errors: AtomicU64,
}

/// `fdatasync`s `file`, timed into `stats`.
pub fn sync(file: &File, stats: &SyncStats) -> std::io::Result<()> {
    let started = Instant::now();
    let result = file.sync_data();
    let took = started.elapsed();
    stats.count.fetch_add(1, Ordering::Relaxed);
    stats
        .nanos
        .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    let secs = took.as_secs_f64();
    if let Some(i) = BUCKETS.iter().position(|&b| secs <= b) {
        stats.buckets[i].fetch_add(1, Ordering::Relaxed);
    }
    if result.is_err() {
        stats.errors.fetch_add(1, Ordering::Relaxed);
    }
    result
}

#[derive(Debug, Default)]
struct Queue {
    files: Vec<Arc<File>>,
    stop: bool,
}

/// The everysec helper thread.
#[derive(Debug)]
pub struct Syncer {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the helper, syncing once per `every`.
    pub fn start(stats: Arc<SyncStats>, every: Duration) -> std::io::Result<Syncer> {
        let shared: Arc<(Mutex<Queue>, Condvar)> = Arc::default();
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("fdatasync".into())
            .spawn(move || run(&theirs, &stats, every))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    /// `file` was written: sync it at the next round.
    pub fn dirty(&self, file: &Arc<File>) {
        let Ok(mut q) = self.shared.0.lock() else {
            return;
        };
        if !q.files.last().is_some_and(|f| Arc::ptr_eq(f, file)) {
            q.files.push(Arc::clone(file));
        }
    }

    /// Syncs what is left, then ends the thread.
    pub fn stop(&mut self) {
        if let Ok(mut q) = self.shared.0.lock() {
            q.stop = true;
        }
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &(Mutex<Queue>, Condvar), stats: &SyncStats, every: Duration) {
    let (lock, wake) = shared;
    loop {
        let (files, stop) = {
            let Ok(mut q) = lock.lock() else {
                return;
            };
            if !q.stop {
                q = match wake.wait_timeout(q, every) {
                    Ok((q, _)) => q,
                    Err(_) => return,
                };
            }
            (std::mem::take(&mut q.files), q.stop)
        };
        for file in &files {
            if let Err(e) = sync(file, stats) {
                error!("fdatasync of the log failed: {e}");
            }
        }
        if stop {
            return;
        }
    }
}
