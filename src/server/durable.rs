//! The data directory as the loop sees it: the store opened from it, the
//! log committed before the answers it backs, segments retired.
//!
//! Without `--data-dir` the API has no journal and every function here
//! returns at its first line.
//!
//! # When a record reaches the disk
//!
//! SPEC.md: every change is "appended to a log in DIR before its answer is
//! written". Answers leave from two places, a connection's flush and the
//! fan-out's send at once; both ask [`Server::may_write`] first.
//!
//! - A flush while records are unwritten is *held*: the connection goes on
//!   the `held` list and [`Server::commit_turn`], at the end of the turn,
//!   writes every record of the turn in one `write` and then serves the
//!   held connections, in the order they were held. A turn that serves 50
//!   pushes on 50 connections pays one `write`, not 50; an answer waits for
//!   the rest of its turn, microseconds.
//! - The fan-out commits at once instead (one `write` for the push and
//!   every hand-out it made) and sends from the stack as without a data
//!   directory: holding it would mean queueing 10,000 answers.
//! - With `--fsync always` every answer is held while records are not yet
//!   synced, the fan-out's too (it queues instead of sending), and the
//!   commit at the end of the turn syncs once: group commit. A turn that
//!   serves one push pays one sync; a turn that serves a hundred pays one.
//!
//! Held answers go out in the order they were held, so the consumers a push
//! woke are still answered before the pusher (SPEC.md's push section).

use std::time::SystemTime;

use super::{Server, Timer};
use crate::api::{Api, Response};
use crate::config::{Config, Millis};
use crate::connection::ReplyStyle;
use crate::journal::{self, Replayed};
use crate::store::Store;

/// Rounds of holding, committing and flushing per turn before the rest
/// waits for the next turn (each round may read new requests).
const COMMIT_ROUNDS: usize = 4;

/// The API over a store, memory-only or replayed from the data directory,
/// with the clock's reading at start (see `Server::epoch`).
pub(super) fn open_store(config: &Config) -> Result<(Api, Millis, Option<Replayed>), String> {
    // Ids grow across restarts: the counter starts at the Unix time in
    // microseconds (SPEC.md), later than any id a previous run gave, or
    // above the last id on disk.
    let unix_us = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
    let Some(dir) = &config.data_dir else {
        let store = Store::starting_at(config.event_ttl, config.max_memory, unix_us);
        return Ok((Api::new(store, config.poll_timeout), 0, None));
    };
    let unix_ms = unix_us / 1000;
    let mut store = Store::starting_at(config.event_ttl, config.max_memory, 1);
    let (journal, replayed) = journal::open(
        dir,
        config.event_ttl,
        config.fsync,
        &mut store,
        unix_ms,
        unix_us,
    )?;
    // The clock never goes back behind the log, even if the wall clock did.
    let epoch = unix_ms.max(replayed.newest);
    let mut api = Api::new(store, config.poll_timeout);
    api.journal = Some(journal);
    api.replay_seconds = replayed.seconds;
    Ok((api, epoch, Some(replayed)))
}

impl Server {
    /// After a replay: a timer for every lease that came back (one that ran
    /// out while the server was down fires at once), the sweep, and the
    /// retirement of segments.
    pub(super) fn resume(&mut self) {
        let now = self.exact_now();
        for (id, deadline) in self.api.store.running_leases() {
            self.wheel.insert(deadline.max(now), Timer::Lease(id));
        }
        self.schedule_sweep();
        self.schedule_retire();
    }

