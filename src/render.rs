//! How a batch becomes bytes on the wire, without being copied first.
//!
//! An answer to a blocking-get is `[e1,e2,...]` (or, with
//! `format=envelope`, `[{"id":1,"data":e1},...]`), where each `e` is an
//! event's JSON exactly as stored. Rendering that into a buffer per consumer
//! is what let 60 consumers that never read take the server to a gigabyte:
//! each held its own copy. Here an answer body is a [`BatchBody`]: a
//! sequence range of the store plus the progress of its writing. Its bytes
//! are produced only when the socket has room, a window at a time, as a list
//! of slices ([`Segments`]) handed to `writev`: large events are written
//! straight from the store's bytes, and only the punctuation and small
//! events are copied, into a scratch buffer that lives for one `writev`.
//!
//! The store pins the range while the answer waits (see `store.rs`), so the
//! events are there however long the client takes. This module is the only
//! one besides the API that knows the JSON framing of a batch; the event
//! loop sees an opaque body with a length.

use std::io::IoSlice;

use crate::store::{Batch, Store};

/// Bytes below which an event is copied into the write window rather than
/// given its own `iovec`: a copy of a few hundred bytes is cheaper than a
/// slot of the kernel's vector, and most events are small.
const COPY_BELOW: usize = 1024;

/// Most slices in one `writev`: 16. Small events are copied together into
/// one slice, so only events of 1 KiB and more take a slice of their own;
/// 16 of them fill a socket buffer's worth. (Linux allows 1024; the window
/// lives on the stack and is built for every write, so it is kept small.)
pub const MAX_SEGMENTS: usize = 16;

/// Most bytes one window covers: about what a loopback socket takes at once.
pub const WINDOW: usize = 256 * 1024;

/// How each event of a batch is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The event's JSON as pushed.
    Raw,
    /// `{"id":ID,"data":<the event's JSON>}`.
    Envelope,
}

/// An answer body that reads its bytes from the store at write time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchBody {
    batch: Batch,
    format: Format,
    len: usize,
    /// Where writing stands: the event whose frame holds the next byte (or
    /// `batch.seqs.end` for the closing bracket), and how far into its frame.
    next_seq: u64,
    into_frame: usize,
    /// Bytes still to write.
    remaining: usize,
}

impl BatchBody {
    /// The body for `batch`, which `store` has just handed out.
    pub fn new(store: &Store, batch: Batch, format: Format) -> BatchBody {
        let mut len = 1; // the closing bracket
        for (id, json) in store.batch_events_from(&batch, 0) {
            len += frame_len(format, id, json);
        }
        if batch.len == 0 {
            len += 1; // the opening bracket of `[]`
        }
        BatchBody {
            next_seq: batch.seqs.start,
            batch,
            format,
            len,
            into_frame: 0,
            remaining: len,
        }
    }

    /// The body's whole length, for `Content-Length`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: even an empty batch is `[]`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes not yet written.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// How its events are framed.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The same body for another batch of the same events (another
    /// group's, at the same cursor): its length is already known.
    pub fn for_batch(&self, batch: Batch) -> BatchBody {
        debug_assert!(batch.same_events(&self.batch));
        BatchBody {
            batch,
            ..self.clone()
        }
    }

    /// The store range this body reads from (to pin it).
    pub fn batch(&self) -> &Batch {
        &self.batch
    }

    /// The first sequence the body still has to write: everything before it
    /// may be freed.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends to `out` the next bytes of the body, from where writing
    /// stands, until `out` is full.
    pub fn segments<'a>(&self, store: &'a Store, out: &mut Segments<'a, '_>) {
        let mut skip = self.into_frame;
        let mut first = self.next_seq == self.batch.seqs.start;
        for (id, json) in store.batch_events_from(&self.batch, self.next_seq) {
            if !out.has_room() {
                return;
            }
            let separator: &'static [u8] = if first { b"[" } else { b"," };
            if skip == 0 && self.format == Format::Raw {
                // The common case, a whole raw frame: no bookkeeping.
                out.push_static(separator);
                out.push_stored(json);
            } else {
                frame_parts(self.format, separator, id, json, &mut skip, out);
            }
            first = false;
        }
        if out.has_room() {
            let close: &'static [u8] = if self.batch.len == 0 { b"[]" } else { b"]" };
            out.push_static(&close[skip.min(close.len())..]);
        }
    }

    /// Records that `n` more bytes went out.
    pub fn advance(&mut self, store: &Store, mut n: usize) {
        debug_assert!(n <= self.remaining);
        self.remaining -= n;
        if self.remaining == 0 {
            // All of it, as a small batch usually goes: nothing to walk.
            self.next_seq = self.batch.seqs.end;
            self.into_frame = 1;
            return;
        }
        for (id, json) in store.batch_events_from(&self.batch, self.next_seq) {
            let left = frame_len(self.format, id, json) - self.into_frame;
            if n < left {
                self.into_frame += n;
                return;
            }
            n -= left;
            self.into_frame = 0;
            self.next_seq = id + 1;
        }
        self.next_seq = self.batch.seqs.end;
        self.into_frame += n;
    }
}

