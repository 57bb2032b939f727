//! What the store tells without changing: the bytes of a batch, when the
//! next event expires, and the counts the metrics read at scrape time.

use super::{Batch, Store};
use crate::config::Millis;

impl Store {
    /// The JSON of each event in `batch`, in push order.
    pub fn batch_events(&self, batch: &Batch) -> impl Iterator<Item = &[u8]> {
        let events = &self.keys[batch.key as usize].events;
        let start = events.partition_point(|e| e.seq < batch.seqs.start);
        events
            .range(start..)
            .take_while(move |e| e.seq < batch.seqs.end)
            .map(|e| &*e.json)
    }

    /// The id and JSON of each event of `batch` from sequence `from` on, in
    /// push order. Pinned events are still here after their expiry, so an
    /// unwritten answer always finds what it was promised.
    pub fn batch_events_from(
        &self,
        batch: &Batch,
        from: u64,
    ) -> impl Iterator<Item = (u64, &[u8])> {
        let events = &self.keys[batch.key as usize].events;
        let from = from.max(batch.seqs.start);
        let start = events.partition_point(|e| e.seq < from);
        let end = batch.seqs.end;
        events
            .range(start..)
            .take_while(move |e| e.seq < end)
            .map(|e| (e.seq, &*e.json))
    }

    /// When the oldest retained event expires: the next time
    /// [`Store::expire`] has work.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.expiry.front().map(|&(at, _)| at)
    }

    /// Events retained: live ones, those expired but not yet swept, and
    /// those expired but pinned by an unwritten answer.
    pub fn live_events(&self) -> usize {
        self.live_events
    }

    /// Bytes charged against the memory limit: JSON plus [`super::EVENT_OVERHEAD`]
    /// for every retained event, pinned ones included.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes
    }

    /// Keys remembered.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    /// Groups remembered.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// Consumers parked.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }
}
