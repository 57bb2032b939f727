//! The request head: finding where it ends ([`HeadScanner`]) and reading it
//! once it is whole ([`parse_head`]).
//!
//! The scanner is the one place that decides where a head ends, and
//! `parse_head` asks it, so the two can never disagree. It looks at each
//! byte once, however the head arrives, and refuses early what can never
//! become a valid head (a bare CR or LF, a control byte, obs-fold, a bad
//! request line as soon as its CRLF is in), so garbage is answered at once
//! rather than after 8 KiB or a timeout.

use super::fields::Fields;
use super::{Head, HttpError, MAX_HEAD, Method, Status, is_control, is_tchar};

/// Most header fields in one request; the 65th is a `431`. Also the size of
/// the `httparse` header array on the stack (64 x 32 bytes).
const MAX_HEADERS: usize = 64;

const MALFORMED: HttpError = HttpError::new(400, "malformed request");
const BARE_LINE_END: HttpError = HttpError::new(400, "lines must end in CRLF");
const CONTROL_BYTE: HttpError = HttpError::new(400, "control character in request head");
const OBS_FOLD: HttpError = HttpError::new(400, "obs-fold or whitespace before a header field");
const BAD_METHOD: HttpError = HttpError::new(400, "malformed method");
const BAD_TARGET: HttpError = HttpError::new(400, "malformed request target");
const ASTERISK_NOT_OPTIONS: HttpError = HttpError::new(400, "asterisk-form is only for OPTIONS");
const MALFORMED_VERSION: HttpError = HttpError::new(400, "malformed HTTP version");
const OTHER_VERSION: HttpError = HttpError::new(505, "only HTTP/1.0 and HTTP/1.1 are supported");
const HEAD_TOO_LARGE: HttpError = HttpError::new(431, "request head too large");
const TOO_MANY_HEADERS: HttpError = HttpError::new(431, "too many header fields");

/// Where the scanner is in the head, by the last byte it looked at.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Before the request line: only empty lines (CRLF) so far.
    #[default]
    Leading,
    /// A CR among the leading empty lines.
    LeadingCr,
    /// Inside the request line.
    Request,
    /// The CR ending the request line.
    RequestCr,
    /// At the start of a field line, or of the empty line ending the head.
    Start,
    /// A CR at the start of a line: the head ends with the next LF.
    StartCr,
    /// Inside a field line.
    Field,
    /// The CR ending a field line.
    FieldCr,
}

/// The bytes that end a run inside a field line: a line end or a control
/// byte (HTAB is allowed in field values).
static FIELD_STOPS: [bool; 256] = stops(false);
/// The bytes that end a run in a request line past its method: those, HTAB
/// and the space before the version.
static TARGET_STOPS: [bool; 256] = stops(true);

const fn stops(request_line: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = (byte < 0x20 && byte != b'\t')
            || byte == 0x7f
            || (request_line && (byte == b' ' || byte == b'\t'));
        b += 1;
    }
    table
}

/// How many bytes at the start of `bytes` are not `stops`, where every stop
/// is below `below` or DEL. Words of eight bytes holding no byte below
/// `below` and no DEL are skipped whole (the "has a byte less than n" test
/// of Hacker's Delight, 6-1, exact for n <= 128); the word that may hold a
/// stop, and the rest after an HTAB (below `below` but allowed), go byte by
/// byte through the table.
fn run_len(bytes: &[u8], stops: &[bool; 256], below: u8) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_less = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0;
    let mut skipped = 0;
    for chunk in bytes.chunks_exact(8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        if has_less(x, below) || has_less(x ^ (ONES * 0x7f), 1) {
            break;
        }
        skipped += 8;
    }
    skipped
        + bytes[skipped..]
            .iter()
            .position(|&b| stops[usize::from(b)])
            .unwrap_or(bytes.len() - skipped)
}

/// Finds the end of a request head in a buffer that grows between calls.
#[derive(Debug, Default)]
pub struct HeadScanner {
    /// Bytes of the buffer already looked at.
    pos: usize,
    line: Line,
    /// Where the request line starts (after the leading empty lines).
    request_start: usize,
    /// The request line has had a space: it is past its method.
    past_method: bool,
    /// The answer, once there is one: asking again gives it again.
    done: Option<Result<usize, HttpError>>,
}