    /// Whether an answer may be written to `token` now; if not, `token` is
    /// held for [`Server::commit_turn`]. With `--fsync always`, not while
    /// records are not synced. Otherwise a flush (`at_once` false) waits
    /// while there are records to write, so that a turn that serves many
    /// pushes writes them all in one `write`; an answer sent at once (a
    /// fan-out) commits them now, one `write` for the push and every answer
    /// it fans out.
    pub(super) fn may_write(&mut self, token: usize, at_once: bool) -> bool {
        let now = self.now();
        let Some(journal) = &mut self.api.journal else {
            return true;
        };
        if journal.holds_answers() || (!at_once && journal.has_pending()) {
            if let Some(conn) = self.conns.get_mut(token)
                && !std::mem::replace(&mut conn.held, true)
            {
                self.held.push(token);
            }
            return false;
        }
        journal.commit(now);
        true
    }

    /// [`Server::respond_now`] when the answer must wait for the sync: it is
    /// queued, and the connection flushed after the commit.
    pub(super) fn respond_held(&mut self, token: usize, response: &Response, reply: ReplyStyle) {
        self.respond(token, response, reply);
    }

    /// The end of a visit to a held connection: [`Server::commit_turn`]
    /// serves and settles it later in this turn, so settling now would only
    /// ask epoll for WRITABLE and arm a stall timer, to undo both at once.
    /// Its batch bodies are pinned now all the same: the store may change
    /// before the commit (SPEC.md: an answer is never missing an event).
    /// Returns false if the connection is not held.
    pub(super) fn pin_if_held(&mut self, token: usize) -> bool {
        let Some(conn) = self.conns.get_mut(token) else {
            return false;
        };
        if !conn.held {
            return false;
        }
        conn.outbox.pin_bodies(&mut self.api.store);
        true
    }

    /// The end of a turn: what is left of the turn's records is written
    /// (and with `always` synced, once), then the held answers go out.
    pub(super) fn commit_turn(&mut self) {
        let now = self.now();
        let Some(journal) = &mut self.api.journal else {
            return;
        };
        journal.commit(now);
        for _ in 0..COMMIT_ROUNDS {
            if self.held.is_empty() {
                break;
            }
            // In the order they were held: the consumers a push woke were
            // held before the pusher, and are answered before it (SPEC.md).
            let mut held = std::mem::take(&mut self.held);
            for &token in &held {
                if let Some(conn) = self.conns.get_mut(token) {
                    conn.held = false;
                    self.serve(token);
                }
            }
            // Serving read new requests: their records go now too.
            if let Some(journal) = &mut self.api.journal {
                journal.commit(now);
            }
            held.clear();
            if self.held.is_empty() {
                self.held = held;
            }
        }
        if self.retire.is_none() {
            self.schedule_retire();
        }
    }

    /// Keeps one retirement timer pending while there are segments.
    fn schedule_retire(&mut self) {
        let Some(at) = self.api.journal.as_ref().and_then(|j| j.next_retirement()) else {
            return;
        };
        self.retire = Some(self.wheel.insert(at, Timer::Retire));
    }

    /// The retirement timer fired: delete the useless segments.
    pub(super) fn retire_segments(&mut self, now: Millis) {
        self.retire = None;
        let next = self.api.journal.as_mut().and_then(|j| j.retire(now));
        if let Some(at) = next {
            self.retire = Some(self.wheel.insert(at.max(now + 1), Timer::Retire));
        }
    }

    /// Shutting down: the last records are written and synced.
    pub(super) fn close_journal(&mut self) {
        let now = self.exact_now();
        if let Some(journal) = &mut self.api.journal {
            journal.close(now);
        }
    }

    /// What the replay on start found, for the startup line: `None` without
    /// a data directory.
    pub fn replay_summary(&self) -> Option<String> {
        let r = self.replayed.as_ref()?;
        let s = &self.api.store;
        Some(format!(
            "replay_seconds={:.3} replayed_segments={} replayed_bytes={} replayed_records={} \
             skipped_records={} cut_bytes={} events={} groups={} leases={}",
            r.seconds,
            r.segments,
            r.bytes,
            r.applied,
            r.skipped,
            r.cut,
            s.live_events(),
            s.groups(),
            s.leased_batches()
        ))
    }
}
