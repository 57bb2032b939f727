//! The queue contract of SPEC.md's `GET /blocking-get` and `POST /push`
//! sections, against the real server: what a consumer receives, when, and
//! which consumer of a group receives it. Ordinary calls go through `ureq`;
//! parked consumers are raw sockets so a test can tell "answered" from
//! "still waiting" and see exact bytes.

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// What is stored and how it comes back.
// ---------------------------------------------------------------------------

/// SPEC: "answer 200 at once with all of them, as a JSON array in push
/// order" and "each element is the event's JSON exactly as it was pushed
/// (surrounding whitespace trimmed)", for any JSON value.
#[test]
fn backlog_is_returned_at_once_in_push_order_with_exact_bytes() {
    let server = Server::start(&[]);
    let pushed: [&[u8]; 8] = [
        b"  {\"a\": 1 ,  \"b\" : [1,  2]}  ",
        b"\t\r\n42\n",
        b"\"h\xc3\xa9llo \xe2\x98\x83 \\u00e9 \xf0\x9f\x98\x80\"",
        b"[1, \"two\", null,\ttrue ]",
        b"{\"x\":{\"y\":{\"z\":[false,{\"w\":-1.5e-3}]}}}",
        b"\r\n  null",
        b"-0.0",
        b"{ }",
    ];
    let stored = [
        "{\"a\": 1 ,  \"b\" : [1,  2]}",
        "42",
        "\"héllo ☃ \\u00e9 😀\"",
        "[1, \"two\", null,\ttrue ]",
        "{\"x\":{\"y\":{\"z\":[false,{\"w\":-1.5e-3}]}}}",
        "null",
        "-0.0",
        "{ }",
    ];
    for body in pushed {
        assert_eq!(
            push(&server, "k", body),
            200,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    let expected = format!("[{}]", stored.join(","));

    // No timeout: the server's own 30 s, so only an immediate answer passes.
    let mut c = Raw::connect(&server);
    let t0 = Instant::now();
    c.send(&get_req(&bget_path("k", "g", None)));
    let resp = c.read_response(secs(10.0));
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "backlog took {:?}",
        t0.elapsed()
    );
    assert_eq!(resp.status, 200);
    assert_eq!(resp.text(), expected);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(
        resp.header("content-length"),
        Some(expected.len().to_string().as_str())
    );

    // Consumed for this group: nothing more.
    assert_eq!(take(&server, "k", "g"), "[]");
}

/// SPEC: "The push ... Success: 200 with {"message":"Data pushed
/// successfully"}".
#[test]
fn push_answers_the_reference_message() {
    let server = Server::start(&[]);
    let (status, body) = push_with(&agent(), &server, "k", "1");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).expect("push body is JSON");
    assert_eq!(v["message"], "Data pushed successfully", "{body}");
}

/// SPEC: "An empty body is stored as {}", with and without a
/// `Content-Length: 0`.
#[test]
fn empty_body_is_stored_as_empty_object() {
    let server = Server::start(&[]);
    let (status, _, _) = finish(agent().post(server.url("/push?key=k")).send_empty());
    assert_eq!(status, 200);
    let mut c = Raw::connect(&server);
    c.send(b"POST /push?key=k HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(c.read_response(secs(10.0)).status, 200);
    assert_eq!(take(&server, "k", "g"), "[{},{}]");
}

/// SPEC: "Invalid JSON is a 400 and nothing is stored", with a JSON error
/// body.
#[test]
fn invalid_json_is_rejected_and_nothing_is_stored() {
    let server = Server::start(&[]);
    let bad: [&[u8]; 12] = [
        b"{",
        b"nope",
        b"{\"a\":1}x",
        b"{\"a\":1} {\"b\":2}",
        b"[1,]",
        b"{'a':1}",
        b"\"\xff\"",
        b"01",
        b"NaN",
        b"\"unterminated",
        // Form feed and vertical tab are not JSON whitespace (RFC 8259).
        b"\x0c1",
        b"1\x0b",
    ];
    let agent = agent();
    for body in bad {
        let (status, text) = push_with(&agent, &server, "k", body);
        assert_eq!(
            status,
            400,
            "{:?} -> {status} {text}",
            String::from_utf8_lossy(body)
        );
        assert_json_error(text.as_bytes());
    }
    assert_eq!(take(&server, "k", "g"), "[]");
    assert_eq!(push(&server, "k", "1"), 200);
    assert_eq!(take(&server, "k", "g2"), "[1]");
}

/// SPEC: "The Content-Type header does not change how the body is read."
#[test]
fn content_type_of_a_push_is_irrelevant() {
    let server = Server::start(&[]);
    let agent = agent();
    for (i, ct) in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json",
    ]
    .into_iter()
    .enumerate()
    {
        let body = format!("{{\"ct\": {i}}}");
        let resp = agent
            .post(server.url("/push?key=k"))
            .header("Content-Type", ct)
            .send(body.as_str());
        assert_eq!(finish(resp).0, 200, "{ct}");
    }
    // Invalid JSON stays invalid even when labelled JSON.
    let resp = agent
        .post(server.url("/push?key=k"))
        .header("Content-Type", "application/json")
        .send("a=1");
    assert_eq!(finish(resp).0, 400);
    // And no Content-Type at all.
    let mut c = Raw::connect(&server);
    c.send(&push_req("k", b"{\"ct\": 3}"));
    assert_eq!(c.read_response(secs(10.0)).status, 200);
    assert_eq!(
        take(&server, "k", "g"),
        "[{\"ct\": 0},{\"ct\": 1},{\"ct\": 2},{\"ct\": 3}]"
    );
}

