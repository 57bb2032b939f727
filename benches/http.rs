//! Request framing on the hot path: the head of a typical push and of a
//! typical blocking-get, and decoding a query parameter.
//!
//! Run with `cargo bench --bench http`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use event_syncer::http::{Status, parse_head, query_param};

/// A push as curl sends it: 64 bytes of JSON behind a Content-Length.
const PUSH: &[u8] = b"POST /push?key=k HTTP/1.1\r\n\
Host: 127.0.0.1:3031\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
Content-Type: application/json\r\n\
Content-Length: 64\r\n\
\r\n\
{\"type\":\"order.created\",\"id\":1234567,\"amount\":99.50,\"paid\":true}";

const BLOCKING_GET: &[u8] = b"GET /blocking-get?key=orders&groupId=billing&timeout=30 HTTP/1.1\r\n\
Host: 127.0.0.1:3031\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
\r\n";

const QUERY: &str = "key=caf%C3%A9+orders%2Feu&groupId=billing&timeout=0.25";

fn framing(c: &mut Criterion) {
    // The body must really be 64 bytes, or the bench measures another request.
    let Ok(Status::Complete(head)) = parse_head(PUSH) else {
        panic!("the push request must parse");
    };
    assert_eq!(PUSH.len() - head.len, 64);

    c.bench_function("parse_head/push", |b| {
        b.iter(|| parse_head(black_box(PUSH)))
    });
    c.bench_function("parse_head/blocking_get", |b| {
        b.iter(|| parse_head(black_box(BLOCKING_GET)))
    });
    c.bench_function("query_param/encoded_key", |b| {
        b.iter(|| query_param(black_box(QUERY), black_box("key")))
    });
    c.bench_function("query_param/plain_last", |b| {
        b.iter(|| query_param(black_box(QUERY), black_box("timeout")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(2));
    targets = framing
}
criterion_main!(benches);
