//! Who may do what: tokens, the `/metrics` secret, and browsers.
//!
//! SPEC.md's "Who may do what" in one place, as one question asked of
//! every request as soon as its head is whole, before a byte of its body is
//! read: a push with a bad token is refused without its 1 MiB upload, and
//! with `Expect: 100-continue` the refusal is sent instead of `100`. The
//! answer is either the CORS headers the request's answers carry, or a
//! refusal (`401`, `403`) with them. A refused request reaches neither the
//! API nor the store, so it stores and consumes nothing.
//!
//! The order of the checks is the order of what they protect: first the
//! page's origin (a cross-site page must not learn even whether its token
//! is good), then the token, then what the token allows.
//!
//! - `cors.rs`: page origins, the cross-site rule, the CORS headers;
//! - `jwt.rs`: verifying tokens, and the cache that makes it cheap;
//! - `grants.rs`: the `event_syncer` claim and its patterns;
//! - `mint.rs`: `event-syncer token`.
//!
//! The guard knows no sockets and no JSON beyond the token's claims.

pub mod cors;
mod grants;
mod jwt;
pub mod mint;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::params;
use crate::config::Config;
use crate::http::{Method, query_param};
use crate::metrics::Endpoint;
use cors::{Cors, CorsReply, Verdict};
use grants::Action;
use jwt::Verifier;

/// What the guard is asked about a request: its head, in the raw.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The endpoint its path names.
    pub endpoint: Endpoint,
    /// Its method.
    pub method: Method,
    /// Its raw query.
    pub query: &'a str,
    /// `Authorization`.
    pub authorization: Option<&'a [u8]>,
    /// `Origin`.
    pub origin: Option<&'a [u8]>,
    /// `Sec-Fetch-Site`.
    pub sec_fetch_site: Option<&'a [u8]>,
    /// `Access-Control-Request-Method` was sent: an `OPTIONS` with it is a
    /// CORS preflight.
    pub preflight: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `403`: a page from an origin that is not listed.
    Origin,
    /// `401`: no token, or one that does not verify.
    Unauthorized(&'static str),
    /// `403`: a good token that does not allow this.
    Forbidden(&'static str),
}

/// A refusal, with the CORS headers its answer carries (so that an allowed
/// page can read why it was refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Why.
    pub why: Refusal,
    /// The CORS headers of the answer.
    pub cors: CorsReply,
}

/// The rules of `--jwt-*`, `--metrics-token-file` and `--cors-origin`.
#[derive(Debug)]
pub struct Guard {
    jwt: Option<Verifier>,
    /// SHA-256 of the `/metrics` secret: digests are compared, in constant
    /// time, so neither the secret's bytes nor its length leak by timing.
    metrics_secret: Option<[u8; 32]>,
    cors: Cors,
}