// ---------------------------------------------------------------------------
// Groups.
// ---------------------------------------------------------------------------

/// SPEC: "mark them consumed for (K, G) only. Other groups are unaffected."
#[test]
fn groups_are_independent() {
    let server = Server::start(&[]);
    push(&server, "k", "1");
    push(&server, "k", "2");
    assert_eq!(take(&server, "k", "a"), "[1,2]");
    assert_eq!(take(&server, "k", "a"), "[]");
    assert_eq!(take(&server, "k", "b"), "[1,2]");
    push(&server, "k", "3");
    assert_eq!(take(&server, "k", "a"), "[3]");
    push(&server, "k", "4");
    assert_eq!(take(&server, "k", "b"), "[3,4]");
    assert_eq!(take(&server, "k", "a"), "[4]");
    // Keys are independent too: same group name, other key.
    assert_eq!(take(&server, "k2", "a"), "[]");
    push(&server, "k2", "5");
    assert_eq!(take(&server, "k2", "a"), "[5]");
    assert_eq!(take(&server, "k", "a"), "[]");
}

/// SPEC: "A group that has never read starts at the oldest event still
/// retained, so it receives every live event of its key."
#[test]
fn a_new_group_sees_every_live_event() {
    let server = Server::start(&[]);
    for i in 0..5 {
        push(&server, "k", i.to_string());
    }
    assert_eq!(take(&server, "k", "old"), "[0,1,2,3,4]");
    push(&server, "k", "5");
    assert_eq!(take(&server, "k", "old"), "[5]");
    assert_eq!(take(&server, "k", "new"), "[0,1,2,3,4,5]");
    assert_eq!(take(&server, "k", "newer"), "[0,1,2,3,4,5]");
}

/// SPEC: "the earliest-parked consumer of each group ... is answered ...
/// Other consumers of the same group stay parked: one consumer per group
/// receives a given batch".
#[test]
fn one_consumer_per_group_in_parking_order() {
    let server = Server::start(&[]);
    let mut first = park(&server, "k", "g");
    wait_parked(&server, 1);
    let mut second = park(&server, "k", "g");
    wait_parked(&server, 2);

    assert_eq!(push(&server, "k", "{\"n\":1}"), 200);
    let r = first.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "[{\"n\":1}]"));
    second.assert_silent_until(secs(0.3));

    assert_eq!(push(&server, "k", "{\"n\":2}"), 200);
    let r = second.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "[{\"n\":2}]"));
    assert_eq!(take(&server, "k", "g"), "[]");
}

