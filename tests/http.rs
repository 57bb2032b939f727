//! SPEC.md's "HTTP behaviour" section and the framing its push section
//! promises (chunked bodies, `Expect: 100-continue`), spoken over raw
//! `TcpStream`s so the tests control every byte and every write boundary,
//! and see every byte the server sends back.

mod common;

use common::*;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

/// What a consumer of (key, group) would be answered without waiting.
fn take_req(key: &str, group: &str) -> Vec<u8> {
    get_req(&bget_path(key, group, Some("0")))
}

/// How many big events make a batch larger than a loopback socket's kernel
/// buffers can absorb (up to 4 MiB of send buffer plus the receive buffer).
const BIG_EVENTS: usize = 8;

/// A JSON string event of `len` bytes, distinct for each `i` so a batch
/// that reorders or repeats events does not compare equal.
fn big_event(i: usize, len: usize) -> String {
    format!("\"{i}{}\"", "a".repeat(len - 3))
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

// ---------------------------------------------------------------------------
// Pipelining.
// ---------------------------------------------------------------------------

/// SPEC: "Pipelined requests are answered in order."
#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&concat(&[
        &take_req("k", "g"),
        &push_req("k", b"1"),
        &push_req("k", b"2"),
        &take_req("k", "g"),
        &take_req("k", "g"),
    ]));
    let bodies: Vec<(u16, String)> = (0..5)
        .map(|_| {
            let r = c.read_response(secs(10.0));
            (r.status, r.text())
        })
        .collect();
    assert_eq!(bodies[0], (200, "[]".to_string()));
    assert_eq!(bodies[1].0, 200);
    assert!(
        bodies[1].1.contains("Data pushed successfully"),
        "{}",
        bodies[1].1
    );
    assert_eq!(bodies[2].0, 200);
    assert_eq!(bodies[3], (200, "[1,2]".to_string()));
    assert_eq!(bodies[4], (200, "[]".to_string()));
}

/// SPEC: "also when one of them is a parked blocking-get (the ones behind it
/// wait for it)."
#[test]
fn pipelined_requests_wait_behind_a_parked_blocking_get() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&concat(&[
        &get_req(&bget_path("k", "g", None)),
        &push_req("k2", b"\"behind\""),
        &take_req("k2", "g"),
    ]));
    wait_parked(&server, 1);
    c.assert_silent_until(secs(0.3));

    assert_eq!(push(&server, "k", "\"wake\""), 200);
    let first = c.read_response(secs(5.0));
    assert_eq!((first.status, first.text().as_str()), (200, "[\"wake\"]"));
    let second = c.read_response(secs(5.0));
    assert_eq!(second.status, 200);
    assert!(
        second.text().contains("Data pushed successfully"),
        "{}",
        second.text()
    );
    let third = c.read_response(secs(5.0));
    assert_eq!((third.status, third.text().as_str()), (200, "[\"behind\"]"));
}

/// The same, when the parked request ends by its timeout rather than a push.
#[test]
fn pipelined_requests_wait_behind_a_blocking_get_that_times_out() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    let t0 = Instant::now();
    c.send(&concat(&[
        &get_req(&bget_path("k", "g", Some("0.3"))),
        &take_req("k", "other"),
    ]));
    let first = c.read_response(secs(5.0));
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(first.text(), "[]");
    let second = c.read_response(secs(5.0));
    assert_eq!((second.status, second.text().as_str()), (200, "[]"));
}

// ---------------------------------------------------------------------------
// Hang-ups.
// ---------------------------------------------------------------------------

/// SPEC: "When the client closes its connection, drop the consumer at once
/// and consume nothing for it": here the client resets (RST) instead of
/// closing politely.
#[test]
fn a_client_that_resets_while_parked_consumes_nothing() {
    let server = Server::start(&[]);
    let gone = park(&server, "k", "g");
    wait_parked(&server, 1);
    gone.reset();
    wait_parked(&server, 0);
    assert_eq!(push(&server, "k", "1"), 200);
    assert_eq!(take(&server, "k", "g"), "[1]");
}

