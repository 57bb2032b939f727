//! Shared pieces of the "Who may do what" tests (`tests/auth.rs`,
//! `tests/auth_keys.rs`, `tests/cors.rs`, `tests/browser.rs`): key files in a
//! temporary directory, keys generated on the spot, tokens minted with
//! `jsonwebtoken` (and by hand where the library refuses to, e.g.
//! `alg: none`), and calls that carry a token or an `Origin`.
//!
//! Keys are made in the test rather than checked in, so no private key lives
//! in the repository and every run signs with keys nobody else has.
//! Each test binary uses only part of this module, hence `dead_code`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::common::{Server, agent, enc, finish};

/// The rejection counter of `/metrics`, by reason label.
pub fn rejected_metric(reason: &str) -> String {
    format!("event_syncer_rejected_total{{reason=\"{reason}\"}}")
}

/// A directory under the system's temp dir, removed on drop: the key files
/// a server is started with.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let name = format!(
            "event-syncer-test-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Writes `bytes` to `name` in the directory and returns its path.
    pub fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server together with the directory holding its key files, so the files
/// outlive neither the test nor the server.
pub struct Keyed {
    pub server: Server,
    pub dir: TempDir,
}

impl std::ops::Deref for Keyed {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

/// The secret every HS256 test server is started with.
pub const SECRET: &str = "correct horse battery staple, 32+ bytes long";

/// A server requiring HS256 tokens signed with [`SECRET`] (written without a
/// trailing newline, so the file's bytes are the secret whatever the server
/// does with one), with `extra` flags.
pub fn hs256_server(extra: &[&str]) -> Keyed {
    let dir = TempDir::new();
    let secret = dir.file("secret", SECRET);
    let mut args = vec!["--jwt-secret-file", secret.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    Keyed {
        server: Server::start(&args),
        dir,
    }
}

/// A server requiring tokens signed by the key whose public half is `pem`.
pub fn public_key_server(pem: &str) -> Keyed {
    let dir = TempDir::new();
    let key = dir.file("key.pem", pem);
    Keyed {
        server: Server::start(&["--jwt-public-key-file", key.to_str().expect("utf-8 path")]),
        dir,
    }
}

/// Seconds since the epoch, the unit of `exp` and `nbf`.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The claims of a token valid for an hour that allows pushing to `push`
/// and consuming `consume` (and, if given, only as `groups`).
pub fn claims(push: &[&str], consume: &[&str], groups: Option<&[&str]>) -> Value {
    let mut grant = json!({ "push": push, "consume": consume });
    if let Some(g) = groups {
        grant["groups"] = json!(g);
    }
    json!({ "event_syncer": grant, "exp": now() + 3600 })
}

/// A token for `claims` signed with `alg` and `key`.
pub fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).expect("sign token")
}

/// An HS256 token for `claims` signed with `secret`.
pub fn hs256(secret: &[u8], claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret).expect("HMAC key");
    sign(Algorithm::HS256, &key, claims)
}

/// An HS256 token for `claims` signed with [`SECRET`].
pub fn token(claims: &Value) -> String {
    hs256(SECRET.as_bytes(), claims)
}

/// A token that may do anything.
pub fn root_token() -> String {
    token(&claims(&["*"], &["*"], None))
}

/// Unpadded base64url (RFC 4648 section 5), the encoding of a JWT's parts:
/// for tokens the library will not make, such as `alg: none`.
pub fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned token (`alg: none`, empty signature) for `claims`: the
/// classic way to skip verification in careless JWT code.
pub fn alg_none(claims: &Value) -> String {
    let head = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let body = b64url(claims.to_string().as_bytes());
    format!("{head}.{body}.")
}

/// A generated key pair in PEM (PKCS#8 private key, SPKI public key, the
/// forms `openssl` writes), with the algorithm it signs for.
pub struct KeyPair {
    pub alg: Algorithm,
    pub private_pem: String,
    pub public_pem: String,
}

impl KeyPair {
    pub fn encoding_key(&self) -> EncodingKey {
        let pem = self.private_pem.as_bytes();
        match self.alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            other => panic!("no key pair for {other:?}"),
        }
        .expect("private key PEM")
    }

    /// A token for `claims` signed with this pair's private key.
    pub fn sign(&self, claims: &Value) -> String {
        sign(self.alg, &self.encoding_key(), claims)
    }
}