/// SPEC: "By the time this response is written, every parked consumer that
/// the event is for has been answered": each group's answer is already in
/// its socket when the push's 200 is read. With 200 groups and a 32 KiB
/// event, a server that answered the pusher first would still be writing the
/// last groups' answers when the test looks, so they are checked
/// last-parked first.
#[test]
fn every_group_is_answered_before_the_push_response() {
    const N: usize = 200;
    let server = Server::start(&[]);
    // The pusher connects first, so a loop that flushes in token order
    // would write its 200 before the consumers' answers.
    let mut pusher = Raw::connect(&server);
    let mut consumers: Vec<Raw> = (0..N)
        .map(|g| park(&server, "k", &format!("g{g}")))
        .collect();
    // Another key's consumer must not be woken.
    let mut other = park(&server, "other", "g0");
    wait_parked(&server, N as u64 + 1);

    let event = format!("[\"{}\"]", "x".repeat(32 * 1024));
    let want = format!("[{event}]");
    pusher.send(&push_req("k", event.as_bytes()));
    assert_eq!(pusher.read_response(secs(10.0)).status, 200);
    for (g, c) in consumers.iter_mut().enumerate().rev() {
        let r = c
            .read_response_now()
            .unwrap_or_else(|| panic!("group g{g} not answered when the push's 200 arrived"));
        assert_eq!(r.status, 200, "g{g}");
        assert!(r.text() == want, "g{g}: wrong batch");
    }
    other.assert_silent_until(secs(0.2));
}

/// SPEC: "When the client closes its connection, drop the consumer at once
/// and consume nothing for it."
#[test]
fn a_consumer_that_hangs_up_while_parked_consumes_nothing() {
    let server = Server::start(&[]);
    let gone = park(&server, "k", "g");
    wait_parked(&server, 1);
    drop(gone);
    wait_parked(&server, 0);

    assert_eq!(push(&server, "k", "\"kept\""), 200);
    let mut next = park(&server, "k", "g");
    let r = next.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "[\"kept\"]"));
}

// ---------------------------------------------------------------------------
// Timeouts.
// ---------------------------------------------------------------------------

/// SPEC: "When the timeout passes, answer 200 []" and "A parked consumer's
/// timeout fires no earlier than its deadline" (and not much later).
#[test]
fn timeout_answers_empty_never_before_its_deadline() {
    let server = Server::start(&[]);
    let handles: Vec<_> = ["0.3", "0.25", "0.1", "0.75", "1"]
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut c = Raw::connect(&server);
            let path = bget_path("k", &format!("g{i}"), Some(t));
            thread::spawn(move || {
                let t0 = Instant::now();
                c.send(&get_req(&path));
                let r = c.read_response(secs(10.0));
                (t, t0.elapsed(), r)
            })
        })
        .collect();
    for h in handles {
        let (t, took, r) = h.join().expect("consumer thread");
        let want = Duration::from_secs_f64(t.parse().expect("test timeout"));
        assert_eq!((r.status, r.text().as_str()), (200, "[]"), "timeout={t}");
        assert!(took >= want, "timeout={t} answered early, after {took:?}");
        assert!(
            took <= want + Duration::from_millis(500),
            "timeout={t} answered late, after {took:?}"
        );
    }
}

/// SPEC: "`0` means do not wait".
#[test]
fn timeout_zero_answers_at_once() {
    let server = Server::start(&[]);
    let agent = agent();
    for t in ["0", "0.0", "0.000"] {
        let t0 = Instant::now();
        let (status, body) = get_with(&agent, &server, &bget_path("k", "g", Some(t)));
        assert_eq!((status, body.as_str()), (200, "[]"), "timeout={t}");
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "timeout={t} took {:?}",
            t0.elapsed()
        );
    }
}

/// SPEC: "a plain decimal number such as 0, 2 or 0.25 ... Anything else
/// (-1, nan, 1s, empty) is a 400." A rejected request consumes nothing.
#[test]
fn timeout_values_that_are_not_plain_decimals_are_rejected() {
    let server = Server::start(&[]);
    push(&server, "k", "7");
    let agent = agent();
    for t in [
        "-1", "nan", "NaN", "1s", "", "inf", "infinity", "1e3", "0x10", "1.2.3", "%201", "abc",
        "-0.5",
    ] {
        let t0 = Instant::now();
        let (status, body) = get_with(&agent, &server, &bget_path("k", "g", Some(t)));
        assert_eq!(status, 400, "timeout={t:?} -> {status} {body}");
        assert_json_error(body.as_bytes());
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "timeout={t:?} was parked"
        );
    }
    assert_eq!(take(&server, "k", "g"), "[7]");
    // The SPEC's own examples are accepted.
    for t in ["0", "2", "0.25"] {
        assert_eq!(bget(&server, "k", "g", Some(t)).0, 200, "timeout={t}");
    }
}