impl HeadScanner {
    /// `buf` holds the bytes of the connection from the start of the current request (each call sees the same bytes plus possibly more at the end).
    /// Ok(Some(len)) once the head's terminating empty line is in buf (len = bytes of the head incl. any leading empty lines and the final CRLFCRLF);
    /// Ok(None) not yet; Err(431 "request head too large") once more than MAX_HEAD (8 KiB) bytes are in without its end.
    ///
    /// Also `400` as soon as the bytes seen cannot begin a valid head: a bare
    /// CR or LF, a control byte other than HTAB, a line starting with
    /// whitespace, a request line that is complete and malformed (or a `505`
    /// for a well-formed version other than 1.0 and 1.1), or 8 KiB without a
    /// space ending the method. Each byte is looked at once over all calls.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, HttpError> {
        if let Some(done) = self.done {
            return done.map(Some);
        }
        let result = self.run(buf);
        match result {
            Ok(Some(len)) => self.done = Some(Ok(len)),
            Err(error) => self.done = Some(Err(error)),
            Ok(None) => {}
        }
        result
    }

    fn run(&mut self, buf: &[u8]) -> Result<Option<usize>, HttpError> {
        let window = &buf[..buf.len().min(MAX_HEAD)];
        while self.pos < window.len() {
            // Most bytes of a head sit inside a field line, or in a request
            // line past its method, where only a line end or a control byte
            // changes anything: skip such runs eight bytes at a time instead
            // of stepping the machine per byte (a token in `Authorization`
            // is most of a push's head).
            if self.line == Line::Field || (self.line == Line::Request && self.past_method) {
                let (stops, below) = if self.line == Line::Field {
                    (&FIELD_STOPS, b' ')
                } else {
                    (&TARGET_STOPS, b' ' + 1)
                };
                self.pos += run_len(&window[self.pos..], stops, below);
                if self.pos == window.len() {
                    break;
                }
            }
            let b = window[self.pos];
            let at = self.pos;
            self.pos += 1;
            self.line = match (self.line, b) {
                (Line::Leading, b'\r') => Line::LeadingCr,
                (Line::LeadingCr, b'\n') => Line::Leading,
                (Line::Leading, b'\n') => return Err(BARE_LINE_END),
                // Catch garbage (a TLS hello, random bytes) at its first byte.
                (Line::Leading, _) if !is_tchar(b) => return Err(BAD_METHOD),
                (Line::Leading, _) => {
                    self.request_start = at;
                    self.request_byte(b)?
                }
                (Line::Request, _) => self.request_byte(b)?,
                (Line::RequestCr, b'\n') => {
                    check_request_line(&window[self.request_start..at - 1])?;
                    Line::Start
                }
                (Line::Start, b'\r') => Line::StartCr,
                (Line::StartCr, b'\n') => return Ok(Some(self.pos)),
                (Line::Start, b' ' | b'\t') => return Err(OBS_FOLD),
                (Line::Field, b'\r') => Line::FieldCr,
                (Line::FieldCr, b'\n') => Line::Start,
                (_, b'\r' | b'\n') => return Err(BARE_LINE_END),
                (Line::Start | Line::Field, b) if is_control(b) => return Err(CONTROL_BYTE),
                (Line::Start | Line::Field, _) => Line::Field,
                // A CR followed by anything but LF.
                (Line::LeadingCr | Line::RequestCr | Line::StartCr | Line::FieldCr, _) => {
                    return Err(BARE_LINE_END);
                }
            };
        }
        if buf.len() <= MAX_HEAD {
            Ok(None)
        } else if self.line == Line::Request && !self.past_method {
            // Not an oversized head but not HTTP: no method is 8 KiB long.
            Err(BAD_METHOD)
        } else {
            Err(HEAD_TOO_LARGE)
        }
    }

    /// One byte of the request line: the state it leads to.
    fn request_byte(&mut self, b: u8) -> Result<Line, HttpError> {
        match b {
            b'\r' => Ok(Line::RequestCr),
            b'\n' => Err(BARE_LINE_END),
            b' ' => {
                self.past_method = true;
                Ok(Line::Request)
            }
            _ if !self.past_method && !is_tchar(b) => Err(BAD_METHOD),
            _ if is_control(b) || b == b'\t' => Err(CONTROL_BYTE),
            _ => Ok(Line::Request),
        }
    }
}

/// `method SP request-target SP HTTP-version`, each part checked strictly
/// (RFC 9112 section 3). httparse checks the method and spacing too, but is
/// lenient about the target and reports versions vaguely.
fn check_request_line(line: &[u8]) -> Result<(), HttpError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        // HTTP/0.9's `GET /` has no version at all.
        return Err(MALFORMED);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(BAD_METHOD);
    }
    check_target(method, target)?;
    match version {
        b"HTTP/1.0" | b"HTTP/1.1" => Ok(()),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(OTHER_VERSION)
        }
        _ => Err(MALFORMED_VERSION),
    }
}

/// origin-form, absolute-form (`http` or `https` only), or asterisk-form for
/// `OPTIONS`; visible ASCII only, no fragment (RFC 9112 section 3.2). The
/// authority-form is for `CONNECT`, which an origin server does not serve.
fn check_target(method: &[u8], target: &[u8]) -> Result<(), HttpError> {
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic() && b != b'#') {
        return Err(BAD_TARGET);
    }
    if target == b"*" {
        return if method == b"OPTIONS" {
            Ok(())
        } else {
            Err(ASTERISK_NOT_OPTIONS)
        };
    }
    if target[0] == b'/' || scheme_len(target).is_some() {
        Ok(())
    } else {
        Err(BAD_TARGET)
    }
}