/// A client that closes (FIN) while parked, with another request pipelined
/// behind the parked one, is gone too: its group's next consumer gets the
/// event.
#[test]
fn a_client_that_closes_while_parked_with_more_requests_queued_consumes_nothing() {
    let server = Server::start(&[]);
    let mut gone = Raw::connect(&server);
    gone.send(&concat(&[
        &get_req(&bget_path("k", "g", None)),
        &take_req("k", "g"),
    ]));
    wait_parked(&server, 1);
    drop(gone);
    wait_parked(&server, 0);
    assert_eq!(push(&server, "k", "2"), 200);
    assert_eq!(take(&server, "k", "g"), "[2]");
}

// ---------------------------------------------------------------------------
// Bodies: Expect, chunked, split writes.
// ---------------------------------------------------------------------------

/// SPEC: "Expect: 100-continue is honoured": the interim response comes
/// before any byte of the body is sent.
#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = Server::start(&[]);
    let body = br#"{"big": "enough for curl"}"#;
    let mut c = Raw::connect(&server);
    c.send(
        format!(
            "POST /push?key=k HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = c.read_response(secs(5.0));
    assert!(
        interim.head.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{:?}",
        String::from_utf8_lossy(&interim.head)
    );
    c.send(body);
    let done = c.read_response(secs(5.0));
    assert_eq!(done.status, 200);
    assert_eq!(
        take(&server, "k", "g"),
        format!("[{}]", String::from_utf8_lossy(body))
    );
}

/// A client that sends the body without waiting for `100 Continue` (curl
/// does after a second) gets at most one interim response, then the final
/// one, and the connection stays in step for the next request.
#[test]
fn expect_100_continue_with_the_body_sent_at_once() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&concat(&[
        b"POST /push?key=k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n[1,2]",
        &take_req("k", "g"),
    ]));
    let mut r = c.read_response(secs(5.0));
    if r.status == 100 {
        r = c.read_response(secs(5.0));
    }
    assert_eq!(r.status, 200);
    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "[[1,2]]"));
}

/// SPEC: "Bodies may come with Content-Length or Transfer-Encoding: chunked":
/// several chunks, upper- and lower-case hex sizes, a chunk extension, each
/// chunk in its own write; the event is stored exactly.
#[test]
fn a_chunked_push_body_is_stored_exactly() {
    let server = Server::start(&[]);
    let pieces = [
        "{\"a\":",
        " [1, 2, 3, 4, 5, 6, 7]",
        ", \"s\": \"chunk\\n\"",
        "}",
    ];
    let mut c = Raw::connect(&server);
    c.send(b"POST /push?key=k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (i, p) in pieces.iter().enumerate() {
        let size = if i % 2 == 0 {
            format!("{:x}", p.len())
        } else {
            format!("{:X}", p.len())
        };
        let ext = if i == 0 {
            ";name=value;q=\"quoted\""
        } else {
            ""
        };
        c.send(format!("{size}{ext}\r\n{p}\r\n").as_bytes());
    }
    c.send(&concat(&[b"0\r\n\r\n", &take_req("k", "g")]));
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = c.read_response(secs(5.0));
    assert_eq!(r.text(), format!("[{}]", pieces.concat()));
}

/// A chunked body ending in a trailer section is framed correctly: the
/// request after it on the same connection is answered.
#[test]
fn a_chunked_push_body_with_a_trailer() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&concat(&[
        b"POST /push?key=k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"3\r\n[7]\r\n0\r\nX-Checksum: abc\r\n\r\n",
        &take_req("k", "g"),
    ]));
    assert_eq!(c.read_response(secs(5.0)).status, 200);
    assert_eq!(c.read_response(secs(5.0)).text(), "[[7]]");
}

