//! SPEC.md "Who may do what (v2)", the keys: `--jwt-public-key-file` with
//! each algorithm SPEC names (RS256, ES256, EdDSA) and the attacks that
//! target public-key verification (another key, `alg: none`, and the
//! algorithm confusion of an HS256 token keyed with the public key's PEM);
//! settings the server must refuse at start (exit code 2); and the `token`
//! subcommand, checked both by decoding what it prints and by using it.

mod authkit;
mod common;

use std::process::{Output, Stdio};

use authkit::*;
use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

/// Accepts tokens from `pair`; refuses tokens from `other` (same algorithm,
/// another key), from `foreign` (another algorithm), unsigned ones, and the
/// HS256 token whose secret is the public key file itself.
fn check_public_key(pair: &KeyPair, other: &KeyPair, foreign: &KeyPair) {
    let server = public_key_server(&pair.public_pem);
    let c = claims(&["k"], &["k"], None);
    let good = pair.sign(&c);
    let (status, body, _) = push_as(&server, Some(&good), "k", "\"signed\"");
    assert_eq!(
        status, 200,
        "{:?} token from the configured key: {body}",
        pair.alg
    );
    let confusion = hs256(pair.public_pem.as_bytes(), &c);
    let refused = [
        ("another key", other.sign(&c)),
        ("another algorithm", foreign.sign(&c)),
        ("alg none", alg_none(&c)),
        ("HS256 keyed with the public key PEM", confusion),
    ];
    for (what, t) in &refused {
        let what = format!("{:?} server, {what}", pair.alg);
        assert_401(&push_as(&server, Some(t), "k", "\"forged\""), &what);
        assert_401(&take_as(&server, Some(t), "k", "g", ""), &what);
    }
    let (status, body, _) = take_as(&server, Some(&good), "k", "g", "");
    assert_eq!((status, body.as_str()), (200, r#"["signed"]"#));
}

#[test]
fn es256_public_key() {
    check_public_key(&es256_pair(), &es256_pair(), &ed25519_pair());
}

#[test]
fn eddsa_public_key() {
    check_public_key(&ed25519_pair(), &ed25519_pair(), &es256_pair());
}

#[test]
fn rs256_public_key() {
    check_public_key(rsa_pair(0), rsa_pair(1), &es256_pair());
}

/// With a public key, permissions work as with a secret: a valid token
/// that does not allow the request is a 403 that changes nothing.
#[test]
fn public_key_tokens_are_checked_against_their_claims() {
    let pair = es256_pair();
    let server = public_key_server(&pair.public_pem);
    let reader = pair.sign(&claims(&[], &["k"], Some(&["g"])));
    assert_403(
        &push_as(&server, Some(&reader), "k", "1"),
        "push with consume-only",
    );
    let admin = pair.sign(&claims(&["*"], &["*"], None));
    assert_eq!(push_as(&server, Some(&admin), "k", "2").0, 200);
    assert_403(&take_as(&server, Some(&reader), "k", "h", ""), "group h");
    assert_eq!(take_as(&server, Some(&reader), "k", "g", "").1, "[2]");
}

/// Runs the binary with `args` on a free port and expects a refusal: exit
/// code 2 and a message that names one of `names` (the flag or the file).
fn assert_refused(args: &[&str], names: &[&str]) {
    let mut full = vec!["--listen", "127.0.0.1:0"];
    full.extend_from_slice(args);
    let (status, stderr) = run_to_exit(&full, &[], secs(10.0));
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?}: {status}; stderr:\n{stderr}"
    );
    assert!(
        names.iter().any(|n| stderr.contains(n)),
        "{args:?}: the message should name one of {names:?}; stderr:\n{stderr}"
    );
}

#[test]
fn unreadable_key_files_are_refused_at_start() {
    let dir = TempDir::new();
    let missing = dir.path().join("no-such-file");
    let missing = missing.to_str().expect("utf-8 path");
    for flag in [
        "--jwt-secret-file",
        "--jwt-public-key-file",
        "--metrics-token-file",
    ] {
        assert_refused(&[flag, missing], &[missing, flag.trim_start_matches('-')]);
    }
    // A directory is not a key file either.
    let here = dir.path().to_str().expect("utf-8 path");
    assert_refused(
        &["--jwt-public-key-file", here],
        &[here, "jwt-public-key-file"],
    );
}

#[test]
fn a_secret_and_a_public_key_together_are_refused() {
    let dir = TempDir::new();
    let secret = dir.file("secret", SECRET);
    let key = dir.file("key.pem", es256_pair().public_pem);
    let (s, k) = (secret.to_str().unwrap(), key.to_str().unwrap());
    assert_refused(
        &["--jwt-secret-file", s, "--jwt-public-key-file", k],
        &["jwt-secret-file", "jwt-public-key-file"],
    );
}

#[test]
fn malformed_public_keys_are_refused_at_start() {
    let dir = TempDir::new();
    let garbage =
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PUBLIC KEY-----\n";
    let cut = es256_pair()
        .public_pem
        .replace("-----END PUBLIC KEY-----", "");
    let cases = [
        ("garbage.pem", garbage.to_string()),
        ("truncated.pem", cut),
        ("not-pem.pem", SECRET.to_string()),
        ("empty.pem", String::new()),
    ];
    for (name, text) in cases {
        let path = dir.file(name, text);
        let p = path.to_str().expect("utf-8 path");
        assert_refused(
            &["--jwt-public-key-file", p],
            &[p, name, "jwt-public-key-file"],
        );
    }
}

