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

/// Two pushes written at once on one keep-alive connection, the first
/// with a bad token and a body. However the server deals with the refused
/// body (reading it past, or closing after the 401), it must never take
/// that body for a request of its own, nor store it: the second push is
/// either answered 200 or, after a 401 that says `Connection: close`, never
/// read at all.
#[test]
fn a_refused_push_body_is_never_read_as_a_request() {
    let server = hs256_server(&[]);
    let good = root_token();
    // A body that is itself a valid request: were it parsed as one, the
    // event "smuggled" would be stored.
    let smuggled = format!(
        "POST /push?key=k&access_token={good} HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n\"smuggled\""
    );
    let mut bytes = push_head("k", smuggled.len(), false, Some("bad.token.here"));
    bytes.extend_from_slice(smuggled.as_bytes());
    bytes.extend_from_slice(&push_head("k", 6, false, Some(&good)));
    bytes.extend_from_slice(b"\"real\"");
    let mut c = Raw::connect(&server);
    c.send(&bytes);
    let first = c.read_response(secs(5.0));
    assert_eq!(first.status, 401, "{first:?}");
    let second = c.try_read_response(secs(3.0));
    match &second {
        Some(r) => assert_eq!(r.status, 200, "the second push: {r:?}"),
        None => assert!(
            first.closes(),
            "no answer to the second push, and the 401 did not say close"
        ),
    }
    let want = if second.is_some() {
        json!(["real"])
    } else {
        json!([])
    };
    assert_eq!(events_left(&server, "k", "g"), want);
}

/// Each auth setting has its environment variable (SPEC's table).
#[test]
fn auth_settings_come_from_the_environment_too() {
    let dir = TempDir::new();
    let secret = dir.file("secret", SECRET);
    let metrics = dir.file("metrics", METRICS_SECRET);
    let pair = es256_pair();
    let key = dir.file("key.pem", &pair.public_pem);
    let var = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let (secret, metrics, key) = (var(&secret), var(&metrics), var(&key));
    let hs = Server::start_with_env(
        &[],
        &[
            ("EVENT_SYNCER_JWT_SECRET_FILE", &secret),
            ("EVENT_SYNCER_METRICS_TOKEN_FILE", &metrics),
        ],
    );
    assert_401(&push_as(&hs, None, "k", "1"), "secret from the environment");
    assert_eq!(push_as(&hs, Some(&root_token()), "k", "1").0, 200);
    assert_401(&scrape(&hs, None), "metrics token from the environment");
    let pk = Server::start_with_env(&[], &[("EVENT_SYNCER_JWT_PUBLIC_KEY_FILE", &key)]);
    assert_401(
        &push_as(&pk, Some(&root_token()), "k", "1"),
        "public key from the environment",
    );
    let signed = pair.sign(&claims(&["k"], &[], None));
    assert_eq!(push_as(&pk, Some(&signed), "k", "1").0, 200);
}

/// A refused blocking-get is answered at once, never parked: a consumer
/// without a valid token (or from an unlisted origin) must not hold a slot
/// among the group's consumers, nor wait out the poll timeout to learn it
/// was refused.
#[test]
fn a_refused_blocking_get_is_answered_at_once_not_parked() {
    let server = hs256_server(&["--cors-origin", "http://app.example"]);
    let forbidden = token(&claims(&[], &["other"], None));
    let cases = [
        ("no token", String::new(), 401),
        (
            "no consume grant",
            format!("Authorization: Bearer {forbidden}\r\n"),
            403,
        ),
        (
            "unlisted origin",
            format!(
                "Authorization: Bearer {}\r\nOrigin: http://evil.example\r\n",
                root_token()
            ),
            403,
        ),
    ];
    for (what, headers, want) in cases {
        let mut c = Raw::connect(&server);
        let head =
            format!("GET /blocking-get?key=k&groupId=g HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
        c.send(head.as_bytes());
        let resp = c.try_read_response(secs(3.0));
        let resp = resp.unwrap_or_else(|| panic!("{what}: no answer within 3 s (parked?)"));
        assert_eq!(resp.status, want, "{what}: {resp:?}");
    }
    assert_eq!(parked_gauge(&server), Some(0));
}

/// Tokens that start failing (expired, signed with an old key) are worth
/// one warning in the log, naming the client; a flood of them is not worth
/// more than one line per 10 s.
#[test]
fn refusals_are_warned_about_once_not_per_request() {
    let server = hs256_server(&[]);
    let forged = hs256(
        b"an old secret that was rotated away",
        &claims(&["*"], &["*"], None),
    );
    for i in 0..50 {
        assert_401(
            &push_as(&server, Some(&forged), "k", "{}"),
            &format!("push {i}"),
        );
    }
    assert!(
        server.wait_for_log("refused with 401", secs(5.0)).is_some(),
        "no warning that requests are refused"
    );
    let lines = server.logs().matches("refused with 401").count();
    assert_eq!(lines, 1, "one warning for 50 refusals:\n{}", server.logs());
}
