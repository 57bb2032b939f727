//! JSON Web Tokens: verifying them with the `jsonwebtoken` crate, and
//! remembering the ones verified.
//!
//! The signature check is the crate's (RustCrypto underneath); what is ours
//! is the policy around it. Each key accepts exactly one algorithm, chosen
//! by the key, never by the token: an HS256 secret only HS256, an EC key
//! only ES256, an RSA key only RS256, an Ed25519 key only EdDSA. So a token
//! cannot pick `none`, nor sign itself with the public key as an HMAC secret
//! (the classic algorithm confusion). `exp` and `nbf` are honoured with no
//! leeway; neither is required (a token for a server may live as long as
//! its key); `aud` and `iss` are not checked, since none is configured.
//!
//! A pusher sends its token with every request, and an ES256 or RS256 check
//! costs tens of microseconds, more than the rest of a push. So a verified
//! token is cached by its exact bytes, with its compiled grants, until its
//! `exp`: a client reusing its token pays the signature check once. The
//! cache is bounded in entries and bytes; when full, expired entries go
//! first, and if that is not enough it starts over (every entry can be
//! verified again, so forgetting only costs time). The cache hashes with
//! aHash, keyed at random per process like std's SipHash but several times
//! faster on a token's few hundred bytes: a lookup is on every request.

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::grants::{Action, Claim, Grants};

/// Most tokens remembered.
const CACHE_ENTRIES: usize = 10_000;
/// Most bytes of tokens and grants remembered: 16 MiB.
const CACHE_BYTES: usize = 16 << 20;
/// Most refused tokens remembered (each at most a head, 8 KiB).
const REFUSED_ENTRIES: usize = 1024;

/// The claims read from a token: ours, and the two times that bound it.
#[derive(Debug, Deserialize)]
struct Claims {
    /// A token without the claim allows nothing (it may be another
    /// service's token): that is a `403`, not a `401`.
    #[serde(default)]
    event_syncer: Claim,
    exp: Option<u64>,
}

/// Checks tokens against one key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    /// What the key is, for the startup line.
    kind: &'static str,
    cache: HashMap<Box<[u8]>, Cached, ahash::RandomState>,
    cached_bytes: usize,
    /// Tokens refused for good after their signature was checked (a bad
    /// signature, an expired token) and why: a client retrying the same
    /// token in a loop, the common way to be unlucky, costs one signature
    /// check rather than one per retry. A token refused before its
    /// signature (malformed, another algorithm) is cheaper to refuse again
    /// than to keep, and one not valid *yet* will be. Cleared when full.
    refused: HashMap<Box<[u8]>, &'static str, ahash::RandomState>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kind", &self.kind)
            .field("cached", &self.cache.len())
            .finish()
    }
}

#[derive(Debug)]
struct Cached {
    grants: Grants,
    exp: Option<u64>,
}

impl Verifier {
    /// A verifier for HS256 tokens signed with the secret in `path` (the
    /// file's bytes, less one trailing newline).
    pub fn from_secret_file(path: &Path) -> Result<Verifier, String> {
        let secret = read_key_file(path, "--jwt-secret-file")?;
        let secret = strip_newline(&secret);
        let key = DecodingKey::from_secret(secret)
            .map_err(|_| format!("--jwt-secret-file {}: the secret is empty", path.display()))?;
        Ok(Verifier::new(key, Algorithm::HS256, "hs256"))
    }

