//! Timer wheel micro-benchmarks at the server's scale: 100,000 live timers (one per parked
//! connection and pending expiry), deadlines spread over the next 60 s.
//!
//! `insert` and `cancel` report ns per call; `advance_1ms` reports ns per 1 ms step of the
//! event loop, and `advance_30s_by_1ms` the time to sweep 30 s in 30,000 such steps. In both
//! advance benches every timer that fires is inserted again 1 to 60 s ahead, as a consumer
//! re-parking would, so the wheel stays at 100,000 timers however long criterion runs; on
//! average 100,000 / 60,000 ms = 1.7 timers fire (and are re-armed) per step.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use event_syncer::wheel::{Tick, TimerKey, TimerWheel};

/// Live timers kept in the wheel.
const LIVE: usize = 100_000;
/// Deadlines are 1..=60,000 ms ahead: the poll timeout (30 s) and more.
const SPAN: Tick = 60_000;
/// Timers inserted (or cancelled) between two untimed clean-ups in `insert`/`cancel`: 10% of
/// the live count, so the wheel stays between 100,000 and 110,000 timers.
const CHUNK: u64 = 10_000;
/// One sweep of `advance_30s_by_1ms`: 30 s of 1 ms steps.
const SWEEP_STEPS: Tick = 30_000;

/// A connection token and a timer kind, as the server stores them.
type Value = (usize, u8);

/// xorshift64: deterministic deadlines without a dependency.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x % bound
    }

    fn deadline(&mut self, now: Tick) -> Tick {
        now + 1 + self.below(SPAN)
    }
}

fn full_wheel(rng: &mut XorShift) -> TimerWheel<Value> {
    let mut wheel = TimerWheel::new(0);
    for token in 0..LIVE {
        wheel.insert(rng.deadline(0), (token, 0));
    }
    wheel
}

/// Advances one step and re-arms what fired, as the event loop would.
fn step(wheel: &mut TimerWheel<Value>, now: Tick, fired: &mut Vec<Value>, rng: &mut XorShift) {
    wheel.advance(now, fired);
    for value in fired.drain(..) {
        wheel.insert(rng.deadline(now), value);
    }
}

fn bench_wheel(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));

    group.bench_function("insert", |b| {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut wheel = full_wheel(&mut rng);
        let mut keys: Vec<TimerKey> = Vec::with_capacity(CHUNK as usize);
        let mut deadlines: Vec<Tick> = Vec::with_capacity(CHUNK as usize);
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                deadlines.clear();
                deadlines.extend((0..n).map(|_| rng.deadline(0)));
                let start = Instant::now();
                for &deadline in &deadlines {
                    keys.push(wheel.insert(deadline, (LIVE, 1)));
                }
                timed += start.elapsed();
                for key in keys.drain(..) {
                    wheel.cancel(key);
                }
                left -= n;
            }
            timed
        });
    });

    group.bench_function("cancel", |b| {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let mut wheel = full_wheel(&mut rng);
        let mut keys: Vec<TimerKey> = Vec::with_capacity(CHUNK as usize);
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                keys.extend((0..n).map(|_| wheel.insert(rng.deadline(0), (LIVE, 1))));
                let start = Instant::now();
                for key in keys.drain(..) {
                    black_box(wheel.cancel(key));
                }
                timed += start.elapsed();
                left -= n;
            }
            timed
        });
    });

    group.bench_function("advance_1ms", |b| {
        let mut rng = XorShift(0xdead_beef_cafe_f00d);
        let mut wheel = full_wheel(&mut rng);
        let mut fired = Vec::new();
        let mut now = 0;
        b.iter(|| {
            now += 1;
            step(&mut wheel, now, &mut fired, &mut rng);
        });
    });

    group.throughput(Throughput::Elements(SWEEP_STEPS));
    group.bench_function("advance_30s_by_1ms", |b| {
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        let mut wheel = full_wheel(&mut rng);
        let mut fired = Vec::new();
        let mut now = 0;
        b.iter(|| {
            for _ in 0..SWEEP_STEPS {
                now += 1;
                step(&mut wheel, now, &mut fired, &mut rng);
            }
            black_box(wheel.len())
        });
    });

    group.finish();
}

criterion_group!(benches, bench_wheel);
criterion_main!(benches);
