//! SPEC.md "Who may do what (v2)", authentication with an HS256 secret:
//! which tokens are refused (401 with `WWW-Authenticate: Bearer`), which are
//! valid but not enough (403), what the `event_syncer` claim's patterns
//! match, and that a refused request stores and consumes nothing. Every
//! refusal is checked against a later authorised read, because a server
//! that answers 401 after having stored the event would pass a status check.
//!
//! Public-key algorithms, settings and the `token` subcommand are in
//! `tests/auth_keys.rs`; the metrics token and the early refusal of a push
//! in `tests/auth_wire.rs`.

mod authkit;
mod common;

use authkit::*;
use common::*;
use serde_json::json;

/// Without any auth flag nothing changes: no token needed.
#[test]
fn without_a_key_file_no_token_is_needed() {
    let server = Server::start(&[]);
    assert_eq!(push_as(&server, None, "k", "1").0, 200);
    assert_eq!(take_as(&server, None, "k", "g", "").1, "[1]");
}

/// A valid token may push and consume; the event arrives exactly once.
#[test]
fn a_valid_token_pushes_and_consumes() {
    let server = hs256_server(&[]);
    let t = token(&claims(&["k"], &["k"], None));
    let (status, body, _) = push_as(&server, Some(&t), "k", r#"{"a":1}"#);
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = take_as(&server, Some(&t), "k", "g", "");
    assert_eq!((status, body.as_str()), (200, r#"[{"a":1}]"#));
}

/// No token, a garbage one, one signed with another secret, and one with a
/// scheme other than Bearer: 401, and neither push stores nor get consumes.
#[test]
fn missing_and_bad_tokens_are_401_and_change_nothing() {
    let server = hs256_server(&[]);
    let good = claims(&["*"], &["*"], None);
    assert_eq!(
        push_as(&server, Some(&token(&good)), "k", "\"kept\"").0,
        200
    );
    let wrong_secret = hs256(b"another secret, also long enough", &good);
    let mut tampered = token(&claims(&["x"], &["x"], None));
    // Same header and signature, claims swapped for broader ones.
    let parts: Vec<&str> = tampered.split('.').collect();
    let wide = token(&good);
    let wide_claims = wide.split('.').nth(1).expect("claims part");
    tampered = format!("{}.{wide_claims}.{}", parts[0], parts[2]);
    let bad: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("garbage", Some("not-a-jwt")),
        ("three garbage parts", Some("aaa.bbb.ccc")),
        ("another secret", Some(&wrong_secret)),
        ("claims swapped under a signature", Some(&tampered)),
    ];
    for (what, t) in bad {
        assert_401(
            &push_as(&server, t, "k", "\"refused\""),
            &format!("push, {what}"),
        );
        assert_401(&take_as(&server, t, "k", "g", ""), &format!("get, {what}"));
    }
    assert_eq!(events_left(&server, "k", "g"), json!(["kept"]));
}

/// `Authorization` with a scheme other than Bearer, or an empty bearer, is no
/// token at all.
#[test]
fn other_authorization_schemes_are_401() {
    let server = hs256_server(&[]);
    let t = root_token();
    for value in [format!("Basic {t}"), t.clone(), "Bearer ".to_string()] {
        let resp = finish(
            agent()
                .post(server.url("/push?key=k"))
                .header("Authorization", &value)
                .send("1"),
        );
        assert_401(&resp, &format!("Authorization: {value:?}"));
    }
    assert_eq!(events_left(&server, "k", "g"), json!([]));
}

/// `alg: none` and a token signed with an algorithm other than the
/// configured one are refused even though their claims are fine.
#[test]
fn unsigned_and_foreign_algorithm_tokens_are_401() {
    let server = hs256_server(&[]);
    let c = claims(&["*"], &["*"], None);
    assert_401(&push_as(&server, Some(&alg_none(&c)), "k", "1"), "alg none");
    let es = es256_pair().sign(&c);
    assert_401(&push_as(&server, Some(&es), "k", "1"), "ES256 token");
    // HS384/HS512 with the right secret: the secret is for HS256 only.
    let hs512 = sign(
        jsonwebtoken::Algorithm::HS512,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).expect("HMAC key"),
        &c,
    );
    assert_401(&push_as(&server, Some(&hs512), "k", "1"), "HS512 token");
    assert_eq!(events_left(&server, "k", "g"), json!([]));
}

/// `exp` in the past and `nbf` in the future: 401, nothing stored or taken.
/// An hour either way, so no leeway the server may allow explains a pass.
#[test]
fn expired_and_not_yet_valid_tokens_are_401() {
    let server = hs256_server(&[]);
    assert_eq!(
        push_as(&server, Some(&root_token()), "k", "\"kept\"").0,
        200
    );
    let mut expired = claims(&["*"], &["*"], None);
    expired["exp"] = json!(now() - 3600);
    let mut early = claims(&["*"], &["*"], None);
    early["nbf"] = json!(now() + 3600);
    for (what, c) in [("expired", expired), ("nbf in the future", early)] {
        let t = token(&c);
        assert_401(
            &push_as(&server, Some(&t), "k", "1"),
            &format!("push, {what}"),
        );
        assert_401(
            &take_as(&server, Some(&t), "k", "g", ""),
            &format!("get, {what}"),
        );
    }
    assert_eq!(events_left(&server, "k", "g"), json!(["kept"]));
}

/// A token that is fine now but expires in three seconds, used again and
/// again (a server caches verified tokens): it must stop working once its
/// `exp` has passed, not when the cache entry goes.
#[test]
fn a_cached_token_stops_working_at_its_exp() {
    let server = hs256_server(&[]);
    let mut c = claims(&["k"], &["k"], None);
    let exp = now() + 3;
    c["exp"] = json!(exp);
    let t = token(&c);
    let a = agent();
    // Only while clearly before exp: a slow machine must not turn the
    // token's own expiry into a failure here.
    let mut i = 0;
    while i < 50 && now() < exp - 1 {
        let url = server.url("/push?key=k");
        let resp = finish(
            a.post(url)
                .header("Authorization", format!("Bearer {t}"))
                .send("1"),
        );
        assert_eq!(resp.0, 200, "push {i} with a fresh token: {}", resp.1);
        i += 1;
    }
    assert!(
        i > 1,
        "the token was used {i} times before its exp; the machine is too slow"
    );
    // exp is whole seconds: the token is expired from exp+1 at the latest.
    // Allow 3 s more for a loaded machine, and no more: a 60 s leeway is
    // not "exp is honoured".
    let mut accepted = i;
    let refused = poll_until(secs((exp + 1 - now()) as f64 + 3.0), || {
        match push_as(&server, Some(&t), "k", "2").0 {
            200 => accepted += 1,
            status => return status == 401,
        }
        false
    });
    assert!(refused, "a token still accepted 3 s after its exp");
    assert_401(&take_as(&server, Some(&t), "k", "g", ""), "get, expired");
    let left = events_left(&server, "k", "g");
    let stored = left.as_array().map(Vec::len);
    assert_eq!(
        stored,
        Some(accepted),
        "every accepted push and no refused one"
    );
}

/// Push needs `push` to match; `consume` alone does not allow it, and a
/// valid token that does not allow the request is a 403 that stores nothing.
#[test]
fn push_not_allowed_is_403_and_stores_nothing() {
    let server = hs256_server(&[]);
    let consumer = token(&claims(&[], &["k"], None));
    assert_403(
        &push_as(&server, Some(&consumer), "k", "1"),
        "consume-only push",
    );
    let other_key = token(&claims(&["other"], &["*"], None));
    assert_403(&push_as(&server, Some(&other_key), "k", "1"), "other key");
    let mut no_grant = claims(&[], &[], None);
    no_grant
        .as_object_mut()
        .expect("object")
        .remove("event_syncer");
    let no_grant = token(&no_grant);
    assert_403(
        &push_as(&server, Some(&no_grant), "k", "1"),
        "no event_syncer claim",
    );
    assert_403(
        &take_as(&server, Some(&no_grant), "k", "g", ""),
        "get, no claim",
    );
    assert_eq!(events_left(&server, "k", "g"), json!([]));
}

/// Consuming needs `consume` to match the key; `push` alone is not enough;
/// a 403 consumes nothing.
#[test]
fn consume_not_matching_key_is_403_and_consumes_nothing() {
    let server = hs256_server(&[]);
    assert_eq!(push_as(&server, Some(&root_token()), "k", "1").0, 200);
    let pusher = token(&claims(&["k"], &[], None));
    assert_403(
        &take_as(&server, Some(&pusher), "k", "g", ""),
        "push-only get",
    );
    let other = token(&claims(&["*"], &["k2", "k*x"], None));
    assert_403(&take_as(&server, Some(&other), "k", "g", ""), "other key");
    assert_eq!(events_left(&server, "k", "g"), json!([1]));
}

/// With `groups`, the groupId must match it; without, any group will do.
#[test]
fn groups_restrict_the_group_and_their_absence_allows_any() {
    let server = hs256_server(&[]);
    let admin = root_token();
    assert_eq!(push_as(&server, Some(&admin), "k", "1").0, 200);
    let workers = token(&claims(&[], &["k"], Some(&["workers", "batch-*"])));
    assert_403(
        &take_as(&server, Some(&workers), "k", "audit", ""),
        "group audit",
    );
    assert_403(
        &take_as(&server, Some(&workers), "k", "worker", ""),
        "group worker",
    );
    let none = token(&claims(&[], &["k"], Some(&[])));
    assert_403(
        &take_as(&server, Some(&none), "k", "workers", ""),
        "groups: []",
    );
    assert_eq!(events_left(&server, "k", "audit"), json!([1]));
    assert_eq!(
        take_as(&server, Some(&workers), "k", "workers", "").1,
        "[1]"
    );
    assert_eq!(
        take_as(&server, Some(&workers), "k", "batch-7", "").1,
        "[1]"
    );
    let any = token(&claims(&[], &["k"], None));
    assert_eq!(take_as(&server, Some(&any), "k", "anything", "").1, "[1]");
}

/// Patterns: exact strings, prefixes ending in `*`, `*` alone; a `*`
/// anywhere else is an ordinary character; keys are matched decoded.
#[test]
fn patterns_are_exact_or_prefix() {
    let server = hs256_server(&[]);
    let t = token(&claims(&["orders.*", "exact", "a*b", "a b"], &[], None));
    for key in ["orders.", "orders.eu", "orders.eu.*", "exact", "a*b", "a b"] {
        let (status, body, _) = push_as(&server, Some(&t), key, "1");
        assert_eq!(status, 200, "{key:?} should be allowed: {body}");
    }
    for key in [
        "orders",
        "ordersX",
        "Orders.eu",
        "exactly",
        "exac",
        "axb",
        "a",
        "a+b",
    ] {
        assert_403(
            &push_as(&server, Some(&t), key, "1"),
            &format!("key {key:?}"),
        );
    }
    let all = token(&claims(&["*"], &[], None));
    for key in ["x", "*", "a/b?c", "é"] {
        assert_eq!(push_as(&server, Some(&all), key, "1").0, 200, "{key:?}");
    }
}

/// `access_token=` in the query works like the header, for clients that
/// cannot set headers; a bad one there is a 401 as well.
#[test]
fn access_token_query_parameter_is_a_token() {
    let server = hs256_server(&[]);
    let t = token(&claims(&["k"], &["k"], None));
    let (status, body, _) = call(
        &server,
        "POST",
        &format!("/push?key=k&access_token={}", enc(&t)),
        None,
        "\"q\"",
    );
    assert_eq!(status, 200, "{body}");
    let bad = call(
        &server,
        "GET",
        "/blocking-get?key=k&groupId=g&timeout=0&access_token=x.y.z",
        None,
        "",
    );
    assert_401(&bad, "get with a garbage access_token");
    let path = format!(
        "/blocking-get?access_token={}&key=k&groupId=g&timeout=0",
        enc(&t)
    );
    assert_eq!(call(&server, "GET", &path, None, "").1, r#"["q"]"#);
}

/// Ack, nack and extend are consuming requests: no token is a 401, a token
/// for another key or group a 403, and neither changes the lease.
#[test]
fn ack_nack_extend_need_consume() {
    let server = hs256_server(&[]);
    let admin = root_token();
    assert_eq!(push_as(&server, Some(&admin), "k", "1").0, 200);
    let mine = token(&claims(&[], &["k"], Some(&["g"])));
    let (status, body, headers) = take_as(&server, Some(&mine), "k", "g", "&lease=60");
    assert_eq!((status, body.as_str()), (200, "[1]"));
    let batch = headers
        .get("batch-id")
        .expect("Batch-Id on a leased batch")
        .clone();
    let other_group = token(&claims(&[], &["k"], Some(&["h"])));
    let other_key = token(&claims(&["k"], &["j"], None));
    for op in ["ack", "nack", "extend"] {
        let path = format!("/{op}?key=k&groupId=g&batch={batch}&lease=60");
        assert_401(
            &call(&server, "POST", &path, None, ""),
            &format!("{op}, no token"),
        );
        assert_403(
            &call(&server, "POST", &path, Some(&other_group), ""),
            &format!("{op}, group h"),
        );
        assert_403(
            &call(&server, "POST", &path, Some(&other_key), ""),
            &format!("{op}, key j"),
        );
    }
    // Still leased to (k, g): nothing was nacked, so nobody gets it again...
    assert_eq!(take_as(&server, Some(&mine), "k", "g", "").1, "[]");
    // ...and the rightful ack is the first that counts.
    let path = format!("/ack?key=k&groupId=g&batch={batch}");
    let (status, body, _) = call(&server, "POST", &path, Some(&mine), "");
    assert_eq!((status, body.as_str()), (200, r#"{"acked":1}"#));
}

/// `/healthz` needs no token; without `--metrics-token-file`, neither does
/// `/metrics`, even with JWTs required for the queue.
#[test]
fn healthz_and_metrics_are_free_without_a_metrics_token() {
    let server = hs256_server(&[]);
    assert_eq!(get(&server, "/healthz"), (200, "ok".to_string()));
    assert_eq!(get(&server, "/metrics").0, 200);
}

/// Refusals are counted by reason: `unauthorized` for 401s, `forbidden` for
/// 403s.
#[test]
fn refusals_are_counted_as_unauthorized_and_forbidden() {
    let server = hs256_server(&[]);
    let _ = push_as(&server, None, "k", "1");
    let _ = take_as(&server, Some("garbage"), "k", "g", "");
    let _ = push_as(&server, Some(&token(&claims(&[], &[], None))), "k", "1");
    assert_eq!(metric(&server, &rejected_metric("unauthorized")), Some(2));
    assert_eq!(metric(&server, &rejected_metric("forbidden")), Some(1));
}
