//! The bytes of a response: status line, the few fields the server sends,
//! and decimals written without `fmt`.
//!
//! The server's responses are small and built from its own constants, so the
//! writers compute the exact length first and reserve once: one allocation
//! per response at most, none when the output buffer already has room.

/// Digits in `u64::MAX`: the longest decimal we ever write.
const MAX_DIGITS: usize = u64::MAX.ilog10() as usize + 1;

/// The standard reason phrase for the statuses the server uses, "Unknown"
/// otherwise.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        // RFC 9110's name; RFC 7231 called it "Payload Too Large".
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends a complete response to `out`: status line `HTTP/1.1 {status} {reason}`,
/// `Content-Type` (if `content_type` is non-empty), `Content-Length: body.len()`,
/// each of `extra` as `Name: value`, then `Connection: close` when
/// `!keep_alive`, or `Connection: keep-alive` when `keep_alive &&
/// minor_version == 0`; then CRLF and the body.
///
/// Reserves the exact size once and allocates nothing else. The status line
/// always says HTTP/1.1, the version we implement, also to a 1.0 client (RFC
/// 9110 section 2.5). `extra` must not contain CR or LF: these are the
/// server's own constants, never client input.
#[allow(clippy::too_many_arguments)]
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
    minor_version: u8,
) {
    let head = head_len(
        status,
        content_type,
        extra,
        body.len(),
        keep_alive,
        minor_version,
    );
    out.reserve(head + body.len());
    write_response_head(
        out,
        status,
        content_type,
        extra,
        body.len(),
        keep_alive,
        minor_version,
    );
    out.extend_from_slice(body);
}

/// Appends just the head (everything but the body) for a body of `body_len` bytes: used when the body is written from a shared buffer.
///
/// Same fields and rules as [`write_response`].
#[allow(clippy::too_many_arguments)]
pub fn write_response_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body_len: usize,
    keep_alive: bool,
    minor_version: u8,
) {
    out.reserve(head_len(
        status,
        content_type,
        extra,
        body_len,
        keep_alive,
        minor_version,
    ));
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    if !content_type.is_empty() {
        push_field(out, "Content-Type", content_type);
    }
    if has_length(status) {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, body_len as u64);
        out.extend_from_slice(b"\r\n");
    }
    for &(name, value) in extra {
        debug_assert!(
            !(name.contains(['\r', '\n']) || value.contains(['\r', '\n'])),
            "header field {name:?} would split the response"
        );
        push_field(out, name, value);
    }
    if let Some(connection) = connection_field(keep_alive, minor_version) {
        out.extend_from_slice(connection);
    }
    out.extend_from_slice(b"\r\n");
}

/// The `Connection` field line, when the default for the version is not
/// what we mean to do.
fn connection_field(keep_alive: bool, minor_version: u8) -> Option<&'static [u8]> {
    match (keep_alive, minor_version) {
        (false, _) => Some(b"Connection: close\r\n"),
        (true, 0) => Some(b"Connection: keep-alive\r\n"),
        (true, _) => None,
    }
}

/// Whether a response with `status` carries `Content-Length`: a 1xx or 204
/// must not (RFC 9110 section 8.6), it has no content by definition.
fn has_length(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204
}