/// A request cut into one-byte writes (the head) and small ones (the body)
/// is the same request: "every prefix is incomplete, not an error".
#[test]
fn a_request_split_into_many_small_writes() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    let body = b"{\"split\": [\"across\", \"writes\"]}";
    let req = push_req("k", body);
    let head_len = req.len() - body.len();
    c.send_in_pieces(&req[..head_len], 1);
    c.send_in_pieces(&req[head_len..], 3);
    assert_eq!(c.read_response(secs(5.0)).status, 200);
    c.send_in_pieces(&take_req("k", "g"), 1);
    let r = c.read_response(secs(5.0));
    assert_eq!(r.text(), format!("[{}]", String::from_utf8_lossy(body)));
}

// ---------------------------------------------------------------------------
// Connection management.
// ---------------------------------------------------------------------------

/// SPEC: "HTTP/1.0 closes unless it asks for keep-alive".
#[test]
fn http_1_0_closes_after_the_response() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(b"POST /push?key=k HTTP/1.0\r\nContent-Length: 3\r\n\r\n\"a\"");
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 200);
    assert!(
        r.closes(),
        "HTTP/1.0 response lacks Connection: close: {r:?}"
    );
    assert_eq!(c.read_until_close(secs(5.0)), b"");

    let mut c = Raw::connect(&server);
    c.send(b"GET /blocking-get?key=k&groupId=g&timeout=0 HTTP/1.0\r\n\r\n");
    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "[\"a\"]"));
    assert_eq!(c.read_until_close(secs(5.0)), b"");
}

/// SPEC: HTTP/1.0 "unless it asks for keep-alive".
#[test]
fn http_1_0_with_keep_alive_stays_open() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(b"POST /push?key=k HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n5");
    let r = c.read_response(secs(5.0));
    assert_eq!(r.status, 200);
    assert!(
        r.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("keep-alive")),
        "{r:?}"
    );
    c.send(
        b"GET /blocking-get?key=k&groupId=g&timeout=0 HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    );
    let r = c.read_response(secs(5.0));
    assert_eq!(r.text(), "[5]");
    c.assert_silent_until(secs(0.3));
}

/// SPEC: "Connection: close is honoured": one answer, then the close; a
/// request pipelined after it is not processed.
#[test]
fn connection_close_on_http_1_1_closes_after_the_response() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(&concat(&[
        b"GET /blocking-get?key=k&groupId=g&timeout=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        &push_req("k", b"1"),
    ]));
    let r = c.read_response(secs(5.0));
    assert_eq!((r.status, r.text().as_str()), (200, "[]"));
    assert!(r.closes(), "{r:?}");
    assert_eq!(c.read_until_close(secs(5.0)), b"");
    assert_eq!(take(&server, "k", "g"), "[]");
}

/// Keep-alive is the HTTP/1.1 default: many requests on one connection.
#[test]
fn http_1_1_keeps_the_connection_open() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    for i in 0..20 {
        c.send(&push_req("k", i.to_string().as_bytes()));
        let r = c.read_response(secs(5.0));
        assert_eq!(r.status, 200);
        assert!(!r.closes());
    }
    c.send(&take_req("k", "g"));
    let want = format!(
        "[{}]",
        (0..20).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    );
    assert_eq!(c.read_response(secs(5.0)).text(), want);
}

// ---------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------