/// An empty secret would let anyone sign tokens: "a careful user of an HTTP
/// queue would expect" it refused like any other bad setting.
#[test]
fn an_empty_secret_is_refused_at_start() {
    let dir = TempDir::new();
    let empty = dir.file("empty", "");
    let p = empty.to_str().expect("utf-8 path");
    assert_refused(&["--jwt-secret-file", p], &[p, "jwt-secret-file", "secret"]);
}

/// Runs `event-syncer token ...` and returns its output; panics if it is
/// still running after 10 s (a binary without the subcommand would start a
/// server instead, and `output()` would wait for ever).
fn token_cmd(args: &[&str]) -> Output {
    // `--listen` before the subcommand: should a binary lack `token` and
    // start a server, it must not take the default port from anyone.
    let mut full = vec!["--listen", "127.0.0.1:0", "token"];
    full.extend_from_slice(args);
    let mut child = command(&full, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run event-syncer token");
    let exited = poll_until(secs(10.0), || child.try_wait().expect("try_wait").is_some());
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("`event-syncer token {args:?}` still running after 10 s");
    }
    child.wait_with_output().expect("token output")
}

/// The one line a successful `token` run prints.
fn printed_token(out: &Output) -> String {
    assert!(
        out.status.success(),
        "token: {}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8 token");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "token prints the token alone: {text:?}");
    lines[0].trim().to_string()
}

/// What the `token` subcommand prints is an HS256 JWT for the secret, with
/// the claim SPEC describes: patterns repeatable or comma-separated, and
/// `exp` `--ttl` seconds away.
#[test]
fn token_subcommand_prints_the_claim_spec_describes() {
    let dir = TempDir::new();
    let secret = dir.file("secret", SECRET);
    let s = secret.to_str().expect("utf-8 path");
    let out = token_cmd(&[
        "--secret-file",
        s,
        "--push",
        "a,b",
        "--push",
        "c*",
        "--consume",
        "d",
        "--groups",
        "g1,g2",
        "--ttl",
        "600",
    ]);
    let t = printed_token(&out);
    let key = DecodingKey::from_secret(SECRET.as_bytes()).expect("HMAC key");
    let data = jsonwebtoken::decode::<Value>(&t, &key, &Validation::new(Algorithm::HS256))
        .unwrap_or_else(|e| panic!("token is not an HS256 JWT for the secret: {e}: {t}"));
    let grant = &data.claims["event_syncer"];
    assert_eq!(grant["push"], json!(["a", "b", "c*"]), "{}", data.claims);
    assert_eq!(grant["consume"], json!(["d"]), "{}", data.claims);
    assert_eq!(grant["groups"], json!(["g1", "g2"]), "{}", data.claims);
    let exp = data.claims["exp"].as_i64().expect("numeric exp");
    assert!((exp - now() - 600).abs() <= 5, "exp {exp} is not now+600");
}

/// A token from the subcommand works against a server given the same
/// secret file (here one ending in a newline, as `echo` writes it: whatever
/// the server makes of that newline, the tool must make the same), and
/// allows exactly what it was asked for.
#[test]
fn token_subcommand_output_works_against_the_server() {
    let dir = TempDir::new();
    let secret = dir.file("secret", format!("{SECRET}\n"));
    let s = secret.to_str().expect("utf-8 path");
    let server = Server::start(&["--jwt-secret-file", s]);
    let writer = printed_token(&token_cmd(&[
        "--secret-file",
        s,
        "--push",
        "in.*",
        "--consume",
        "none",
    ]));
    let reader = printed_token(&token_cmd(&[
        "--secret-file",
        s,
        "--push",
        "none",
        "--consume",
        "in.a",
        "--groups",
        "g",
    ]));
    let anygroup = printed_token(&token_cmd(&[
        "--secret-file",
        s,
        "--push",
        "none",
        "--consume",
        "in.a",
    ]));
    let (status, body, _) = push_as(&server, Some(&writer), "in.a", "1");
    assert_eq!(status, 200, "subcommand token refused: {body}");
    assert_403(
        &push_as(&server, Some(&writer), "out", "1"),
        "writer, key out",
    );
    assert_403(
        &push_as(&server, Some(&reader), "in.a", "1"),
        "reader pushing",
    );
    assert_403(
        &take_as(&server, Some(&writer), "in.a", "g", ""),
        "writer consuming",
    );
    assert_403(
        &take_as(&server, Some(&reader), "in.a", "h", ""),
        "reader, group h",
    );
    assert_eq!(take_as(&server, Some(&reader), "in.a", "g", "").1, "[1]");
    assert_eq!(
        take_as(&server, Some(&anygroup), "in.a", "other", "").1,
        "[1]"
    );
}

/// A token for another secret is refused by the tool's server: the tool
/// really signs with the file it is given.
#[test]
fn token_subcommand_signs_with_the_given_file() {
    let dir = TempDir::new();
    let mine = dir.file("mine", SECRET);
    let theirs = dir.file("theirs", "a different secret of enough length");
    let server = Server::start(&["--jwt-secret-file", mine.to_str().unwrap()]);
    let args = [
        "--secret-file",
        theirs.to_str().unwrap(),
        "--push",
        "*",
        "--consume",
        "*",
    ];
    let t = printed_token(&token_cmd(&args));
    assert_401(
        &push_as(&server, Some(&t), "k", "1"),
        "token for another secret",
    );
}
