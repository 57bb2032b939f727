//! SPEC.md "Who may do what (v2)" on the wire: the `/metrics` bearer secret
//! of `--metrics-token-file`, and a push refused before its body is read.
//! The latter is why a raw socket is used: a client library sends the body
//! anyway and hides whether the server asked for it (`100 Continue`) or
//! answered first.

mod authkit;
mod common;

use authkit::*;
use common::*;
use serde_json::json;

const METRICS_SECRET: &str = "scrape-me-7c1f0e";

/// `GET /metrics` with `Authorization: <auth>` if given: (status, headers).
fn scrape(server: &Server, auth: Option<&str>) -> Reply {
    let mut req = agent().get(server.url("/metrics"));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    finish(req.call())
}

#[test]
fn metrics_token_guards_metrics_only() {
    let dir = TempDir::new();
    let file = dir.file("metrics-token", METRICS_SECRET);
    let server = Server::start(&["--metrics-token-file", file.to_str().expect("utf-8")]);
    let (status, body, _) = scrape(&server, Some(&format!("Bearer {METRICS_SECRET}")));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("event_syncer_"), "{body}");
    assert_401(&scrape(&server, None), "/metrics without the secret");
    for wrong in [
        format!("Bearer {METRICS_SECRET}x"),
        format!("Bearer {}", &METRICS_SECRET[1..]),
        "Bearer ".to_string(),
        format!("Basic {METRICS_SECRET}"),
        METRICS_SECRET.to_string(),
    ] {
        assert_401(
            &scrape(&server, Some(&wrong)),
            &format!("/metrics, {wrong:?}"),
        );
    }
    // Only /metrics: the queue needs no token without a JWT flag, and
    // /healthz never does.
    assert_eq!(get(&server, "/healthz"), (200, "ok".to_string()));
    assert_eq!(push(&server, "k", "1"), 200);
    assert_eq!(take(&server, "k", "g"), "[1]");
}

/// The metrics secret is not a JWT secret and a JWT is not the metrics
/// secret: each guards its own door.
#[test]
fn metrics_token_and_jwt_are_separate() {
    let dir = TempDir::new();
    let metrics = dir.file("metrics-token", METRICS_SECRET);
    let server = hs256_server(&["--metrics-token-file", metrics.to_str().expect("utf-8")]);
    assert_401(
        &push_as(&server, Some(METRICS_SECRET), "k", "1"),
        "push with the metrics secret",
    );
    assert_401(
        &scrape(&server, Some(&format!("Bearer {}", root_token()))),
        "/metrics with a JWT",
    );
    let (status, _, _) = scrape(&server, Some(&format!("Bearer {METRICS_SECRET}")));
    assert_eq!(status, 200);
}

/// The head of a push with `Content-Length` and `Expect: 100-continue`,
/// carrying `auth` as an extra header line if given.
fn push_head(key: &str, len: usize, expect: bool, auth: Option<&str>) -> Vec<u8> {
    let mut head =
        format!("POST /push?key={key} HTTP/1.1\r\nHost: test\r\nContent-Length: {len}\r\n");
    if expect {
        head.push_str("Expect: 100-continue\r\n");
    }
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: Bearer {a}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// With `Expect: 100-continue`, a push without a valid token gets its 401
/// instead of `100 Continue`: the client never uploads the body.
#[test]
fn expect_continue_push_without_token_gets_401_not_100() {
    let server = hs256_server(&[]);
    for auth in [None, Some("garbage")] {
        let mut c = Raw::connect(&server);
        c.send(&push_head("k", 1_000_000, true, auth));
        let resp = c.read_response(secs(5.0));
        assert_eq!(
            resp.status, 401,
            "auth {auth:?}: want 401 first, got {resp:?}"
        );
        let challenge = resp.header("www-authenticate").unwrap_or("");
        assert!(
            challenge.to_ascii_lowercase().starts_with("bearer"),
            "{resp:?}"
        );
    }
    assert_eq!(events_left(&server, "k", "g"), json!([]));
}

/// The control for the test above: with a valid token the same head gets
/// `100 Continue`, so the 401 there is about the token.
#[test]
fn expect_continue_push_with_token_gets_100() {
    let server = hs256_server(&[]);
    let mut c = Raw::connect(&server);
    c.send(&push_head("k", 3, true, Some(&root_token())));
    let cont = c.read_response(secs(5.0));
    assert_eq!(cont.status, 100, "{cont:?}");
    c.send(b"123");
    let resp = c.read_response(secs(5.0));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(events_left(&server, "k", "g"), json!([123]));
}

/// Without `Expect`, a push head announcing 1 MB and no token is answered
/// 401 at once: the server does not wait for a body it would throw away.
#[test]
fn push_without_token_is_refused_before_its_body() {
    let server = hs256_server(&[]);
    let mut c = Raw::connect(&server);
    c.send(&push_head("k", 1_000_000, false, None));
    let resp = c.try_read_response(secs(3.0));
    let resp = resp.expect("a 401 within 3 s, with none of the 1 MB body sent");
    assert_eq!(resp.status, 401, "{resp:?}");
    assert_eq!(events_left(&server, "k", "g"), json!([]));
}
