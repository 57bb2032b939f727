//! `event-syncer token`: an HS256 token for scripts, tests and the README,
//! signed with the same secret file the server reads, by the same crate
//! that checks it.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::grants::Claim;
use super::jwt::{read_key_file, strip_newline, unix_now};
use crate::config::TokenArgs;

#[derive(Serialize)]
struct Claims<'a> {
    event_syncer: &'a Claim,
    iat: u64,
    exp: u64,
}

/// The token `args` describe, valid from now for `args.ttl`.
pub fn mint_token(args: &TokenArgs) -> Result<String, String> {
    let secret = read_key_file(&args.secret_file, "--secret-file")?;
    let secret = strip_newline(&secret);
    if secret.is_empty() {
        return Err(format!(
            "--secret-file {}: the secret is empty",
            args.secret_file.display()
        ));
    }
    if args.push.is_empty() && args.consume.is_empty() {
        return Err("a token that allows nothing: give --push or --consume patterns".to_string());
    }
    let claim = Claim {
        push: args.push.clone(),
        consume: args.consume.clone(),
        groups: args.groups.clone(),
    };
    let now = unix_now();
    let claims = Claims {
        event_syncer: &claim,
        iat: now,
        // Whole seconds, rounded up: a token never ends before it was asked to.
        exp: now + args.ttl.div_ceil(1000),
    };
    let key = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(|e| e.to_string())
}