fn assert_400_then_close(request: &[u8]) {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    c.send(request);
    let r = c.read_response(secs(5.0));
    assert_eq!(
        r.status,
        400,
        "{:?} -> {r:?}",
        String::from_utf8_lossy(request)
    );
    assert_json_error(&r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(c.read_until_close(secs(5.0)), b"", "bytes after the 400");
    assert_eq!(
        take(&server, "k", "g"),
        "[]",
        "a malformed push stored something"
    );
}

/// SPEC: "malformed request 400 then close", one test per way of being
/// malformed.
macro_rules! malformed {
    ($($name:ident: $bytes:expr;)*) => {
        $(
            #[test]
            fn $name() {
                assert_400_then_close($bytes);
            }
        )*
    };
}

malformed! {
    malformed_not_http: b"this is not http\r\n\r\n";
    malformed_header_without_colon: b"GET /blocking-get?key=k&groupId=g HTTP/1.1\r\nHost x\r\n\r\n";
    malformed_content_length_not_a_number: b"POST /push?key=k HTTP/1.1\r\nContent-Length: abc\r\n\r\n1";
    malformed_content_length_negative: b"POST /push?key=k HTTP/1.1\r\nContent-Length: -1\r\n\r\n1";
    malformed_content_lengths_that_disagree: b"POST /push?key=k HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n12";
    malformed_chunk_size: b"POST /push?key=k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n";
    malformed_chunk_without_crlf: b"POST /push?key=k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n[]XX0\r\n\r\n";
}

/// issue 2: "a warning, with the peer address, for a client dropped for a
/// protocol error".
#[test]
fn a_protocol_error_is_logged_as_a_warning_with_the_peer_address() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    let peer = c.stream.local_addr().expect("local addr").to_string();
    c.send(b"this is not http\r\n\r\n");
    assert_eq!(c.read_response(secs(5.0)).status, 400);
    let line = server
        .wait_for_log(&peer, secs(5.0))
        .unwrap_or_else(|| panic!("no log line names {peer}; stderr:\n{}", server.logs()));
    assert!(line.contains("WARN"), "not a warning: {line}");
}

/// SPEC: "Unknown path: 404", with a JSON error body; the connection stays
/// usable.
#[test]
fn unknown_paths_are_404_with_a_json_error() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    let paths = [
        "/",
        "/nope",
        "/push/extra",
        "/blocking-getx?key=k&groupId=g",
        "/PUSH?key=k",
    ];
    for p in paths {
        c.send(&get_req(p));
    }
    for p in paths {
        let r = c.read_response(secs(5.0));
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{p}");
        assert_json_error(&r.body);
    }
    c.send(&take_req("k", "g"));
    assert_eq!(c.read_response(secs(5.0)).text(), "[]");
}

