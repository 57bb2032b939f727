//! Query parameters and bodies, checked: every rule of SPEC.md about what a
//! request may say, and the `400` message for each way it can be wrong.

use std::borrow::Cow;

use crate::config::{Millis, parse_seconds};
use crate::http::query_param;

/// Longest key or groupId, in bytes after percent-decoding.
pub const MAX_NAME: usize = 1024;

/// The largest `limit` (SPEC.md: 1 to 1,000,000).
pub const MAX_LIMIT: u32 = 1_000_000;

/// The longest lease, in ms (SPEC.md: at most 300 s).
pub const MAX_LEASE: Millis = 300_000;

/// A required, non-empty, at most [`MAX_NAME`]-byte query parameter.
pub fn name<'a>(query: &'a str, name: &'static str) -> Result<Cow<'a, str>, &'static str> {
    let value = query_param(query, name).map_err(|e| e.message)?;
    match value {
        None => Err(match name {
            "key" => "missing query parameter: key",
            _ => "missing query parameter: groupId",
        }),
        Some(v) if v.is_empty() => Err(match name {
            "key" => "key must not be empty",
            _ => "groupId must not be empty",
        }),
        Some(v) if v.len() > MAX_NAME => Err(match name {
            "key" => "key is longer than 1024 bytes",
            _ => "groupId is longer than 1024 bytes",
        }),
        Some(v) => Ok(v),
    }
}

/// `timeout=SECONDS`: a plain decimal, capped at `poll_timeout`.
pub fn timeout(query: &str, poll_timeout: Millis) -> Result<Millis, &'static str> {
    match query_param(query, "timeout").map_err(|e| e.message)? {
        None => Ok(poll_timeout),
        Some(text) => Ok(parse_seconds(&text)
            .ok_or("timeout must be a plain decimal number of seconds")?
            .min(poll_timeout)),
    }
}

/// `limit=N`, 1 to [`MAX_LIMIT`]; absent is no limit.
pub fn limit(query: &str) -> Result<u32, &'static str> {
    const BAD: &str = "limit must be a whole number from 1 to 1000000";
    match query_param(query, "limit").map_err(|e| e.message)? {
        None => Ok(u32::MAX),
        Some(text) => match digits(&text) {
            Some(n @ 1..) if n <= u64::from(MAX_LIMIT) => Ok(n as u32),
            _ => Err(BAD),
        },
    }
}

/// `format=raw|envelope`: whether elements are envelopes.
pub fn envelope(query: &str) -> Result<bool, &'static str> {
    match query_param(query, "format")
        .map_err(|e| e.message)?
        .as_deref()
    {
        None | Some("raw") => Ok(false),
        Some("envelope") => Ok(true),
        Some(_) => Err("format must be raw or envelope"),
    }
}

/// `lease=SECONDS`: a plain decimal above 0, at most 300 s. `required`
/// for `/extend`; on a blocking-get absent means no lease (0).
pub fn lease(query: &str, required: bool) -> Result<Millis, &'static str> {
    const BAD: &str = "lease must be a plain decimal number of seconds, above 0 and at most 300";
    match query_param(query, "lease").map_err(|e| e.message)? {
        None if required => Err("missing query parameter: lease"),
        None => Ok(0),
        Some(text) => match parse_seconds(&text) {
            Some(ms @ 1..) if ms <= MAX_LEASE => Ok(ms),
            _ => Err(BAD),
        },
    }
}

/// `batch=B`: a positive integer.
pub fn batch(query: &str) -> Result<u64, &'static str> {
    match query_param(query, "batch").map_err(|e| e.message)? {
        None => Err("missing query parameter: batch"),
        Some(text) => match digits(&text) {
            Some(n @ 1..) => Ok(n),
            _ => Err("batch must be a positive integer"),
        },
    }
}

/// A plain decimal integer (digits only) that fits a `u64`.
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The body without surrounding JSON whitespace: space, tab, CR and LF
/// only (RFC 8259 section 2); a form feed is not JSON whitespace.
pub fn trim_json_whitespace(mut body: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while let [first, rest @ ..] = body
        && ws(first)
    {
        body = rest;
    }
    while let [rest @ .., last] = body
        && ws(last)
    {
        body = rest;
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! param {
        ($($name:ident: $f:expr, $query:expr => $want:expr;)*) => {
            $(#[test] fn $name() { assert_eq!($f($query), $want, "{:?}", $query); })*
        };
    }

    param! {
        limit_absent: limit, "" => Ok(u32::MAX);
        limit_one: limit, "limit=1" => Ok(1);
        limit_max: limit, "limit=1000000" => Ok(1_000_000);
        limit_zero: limit, "limit=0" => Err("limit must be a whole number from 1 to 1000000");
        limit_too_big: limit, "limit=1000001" => Err("limit must be a whole number from 1 to 1000000");
        limit_negative: limit, "limit=-1" => Err("limit must be a whole number from 1 to 1000000");
        limit_empty: limit, "limit=" => Err("limit must be a whole number from 1 to 1000000");
        limit_word: limit, "limit=x" => Err("limit must be a whole number from 1 to 1000000");
        limit_huge: limit, "limit=99999999999999999999999" => Err("limit must be a whole number from 1 to 1000000");
        format_absent: envelope, "" => Ok(false);
        format_raw: envelope, "format=raw" => Ok(false);
        format_envelope: envelope, "format=envelope" => Ok(true);
        format_xml: envelope, "format=xml" => Err("format must be raw or envelope");
        batch_ok: batch, "batch=17" => Ok(17);
        batch_zero: batch, "batch=0" => Err("batch must be a positive integer");
        batch_word: batch, "batch=x" => Err("batch must be a positive integer");
        batch_missing: batch, "" => Err("missing query parameter: batch");
    }

    #[test]
    fn leases_are_above_0_and_at_most_300_seconds() {
        assert_eq!(lease("lease=0.3", false), Ok(300));
        assert_eq!(lease("lease=300", false), Ok(300_000));
        assert_eq!(lease("", false), Ok(0));
        assert!(lease("", true).is_err());
        for bad in [
            "lease=0",
            "lease=301",
            "lease=-1",
            "lease=abc",
            "lease=",
            "lease=300.001",
        ] {
            assert!(lease(bad, false).is_err(), "{bad}");
        }
    }
}