/// A fresh P-256 key pair, for ES256.
pub fn es256_pair() -> KeyPair {
    use p256::elliptic_curve::Generate;
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let secret = p256::SecretKey::generate_from_rng(&mut rand::rng());
    KeyPair {
        alg: Algorithm::ES256,
        private_pem: secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pkcs8")
            .to_string(),
        public_pem: secret
            .public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("spki"),
    }
}

/// A fresh Ed25519 key pair, for EdDSA.
pub fn ed25519_pair() -> KeyPair {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey, spki::der::pem::LineEnding};
    let signing = ed25519_dalek::SigningKey::generate(&mut rand::rng());
    KeyPair {
        alg: Algorithm::EdDSA,
        private_pem: signing
            .to_pkcs8_pem(LineEnding::LF)
            .expect("pkcs8")
            .to_string(),
        public_pem: signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("spki"),
    }
}

/// A 2048-bit RSA key pair, for RS256. Made at most twice per test binary
/// (index 0 and 1): even optimised, RSA key generation is the slowest step
/// of these tests.
pub fn rsa_pair(index: usize) -> &'static KeyPair {
    static PAIRS: [OnceLock<KeyPair>; 2] = [OnceLock::new(), OnceLock::new()];
    PAIRS[index].get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::PrivateKey::new(&mut rand::rng(), 2048).expect("rsa keygen");
        KeyPair {
            alg: Algorithm::RS256,
            private_pem: private
                .to_pkcs8_pem(LineEnding::LF)
                .expect("pkcs8")
                .to_string(),
            public_pem: private
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .expect("spki"),
        }
    })
}

/// What a call returned: status, body, headers (names lowercased).
pub type Reply = (u16, String, HashMap<String, String>);

/// `method path` with `Authorization: Bearer <token>` when `token` is given,
/// and `body` for a POST.
pub fn call(server: &Server, method: &str, path: &str, token: Option<&str>, body: &str) -> Reply {
    let url = server.url(path);
    let bearer = token.map(|t| format!("Bearer {t}"));
    let a = agent();
    match method {
        "GET" => {
            let mut req = a.get(url);
            if let Some(b) = &bearer {
                req = req.header("Authorization", b);
            }
            finish(req.call())
        }
        "POST" => {
            let mut req = a.post(url);
            if let Some(b) = &bearer {
                req = req.header("Authorization", b);
            }
            finish(req.send(body))
        }
        other => panic!("call: no {other}"),
    }
}

/// `POST /push?key=KEY` with `body` and maybe a bearer token.
pub fn push_as(server: &Server, token: Option<&str>, key: &str, body: &str) -> Reply {
    call(
        server,
        "POST",
        &format!("/push?key={}", enc(key)),
        token,
        body,
    )
}

/// `GET /blocking-get?key=KEY&groupId=GROUP&timeout=0` (plus `extra`
/// query parameters) with maybe a bearer token.
pub fn take_as(server: &Server, token: Option<&str>, key: &str, group: &str, extra: &str) -> Reply {
    let path = format!(
        "/blocking-get?key={}&groupId={}&timeout=0{extra}",
        enc(key),
        enc(group)
    );
    call(server, "GET", &path, token, "")
}

/// The events group (key, group) can take now, read with a token that may
/// do anything: what a refused request must have left alone.
pub fn events_left(server: &Server, key: &str, group: &str) -> Value {
    let (status, body, _) = take_as(server, Some(&root_token()), key, group, "");
    assert_eq!(status, 200, "authorised take of {key}/{group}: {body}");
    serde_json::from_str(&body).expect("JSON batch")
}

/// Asserts a `401` that tells the client to bring a bearer token.
pub fn assert_401(reply: &Reply, what: &str) {
    let (status, body, headers) = reply;
    assert_eq!(*status, 401, "{what}: want 401, got {status} {body}");
    let challenge = headers.get("www-authenticate").map(String::as_str);
    assert!(
        challenge.is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("bearer")),
        "{what}: a 401 needs `WWW-Authenticate: Bearer`, got {challenge:?}"
    );
    crate::common::assert_json_error(body.as_bytes());
}

/// Asserts a `403` with a JSON error body.
pub fn assert_403(reply: &Reply, what: &str) {
    let (status, body, _) = reply;
    assert_eq!(*status, 403, "{what}: want 403, got {status} {body}");
    crate::common::assert_json_error(body.as_bytes());
}