/// SPEC: "Known path, wrong method: 405 with Allow". A body sent with the
/// wrong method is read past (the next request is still understood) and
/// never stored.
#[test]
fn wrong_methods_are_405_with_allow() {
    let server = Server::start(&[]);
    let mut c = Raw::connect(&server);
    let cases: [(&[u8], &str); 5] = [
        (b"GET /push?key=k HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        (b"PUT /push?key=k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1", "POST"),
        (b"DELETE /push?key=k HTTP/1.1\r\nHost: x\r\n\r\n", "POST"),
        (
            b"POST /blocking-get?key=k&groupId=g HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n[1]",
            "GET",
        ),
        (b"PUT /blocking-get?key=k&groupId=g HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "GET"),
    ];
    for (req, _) in cases {
        c.send(req);
    }
    for (req, allowed) in cases {
        let r = c.read_response(secs(5.0));
        let what = String::from_utf8_lossy(req);
        assert_eq!(r.status, 405, "{what}");
        let allow = r
            .header("allow")
            .unwrap_or_else(|| panic!("no Allow: {what}"));
        let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
        assert!(methods.contains(&allowed), "Allow: {allow} for {what}");
        let wrong = if allowed == "GET" { "POST" } else { "GET" };
        assert!(!methods.contains(&wrong), "Allow: {allow} for {what}");
        assert_json_error(&r.body);
    }
    c.send(&take_req("k", "g"));
    assert_eq!(c.read_response(secs(5.0)).text(), "[]");
}

// ---------------------------------------------------------------------------
// Slow readers.
// ---------------------------------------------------------------------------

/// SPEC: "Partial writes are resumed when the socket is writable again; a
/// slow reader never blocks anyone else." Two clients take a ~7 MiB batch
/// (eight ~900 KiB events: more than the kernel buffers of a loopback
/// socket hold, so the server's writes must stop at `WouldBlock` and resume)
/// and do not read it; meanwhile another client's round trips stay prompt;
/// then the slow clients read in small pieces and get every byte.
#[test]
fn a_slow_reader_gets_every_byte_and_blocks_nobody() {
    let server = Server::start(&[]);
    let events: Vec<String> = (0..BIG_EVENTS).map(|i| big_event(i, 900 * 1024)).collect();
    for e in &events {
        assert_eq!(push(&server, "big", e), 200);
    }
    let mut slow: Vec<Raw> = (0..2)
        .map(|i| {
            let mut c = Raw::connect(&server);
            c.send(&take_req("big", &format!("slow{i}")));
            c
        })
        .collect();

    let mut fast = Raw::connect(&server);
    let stalled_until = secs(1.0);
    let mut rounds = 0;
    while Instant::now() < stalled_until || rounds < 10 {
        let t0 = Instant::now();
        fast.send(&push_req("small", rounds.to_string().as_bytes()));
        assert_eq!(fast.read_response(secs(5.0)).status, 200);
        fast.send(&take_req("small", "g"));
        let r = fast.read_response(secs(5.0));
        assert_eq!(r.text(), format!("[{rounds}]"));
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "round trip {rounds} took {:?}",
            t0.elapsed()
        );
        rounds += 1;
    }

    let want = format!("[{}]", events.join(","));
    for (i, c) in slow.iter_mut().enumerate() {
        let r = c.read_response_slowly(16 * 1024, Duration::from_millis(1), secs(60.0));
        assert_eq!(r.status, 200, "slow{i}");
        assert_eq!(r.body.len(), want.len(), "slow{i}");
        assert!(r.body == want.as_bytes(), "slow{i}: body differs");
    }
}

/// A big request body that arrives slowly does not hold up other clients
/// either.
#[test]
fn a_slow_writer_blocks_nobody() {
    let server = Server::start(&[]);
    let body = format!("\"{}\"", "b".repeat(200 * 1024));
    let req = push_req("big", body.as_bytes());
    let mut slow = Raw::connect(&server);
    let addr = server.addr();
    let writer = thread::spawn(move || {
        for piece in req.chunks(16 * 1024) {
            slow.stream.write_all(piece).expect("slow write");
            thread::sleep(Duration::from_millis(20));
        }
        slow.read_response(secs(10.0)).status
    });
    let mut fast = Raw::connect_addr(addr);
    for i in 0..10 {
        let t0 = Instant::now();
        fast.send(&take_req("small", &format!("g{i}")));
        assert_eq!(fast.read_response(secs(5.0)).text(), "[]");
        assert!(
            t0.elapsed() < Duration::from_millis(500),
            "took {:?}",
            t0.elapsed()
        );
    }
    assert_eq!(writer.join().expect("writer"), 200);
    assert_eq!(take(&server, "big", "g"), format!("[{body}]"));
}

/// A `HEAD` request is answered with a head and no body (RFC 9110 section
/// 9.3.2): a body would be read by the client as the start of the next
/// answer. SPEC: "HEAD works wherever GET is safe (/healthz, /metrics): the
/// same head, no body"; elsewhere it is a wrong method, 405 with Allow.
#[test]
fn head_requests_get_a_head_without_a_body() {
    let server = Server::start(&[]);
    for path in ["/healthz", "/metrics"] {
        let mut get = Raw::connect(&server);
        get.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let full = get.read_response(secs(5.0));
        let mut c = Raw::connect(&server);
        c.send(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
        let bytes = c.read_until_close(secs(5.0));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("HTTP/1.1 200 "), "{path}: {text:?}");
        assert!(
            text.ends_with("\r\n\r\n"),
            "a body followed the head: {text:?}"
        );
        let length = full.header("content-length").expect("GET has a length");
        if path == "/healthz" {
            assert!(
                text.contains(&format!("\r\nContent-Length: {length}\r\n")),
                "{text:?}"
            );
        }
        assert!(text.contains("\r\nContent-Type: "), "{text:?}");
    }
    let mut c = Raw::connect(&server);
    c.send(b"HEAD /push?key=k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let bytes = c.read_until_close(secs(5.0));
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 405 "), "{text:?}");
    assert!(text.contains("\r\nAllow: POST, OPTIONS\r\n"), "{text:?}");
    assert!(
        text.ends_with("\r\n\r\n"),
        "a body followed the head: {text:?}"
    );
}
