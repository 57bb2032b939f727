//! What the zero-copy answer costs: a batch written from the store's bytes
//! (`BatchBody` gathered into `writev` windows by the `Outbox`) against the
//! single-buffer answer the server used to build (the whole `[e1,...]`
//! rendered into one `Vec`, then written), for batches of 1, 100 and 10,000
//! small events and of 100 events of 16 KiB.
//!
//! Run with `cargo bench --bench answer`.
//!
//! Both sides write to a sink that takes every byte (and every `iovec`)
//! without a syscall: the kernel's share is the same for the same bytes,
//! and with a real socket the figures measure thread wake-ups instead (on
//! loopback they dominate). What is left is the user-space cost that the
//! change of answer shape moved: rendering and copying against gathering.
//! The batch is taken from a store once, outside the timed part; each
//! iteration builds and writes the head and the body.

use std::hint::black_box;
use std::io::{self, Write};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use event_syncer::http::write_response_head;
use event_syncer::memory::Meter;
use event_syncer::outbox::Outbox;
use event_syncer::render::{BatchBody, Format};
use event_syncer::store::{Batch, Store};

/// A typical small event, as in the http and store benches.
const EVENT: &[u8] = br#"{"type":"order.created","id":1234567,"amount":99.50,"paid":true}"#;

/// A client that takes everything at once: counts the bytes, touching each
/// slice as the kernel's copy would.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += u64::from(black_box(buf.last().copied().unwrap_or(0)));
        Ok(buf.len())
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for b in bufs {
            n += self.write(b)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn batch_of(count: usize, event: &[u8]) -> (Store, Batch) {
    let mut store = Store::new(600_000, usize::MAX);
    let mut woken = Vec::new();
    for _ in 0..count {
        store.push("k", event, 0, &mut woken).expect("room");
    }
    let batch = store.take("k", "g", 1).expect("a batch");
    (store, batch)
}

/// The old answer: the body rendered into its own buffer, then written.
fn single_buffer(store: &Store, batch: &Batch, socket: &mut Sink, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(64);
    body.push(b'[');
    for (i, e) in store.batch_events(batch).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(e);
    }
    body.push(b']');
    out.clear();
    write_response_head(out, 200, "application/json", &[], body.len(), true, 1);
    out.extend_from_slice(&body);
    socket.write_all(out).expect("write");
}

/// The new answer: head bytes plus a body gathered from the store.
fn shared(
    store: &Store,
    batch: &Batch,
    socket: &mut Sink,
    outbox: &mut Outbox,
    scratch: &mut Vec<u8>,
) {
    let body = BatchBody::new(store, batch.clone(), Format::Raw);
    let len = body.len();
    let meter = Meter::default();
    outbox.push_bytes(&meter, |out| {
        write_response_head(out, 200, "application/json", &[], len, true, 1)
    });
    outbox.push_body(&meter, body);
    let mut released = Vec::new();
    let flushed = outbox
        .flush(socket, store, &meter, scratch, &mut released)
        .expect("write");
    assert!(flushed.done, "a blocking socket takes everything");
}

fn answers(c: &mut Criterion) {
    let big = format!("\"{}\"", "x".repeat(16 * 1024 - 2));
    let cases: [(&str, usize, &[u8]); 4] = [
        ("small", 1, EVENT),
        ("small", 100, EVENT),
        ("small", 10_000, EVENT),
        ("16KiB", 100, big.as_bytes()),
    ];
    let mut group = c.benchmark_group("answer");
    for (size, count, event) in cases {
        let (store, batch) = batch_of(count, event);
        group.throughput(Throughput::Elements(count as u64));
        let name = format!("{size}/{count}");
        let mut socket = Sink(0);
        let mut buf = Vec::new();
        group.bench_function(BenchmarkId::new("single_buffer", &name), |b| {
            b.iter(|| single_buffer(black_box(&store), &batch, &mut socket, &mut buf))
        });
        // The server keeps one outbox per connection; so does the bench.
        let mut outbox = Outbox::default();
        group.bench_function(BenchmarkId::new("shared", &name), |b| {
            b.iter(|| {
                shared(
                    black_box(&store),
                    &batch,
                    &mut socket,
                    &mut outbox,
                    &mut buf,
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(3));
    targets = answers
}
criterion_main!(benches);