    /// A verifier for tokens signed by the PEM public key in `path`: RS256
    /// for an RSA key, ES256 for a P-256 key, EdDSA for an Ed25519 key.
    pub fn from_public_key_file(path: &Path) -> Result<Verifier, String> {
        let pem = read_key_file(path, "--jwt-public-key-file")?;
        if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            return Ok(Verifier::new(key, Algorithm::ES256, "es256"));
        }
        if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            return Ok(Verifier::new(key, Algorithm::RS256, "rs256"));
        }
        if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
            return Ok(Verifier::new(key, Algorithm::EdDSA, "eddsa"));
        }
        Err(format!(
            "--jwt-public-key-file {}: not a PEM public key of RSA, P-256 or Ed25519 \
             (`-----BEGIN PUBLIC KEY-----`)",
            path.display()
        ))
    }

    fn new(key: DecodingKey, algorithm: Algorithm, kind: &'static str) -> Verifier {
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Verifier {
            key,
            validation,
            kind,
            cache: HashMap::default(),
            cached_bytes: 0,
            refused: HashMap::default(),
        }
    }

    /// `hs256`, `es256`, `rs256` or `eddsa`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Whether `token` allows `action` (`None`: any good token will do),
    /// or why it is refused. `now` is the Unix time in seconds, against
    /// which a cached token's `exp` is checked (the crate checks a new one
    /// against the system clock).
    pub fn allows(
        &mut self,
        token: &[u8],
        action: Option<Action<'_>>,
        now: u64,
    ) -> Result<bool, &'static str> {
        let allowed = |grants: &Grants| action.is_none_or(|a| grants.allow(a));
        // A hit, the common case, is one lookup and no allocation.
        match self.cache.get(token) {
            Some(hit) if hit.exp.is_none_or(|exp| now <= exp) => return Ok(allowed(&hit.grants)),
            Some(_) => {
                self.forget(token);
                return Err(self.refuse(token, "the token has expired"));
            }
            None => {}
        }
        if let Some(&why) = self.refused.get(token) {
            return Err(why);
        }
        let claims = match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => data.claims,
            Err(e) => {
                let why = refusal(e.kind());
                return Err(match e.kind() {
                    ErrorKind::InvalidSignature
                    | ErrorKind::ExpiredSignature
                    | ErrorKind::InvalidClaimFormat(_) => self.refuse(token, why),
                    _ => why,
                });
            }
        };
        let grants = Grants::new(&claims.event_syncer);
        let answer = allowed(&grants);
        self.remember(token, grants, claims.exp);
        Ok(answer)
    }

    fn remember(&mut self, token: &[u8], grants: Grants, exp: Option<u64>) {
        let bytes = token.len() + grants.footprint() + std::mem::size_of::<Cached>();
        if self.cache.len() >= CACHE_ENTRIES || self.cached_bytes + bytes > CACHE_BYTES {
            self.make_room();
        }
        self.cached_bytes += bytes;
        let cached = Cached { grants, exp };
        self.cache.insert(token.into(), cached);
    }

    /// Remembers that `token` is refused for good, and why.
    fn refuse(&mut self, token: &[u8], why: &'static str) -> &'static str {
        if self.refused.len() >= REFUSED_ENTRIES {
            self.refused.clear();
        }
        self.refused.insert(token.into(), why);
        why
    }

    fn forget(&mut self, token: &[u8]) {
        if let Some((token, cached)) = self.cache.remove_entry(token) {
            self.cached_bytes -= entry_bytes(&token, &cached);
        }
    }

    /// Drops expired tokens; if the cache is still three quarters full,
    /// drops them all.
    fn make_room(&mut self) {
        let now = unix_now();
        self.cache.retain(|_, c| c.exp.is_none_or(|exp| now <= exp));
        self.cached_bytes = self.cache.iter().map(|(t, c)| entry_bytes(t, c)).sum();
        if self.cache.len() >= CACHE_ENTRIES * 3 / 4 || self.cached_bytes >= CACHE_BYTES * 3 / 4 {
            self.cache = HashMap::default();
            self.cached_bytes = 0;
        }
    }
}

fn entry_bytes(token: &[u8], cached: &Cached) -> usize {
    token.len() + cached.grants.footprint() + std::mem::size_of::<Cached>()
}

/// The `401` message for each way a token can be wrong.
fn refusal(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
        ErrorKind::InvalidSignature => "the token's signature does not verify",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the token's algorithm is not the server's"
        }
        ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => "the token's claims are malformed",
        _ => "malformed token",
    }
}

/// The Unix time in whole seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A key file's bytes, or a message naming the setting and the file.
pub fn read_key_file(path: &Path, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{setting} {}: {e}", path.display()))
}