/// The bytes of one event's frame: separator, envelope, JSON.
fn frame_len(format: Format, id: u64, json: &[u8]) -> usize {
    let envelope = match format {
        Format::Raw => 0,
        Format::Envelope => ENVELOPE_OPEN.len() + decimal_len(id) + ENVELOPE_DATA.len() + 1,
    };
    1 + envelope + json.len()
}

const ENVELOPE_OPEN: &[u8] = br#"{"id":"#;
const ENVELOPE_DATA: &[u8] = br#","data":"#;

/// Pushes the parts of one frame, skipping the first `*skip` bytes of it
/// (the part an earlier write already sent); `*skip` ends at 0.
fn frame_parts<'a>(
    format: Format,
    separator: &'static [u8],
    id: u64,
    json: &'a [u8],
    skip: &mut usize,
    out: &mut Segments<'a, '_>,
) {
    let mut part = |bytes: Part<'a>, out: &mut Segments<'a, '_>| {
        let len = bytes.len();
        if *skip >= len {
            *skip -= len;
            return;
        }
        let from = std::mem::take(skip);
        match bytes {
            Part::Static(b) => out.push_static(&b[from..]),
            Part::Stored(b) => out.push_stored(&b[from..]),
            Part::Id(id) => {
                let mut digits = [0u8; 20];
                out.push_copy(&decimal(id, &mut digits)[from..]);
            }
        }
    };
    part(Part::Static(separator), out);
    if format == Format::Envelope {
        part(Part::Static(ENVELOPE_OPEN), out);
        part(Part::Id(id), out);
        part(Part::Static(ENVELOPE_DATA), out);
    }
    part(Part::Stored(json), out);
    if format == Format::Envelope {
        part(Part::Static(b"}"), out);
    }
}

enum Part<'a> {
    Static(&'static [u8]),
    Stored(&'a [u8]),
    Id(u64),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Part::Static(b) => b.len(),
            Part::Stored(b) => b.len(),
            Part::Id(id) => decimal_len(*id),
        }
    }
}

/// `n` in decimal, written backwards into `digits`.
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        // n % 10 < 10: the cast cannot truncate.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[start..];
        }
    }
}

fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// One piece of a write window.
#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    /// Bytes that live elsewhere for the whole write (the store, a static).
    Borrowed(&'a [u8]),
    /// A range of the scratch buffer.
    Copied(usize, usize),
}

/// A write window being assembled: slices that outlive it, and a scratch
/// buffer for the small pieces. Turned into `IoSlice`s only once complete,
/// so the scratch buffer may grow while it is filled. It lives on the stack:
/// building a window allocates nothing.
#[derive(Debug)]
pub struct Segments<'a, 's> {
    segments: [Segment<'a>; MAX_SEGMENTS],
    count: usize,
    scratch: &'s mut Vec<u8>,
    bytes: usize,
}

impl<'a, 's> Segments<'a, 's> {
    /// An empty window over `scratch` (cleared here).
    pub fn new(scratch: &'s mut Vec<u8>) -> Segments<'a, 's> {
        scratch.clear();
        Segments {
            segments: [Segment::Copied(0, 0); MAX_SEGMENTS],
            count: 0,
            scratch,
            bytes: 0,
        }
    }

    /// Whether more bytes may be added.
    pub fn has_room(&self) -> bool {
        self.bytes < WINDOW && self.count < MAX_SEGMENTS
    }

    /// Bytes in the window.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Adds bytes that live at least as long as the window.
    pub fn push_stored(&mut self, bytes: &'a [u8]) {
        if bytes.len() < COPY_BELOW {
            self.push_copy(bytes);
        } else {
            self.bytes += bytes.len();
            self.segments[self.count] = Segment::Borrowed(bytes);
            self.count += 1;
        }
    }

    /// Adds static bytes (punctuation): always copied, they are tiny.
    pub fn push_static(&mut self, bytes: &'static [u8]) {
        self.push_copy(bytes);
    }

