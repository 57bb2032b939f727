//! `--access-log` with the real binary: one line per answered request,
//! with the peer, `X-Forwarded-For`, method, path, key, groupId, status,
//! bytes and duration; a parked blocking-get logged when a push answers it
//! and when its timeout does, with the time it waited; nothing without the
//! flag.

mod common;

use common::*;

/// The value of `name=` in an access-log line (unquoted values only).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..].split(' ').next()
}

fn duration_ms(line: &str) -> f64 {
    field(line, "duration_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line}"))
}

#[test]
fn every_answer_has_a_line_and_a_parked_get_its_wait() {
    let server = Server::start(&["--access-log", "--poll-timeout", "1"]);
    // Woken by a push from another connection.
    let mut woken = park(&server, "orders", "billing");
    wait_parked(&server, 1);
    let mut pusher = Raw::connect(&server);
    pusher.send(
        b"POST /push?key=orders HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.1\r\n\
          Content-Length: 9\r\n\r\n{\"n\": 1} ",
    );
    assert_eq!(pusher.read_response(secs(5.0)).status, 200);
    assert_eq!(woken.read_response(secs(5.0)).status, 200);
    // Answered [] by its timeout.
    let mut waits = park(&server, "my alpha", "g=1");
    assert_eq!(waits.read_response(secs(5.0)).text(), "[]");

    let line = server
        .wait_for_log("path=/blocking-get key=orders", secs(5.0))
        .expect("the woken consumer's line");
    assert!(
        line.contains("[event_syncer::access] peer=127.0.0.1:"),
        "{line}"
    );
    assert_eq!(field(&line, "method"), Some("GET"));
    assert_eq!(field(&line, "groupId"), Some("billing"));
    assert_eq!(field(&line, "status"), Some("200"));
    assert_eq!(field(&line, "bytes"), Some("10"), "[{{\"n\": 1}}]");
    assert!(field(&line, "xff").is_none(), "no X-Forwarded-For was sent");

    let push = server
        .wait_for_log("path=/push", secs(5.0))
        .expect("the push's line");
    assert!(
        push.contains(
            " xff=\"203.0.113.7, 10.0.0.1\" method=POST path=/push key=orders status=200 bytes="
        ),
        "{push}"
    );

    let timed_out = server
        .wait_for_log("key=\"my alpha\"", secs(5.0))
        .expect("the timed-out consumer's line, its key decoded and quoted");
    assert!(
        timed_out.contains("groupId=\"g=1\" status=200 bytes=2 "),
        "{timed_out}"
    );
    let waited = duration_ms(&timed_out);
    assert!(
        (1000.0..3000.0).contains(&waited),
        "waited {waited} ms for a 1 s poll timeout"
    );
    // The line starts like the logger's own lines: a UTC timestamp.
    let stamp = timed_out.split(' ').next().unwrap_or("");
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{timed_out}"
    );

    // A request that cannot be read is still logged, naming its peer.
    let mut bad = Raw::connect(&server);
    bad.send(b"GET / HTTP/1\r\n\r\n");
    assert_eq!(bad.read_response(secs(5.0)).status, 400);
    let refused = server
        .wait_for_log("method=- path=- status=400", secs(5.0))
        .expect("the malformed request's line");
    assert!(refused.contains(" peer=127.0.0.1:"), "{refused}");
}

#[test]
fn a_consumer_that_hangs_up_is_not_logged_and_nothing_is_without_the_flag() {
    let server = Server::start(&["--access-log"]);
    let gone = park(&server, "k", "hung-up");
    wait_parked(&server, 1);
    drop(gone);
    wait_parked(&server, 0);
    assert_eq!(get(&server, "/healthz").0, 200);
    server
        .wait_for_log("path=/healthz", secs(5.0))
        .expect("the health check's line");
    assert!(
        !server.logs().contains("groupId=hung-up"),
        "a consumer that left was never answered: {}",
        server.logs()
    );

    let quiet = Server::start(&[]);
    assert_eq!(get(&quiet, "/healthz").0, 200);
    assert_eq!(push(&quiet, "k", "1"), 200);
    fence(&quiet);
    assert!(
        !quiet.logs().contains("event_syncer::access"),
        "{}",
        quiet.logs()
    );
}
