//! The event store on the hot paths: a push fanning out to 1, 100 and
//! 10,000 parked groups, a take of 1 and of 100 events, and a sweep that
//! frees 10,000 expired events.
//!
//! Run with `cargo bench --bench store`.
//!
//! Each iteration gets a freshly built store from an untimed setup
//! (`iter_batched_ref`), because every operation measured here consumes
//! its input: a push answers the parked consumers, a take moves the cursor,
//! a sweep frees the events. `BatchSize::LargeInput` keeps few stores alive
//! at once (10,000 parked groups is a few MB), and `iter_batched_ref` drops
//! each store outside the timed part. Throughput is set to the deliveries,
//! events or frees the operation does, so criterion's "elem/s" reads as
//! deliveries per second (and its inverse as the cost of one delivery).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use event_syncer::store::{ConsumerId, Delivery, Store};

/// Long enough that nothing expires while a benchmark runs.
const TTL: u64 = 120_000;

/// A typical small event, as in the http bench.
const EVENT: &[u8] = br#"{"type":"order.created","id":1234567,"amount":99.50,"paid":true}"#;

/// A store with one consumer parked in each of `groups` groups of key `k`,
/// and room in `woken` for all of them (the server reuses that vector).
fn parked(groups: usize) -> (Store, Vec<Delivery>) {
    let mut store = Store::new(TTL, usize::MAX);
    for g in 0..groups {
        store.park("k", &format!("group-{g}"), ConsumerId(g));
    }
    (store, Vec::with_capacity(groups))
}

fn push_fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/push_to_parked_groups");
    for groups in [1usize, 100, 10_000] {
        group.throughput(Throughput::Elements(groups as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(groups),
            &groups,
            |b, &groups| {
                b.iter_batched_ref(
                    || parked(groups),
                    |(store, woken)| {
                        let seq = store.push("k", black_box(EVENT), 1, woken);
                        assert_eq!(woken.len(), groups, "every group is answered");
                        seq
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

/// A store where group `g` of key `k` has already read once (so it exists
/// with a cursor, as a looping consumer's group does) and `events` new
/// events wait for it.
fn backlog(events: usize) -> Store {
    let mut store = Store::new(TTL, usize::MAX);
    let mut woken = Vec::new();
    store.push("k", EVENT, 0, &mut woken).expect("no limit");
    store.take("k", "g", 0).expect("the first event is live");
    for _ in 0..events {
        store.push("k", EVENT, 1, &mut woken).expect("no limit");
    }
    store
}

fn take_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("store/take_batch");
    for events in [1usize, 100] {
        group.throughput(Throughput::Elements(events as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(events),
            &events,
            |b, &events| {
                b.iter_batched_ref(
                    || backlog(events),
                    // The server reads every event of the batch right after the
                    // take to build the response, so the walk is timed too.
                    |store| {
                        let batch = store.take("k", "g", 2).expect("a backlog is waiting");
                        let bytes: usize = store.batch_events(&batch).map(<[u8]>::len).sum();
                        assert_eq!(bytes, events * EVENT.len());
                        bytes
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

/// 10,000 events over 100 keys, each key read by one group, so the sweep
/// also forgets every group and key it empties.
fn expiring(events: usize) -> Store {
    let mut store = Store::new(TTL, usize::MAX);
    let mut woken = Vec::new();
    for i in 0..events {
        let key = format!("key-{}", i % 100);
        store
            .push(&key, EVENT, i as u64 / 100, &mut woken)
            .expect("no limit");
    }
    for k in 0..100 {
        store.take(&format!("key-{k}"), "g", 0);
    }
    store
}

fn expire(c: &mut Criterion) {
    const EVENTS: usize = 10_000;
    let mut group = c.benchmark_group("store/expire");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function(BenchmarkId::from_parameter(EVENTS), |b| {
        b.iter_batched_ref(
            || expiring(EVENTS),
            |store| {
                let freed = store.expire(black_box(TTL + EVENTS as u64));
                assert_eq!((freed, store.keys(), store.groups()), (EVENTS, 0, 0));
                freed
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = push_fan_out, take_batch, expire
}
criterion_main!(benches);