    /// Adds bytes by copying them into the scratch buffer, joining the
    /// previous copied piece when they are adjacent.
    pub fn push_copy(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let start = self.scratch.len();
        self.scratch.extend_from_slice(bytes);
        self.bytes += bytes.len();
        let end = self.scratch.len();
        match self
            .count
            .checked_sub(1)
            .map(|last| &mut self.segments[last])
        {
            Some(Segment::Copied(_, e)) if *e == start => *e = end,
            _ => {
                self.segments[self.count] = Segment::Copied(start, end);
                self.count += 1;
            }
        }
    }

    /// The window as slices for `writev`, in `out`.
    pub fn io_slices<'b>(&'b self, out: &'b mut [IoSlice<'b>; MAX_SEGMENTS]) -> &'b [IoSlice<'b>] {
        for (slot, segment) in out.iter_mut().zip(&self.segments[..self.count]) {
            *slot = match *segment {
                Segment::Borrowed(b) => IoSlice::new(b),
                Segment::Copied(start, end) => IoSlice::new(&self.scratch[start..end]),
            };
        }
        &out[..self.count]
    }

    /// The window's bytes joined.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        self.io_slices(&mut slices)
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(events: &[&str]) -> (Store, Batch) {
        let mut store = Store::new(60_000, usize::MAX);
        let mut woken = Vec::new();
        for e in events {
            store.push("k", e.as_bytes(), 0, &mut woken).unwrap();
        }
        let batch = store.take("k", "g", 1).unwrap();
        (store, batch)
    }

    /// Writes the whole body in windows, each cut short after `step` bytes,
    /// as a socket that takes `step` bytes at a time would.
    fn write_in_steps(store: &Store, body: &mut BatchBody, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        while body.remaining() > 0 {
            let mut window = Segments::new(&mut scratch);
            body.segments(store, &mut window);
            let bytes = window.to_vec();
            assert!(!bytes.is_empty(), "a body with bytes left yields some");
            let n = bytes.len().min(step);
            out.extend_from_slice(&bytes[..n]);
            body.advance(store, n);
        }
        out
    }

    #[test]
    fn raw_and_envelope_bodies_are_exact_at_every_write_size() {
        let big = format!("\"{}\"", "x".repeat(3000));
        let events = ["1", r#"{"a":2}"#, big.as_str(), "[]"];
        let (store, batch) = store_with(&events);
        let ids: Vec<u64> = store
            .batch_events_from(&batch, 0)
            .map(|(id, _)| id)
            .collect();
        let raw = format!("[{}]", events.join(","));
        let envelope = format!(
            "[{}]",
            ids.iter()
                .zip(events)
                .map(|(id, e)| format!(r#"{{"id":{id},"data":{e}}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        for (format, want) in [(Format::Raw, raw), (Format::Envelope, envelope)] {
            for step in [1, 2, 3, 7, 100, 1000, 4096, usize::MAX] {
                let mut body = BatchBody::new(&store, batch.clone(), format);
                assert_eq!(body.len(), want.len(), "{format:?}");
                let got = write_in_steps(&store, &mut body, step);
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    want,
                    "{format:?} step {step}"
                );
            }
        }
    }

    #[test]
    fn large_events_are_not_copied() {
        let big = format!("\"{}\"", "y".repeat(5000));
        let (store, batch) = store_with(&[&big]);
        let body = BatchBody::new(&store, batch, Format::Raw);
        let mut scratch = Vec::new();
        let mut window = Segments::new(&mut scratch);
        body.segments(&store, &mut window);
        assert_eq!(window.len(), big.len() + 2);
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        assert_eq!(
            window.io_slices(&mut slices).len(),
            3,
            "[, the event itself, ]"
        );
        assert_eq!(scratch.len(), 2, "only the brackets were copied");
    }

    #[test]
    fn a_window_stops_at_its_segment_limit_and_resumes() {
        let big = format!("\"{}\"", "z".repeat(2000));
        let events: Vec<&str> = (0..200).map(|_| big.as_str()).collect();
        let (store, batch) = store_with(&events);
        let mut body = BatchBody::new(&store, batch, Format::Raw);
        let mut scratch = Vec::new();
        let mut window = Segments::new(&mut scratch);
        body.segments(&store, &mut window);
        let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
        assert!(window.io_slices(&mut slices).len() <= MAX_SEGMENTS);
        let first = window.len();
        assert!(first < body.len());
        body.advance(&store, first);
        assert_eq!(body.remaining(), body.len() - first);
    }
}