impl Guard {
    /// The guard the settings describe; reads the key files, and refuses an
    /// unreadable or malformed one with a message naming it.
    pub fn from_config(config: &Config) -> Result<Guard, String> {
        let jwt = match (&config.jwt_secret_file, &config.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                return Err(
                    "--jwt-secret-file and --jwt-public-key-file exclude each other".to_string(),
                );
            }
            (Some(path), None) => Some(Verifier::from_secret_file(path)?),
            (None, Some(path)) => Some(Verifier::from_public_key_file(path)?),
            (None, None) => None,
        };
        let metrics_secret = match &config.metrics_token_file {
            None => None,
            Some(path) => {
                let bytes = jwt::read_key_file(path, "--metrics-token-file")?;
                let secret = jwt::strip_newline(&bytes);
                if secret.is_empty() {
                    return Err(format!("--metrics-token-file {}: empty", path.display()));
                }
                Some(Sha256::digest(secret).into())
            }
        };
        let cors = Cors::new(&config.cors_origins)?;
        Ok(Guard {
            jwt,
            metrics_secret,
            cors,
        })
    }

    /// The guard's settings, for the startup line.
    pub fn describe(&self) -> String {
        format!(
            "auth={} metrics_token={} cors_origins={}",
            self.jwt.as_ref().map_or("off", |v| v.kind()),
            if self.metrics_secret.is_some() {
                "on"
            } else {
                "off"
            },
            self.cors.describe()
        )
    }

    /// The CORS list, to render `Access-Control-Allow-Origin`.
    pub fn cors(&self) -> &Cors {
        &self.cors
    }

    /// Judges a request at `now` (Unix seconds).
    pub fn check(&mut self, ask: &Ask<'_>, now: u64) -> Result<CorsReply, Refused> {
        let allowed = match self.cors.judge(ask.origin, ask.sec_fetch_site) {
            Verdict::NotCrossSite => None,
            Verdict::Allowed(a) => Some(a),
            // A preflight changes nothing: it is answered (without CORS
            // headers, so the browser stops there) rather than refused.
            Verdict::Refused if ask.method == Method::Options => None,
            Verdict::Refused => {
                return Err(Refused {
                    why: Refusal::Origin,
                    cors: CorsReply::None,
                });
            }
        };
        let cors = match allowed {
            None => CorsReply::None,
            Some(a) if ask.method == Method::Options && ask.preflight => CorsReply::Preflight(a),
            Some(a) => CorsReply::Answer(a),
        };
        if ask.method == Method::Options {
            return Ok(cors);
        }
        let refuse = |why| Err(Refused { why, cors });
        match ask.endpoint {
            Endpoint::Metrics => match self.metrics_secret {
                Some(secret) if !bearer(ask.authorization).is_some_and(|t| same(t, &secret)) => {
                    refuse(Refusal::Unauthorized("/metrics needs its bearer token"))
                }
                _ => Ok(cors),
            },
            Endpoint::Push
            | Endpoint::BlockingGet
            | Endpoint::Ack
            | Endpoint::Nack
            | Endpoint::Extend => match self.authorize(ask, now) {
                Ok(()) => Ok(cors),
                Err(why) => refuse(why),
            },
            _ => Ok(cors),
        }
    }

    /// The token check of the endpoints that change the store.
    fn authorize(&mut self, ask: &Ask<'_>, now: u64) -> Result<(), Refusal> {
        let Some(verifier) = self.jwt.as_mut() else {
            return Ok(());
        };
        let from_query;
        let token = match bearer(ask.authorization) {
            Some(token) => token,
            None => {
                from_query = query_param(ask.query, "access_token").ok().flatten();
                match &from_query {
                    Some(token) if !token.is_empty() => token.as_bytes(),
                    _ => {
                        return Err(Refusal::Unauthorized(
                            "a token is required: Authorization: Bearer <token> or access_token=",
                        ));
                    }
                }
            }
        };
        // A missing or bad key or groupId is the API's `400` to give, once
        // the token is known to be good: then any good token will do.
        let key = params::name(ask.query, "key").ok();
        let push = ask.endpoint == Endpoint::Push;
        let group = if push {
            None
        } else {
            params::name(ask.query, "groupId").ok()
        };
        let action = match (&key, &group) {
            (Some(key), _) if push => Some(Action::Push { key }),
            (Some(key), Some(group)) => Some(Action::Consume { key, group }),
            _ => None,
        };
        match verifier.allows(token, action, now) {
            Ok(true) => Ok(()),
            Ok(false) if push => Err(Refusal::Forbidden(
                "the token does not allow pushing to this key",
            )),
            Ok(false) => Err(Refusal::Forbidden(
                "the token does not allow consuming this key as this group",
            )),
            Err(why) => Err(Refusal::Unauthorized(why)),
        }
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive,
/// RFC 9110 section 11.1).
fn bearer(authorization: Option<&[u8]>) -> Option<&[u8]> {
    let value = authorization?;
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || !rest.starts_with(b" ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Whether `presented` is the secret whose digest is `secret`, in time
/// that depends on neither.
fn same(presented: &[u8], secret: &[u8; 32]) -> bool {
    let digest: [u8; 32] = Sha256::digest(presented).into();
    digest.ct_eq(secret).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_reads_the_scheme_case_insensitively() {
        assert_eq!(bearer(Some(b"Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(Some(b"bearer   abc ")), Some(&b"abc"[..]));
        assert_eq!(bearer(Some(b"BEARER abc")), Some(&b"abc"[..]));
        assert_eq!(bearer(Some(b"Basic abc")), None);
        assert_eq!(bearer(Some(b"Bearer")), None);
        assert_eq!(bearer(Some(b"Bearer ")), None);
        assert_eq!(bearer(Some(b"Bearerabc")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn the_metrics_secret_is_compared_whole() {
        let secret: [u8; 32] = Sha256::digest(b"s3cret").into();
        assert!(same(b"s3cret", &secret));
        assert!(!same(b"s3cre", &secret));
        assert!(!same(b"s3cret!", &secret));
        assert!(!same(b"", &secret));
    }
}