/// The length of `http://` or `https://` (any case) at the start of an
/// absolute-form target.
fn scheme_len(target: &[u8]) -> Option<usize> {
    let starts = |prefix: &[u8]| {
        target
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    if starts(b"http://") {
        Some(7)
    } else if starts(b"https://") {
        Some(8)
    } else {
        None
    }
}

/// Parses the head at the start of `buf`. Partial while no complete head and buf.len() <= MAX_HEAD.
///
/// The end of the head is found by a fresh [`HeadScanner`], with all its
/// refusals; a caller that scans as bytes arrive should call this once, on
/// `&buf[..len]`, when its scanner returns `Some(len)`. Then: more than 64
/// header fields is a `431`; a field line `httparse` refuses (no colon, a
/// name that is not a token, whitespace before the colon), a missing,
/// repeated or invalid `Host` in HTTP/1.1 (repeated or invalid in HTTP/1.0),
/// a bad or conflicting `Content-Length`, `Content-Length` with
/// `Transfer-Encoding`, a `Transfer-Encoding` that does not end in a single
/// `chunked` is a `400`; another coding before `chunked` is a `501`.
///
/// Leading empty lines (CRLF) before a request line are allowed (RFC 9112
/// section 2.2) and counted in `len`. Only the first `MAX_HEAD` bytes are
/// looked at, so a caller may pass its whole read buffer.
pub fn parse_head(buf: &[u8]) -> Result<Status<Head<'_>>, HttpError> {
    let Some(len) = HeadScanner::default().scan(buf)? else {
        return Ok(Status::Partial);
    };
    parse_scanned(&buf[..len]).map(Status::Complete)
}

/// Parses a head whose end a [`HeadScanner`] has found: `head` is exactly
/// the `len` bytes its `scan` returned. The scanner's refusals are not made
/// again (it has seen these bytes), so a caller that scans as bytes arrive
/// pays for one scan and one parse per request.
pub fn parse_scanned(head: &[u8]) -> Result<Head<'_>, HttpError> {
    let (buf, len) = (head, head.len());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(&buf[..len]) {
        // The scanner and httparse agree on where a CRLF-only head ends.
        Ok(httparse::Status::Complete(parsed)) if parsed == len => {}
        Err(httparse::Error::TooManyHeaders) => return Err(TOO_MANY_HEADERS),
        _ => return Err(MALFORMED),
    }
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        // httparse fills all three before it reports Complete.
        return Err(MALFORMED);
    };

    let mut fields = Fields::default();
    for header in request.headers.iter() {
        fields.add(header.name, header.value)?;
    }
    let host = fields.host(minor_version)?;

    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Head {
        method: match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        },
        path: origin_path(path),
        query,
        minor_version,
        host,
        keep_alive: if minor_version == 0 {
            fields.keep_alive && !fields.close
        } else {
            !fields.close
        },
        expect_continue: minor_version == 1 && fields.expect_continue,
        framing: fields.framing(minor_version)?,
        raw: fields.raw(&buf[..len]),
        len,
    })
}

/// The path of an absolute-form target (`http://host:80/push` -> `/push`);
/// any other target as it is.
fn origin_path(target: &str) -> &str {
    let Some(after_scheme) = scheme_len(target.as_bytes()) else {
        return target;
    };
    match target[after_scheme..].find('/') {
        Some(slash) => &target[after_scheme + slash..],
        None => "/",
    }
}

#[cfg(test)]
mod run_tests {
    use super::*;