/// SPEC: "it is capped at the poll timeout", also for numbers too large for
/// any duration type.
#[test]
fn timeout_is_capped_at_the_poll_timeout() {
    let server = Server::start(&["--poll-timeout", "1"]);
    let handles: Vec<_> = ["100", "99999999999999999999999999999999"]
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let path = bget_path("k", &format!("g{i}"), Some(t));
            let mut c = Raw::connect(&server);
            thread::spawn(move || {
                let t0 = Instant::now();
                c.send(&get_req(&path));
                (t, c.read_response(secs(20.0)), t0.elapsed())
            })
        })
        .collect();
    for h in handles {
        let (t, r, took) = h.join().expect("consumer thread");
        assert_eq!((r.status, r.text().as_str()), (200, "[]"), "timeout={t}");
        assert!(took >= Duration::from_secs(1), "timeout={t} after {took:?}");
        assert!(
            took <= Duration::from_millis(1500),
            "timeout={t} not capped: {took:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Keys and groups in the query.
// ---------------------------------------------------------------------------

/// SPEC: "Missing or empty key or groupId is a 400."
#[test]
fn missing_or_empty_key_or_group_is_rejected() {
    let server = Server::start(&[]);
    let agent = agent();
    for path in [
        "/blocking-get",
        "/blocking-get?groupId=g&timeout=0",
        "/blocking-get?key=&groupId=g&timeout=0",
        "/blocking-get?key=k&timeout=0",
        "/blocking-get?key=k&groupId=&timeout=0",
        "/blocking-get?key&groupId=g&timeout=0",
        "/push",
        "/push?key=",
        "/push?key",
        "/push?groupId=k",
    ] {
        let (status, body, headers) = if path.starts_with("/push") {
            finish(agent.post(server.url(path)).send("1"))
        } else {
            finish(agent.get(server.url(path)).call())
        };
        assert_eq!(status, 400, "{path} -> {status} {body}");
        assert_json_error(body.as_bytes());
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
    }
    assert_eq!(take(&server, "k", "g"), "[]");
}

/// SPEC: "At most 1 KiB after decoding; groupId is decoded and limited the
/// same way." 1024 bytes pass, 1025 do not, counted after decoding.
#[test]
fn keys_and_groups_are_limited_to_1_kib_after_decoding() {
    let server = Server::start(&[]);
    // 512 two-byte characters: 3072 bytes in the URL, 1024 decoded.
    let max = "é".repeat(512);
    let over = format!("{max}a");
    assert_eq!(push(&server, &max, "1"), 200);
    assert_eq!(push(&server, &over, "1"), 400);
    assert_eq!(take(&server, &max, &max), "[1]");
    let (status, body) = bget(&server, &max, &over, Some("0"));
    assert_eq!(status, 400, "{body}");
    assert_json_error(body.as_bytes());
    let (status, _) = bget(&server, &over, "g", Some("0"));
    assert_eq!(status, 400);
    // ASCII, plainly: 1024 is the limit.
    assert_eq!(push(&server, &"k".repeat(1024), "2"), 200);
    assert_eq!(push(&server, &"k".repeat(1025), "2"), 400);
    assert_eq!(bget(&server, "k", &"g".repeat(1024), Some("0")).0, 200);
    assert_eq!(bget(&server, "k", &"g".repeat(1025), Some("0")).0, 400);
    assert_eq!(take(&server, &"k".repeat(1024), "g"), "[2]");
}

/// SPEC: "a non-empty string taken from the query (percent-decoded, + is a
/// space)". Differently spelled names are the same key or group; `%2B` is a
/// literal plus.
#[test]
fn keys_and_groups_are_percent_decoded() {
    let server = Server::start(&[]);
    let agent = agent();
    let post = |path: &str, body: &str| finish(agent.post(server.url(path)).send(body)).0;
    let read = |path: &str| {
        let (status, body) = get_with(&agent, &server, path);
        assert_eq!(status, 200, "{path}");
        body
    };
    assert_eq!(post("/push?key=a%20b", "1"), 200);
    assert_eq!(post("/push?key=a+b", "2"), 200);
    assert_eq!(post("/push?key=%61%20%62", "3"), 200);
    assert_eq!(post("/push?key=a%2Bb", "4"), 200);
    assert_eq!(post("/push?key=a%26b", "5"), 200);
    // Query parameters may come in any order.
    assert_eq!(
        read("/blocking-get?timeout=0&groupId=g+h&key=a+b"),
        "[1,2,3]"
    );
    // The same group, spelled differently: already consumed.
    assert_eq!(
        read("/blocking-get?key=a%20b&groupId=g%20h&timeout=0"),
        "[]"
    );
    assert_eq!(read("/blocking-get?key=a%2bb&groupId=g&timeout=0"), "[4]");
    assert_eq!(read("/blocking-get?key=a%26b&groupId=g&timeout=0"), "[5]");
    assert_eq!(read("/blocking-get?key=a&groupId=g&timeout=0"), "[]");
}

// ---------------------------------------------------------------------------
// Expiry.
// ---------------------------------------------------------------------------

/// SPEC: "it lives for the event TTL ... after its push. After that it is
/// gone: never returned again" and "No expired event is ever returned".
#[test]
fn events_expire_after_their_ttl_and_later_ones_still_arrive() {
    let ttl = Duration::from_millis(500);
    let server = Server::start(&["--event-ttl", "0.5"]);
    let agent = agent();
    push_with(&agent, &server, "k", "\"x\"");
    // Read by this group before the expiry: its cursor has moved past it.
    let sent = Instant::now();
    let (_, early) = get_with(&agent, &server, &bget_path("k", "reader", Some("0")));
    if sent.elapsed() < Duration::from_millis(400) {
        assert_eq!(early, "[\"x\"]");
    }

    let pushed = Instant::now();
    push_with(&agent, &server, "k", "\"y\"");
    let mut n = 0;
    let gone = poll_until(secs(5.0), || {
        n += 1;
        let (_, body) = get_with(
            &agent,
            &server,
            &bget_path("k", &format!("new{n}"), Some("0")),
        );
        if body == "[]" {
            return true;
        }
        // Until it expires, "y" (and maybe "x") is still there.
        assert!(
            body == "[\"y\"]" || body == "[\"x\",\"y\"]",
            "unexpected body {body}"
        );
        false
    });
    assert!(
        gone,
        "event still returned {:?} after its push",
        pushed.elapsed()
    );
    assert!(
        pushed.elapsed() >= ttl,
        "expired after only {:?}",
        pushed.elapsed()
    );

    // Later events are unaffected by the expiry of earlier ones.
    push_with(&agent, &server, "k", "\"z\"");
    assert_eq!(take(&server, "k", "fresh"), "[\"z\"]");
    assert_eq!(take(&server, "k", "reader"), "[\"z\"]");
}

/// An event that expires while a consumer is parked never reaches it, and a
/// consumer parked across the expiry still receives the next push.
#[test]
fn a_consumer_parked_across_an_expiry_gets_only_the_next_push() {
    let server = Server::start(&["--event-ttl", "0.3"]);
    push(&server, "k", "1");
    assert_eq!(take(&server, "k", "g"), "[1]");
    let mut c = park(&server, "k", "g");
    wait_parked(&server, 1);
    // Wait out the first event's TTL without sleeping blindly: a new group
    // sees `[]` once it has expired.
    let mut n = 0;
    assert!(poll_until(secs(5.0), || {
        n += 1;
        take(&server, "k", &format!("probe{n}")) == "[]"
    }));
    c.assert_silent_until(secs(0.1));
    push(&server, "k", "2");
    let r = c.read_response(secs(5.0));
    assert_eq!(r.text(), "[2]");
}

// ---------------------------------------------------------------------------
// Concurrency.
// ---------------------------------------------------------------------------

const GROUPS: usize = 20;
const CONSUMERS_PER_GROUP: usize = 3;
const PUSHERS: usize = 2;
const EVENTS_PER_PUSHER: usize = 500;
const EVENTS: usize = PUSHERS * EVENTS_PER_PUSHER;

/// One batch as a consumer received it: (pusher, index) of each event.
type Batch = Vec<(u64, u64)>;

/// SPEC: one consumer per group receives a given batch, "no event is ever
/// given to two consumers of one group", every group receives every event,
/// and batches are "in push order". 20 groups of 3 looping keep-alive
/// consumers, 1000 events from 2 pushers.
#[test]
fn concurrent_groups_receive_every_event_exactly_once_in_order() {
    let server = Arc::new(Server::start(&[]));
    let deadline = secs(120.0);
    let received: Arc<Vec<AtomicUsize>> =
        Arc::new((0..GROUPS).map(|_| AtomicUsize::new(0)).collect());
    let batches: Arc<Mutex<Vec<(usize, Batch)>>> = Arc::default();
    let failed = Arc::new(AtomicBool::new(false));

    let mut consumers = Vec::new();
    for g in 0..GROUPS {
        for _ in 0..CONSUMERS_PER_GROUP {
            let (server, received, batches, failed) = (
                server.clone(),
                received.clone(),
                batches.clone(),
                failed.clone(),
            );
            consumers.push(thread::spawn(move || {
                let agent = agent();
                let path = bget_path("load", &format!("group{g}"), Some("0.2"));
                while received[g].load(Ordering::SeqCst) < EVENTS
                    && Instant::now() < deadline
                    && !failed.load(Ordering::SeqCst)
                {
                    let (status, body) = get_with(&agent, &server, &path);
                    if status != 200 {
                        failed.store(true, Ordering::SeqCst);
                        panic!("group{g}: status {status} {body}");
                    }
                    let events: Vec<serde_json::Value> =
                        serde_json::from_str(&body).expect("batch is a JSON array");
                    if events.is_empty() {
                        continue;
                    }
                    let batch: Batch = events
                        .iter()
                        .map(|e| (e["p"].as_u64().expect("p"), e["i"].as_u64().expect("i")))
                        .collect();
                    received[g].fetch_add(batch.len(), Ordering::SeqCst);
                    batches.lock().expect("batches").push((g, batch));
                }
            }));
        }
    }

    let pushers: Vec<_> = (0..PUSHERS)
        .map(|p| {
            let server = server.clone();
            thread::spawn(move || {
                let agent = agent();
                for i in 0..EVENTS_PER_PUSHER {
                    let (status, body) =
                        push_with(&agent, &server, "load", format!("{{\"p\":{p},\"i\":{i}}}"));
                    assert_eq!(status, 200, "push {p}/{i}: {body}");
                }
            })
        })
        .collect();
    for h in pushers {
        h.join().expect("pusher");
    }
    for h in consumers {
        h.join().expect("consumer");
    }

    let batches = batches.lock().expect("batches");
    for g in 0..GROUPS {
        let mine: Vec<&Batch> = batches
            .iter()
            .filter(|(bg, _)| *bg == g)
            .map(|(_, b)| b)
            .collect();
        let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
        for b in &mine {
            for e in b.iter() {
                *seen.entry(*e).or_default() += 1;
            }
        }
        let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(dup.is_empty(), "group{g} received events twice: {dup:?}");
        assert_eq!(
            seen.len(),
            EVENTS,
            "group{g} received {} of {EVENTS} events",
            seen.len()
        );

        // Order: batches are consecutive slices of the group's stream, so for
        // each pusher, every batch's run is increasing and the runs, sorted
        // by their first element, do not interleave.
        for p in 0..PUSHERS as u64 {
            let mut runs: Vec<Vec<u64>> = mine
                .iter()
                .map(|b| {
                    b.iter()
                        .filter(|e| e.0 == p)
                        .map(|e| e.1)
                        .collect::<Vec<_>>()
                })
                .filter(|r| !r.is_empty())
                .collect();
            for r in &runs {
                assert!(
                    r.windows(2).all(|w| w[0] < w[1]),
                    "group{g} pusher {p}: batch out of order {r:?}"
                );
            }
            runs.sort_by_key(|r| r[0]);
            let all: Vec<u64> = runs.concat();
            assert!(
                all.windows(2).all(|w| w[0] < w[1]),
                "group{g} pusher {p}: batches interleave"
            );
        }
        assert_eq!(take(&server, "load", &format!("group{g}")), "[]");
    }
}
