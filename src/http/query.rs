//! Query strings: finding one parameter and percent-decoding it.
//!
//! Decoding happens only for the parameters a handler asks for, and only
//! when they contain an escape, so the common request borrows its key and
//! group straight from the read buffer.

use std::borrow::Cow;

use super::{HttpError, hex_value};

const BAD_ESCAPE: HttpError = HttpError::new(400, "bad percent-escape in query");
const NOT_UTF8: HttpError = HttpError::new(400, "query parameter is not UTF-8");

/// Finds parameter `name` in a raw query string and percent-decodes it (`+` is a space). First occurrence wins. Ok(None) when absent.
///
/// Errors (400): a bad escape (`%zz`, `%4` at the end), or decoded bytes that are not UTF-8.
///
/// A parameter without `=` (`?key`) has the empty value. Parameter names are
/// decoded too before comparing (`k%65y` is `key`); a name that does not
/// decode is some other parameter, not an error.
pub fn query_param<'a>(query: &'a str, name: &str) -> Result<Option<Cow<'a, str>>, HttpError> {
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let matches = if needs_decoding(key) {
            percent_decode(key).is_ok_and(|key| key == name)
        } else {
            key == name
        };
        if matches {
            return percent_decode(value).map(Some);
        }
    }
    Ok(None)
}

fn needs_decoding(raw: &str) -> bool {
    raw.bytes().any(|b| b == b'%' || b == b'+')
}

/// `application/x-www-form-urlencoded` decoding: `%XX` is a byte, `+` a
/// space; the result must be UTF-8.
fn percent_decode(raw: &str) -> Result<Cow<'_, str>, HttpError> {
    if !needs_decoding(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        decoded.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = bytes.next().and_then(hex_value).ok_or(BAD_ESCAPE)?;
                let lo = bytes.next().and_then(hex_value).ok_or(BAD_ESCAPE)?;
                hi << 4 | lo
            }
            b => b,
        });
    }
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| NOT_UTF8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `query_param(query, param)`, with errors reduced to their status.
    macro_rules! query {
        ($name:ident, $query:expr, $param:expr => $expected:expr) => {
            #[test]
            fn $name() {
                let expected: Result<Option<&str>, u16> = $expected;
                let got = query_param($query, $param);
                assert_eq!(
                    got.as_ref().map(Option::as_deref).map_err(|e| e.status),
                    expected
                );
            }
        };
    }

    // Query parameters.
    query!(query_plain, "key=k&groupId=g", "groupId" => Ok(Some("g")));
    query!(query_first_of_several, "key=k&groupId=g", "key" => Ok(Some("k")));
    query!(query_percent_space, "key=a%20b", "key" => Ok(Some("a b")));
    query!(query_plus_space, "key=a+b", "key" => Ok(Some("a b")));
    query!(query_encoded_plus, "key=a%2Bb", "key" => Ok(Some("a+b")));
    query!(query_lower_hex, "key=%2b%2f", "key" => Ok(Some("+/")));
    query!(query_utf8, "key=caf%C3%A9", "key" => Ok(Some("café")));
    query!(query_raw_utf8, "key=café", "key" => Ok(Some("café")));
    query!(query_truncated_utf8, "key=%C3", "key" => Err(400));
    query!(query_invalid_utf8, "key=%FF%FE", "key" => Err(400));
    query!(query_bad_escape, "key=%zz", "key" => Err(400));
    query!(query_escape_one_digit, "key=%4", "key" => Err(400));
    query!(query_escape_at_end, "key=a%", "key" => Err(400));
    query!(query_escape_half_hex, "key=%4g", "key" => Err(400));
    query!(query_empty_value, "key=&groupId=g", "key" => Ok(Some("")));
    query!(query_no_equals, "key&groupId=g", "key" => Ok(Some("")));
    query!(query_missing, "groupId=g", "key" => Ok(None));
    query!(query_empty, "", "key" => Ok(None));
    query!(query_prefix_is_not_name, "keys=a&ke=b", "key" => Ok(None));
    query!(query_repeated_first_wins, "key=first&key=second", "key" => Ok(Some("first")));
    query!(query_repeated_first_bad, "key=%zz&key=ok", "key" => Err(400));
    query!(query_other_bad_ignored, "x=%zz&key=ok", "key" => Ok(Some("ok")));
    query!(query_empty_pairs, "&&key=v&", "key" => Ok(Some("v")));
    query!(query_value_with_equals, "key=a=b", "key" => Ok(Some("a=b")));
    query!(query_encoded_name, "k%65y=v", "key" => Ok(Some("v")));
    query!(query_bad_name_skipped, "k%zzey=x&key=v", "key" => Ok(Some("v")));
    query!(query_case_sensitive_name, "Key=v", "key" => Ok(None));
}