    /// The word-at-a-time skip finds what the table finds, for a stop at
    /// every offset, of every kind, behind every kind of allowed byte.
    #[test]
    fn run_len_agrees_with_the_table() {
        for (stops, below) in [(&FIELD_STOPS, b' '), (&TARGET_STOPS, b' ' + 1)] {
            for len in 0..40 {
                for fill in [b'a', b'\t', 0x80, 0xff, b'~', b'!'] {
                    for stop in [
                        None,
                        Some(0u8),
                        Some(b'\r'),
                        Some(b'\n'),
                        Some(0x1f),
                        Some(0x7f),
                        Some(b' '),
                    ] {
                        for at in 0..len {
                            let mut bytes = vec![fill; len];
                            if let Some(stop) = stop {
                                bytes[at] = stop;
                            }
                            let want = bytes
                                .iter()
                                .position(|&b| stops[usize::from(b)])
                                .unwrap_or(len);
                            assert_eq!(run_len(&bytes, stops, below), want, "{bytes:?}");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Framing, MAX_HEAD, query_param};

    /// A complete head whose listed fields have the listed values.
    macro_rules! head_ok {
        ($name:ident, $buf:expr => $($field:ident: $expected:expr),+) => {
            #[test]
            fn $name() {
                let buf = $buf;
                let head = complete_head(buf);
                $(assert_eq!(head.$field, $expected, stringify!($field));)+
            }
        };
    }

    /// A complete head whose raw-value accessors return the listed values.
    macro_rules! head_raw {
        ($name:ident, $buf:expr => $($field:ident: $expected:expr),+) => {
            #[test]
            fn $name() {
                let head = complete_head($buf);
                $(assert_eq!(head.$field(), $expected, stringify!($field));)+
            }
        };
    }

    macro_rules! head_partial {
        ($name:ident, $buf:expr) => {
            #[test]
            fn $name() {
                assert_eq!(parse_head($buf), Ok(Status::Partial));
            }
        };
    }

    macro_rules! head_err {
        ($name:ident, $buf:expr => $status:expr) => {
            #[test]
            fn $name() {
                match parse_head($buf) {
                    Err(e) => assert_eq!(e.status, $status, "{e}"),
                    other => panic!("expected a {} error, got {other:?}", $status),
                }
            }
        };
    }

    /// `scan` on every prefix of `buf`, one growing buffer as a socket
    /// would fill it, `step` bytes more each time.
    fn scan_growing(buf: &[u8], step: usize) -> (Result<Option<usize>, HttpError>, HeadScanner) {
        let mut scanner = HeadScanner::default();
        let mut end = 0;
        loop {
            end = (end + step).min(buf.len());
            let result = scanner.scan(&buf[..end]);
            if !matches!(result, Ok(None)) || end == buf.len() {
                return (result, scanner);
            }
        }
    }

    /// The scanner fed `buf` in pieces of `step` bytes: the head's length
    /// (or the error status), the same as in one call.
    macro_rules! scan {
        ($name:ident, $buf:expr, $step:expr => $expected:expr) => {
            #[test]
            fn $name() {
                let buf: &[u8] = $buf;
                let expected: Result<Option<usize>, u16> = $expected;
                let (result, _) = scan_growing(buf, $step);
                assert_eq!(result.map_err(|e| e.status), expected, "in pieces");
                let once = HeadScanner::default().scan(buf);
                assert_eq!(once.map_err(|e| e.status), expected, "at once");
            }
        };
    }

    head_ok!(get_root, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" =>
        method: Method::Get, path: "/", query: "", minor_version: 1, host: "h", keep_alive: true,
        expect_continue: false, framing: Framing::Empty, len: 27);

    // Request line, method, target.
    head_ok!(method_post, b"POST /push HTTP/1.1\r\nHost: h\r\n\r\n" => method: Method::Post);
    head_ok!(method_head, b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n" => method: Method::Head);
    head_ok!(method_put_is_other, b"PUT / HTTP/1.1\r\nHost: h\r\n\r\n" => method: Method::Other);
    head_ok!(method_is_case_sensitive, b"get / HTTP/1.1\r\nHost: h\r\n\r\n" => method: Method::Other);
    head_ok!(path_and_query, b"GET /blocking-get?key=a%20b&groupId=g HTTP/1.1\r\nHost: h\r\n\r\n" =>
        path: "/blocking-get", query: "key=a%20b&groupId=g");
    head_ok!(empty_query, b"GET /push? HTTP/1.1\r\nHost: h\r\n\r\n" => path: "/push", query: "");
    head_ok!(query_splits_at_first_mark, b"GET /a?b?c HTTP/1.1\r\nHost: h\r\n\r\n" => path: "/a", query: "b?c");
    head_ok!(path_not_decoded, b"GET /a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n" => path: "/a%2Fb");
    head_ok!(absolute_form, b"GET http://example.com:3031/push?key=k HTTP/1.1\r\nHost: h\r\n\r\n" =>
        path: "/push", query: "key=k");
    head_ok!(absolute_form_no_path, b"GET HTTPS://example.com?key=k HTTP/1.1\r\nHost: h\r\n\r\n" =>
        path: "/", query: "key=k");
    head_ok!(asterisk_form, b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n" => method: Method::Options, path: "*");
    head_ok!(leading_empty_lines_counted, b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n" => method: Method::Get, len: 31);
    head_err!(leading_bare_lf, b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(bare_lf_line_ends, b"GET / HTTP/1.1\nHost: x\n\n" => 400);
    head_err!(bare_lf_refused_before_head_ends, b"GET / HTTP/1.1\r\nHost: x\n" => 400);
    head_ok!(pipelined_len_is_first_head, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\n\r\n" => path: "/a", len: 28);
    head_ok!(body_not_in_len, b"POST /push HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}" => len: 51);
    head_partial!(empty_buffer, b"");
    head_partial!(only_empty_lines, b"\r\n\r\n");
    head_partial!(no_blank_line, b"GET / HTTP/1.1\r\nHost: x\r\n");
    head_err!(space_in_target, b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(double_space, b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(header_without_colon, b"GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n" => 400);
    head_err!(space_before_colon, b"GET / HTTP/1.1\r\nHost: h\r\nX-A : x\r\n\r\n" => 400);
    head_err!(nul_in_value, b"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n" => 400);
    head_err!(obs_fold, b"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n c\r\n\r\n" => 400);
    head_err!(bare_cr_in_leading_lines, b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(tls_client_hello, b"\x16\x03\x01\x02\x00\x01\x00" => 400);

    // Versions: 1.0 and 1.1 only; other HTTP/<digit> versions are 505.
    head_ok!(version_1_0, b"GET / HTTP/1.0\r\n\r\n" => minor_version: 0);
    head_err!(version_2_0, b"GET / HTTP/2.0\r\n\r\n" => 505);
    head_err!(version_1_2, b"GET / HTTP/1.2\r\n\r\n" => 505);
    head_partial!(version_waits_for_line_end, b"GET / HTTP/2.0");
    head_err!(version_2_without_minor, b"GET / HTTP/2\r\n" => 400);
    head_err!(version_garbage, b"GET / HTXP/1.1\r\n\r\n" => 400);
    head_err!(version_letter, b"GET / HTTP/x.1\r\n\r\n" => 400);
    head_err!(version_missing, b"GET /\r\n\r\n" => 400);
    head_partial!(version_partial, b"GET / HTTP/1.");

    // Keep-alive: 1.1 by default, 1.0 only on request; close always wins.
    head_ok!(keep_alive_1_1_default, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_1_close, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_close_mixed_case, b"GET / HTTP/1.1\r\nHost: h\r\nconnection: Close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_close_in_list, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_close_in_second_field,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nConnection: close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_close_beats_keep_alive,
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_closed_is_not_close, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_0_default, b"GET / HTTP/1.0\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_0_asked, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_0_token_list, b"GET / HTTP/1.0\r\nConnection: Keep-Alive, Upgrade\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_0_empty_list_elements,
        b"GET / HTTP/1.0\r\nConnection: ,Upgrade ,, KEEP-ALIVE\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_0_and_close, b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_0_other_header, b"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n" => keep_alive: false);

    // Expect: 100-continue, meaningful only in 1.1.
    head_ok!(expect_continue, b"POST /push HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n" =>
        expect_continue: true, framing: Framing::Length(5));
    head_ok!(expect_continue_mixed_case, b"POST /push HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue \r\n\r\n" => expect_continue: true);
    head_ok!(expect_absent, b"POST /push HTTP/1.1\r\nHost: h\r\n\r\n" => expect_continue: false);
    head_ok!(expect_other, b"POST /push HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n" => expect_continue: false);
    head_ok!(expect_ignored_in_1_0, b"POST /push HTTP/1.0\r\nExpect: 100-continue\r\n\r\n" => expect_continue: false);

    // Content-Length: digits only; repeats must agree.
    head_ok!(length, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 64\r\n\r\n" => framing: Framing::Length(64));
    head_ok!(length_zero, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n" => framing: Framing::Length(0));
    head_ok!(length_leading_zeros, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n" => framing: Framing::Length(7));
    head_ok!(length_surrounding_spaces, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:   12 \t\r\n\r\n" => framing: Framing::Length(12));
    head_ok!(length_name_case, b"POST / HTTP/1.1\r\nHost: h\r\ncontent-LENGTH: 3\r\n\r\n" => framing: Framing::Length(3));
    head_ok!(length_duplicate_equal,
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n" => framing: Framing::Length(5));
    head_err!(length_duplicate_different, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n" => 400);
    head_err!(length_list, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n" => 400);
    head_err!(length_plus_sign, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n" => 400);
    head_err!(length_minus_sign, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n" => 400);
    head_err!(length_inner_space, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n" => 400);
    head_err!(length_hex, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x10\r\n\r\n" => 400);
    head_err!(length_empty, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n" => 400);
    head_err!(length_overflow, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n" => 400);
    head_ok!(no_length_no_body, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" => framing: Framing::Empty);

    // Transfer-Encoding: exactly one chunked, last, alone; never with Content-Length.
    head_ok!(chunked, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" => framing: Framing::Chunked);
    head_ok!(chunked_mixed_case, b"POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: Chunked\r\n\r\n" => framing: Framing::Chunked);
    head_err!(length_and_chunked, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" => 400);
    head_err!(chunked_and_length, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" => 400);
    head_err!(chunked_and_bad_length, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n" => 400);
    head_err!(coding_not_chunked, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n" => 400);
    head_err!(coding_before_chunked, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" => 501);
    head_err!(coding_before_chunked_in_two_fields,
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" => 501);
    head_err!(chunked_not_last, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" => 400);
    head_err!(chunked_twice, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n" => 400);
    head_err!(chunked_empty_value, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n" => 400);
    head_err!(chunked_in_1_0, b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" => 400);
    head_err!(chunked_lookalike, b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunkedx\r\n\r\n" => 400);

    // Limits: 64 fields, MAX_HEAD bytes, complete or not.
    head_ok!(headers_64, &with_headers(64) => method: Method::Get);
    head_err!(headers_65, &with_headers(65) => 431);
    head_ok!(head_exactly_max, &head_of_len(MAX_HEAD, true) => len: MAX_HEAD);
    head_err!(head_max_plus_one, &head_of_len(MAX_HEAD + 1, true) => 431);
    head_partial!(incomplete_head_exactly_max, &head_of_len(MAX_HEAD, false));
    head_err!(incomplete_head_max_plus_one, &head_of_len(MAX_HEAD + 1, false) => 431);
    head_err!(empty_lines_past_max, &b"\r\n".repeat(MAX_HEAD / 2 + 1) => 431);

    /// A GET with `n` header fields, `Host` included.
    fn with_headers(n: usize) -> Vec<u8> {
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 1..n {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        buf
    }

    /// A head of exactly `len` bytes, padded in one header value; when
    /// `!complete`, the same length with the final CRLF not yet arrived.
    fn head_of_len(len: usize, complete: bool) -> Vec<u8> {
        let end: &[u8] = if complete { b"\r\n\r\n" } else { b"\r\n" };
        let mut buf = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ".to_vec();
        buf.resize(len - end.len(), b'a');
        buf.extend_from_slice(end);
        assert_eq!(buf.len(), len);
        buf
    }

    // The scanner: where a head ends, fed in pieces.
    scan!(scan_one_piece, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1000 => Ok(Some(27)));
    scan!(scan_byte_at_a_time, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1 => Ok(Some(27)));
    scan!(scan_pieces_of_three, b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET", 3 => Ok(Some(27)));
    scan!(scan_leading_empty_lines_are_no_end, b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 1 => Ok(Some(31)));
    scan!(scan_not_yet, b"GET / HTTP/1.1\r\nHost: h\r\n\r", 1 => Ok(None));
    scan!(scan_only_empty_lines, b"\r\n\r\n\r\n", 1 => Ok(None));
    scan!(scan_crlf_in_body_after_end, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\n\r\n", 2 => Ok(Some(27)));
    scan!(scan_bare_lf, b"GET / HTTP/1.1\nHost: h\r\n\r\n", 1 => Err(400));
    scan!(scan_bare_lf_ending_head, b"GET / HTTP/1.1\r\nHost: h\r\n\n", 1 => Err(400));
    scan!(scan_bare_cr, b"GET / HTTP/1.1\r\nHost: h\rX\r\n\r\n", 1 => Err(400));
    scan!(scan_control_byte, b"GET / HTTP/1.1\r\nHost: \x0bh\r\n\r\n", 1 => Err(400));
    scan!(scan_bad_request_line_at_its_crlf, b"GET /\r\n", 1 => Err(400));
    scan!(scan_other_version_at_its_crlf, b"GET / HTTP/2.0\r\n", 1 => Err(505));
    scan!(scan_garbage_at_first_byte, b"\x16\x03\x01", 1 => Err(400));
    scan!(scan_long_method, &[b'A'; MAX_HEAD + 1], 100 => Err(400));
    scan!(scan_long_target, &[b"GET /".as_slice(), &[b'a'; MAX_HEAD]].concat(), 100 => Err(431));

    #[test]
    fn scanner_looks_at_each_byte_once() {
        let buf = head_of_len(MAX_HEAD, true);
        let (result, scanner) = scan_growing(&buf, 1);
        assert_eq!(result, Ok(Some(MAX_HEAD)));
        assert_eq!(scanner.pos, MAX_HEAD);
        // Asked again, it answers without looking further.
        let mut scanner = scanner;
        assert_eq!(scanner.scan(&buf), Ok(Some(MAX_HEAD)));
        assert_eq!(scanner.pos, MAX_HEAD);
    }

    #[test]
    fn scanner_agrees_with_parse_head_on_every_split() {
        for request in [
            PUSH,
            BLOCKING_GET,
            CHUNKED_PUSH,
            b"\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        ] {
            let head = complete_head(request);
            for step in 1..=request.len() {
                let (result, _) = scan_growing(request, step);
                assert_eq!(result, Ok(Some(head.len)), "step {step}");
            }
        }
    }

    // Host (RFC 9112 section 3.2): exactly one in 1.1, valid uri-host [":" port].
    head_ok!(host_name_and_port, b"GET / HTTP/1.1\r\nHost: localhost:3031\r\n\r\n" => host: "localhost:3031");
    head_ok!(host_trimmed, b"GET / HTTP/1.1\r\nHost:  h \t\r\n\r\n" => host: "h");
    head_ok!(host_ipv4, b"GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n" => host: "127.0.0.1:80");
    head_ok!(host_ipv6, b"GET / HTTP/1.1\r\nHost: [::1]:3031\r\n\r\n" => host: "[::1]:3031");
    head_ok!(host_ipv6_no_port, b"GET / HTTP/1.1\r\nHost: [2001:db8::7]\r\n\r\n" => host: "[2001:db8::7]");
    head_ok!(host_ipvfuture, b"GET / HTTP/1.1\r\nHost: [v1.x:y]\r\n\r\n" => host: "[v1.x:y]");
    head_ok!(host_empty_port, b"GET / HTTP/1.1\r\nHost: h:\r\n\r\n" => host: "h:");
    head_ok!(host_pct_encoded, b"GET / HTTP/1.1\r\nHost: a%41b\r\n\r\n" => host: "a%41b");
    head_ok!(host_name_case, b"GET / HTTP/1.1\r\nhOST: h\r\n\r\n" => host: "h");
    head_ok!(host_optional_in_1_0, b"GET / HTTP/1.0\r\n\r\n" => host: "");
    head_ok!(host_in_1_0, b"GET / HTTP/1.0\r\nHost: h\r\n\r\n" => host: "h");
    head_err!(host_missing, b"GET / HTTP/1.1\r\n\r\n" => 400);
    head_err!(host_twice, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n" => 400);
    head_err!(host_twice_same, b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n" => 400);
    head_err!(host_twice_second_bad, b"GET / HTTP/1.1\r\nHost: a\r\nHost: a b\r\n\r\n" => 400);
    head_err!(host_empty, b"GET / HTTP/1.1\r\nHost:\r\n\r\n" => 400);
    head_err!(host_blank, b"GET / HTTP/1.1\r\nHost:  \r\n\r\n" => 400);
    head_err!(host_userinfo, b"GET / HTTP/1.1\r\nHost: user@h\r\n\r\n" => 400);
    head_err!(host_path, b"GET / HTTP/1.1\r\nHost: h/x\r\n\r\n" => 400);
    head_err!(host_space, b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n" => 400);
    head_err!(host_comma_list, b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n" => 400);
    head_err!(host_only_port, b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n" => 400);
    head_err!(host_port_not_digits, b"GET / HTTP/1.1\r\nHost: h:80a\r\n\r\n" => 400);
    head_err!(host_two_ports, b"GET / HTTP/1.1\r\nHost: h:80:81\r\n\r\n" => 400);
    head_err!(host_bad_escape, b"GET / HTTP/1.1\r\nHost: a%4\r\n\r\n" => 400);
    head_err!(host_non_ascii, b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n" => 400);
    head_err!(host_ipv6_unclosed, b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n" => 400);
    head_err!(host_ipv6_bad_char, b"GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n" => 400);
    head_err!(host_ipv6_junk_after, b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n" => 400);
    head_err!(host_ipv6_empty, b"GET / HTTP/1.1\r\nHost: []\r\n\r\n" => 400);
    head_err!(host_twice_in_1_0, b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n" => 400);
    head_err!(host_invalid_in_1_0, b"GET / HTTP/1.0\r\nHost: a/b\r\n\r\n" => 400);

    // Versions: HTTP/ DIGIT "." DIGIT exactly.
    head_err!(version_3_0, b"GET / HTTP/3.0\r\nHost: h\r\n\r\n" => 505);
    head_err!(version_no_minor, b"GET / HTTP/1\r\nHost: h\r\n\r\n" => 400);
    head_err!(version_leading_zero, b"GET / HTTP/01.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(version_three_parts, b"GET / HTTP/1.1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(version_lower_case, b"GET / http/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(version_two_digit_minor, b"GET / HTTP/1.10\r\nHost: h\r\n\r\n" => 400);
    head_err!(version_space_inside, b"GET / HTTP/ 1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(version_trailing_space, b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n" => 400);

    // Request line and target (RFC 9112 sections 3 and 3.2).
    head_ok!(method_options, b"OPTIONS /push HTTP/1.1\r\nHost: h\r\n\r\n" => method: Method::Options, path: "/push");
    head_ok!(target_visible_ascii, b"GET /a!$&'()*+,;=:@-._~%20 HTTP/1.1\r\nHost: h\r\n\r\n" => path: "/a!$&'()*+,;=:@-._~%20");
    head_err!(target_get_asterisk, b"GET * HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_fragment, b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_fragment_in_query, b"GET /a?b#c HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_non_ascii, b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_nul, b"GET /\0 HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_del, b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_tab, b"GET /\t HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_authority_form, b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n" => 400);
    head_err!(target_relative, b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_other_scheme, b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(target_missing, b"GET  HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(method_with_tab, b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(method_not_token, b"GE[T / HTTP/1.1\r\nHost: h\r\n\r\n" => 400);
    head_err!(leading_space, b" GET / HTTP/1.1\r\nHost: h\r\n\r\n" => 400);

    // Field lines: what httparse refuses, and what the scanner adds.
    head_ok!(value_with_tab_and_obs_text, b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\tb\x80\xff\r\n\r\n" => method: Method::Get);
    head_ok!(name_with_underscore_is_another_field, b"POST / HTTP/1.1\r\nHost: h\r\nContent_Length: 5\r\n\r\n" => framing: Framing::Empty);
    head_err!(tab_before_colon, b"GET / HTTP/1.1\r\nHost: h\r\nX-A\t: x\r\n\r\n" => 400);
    head_err!(obs_fold_with_tab, b"GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n\tc\r\n\r\n" => 400);
    head_err!(whitespace_before_first_field, b"GET / HTTP/1.1\r\n Host: h\r\n\r\n" => 400);
    head_err!(empty_name, b"GET / HTTP/1.1\r\nHost: h\r\n: x\r\n\r\n" => 400);
    head_err!(name_not_token, b"GET / HTTP/1.1\r\nHost: h\r\nA[b: x\r\n\r\n" => 400);
    head_err!(name_non_ascii, b"GET / HTTP/1.1\r\nHost: h\r\nX-\xc3\xabt: x\r\n\r\n" => 400);
    head_err!(name_with_tab, b"GET / HTTP/1.1\r\nHost: h\r\nA\tB: x\r\n\r\n" => 400);
    head_err!(value_bel, b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x07b\r\n\r\n" => 400);
    head_err!(value_vtab, b"GET / HTTP/1.1\r\nHost: h\r\nX-A: \x0bb\r\n\r\n" => 400);
    head_err!(value_form_feed, b"GET / HTTP/1.1\r\nHost: h\r\nX-A: \x0cb\r\n\r\n" => 400);
    head_err!(value_del, b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7f\r\n\r\n" => 400);
    head_err!(value_bare_cr, b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n" => 400);

    // Raw values for the layers above: trimmed, first wins, absent is None.
    head_raw!(raw_fields, b"OPTIONS /push HTTP/1.1\r\nHost: h\r\nOrigin: https://a.example\r\nAuthorization:  Bearer t \r\nSec-Fetch-Site: cross-site\r\nX-Forwarded-For: 1.2.3.4, 5.6.7.8\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,content-type\r\nOrigin: https://b.example\r\n\r\n" =>
        origin: Some(&b"https://a.example"[..]), authorization: Some(&b"Bearer t"[..]),
        sec_fetch_site: Some(&b"cross-site"[..]), x_forwarded_for: Some(&b"1.2.3.4, 5.6.7.8"[..]),
        access_control_request_method: Some(&b"POST"[..]),
        access_control_request_headers: Some(&b"authorization,content-type"[..]));
    head_raw!(raw_fields_absent, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" =>
        origin: None, authorization: None, sec_fetch_site: None, x_forwarded_for: None,
        access_control_request_method: None, access_control_request_headers: None);
    head_raw!(raw_field_empty, b"GET / HTTP/1.1\r\nHost: h\r\nOrigin:\r\n\r\n" => origin: Some(&b""[..]));

    const PUSH: &[u8] = b"POST /push?key=k HTTP/1.1\r\nHost: localhost:3031\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\":\"hello\"}";
    const BLOCKING_GET: &[u8] = b"GET /blocking-get?key=k&groupId=g&timeout=0.25 HTTP/1.1\r\nHost: localhost:3031\r\nAccept: */*\r\n\r\n";
    const CHUNKED_PUSH: &[u8] = b"POST /push?key=k HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n4;name=value\r\n{\"a\"\r\n5 ; x\r\n:1}  \r\n0;last\r\nX-Checksum: abc\r\n\r\n";

    /// httparse's test: every strict prefix of a valid head is Partial, and
    /// every longer buffer gives the same Complete head.
    #[test]
    fn every_prefix_of_a_head_is_partial() {
        for request in [
            PUSH,
            BLOCKING_GET,
            CHUNKED_PUSH,
            b"\r\nGET / HTTP/1.0\r\n\r\n",
        ] {
            let head = complete_head(request);
            for end in 0..head.len {
                assert_eq!(
                    parse_head(&request[..end]),
                    Ok(Status::Partial),
                    "prefix {end}"
                );
            }
            for end in head.len..=request.len() {
                assert_eq!(complete_head(&request[..end]), head, "prefix {end}");
            }
        }
    }

    #[test]
    fn typical_requests() {
        let push = complete_head(PUSH);
        assert_eq!(
            (push.method, push.path, push.framing),
            (Method::Post, "/push", Framing::Length(13))
        );
        assert_eq!(&PUSH[push.len..], b"{\"a\":\"hello\"}");
        let get = complete_head(BLOCKING_GET);
        assert_eq!((get.method, get.path), (Method::Get, "/blocking-get"));
        assert_eq!(query_param(get.query, "groupId"), Ok(Some("g".into())));
        assert_eq!(query_param(get.query, "timeout"), Ok(Some("0.25".into())));
        assert_eq!(get.len, BLOCKING_GET.len());
    }

    fn complete_head(buf: &[u8]) -> Head<'_> {
        match parse_head(buf) {
            Ok(Status::Complete(head)) => head,
            other => panic!(
                "{:?} should parse, got {other:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }
}