/// The exact length [`write_response_head`] writes, so it can reserve once.
fn head_len(
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body_len: usize,
    keep_alive: bool,
    minor_version: u8,
) -> usize {
    let field = |name: &str, value: &str| name.len() + 2 + value.len() + 2;
    "HTTP/1.1 ".len()
        + decimal_len(usize::from(status))
        + 1
        + reason(status).len()
        + 2
        + if content_type.is_empty() {
            0
        } else {
            field("Content-Type", content_type)
        }
        + if has_length(status) {
            "Content-Length: ".len() + decimal_len(body_len) + 2
        } else {
            0
        }
        + extra
            .iter()
            .map(|&(name, value)| field(name, value))
            .sum::<usize>()
        + connection_field(keep_alive, minor_version).map_or(0, <[u8]>::len)
        + 2
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal, digits built backwards in a stack buffer (the
/// `itoa` approach) so that the hot path never formats through `fmt`.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; MAX_DIGITS];
    let mut start = MAX_DIGITS;
    loop {
        start -= 1;
        // n % 10 < 10: the cast cannot truncate.
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

fn decimal_len(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::CONTINUE;

    /// Expected bytes of a written response, compared as text for readable
    /// failures.
    macro_rules! response {
        ($name:ident, ($($arg:expr),* $(,)?), $expected:expr) => {
            #[test]
            fn $name() {
                let mut out = Vec::new();
                write_response(&mut out, $($arg),*);
                assert_eq!(String::from_utf8_lossy(&out), $expected);
            }
        };
    }

    #[test]
    fn reasons() {
        let expected = [
            (100, "Continue"),
            (200, "OK"),
            (204, "No Content"),
            (400, "Bad Request"),
            (401, "Unauthorized"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (409, "Conflict"),
            (413, "Content Too Large"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
            (418, "Unknown"),
            (0, "Unknown"),
        ];
        for (status, phrase) in expected {
            assert_eq!(reason(status), phrase, "{status}");
        }
    }

    // Responses, byte for byte.
    response!(
        response_ok_keep_alive_1_1,
        (200, "application/json", &[], b"[]", true, 1),
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"
    );
    response!(
        response_close,
        (400, "application/json", &[], br#"{"error":"x"}"#, false, 1),
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"error\":\"x\"}"
    );
    response!(
        response_keep_alive_1_0,
        (200, "text/plain", &[], b"ok", true, 0),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
    );
    response!(
        response_close_1_0,
        (200, "text/plain", &[], b"ok", false, 0),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
    response!(
        response_extra_fields,
        (
            503,
            "application/json",
            &[("Retry-After", "1"), ("X-Id", "7")],
            b"{}",
            true,
            1
        ),
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 2\r\nRetry-After: 1\r\nX-Id: 7\r\n\r\n{}"
    );
    response!(
        response_no_content_type,
        (405, "", &[("Allow", "POST")], b"", true, 1),
        "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nAllow: POST\r\n\r\n"
    );
    response!(
        response_no_content_has_no_length,
        (204, "", &[("Allow", "GET")], b"", true, 1),
        "HTTP/1.1 204 No Content\r\nAllow: GET\r\n\r\n"
    );
    response!(
        response_unknown_status,
        (299, "", &[], b"", true, 1),
        "HTTP/1.1 299 Unknown\r\nContent-Length: 0\r\n\r\n"
    );

    #[test]
    fn response_head_for_shared_body() {
        let mut out = b"previous response".to_vec();
        write_response_head(&mut out, 200, "application/json", &[], 1_048_576, true, 1);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "previous responseHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
        );
    }

    /// `write_response`'s arguments after `out`.
    type ResponseArgs = (
        u16,
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [u8],
        bool,
        u8,
    );

    #[test]
    fn response_reserves_exactly() {
        let cases: [ResponseArgs; 4] = [
            (200, "application/json", &[], b"[1,2,3]", true, 1),
            (
                413,
                "application/json",
                &[("Retry-After", "10")],
                b"{}",
                false,
                1,
            ),
            (100, "", &[], b"", true, 0),
            (
                505,
                "text/plain",
                &[("A", ""), ("", "b")],
                &[0; 1000],
                false,
                0,
            ),
        ];
        for (status, content_type, extra, body, keep_alive, minor) in cases {
            let head = head_len(status, content_type, extra, body.len(), keep_alive, minor);
            // With exactly the computed room, the writer must not grow `out`.
            let mut out = Vec::with_capacity(head + body.len());
            write_response(
                &mut out,
                status,
                content_type,
                extra,
                body,
                keep_alive,
                minor,
            );
            assert_eq!(out.len(), head + body.len(), "status {status}");
            assert_eq!(out.capacity(), head + body.len(), "status {status}");
        }
    }

    #[test]
    fn decimals() {
        for n in [0, 1, 9, 10, 99, 100, 12345, usize::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n as u64);
            assert_eq!(String::from_utf8_lossy(&out), n.to_string());
            assert_eq!(decimal_len(n), out.len());
        }
    }

    #[test]
    fn continue_is_a_complete_interim_response() {
        let mut headers = [httparse::EMPTY_HEADER; 1];
        let mut response = httparse::Response::new(&mut headers);
        assert_eq!(
            response.parse(CONTINUE),
            Ok(httparse::Status::Complete(CONTINUE.len()))
        );
        assert_eq!(
            (response.code, response.reason),
            (Some(100), Some(reason(100)))
        );
    }
}