/// A secret as written by `echo secret > file`: without its last newline.
pub fn strip_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &[u8] = b"a secret of some length";

    fn verifier() -> Verifier {
        let key = DecodingKey::from_secret(SECRET).unwrap();
        Verifier::new(key, Algorithm::HS256, "hs256")
    }

    fn token(claims: serde_json::Value, secret: &[u8], alg: Algorithm) -> String {
        let key = EncodingKey::from_secret(secret).unwrap();
        jsonwebtoken::encode(&Header::new(alg), &claims, &key).unwrap()
    }

    fn push_all(exp: Option<u64>) -> serde_json::Value {
        let mut claims = serde_json::json!({"event_syncer": {"push": ["*"]}});
        if let Some(exp) = exp {
            claims["exp"] = exp.into();
        }
        claims
    }

    #[test]
    fn a_good_token_is_verified_once_and_then_found() {
        let mut v = verifier();
        let t = token(push_all(None), SECRET, Algorithm::HS256);
        let now = unix_now();
        assert!(v.allows(t.as_bytes(), None, now).is_ok());
        assert_eq!(v.cache.len(), 1);
        assert!(v.allows(t.as_bytes(), None, now).is_ok());
        assert_eq!(v.cache.len(), 1);
    }

    #[test]
    fn a_cached_token_stops_working_after_its_exp() {
        let mut v = verifier();
        let now = unix_now();
        let t = token(push_all(Some(now + 10)), SECRET, Algorithm::HS256);
        assert!(v.allows(t.as_bytes(), None, now).is_ok());
        assert!(
            v.allows(t.as_bytes(), None, now + 10).is_ok(),
            "valid through exp"
        );
        assert_eq!(
            v.allows(t.as_bytes(), None, now + 11).unwrap_err(),
            "the token has expired"
        );
        assert_eq!(v.cache.len(), 0);
        assert_eq!(v.cached_bytes, 0);
    }

    #[test]
    fn expired_future_and_wrongly_signed_tokens_are_refused_and_not_kept() {
        let mut v = verifier();
        let now = unix_now();
        let expired = token(push_all(Some(now - 1)), SECRET, Algorithm::HS256);
        assert_eq!(
            v.allows(expired.as_bytes(), None, now).unwrap_err(),
            "the token has expired"
        );
        let mut early = push_all(None);
        early["nbf"] = (now + 60).into();
        let early = token(early, SECRET, Algorithm::HS256);
        assert!(v.allows(early.as_bytes(), None, now).is_err());
        let forged = token(push_all(None), b"another secret", Algorithm::HS256);
        assert!(v.allows(forged.as_bytes(), None, now).is_err());
        let other_alg = token(push_all(None), SECRET, Algorithm::HS512);
        assert_eq!(
            v.allows(other_alg.as_bytes(), None, now).unwrap_err(),
            "the token's algorithm is not the server's"
        );
        assert!(v.allows(b"not.a.token", None, now).is_err());
        assert!(v.allows(b"", None, now).is_err());
        assert_eq!(v.cache.len(), 0);
    }

    #[test]
    fn a_refused_token_is_remembered_but_one_not_valid_yet_is_not() {
        let mut v = verifier();
        let now = unix_now();
        let forged = token(push_all(None), b"another secret", Algorithm::HS256);
        for _ in 0..3 {
            assert!(v.allows(forged.as_bytes(), None, now).is_err());
        }
        assert_eq!(v.refused.len(), 1, "verified once, remembered");
        let mut early = push_all(None);
        early["nbf"] = (now + 1).into();
        let early = token(early, SECRET, Algorithm::HS256);
        assert!(v.allows(early.as_bytes(), None, now).is_err());
        assert_eq!(v.refused.len(), 1, "a token not valid yet is not kept");
        assert!(v.allows(b"junk", None, now).is_err());
        assert_eq!(v.refused.len(), 1, "a malformed token is not kept");
        for i in 0..REFUSED_ENTRIES + 5 {
            let mut claims = push_all(None);
            claims["n"] = i.into();
            let forged = token(claims, b"another secret", Algorithm::HS256);
            assert!(v.allows(forged.as_bytes(), None, now).is_err());
            assert!(v.refused.len() <= REFUSED_ENTRIES);
        }
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(br#"{"event_syncer":{"push":["*"]}}"#);
        let mut v = verifier();
        for t in [format!("{head}.{body}."), format!("{head}.{body}")] {
            assert!(v.allows(t.as_bytes(), None, unix_now()).is_err(), "{t}");
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut v = verifier();
        let now = unix_now();
        for i in 0..CACHE_ENTRIES + 10 {
            let mut claims = push_all(None);
            claims["n"] = i.into();
            let t = token(claims, SECRET, Algorithm::HS256);
            assert!(v.allows(t.as_bytes(), None, now).is_ok());
            assert!(v.cache.len() <= CACHE_ENTRIES);
            assert!(v.cached_bytes <= CACHE_BYTES);
        }
        let recount: usize = v.cache.iter().map(|(t, c)| entry_bytes(t, c)).sum();
        assert_eq!(v.cached_bytes, recount);
    }

    #[test]
    fn a_secret_file_loses_one_trailing_newline_only() {
        assert_eq!(strip_newline(b"abc\n"), b"abc");
        assert_eq!(strip_newline(b"abc\r\n"), b"abc");
        assert_eq!(strip_newline(b"abc\n\n"), b"abc\n");
        assert_eq!(strip_newline(b"abc"), b"abc");
    }
}
