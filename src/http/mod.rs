//! HTTP/1.x framing: where a request's head ends, how its body is delimited,
//! what its query says, and the bytes of a response.
//!
//! This module is pure: bytes in, values out. It never touches a socket or a
//! clock, so the connection state machine can hand it whatever it has read so
//! far and ask again when more arrives.
//!
//! # Shape
//!
//! As in `httparse`, which does the request-line and header tokenizing here,
//! "not enough bytes yet" is a value ([`Status::Partial`]), not an error.
//! The parsers keep no state between calls: a head is at most [`MAX_HEAD`]
//! bytes and `httparse` scans it with SIMD, so parsing again from the start is
//! cheaper and simpler than a resumable parser. Every answer depends only on
//! the bytes seen, so a longer prefix of the same stream never changes a
//! `Complete` or an error into something else (the fuzz target
//! `fuzz/fuzz_targets/http_framing.rs` checks exactly that).
//!
//! Every refusal is an [`HttpError`] carrying the status to answer with, so
//! the caller writes `{"error": message}` without knowing why.
//!
//! # Framing rules
//!
//! The body-length rules follow RFC 9112 section 6, strictly, because a
//! lenient reading of `Content-Length` and `Transfer-Encoding` is how request
//! smuggling starts: both present is a `400`; `Content-Length` must be
//! digits only and repeated values must agree; `Transfer-Encoding` must end
//! in `chunked` (else `400`) and contain nothing else (else `501`: a coding we
//! do not implement); an HTTP/1.0 request with `Transfer-Encoding` is a
//! `400`.
//!
//! Every limit is checked against the bytes already buffered, before the
//! caller has a reason to buffer more: a head over [`MAX_HEAD`] is a `431`
//! as soon as `MAX_HEAD + 1` bytes are in without its end, and a chunked body
//! is a `413` as soon as a chunk-size line pushes the total over the limit,
//! before any of that chunk's data arrives.

use std::borrow::Cow;
use std::fmt;

/// Longest request head we accept (request line + headers + blank line): 8 KiB.
pub const MAX_HEAD: usize = 8 * 1024;

/// The interim response for Expect: 100-continue.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Most header fields in one request; the 65th is a `431`. Also the size of
/// the `httparse` header array on the stack (64 x 32 bytes).
const MAX_HEADERS: usize = 64;

/// Longest chunk-size line (size, extensions, CRLF) we wait for. Extensions
/// are ignored, so this bounds only how much of them a client can make us
/// buffer before refusing.
const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Digits in `u64::MAX`: the longest decimal we ever write.
const MAX_DIGITS: usize = u64::MAX.ilog10() as usize + 1;

const MALFORMED: HttpError = HttpError::new(400, "malformed request");
const HEAD_TOO_LARGE: HttpError = HttpError::new(431, "request head too large");
const TOO_MANY_HEADERS: HttpError = HttpError::new(431, "too many header fields");
const BAD_VERSION: HttpError = HttpError::new(505, "only HTTP/1.0 and HTTP/1.1 are supported");
const BAD_LENGTH: HttpError = HttpError::new(400, "invalid Content-Length");
const CONFLICTING_LENGTH: HttpError = HttpError::new(400, "conflicting Content-Length headers");
const LENGTH_AND_CHUNKED: HttpError =
    HttpError::new(400, "both Content-Length and Transfer-Encoding");
const CHUNKED_NOT_LAST: HttpError =
    HttpError::new(400, "Transfer-Encoding must end with a single chunked");
const CODING_UNSUPPORTED: HttpError =
    HttpError::new(501, "only Transfer-Encoding: chunked is supported");
const CHUNKED_IN_1_0: HttpError = HttpError::new(400, "Transfer-Encoding in an HTTP/1.0 request");
const BAD_CHUNK: HttpError = HttpError::new(400, "malformed chunked body");
const CHUNK_LINE_TOO_LONG: HttpError = HttpError::new(400, "chunk size line too long");
const TRAILERS_TOO_LARGE: HttpError = HttpError::new(431, "chunked trailers too large");
const BODY_TOO_LARGE: HttpError = HttpError::new(413, "request body too large");
const BAD_ESCAPE: HttpError = HttpError::new(400, "bad percent-escape in query");
const NOT_UTF8: HttpError = HttpError::new(400, "query parameter is not UTF-8");

/// "Not enough bytes yet" is a value, not an error (as in httparse).
#[derive(Debug, PartialEq, Eq)]
pub enum Status<T> {
    /// The item is whole; nothing more needs to arrive for it.
    Complete(T),
    /// The bytes so far are a valid beginning: read more and call again.
    Partial,
}

/// The request method, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `HEAD`.
    Head,
    /// Any other token (`PUT`, `DELETE`, ..., and `get`: methods are
    /// case-sensitive).
    Other,
}

/// How the request body is delimited (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Neither `Content-Length` nor `Transfer-Encoding`: no body.
    Empty,
    /// `Content-Length: n`; `n` may be 0.
    Length(usize),
    /// `Transfer-Encoding: chunked`: decode with [`decode_chunked`].
    Chunked,
}

/// A parsed request head: the little the server needs. The path and query
/// borrow from the input buffer, so parsing a request allocates nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct Head<'a> {
    /// The request method.
    pub method: Method,
    /// The target before `?`, not decoded, e.g. `"/push"`. An absolute-form
    /// target (`http://host/push`) is reduced to its path (`"/push"`, or `"/"`
    /// when it has none), as RFC 9112 section 3.2.2 asks of servers.
    pub path: &'a str,
    /// Raw text after the first `?`, `""` if none, not decoded.
    pub query: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the connection stays open after the response. HTTP/1.1: true
    /// unless `Connection` has a `close` token; HTTP/1.0: false unless it has
    /// a `keep-alive` token (and no `close`). Tokens are comma lists,
    /// case-insensitive, possibly over several `Connection` fields.
    pub keep_alive: bool,
    /// `Expect: 100-continue` (case-insensitive) in an HTTP/1.1 request.
    /// Always false for HTTP/1.0, whose clients do not wait for the interim
    /// response (RFC 9110 section 10.1.1).
    pub expect_continue: bool,
    /// How the body is delimited.
    pub framing: Framing,
    /// Bytes of the head, including leading empty lines and the final
    /// CRLFCRLF: the body starts at `buf[len..]`.
    pub len: usize,
}

/// A request the server must refuse; `status` is the HTTP status to answer with, `message` goes into {"error": message}.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpError {
    /// The status to answer with: 400, 413, 431, 501 or 505.
    pub status: u16,
    /// What was wrong, for the client and the log.
    pub message: &'static str,
}

impl HttpError {
    const fn new(status: u16, message: &'static str) -> HttpError {
        HttpError { status, message }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

/// Parses the head at the start of `buf`. Partial while no complete head and buf.len() <= MAX_HEAD.
///
/// Errors: a head longer than [`MAX_HEAD`] (complete or not) or with more than
/// 64 header fields is a `431`; malformed syntax (anything `httparse`
/// refuses, a bad or conflicting `Content-Length`, `Content-Length` with
/// `Transfer-Encoding`, a `Transfer-Encoding` that does not end in a single
/// `chunked`) is a `400`; a `Transfer-Encoding` with another coding before
/// `chunked` (`gzip, chunked`) is a `501`; an `HTTP/<digit>` version other
/// than 1.0 and 1.1 is a `505`.
///
/// Leading empty lines (CRLF) before a request line are tolerated (RFC 9112
/// section 2.2) and counted in `len`. Only the first `MAX_HEAD` bytes are
/// looked at, so a caller may pass its whole read buffer (pipelined requests,
/// a body) at no extra cost.
pub fn parse_head(buf: &[u8]) -> Result<Status<Head<'_>>, HttpError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        // The window is full and the head has not ended: it is longer than
        // MAX_HEAD whatever comes next.
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Err(HEAD_TOO_LARGE),
        Ok(httparse::Status::Partial) => return Ok(Status::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(TOO_MANY_HEADERS),
        Err(httparse::Error::Version) if names_other_version(window) => return Err(BAD_VERSION),
        Err(_) => return Err(MALFORMED),
    };
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

    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Status::Complete(Head {
        method: match method {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "HEAD" => Method::Head,
            _ => Method::Other,
        },
        path: origin_path(path),
        query,
        minor_version,
        keep_alive: if minor_version == 0 {
            fields.keep_alive && !fields.close
        } else {
            !fields.close
        },
        expect_continue: minor_version == 1 && fields.expect_continue,
        framing: fields.framing(minor_version)?,
        len,
    }))
}

/// What the header fields say about the connection and the body, gathered
/// field by field because each of them may be repeated.
#[derive(Default)]
struct Fields {
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
    content_length: Option<usize>,
    /// Any `Transfer-Encoding` field, even one with no codings in it.
    transfer_encoding: bool,
    /// `chunked` codings seen so far, over all `Transfer-Encoding` fields.
    chunked: usize,
    /// The last coding seen was `chunked`.
    chunked_last: bool,
    /// A coding other than `chunked` was seen.
    other_coding: bool,
}

impl Fields {
    fn add(&mut self, name: &str, value: &[u8]) -> Result<(), HttpError> {
        if name.eq_ignore_ascii_case("content-length") {
            let length = parse_content_length(value)?;
            match self.content_length {
                Some(seen) if seen != length => return Err(CONFLICTING_LENGTH),
                _ => self.content_length = Some(length),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.transfer_encoding = true;
            for coding in tokens(value) {
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                self.chunked += usize::from(chunked);
                self.other_coding |= !chunked;
                self.chunked_last = chunked;
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in tokens(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            self.expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    /// RFC 9112 section 6.3, in its order: Transfer-Encoding overrides
    /// Content-Length, except that here both together are refused outright
    /// (the RFC allows it, and a client sending both is either broken or
    /// probing for a smuggling gap).
    fn framing(&self, minor_version: u8) -> Result<Framing, HttpError> {
        if self.transfer_encoding {
            if self.content_length.is_some() {
                return Err(LENGTH_AND_CHUNKED);
            }
            if minor_version == 0 {
                return Err(CHUNKED_IN_1_0);
            }
            if self.chunked != 1 || !self.chunked_last {
                return Err(CHUNKED_NOT_LAST);
            }
            if self.other_coding {
                return Err(CODING_UNSUPPORTED);
            }
            return Ok(Framing::Chunked);
        }
        Ok(self.content_length.map_or(Framing::Empty, Framing::Length))
    }
}

/// The elements of a comma-separated field value, trimmed, empty ones
/// skipped (RFC 9110 section 5.6.1 says recipients must accept `a, , b`).
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|token| !token.is_empty())
}

/// `1*DIGIT` and nothing else: no sign, no inner spaces, no `5, 5` list.
/// A value too big for `usize` is malformed rather than too large: no body
/// limit could admit it anyway.
fn parse_content_length(value: &[u8]) -> Result<usize, HttpError> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return Err(BAD_LENGTH);
    }
    digits.iter().try_fold(0usize, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(BAD_LENGTH);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(b - b'0')))
            .ok_or(BAD_LENGTH)
    })
}

/// httparse reports both `HTTP/2.0` and `HTXP/1.1` as `Error::Version`; only
/// the first names a version we do not support (505), the second is garbage
/// (400). The answer depends only on the bytes up to the major digit, which
/// httparse has always seen when it reports the error, so every longer prefix
/// of the same request gets the same status.
fn names_other_version(buf: &[u8]) -> bool {
    // httparse refused anything but CRLF or LF among the leading empty lines,
    // and neither the method nor the target contains a space.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let version = buf[start..].splitn(3, |&b| b == b' ').nth(2).unwrap_or(&[]);
    version.starts_with(b"HTTP/") && version.get(5).is_some_and(u8::is_ascii_digit)
}

/// The path of an absolute-form target (`http://host:80/push` -> `/push`);
/// any other target as it is.
fn origin_path(target: &str) -> &str {
    let bytes = target.as_bytes();
    let after_scheme = if bytes.len() >= 7 && bytes[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if bytes.len() >= 8 && bytes[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return target;
    };
    match target[after_scheme..].find('/') {
        Some(slash) => &target[after_scheme + slash..],
        None => "/",
    }
}

/// Decodes a chunked body at the start of `buf` (the bytes after the head). On Complete returns the body and the bytes consumed (through the last CRLF after trailers).
///
/// Refuses with `413` as soon as the running total of chunk sizes exceeds
/// `max_body` (before the data arrives), `400` on malformed chunk syntax (size
/// not hex, overflow, missing CRLF, a chunk-size line over 4 KiB), `431` for
/// trailers over [`MAX_HEAD`]. Chunk extensions and trailers are accepted
/// and ignored.
///
/// The framing is walked once without copying; only a complete body is then
/// copied, into a `Vec` of its exact size. A caller that calls again on every
/// read therefore pays a scan of the chunk-size lines each time, not a copy.
pub fn decode_chunked(buf: &[u8], max_body: usize) -> Result<Status<(Vec<u8>, usize)>, HttpError> {
    let (body_len, consumed) = match walk_chunks(buf, max_body, |_| {})? {
        Status::Complete(done) => done,
        Status::Partial => return Ok(Status::Partial),
    };
    let mut body = Vec::with_capacity(body_len);
    walk_chunks(&buf[..consumed], max_body, |data| {
        body.extend_from_slice(data)
    })?;
    Ok(Status::Complete((body, consumed)))
}

/// Walks `chunk* last-chunk trailer-section CRLF` (RFC 9112 section 7.1),
/// handing each chunk's data to `on_data`. Returns the body length and the
/// bytes consumed.
fn walk_chunks(
    buf: &[u8],
    max_body: usize,
    mut on_data: impl FnMut(&[u8]),
) -> Result<Status<(usize, usize)>, HttpError> {
    let mut pos = 0;
    let mut total = 0usize;
    loop {
        let rest = &buf[pos..];
        // httparse accepts a size line with no digits at all ("\r\n", ";x")
        // as size 0; a chunk size is 1*HEXDIG.
        match rest.first() {
            None => return Ok(Status::Partial),
            Some(b) if !b.is_ascii_hexdigit() => return Err(BAD_CHUNK),
            Some(_) => {}
        }
        let line = &rest[..rest.len().min(MAX_CHUNK_LINE)];
        let (line_len, size) = match httparse::parse_chunk_size(line) {
            Ok(httparse::Status::Complete(parsed)) => parsed,
            Ok(httparse::Status::Partial) if rest.len() > MAX_CHUNK_LINE => {
                return Err(CHUNK_LINE_TOO_LONG);
            }
            Ok(httparse::Status::Partial) => return Ok(Status::Partial),
            // More than 16 hex digits, or a byte that is neither hex, an
            // extension nor CRLF.
            Err(httparse::InvalidChunkSize) => return Err(BAD_CHUNK),
        };
        // httparse lets any byte into an extension, bare LF included; a
        // parser that ends lines at LF would see a different body.
        let size_line = line.get(..line_len).and_then(|l| l.strip_suffix(b"\r\n"));
        if size_line.is_none_or(|l| l.contains(&b'\n')) {
            return Err(BAD_CHUNK);
        }
        pos += line_len;
        if size == 0 {
            return Ok(match trailer_section(&buf[pos..])? {
                Status::Complete(len) => Status::Complete((total, pos + len)),
                Status::Partial => Status::Partial,
            });
        }
        let size = usize::try_from(size).map_err(|_| BODY_TOO_LARGE)?;
        total = total
            .checked_add(size)
            .filter(|&total| total <= max_body)
            .ok_or(BODY_TOO_LARGE)?;
        let Some(data) = buf[pos..].get(..size) else {
            return Ok(Status::Partial);
        };
        on_data(data);
        pos += size;
        match &buf[pos..] {
            [] | [b'\r'] => return Ok(Status::Partial),
            [b'\r', b'\n', ..] => pos += 2,
            _ => return Err(BAD_CHUNK),
        }
    }
}

/// The length of the trailer section at the start of `buf`, through the
/// empty line that ends it. Trailer fields are skipped unread (we have no use
/// for them), but every line must end in CRLF with no bare CR or LF inside,
/// so that a trailer cannot disagree with another parser about where the next
/// request starts.
fn trailer_section(buf: &[u8]) -> Result<Status<usize>, HttpError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let mut line_start = 0;
    while let Some(offset) = window[line_start..]
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
    {
        let cr = line_start + offset;
        match window.get(cr..cr + 2) {
            Some(b"\r\n") if offset == 0 => return Ok(Status::Complete(cr + 2)),
            Some(b"\r\n") => line_start = cr + 2,
            // A lone CR at the end of the window: its LF may be next.
            None if window[cr] == b'\r' => break,
            _ => return Err(BAD_CHUNK),
        }
    }
    if buf.len() > MAX_HEAD {
        Err(TRAILERS_TOO_LARGE)
    } else {
        Ok(Status::Partial)
    }
}

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

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The standard reason phrase for the statuses the server uses (100, 200, 400, 404, 405, 408, 413, 431, 500, 501, 503, 505), "Unknown" otherwise.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
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
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, body_len as u64);
    out.extend_from_slice(b"\r\n");
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
        + "Content-Length: ".len()
        + decimal_len(body_len)
        + 2
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

    /// A complete chunked body: the decoded bytes and how many were consumed.
    macro_rules! chunked_ok {
        ($name:ident, $buf:expr, $max:expr => $body:expr, $consumed:expr) => {
            #[test]
            fn $name() {
                let expected: &[u8] = $body;
                assert_eq!(
                    decode_chunked($buf, $max),
                    Ok(Status::Complete((expected.to_vec(), $consumed)))
                );
            }
        };
    }

    macro_rules! chunked_partial {
        ($name:ident, $buf:expr, $max:expr) => {
            #[test]
            fn $name() {
                assert_eq!(decode_chunked($buf, $max), Ok(Status::Partial));
            }
        };
    }

    macro_rules! chunked_err {
        ($name:ident, $buf:expr, $max:expr => $status:expr) => {
            #[test]
            fn $name() {
                match decode_chunked($buf, $max) {
                    Err(e) => assert_eq!(e.status, $status, "{e}"),
                    other => panic!("expected a {} error, got {other:?}", $status),
                }
            }
        };
    }

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
    fn get_root() {
        let head = Head {
            method: Method::Get,
            path: "/",
            query: "",
            minor_version: 1,
            keep_alive: true,
            expect_continue: false,
            framing: Framing::Empty,
            len: 18,
        };
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n"),
            Ok(Status::Complete(head))
        );
    }

    // Request line, method, target.
    head_ok!(method_post, b"POST /push HTTP/1.1\r\n\r\n" => method: Method::Post);
    head_ok!(method_head, b"HEAD / HTTP/1.1\r\n\r\n" => method: Method::Head);
    head_ok!(method_put_is_other, b"PUT / HTTP/1.1\r\n\r\n" => method: Method::Other);
    head_ok!(method_is_case_sensitive, b"get / HTTP/1.1\r\n\r\n" => method: Method::Other);
    head_ok!(path_and_query, b"GET /blocking-get?key=a%20b&groupId=g HTTP/1.1\r\n\r\n" =>
        path: "/blocking-get", query: "key=a%20b&groupId=g");
    head_ok!(empty_query, b"GET /push? HTTP/1.1\r\n\r\n" => path: "/push", query: "");
    head_ok!(query_splits_at_first_mark, b"GET /a?b?c HTTP/1.1\r\n\r\n" => path: "/a", query: "b?c");
    head_ok!(path_not_decoded, b"GET /a%2Fb HTTP/1.1\r\n\r\n" => path: "/a%2Fb");
    head_ok!(absolute_form, b"GET http://example.com:3031/push?key=k HTTP/1.1\r\n\r\n" =>
        path: "/push", query: "key=k");
    head_ok!(absolute_form_no_path, b"GET HTTPS://example.com?key=k HTTP/1.1\r\n\r\n" =>
        path: "/", query: "key=k");
    head_ok!(asterisk_form, b"OPTIONS * HTTP/1.1\r\n\r\n" => method: Method::Other, path: "*");
    head_ok!(leading_empty_lines_counted, b"\r\n\r\nGET / HTTP/1.1\r\n\r\n" => method: Method::Get, len: 22);
    head_ok!(leading_bare_lf_counted, b"\nGET / HTTP/1.1\r\n\r\n" => len: 19);
    head_ok!(bare_lf_line_ends, b"GET / HTTP/1.1\nHost: x\n\n" => len: 24);
    head_ok!(pipelined_len_is_first_head, b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n" => path: "/a", len: 19);
    head_ok!(body_not_in_len, b"POST /push HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}" => len: 42);
    head_partial!(empty_buffer, b"");
    head_partial!(only_empty_lines, b"\r\n\r\n");
    head_partial!(no_blank_line, b"GET / HTTP/1.1\r\nHost: x\r\n");
    head_err!(space_in_target, b"GET /a b HTTP/1.1\r\n\r\n" => 400);
    head_err!(double_space, b"GET  / HTTP/1.1\r\n\r\n" => 400);
    head_err!(header_without_colon, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n" => 400);
    head_err!(space_before_colon, b"GET / HTTP/1.1\r\nHost : x\r\n\r\n" => 400);
    head_err!(nul_in_value, b"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n" => 400);
    head_err!(obs_fold, b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n" => 400);
    head_err!(bare_cr_in_leading_lines, b"\rGET / HTTP/1.1\r\n\r\n" => 400);
    head_err!(tls_client_hello, b"\x16\x03\x01\x02\x00\x01\x00" => 400);

    // Versions: 1.0 and 1.1 only; other HTTP/<digit> versions are 505.
    head_ok!(version_1_0, b"GET / HTTP/1.0\r\n\r\n" => minor_version: 0);
    head_err!(version_2_0, b"GET / HTTP/2.0\r\n\r\n" => 505);
    head_err!(version_1_2, b"GET / HTTP/1.2\r\n\r\n" => 505);
    head_err!(version_2_before_line_end, b"GET / HTTP/2" => 505);
    head_err!(version_garbage, b"GET / HTXP/1.1\r\n\r\n" => 400);
    head_err!(version_letter, b"GET / HTTP/x.1\r\n\r\n" => 400);
    head_err!(version_missing, b"GET /\r\n\r\n" => 400);
    head_partial!(version_partial, b"GET / HTTP/1.");

    // Keep-alive: 1.1 by default, 1.0 only on request; close always wins.
    head_ok!(keep_alive_1_1_default, b"GET / HTTP/1.1\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_1_close, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_close_mixed_case, b"GET / HTTP/1.1\r\nconnection: Close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_close_in_list, b"GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_close_in_second_field,
        b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nConnection: close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_close_beats_keep_alive,
        b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_1_closed_is_not_close, b"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_0_default, b"GET / HTTP/1.0\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_0_asked, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_0_token_list, b"GET / HTTP/1.0\r\nConnection: Keep-Alive, Upgrade\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_0_empty_list_elements,
        b"GET / HTTP/1.0\r\nConnection: ,Upgrade ,, KEEP-ALIVE\r\n\r\n" => keep_alive: true);
    head_ok!(keep_alive_1_0_and_close, b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n" => keep_alive: false);
    head_ok!(keep_alive_1_0_other_header, b"GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n" => keep_alive: false);

    // Expect: 100-continue, meaningful only in 1.1.
    head_ok!(expect_continue, b"POST /push HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n" =>
        expect_continue: true, framing: Framing::Length(5));
    head_ok!(expect_continue_mixed_case, b"POST /push HTTP/1.1\r\nexpect: 100-Continue \r\n\r\n" => expect_continue: true);
    head_ok!(expect_absent, b"POST /push HTTP/1.1\r\n\r\n" => expect_continue: false);
    head_ok!(expect_other, b"POST /push HTTP/1.1\r\nExpect: 200-ok\r\n\r\n" => expect_continue: false);
    head_ok!(expect_ignored_in_1_0, b"POST /push HTTP/1.0\r\nExpect: 100-continue\r\n\r\n" => expect_continue: false);

    // Content-Length: digits only; repeats must agree.
    head_ok!(length, b"POST / HTTP/1.1\r\nContent-Length: 64\r\n\r\n" => framing: Framing::Length(64));
    head_ok!(length_zero, b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n" => framing: Framing::Length(0));
    head_ok!(length_leading_zeros, b"POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n" => framing: Framing::Length(7));
    head_ok!(length_surrounding_spaces, b"POST / HTTP/1.1\r\nContent-Length:   12 \t\r\n\r\n" => framing: Framing::Length(12));
    head_ok!(length_name_case, b"POST / HTTP/1.1\r\ncontent-LENGTH: 3\r\n\r\n" => framing: Framing::Length(3));
    head_ok!(length_duplicate_equal,
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n" => framing: Framing::Length(5));
    head_err!(length_duplicate_different, b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n" => 400);
    head_err!(length_list, b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n" => 400);
    head_err!(length_plus_sign, b"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n" => 400);
    head_err!(length_minus_sign, b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n" => 400);
    head_err!(length_inner_space, b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n" => 400);
    head_err!(length_hex, b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n" => 400);
    head_err!(length_empty, b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n" => 400);
    head_err!(length_overflow, b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n" => 400);
    head_ok!(no_length_no_body, b"GET / HTTP/1.1\r\n\r\n" => framing: Framing::Empty);

    // Transfer-Encoding: exactly one chunked, last, alone; never with Content-Length.
    head_ok!(chunked, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" => framing: Framing::Chunked);
    head_ok!(chunked_mixed_case, b"POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n" => framing: Framing::Chunked);
    head_err!(length_and_chunked, b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" => 400);
    head_err!(chunked_and_length, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" => 400);
    head_err!(chunked_and_bad_length, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n" => 400);
    head_err!(coding_not_chunked, b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n" => 400);
    head_err!(coding_before_chunked, b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" => 501);
    head_err!(coding_before_chunked_in_two_fields,
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" => 501);
    head_err!(chunked_not_last, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n" => 400);
    head_err!(chunked_twice, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n" => 400);
    head_err!(chunked_empty_value, b"POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n" => 400);
    head_err!(chunked_in_1_0, b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" => 400);
    head_err!(chunked_lookalike, b"POST / HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n" => 400);

    // Limits: 64 fields, MAX_HEAD bytes, complete or not.
    head_ok!(headers_64, &with_headers(64) => method: Method::Get);
    head_err!(headers_65, &with_headers(65) => 431);
    head_ok!(head_exactly_max, &head_of_len(MAX_HEAD, true) => len: MAX_HEAD);
    head_err!(head_max_plus_one, &head_of_len(MAX_HEAD + 1, true) => 431);
    head_partial!(incomplete_head_exactly_max, &head_of_len(MAX_HEAD, false));
    head_err!(incomplete_head_max_plus_one, &head_of_len(MAX_HEAD + 1, false) => 431);
    head_err!(empty_lines_past_max, &b"\r\n".repeat(MAX_HEAD / 2 + 1) => 431);

    /// A GET with `n` header fields.
    fn with_headers(n: usize) -> Vec<u8> {
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..n {
            buf.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        buf.extend_from_slice(b"\r\n");
        buf
    }

    /// A head of exactly `len` bytes, padded in one header value; when
    /// `!complete`, the same length with the final CRLF not yet arrived.
    fn head_of_len(len: usize, complete: bool) -> Vec<u8> {
        let end: &[u8] = if complete { b"\r\n\r\n" } else { b"\r\n" };
        let mut buf = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
        buf.resize(len - end.len(), b'a');
        buf.extend_from_slice(end);
        assert_eq!(buf.len(), len);
        buf
    }

    // Chunked bodies.
    chunked_ok!(chunked_one_chunk, b"5\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 15);
    chunked_ok!(chunked_two_chunks, b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", 1024 => b"hello", 20);
    chunked_ok!(chunked_empty_body, b"0\r\n\r\n", 0 => b"", 5);
    chunked_ok!(chunked_upper_hex, b"A\r\n0123456789\r\n0\r\n\r\n", 1024 => b"0123456789", 20);
    chunked_ok!(chunked_leading_zeros, b"0005\r\nhello\r\n000\r\n\r\n", 1024 => b"hello", 20);
    chunked_ok!(chunked_extensions, b"5;a=b;c=\"d\"\r\nhello\r\n0;last\r\n\r\n", 1024 => b"hello", 30);
    chunked_ok!(chunked_space_before_extension, b"5 ;a\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 18);
    chunked_ok!(chunked_trailers, b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n", 1024 => b"hello", 36);
    chunked_ok!(chunked_stops_at_end, b"2\r\n{}\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1024 => b"{}", 12);
    chunked_ok!(chunked_exactly_at_limit, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 5 => b"abcde", 20);
    chunked_ok!(chunked_data_may_hold_crlf, b"4\r\n\r\n\r\n\r\n0\r\n\r\n", 4 => b"\r\n\r\n", 14);
    chunked_partial!(chunked_nothing_yet, b"", 1024);
    chunked_partial!(chunked_size_only, b"5", 1024);
    chunked_partial!(chunked_size_cr, b"5\r", 1024);
    chunked_partial!(chunked_data_short, b"5\r\nhel", 1024);
    chunked_partial!(chunked_data_no_crlf, b"5\r\nhello", 1024);
    chunked_partial!(chunked_data_cr, b"5\r\nhello\r", 1024);
    chunked_partial!(chunked_no_last_chunk, b"5\r\nhello\r\n", 1024);
    chunked_partial!(chunked_no_final_crlf, b"5\r\nhello\r\n0\r\n", 1024);
    chunked_partial!(chunked_trailer_unfinished, b"0\r\nX-Sum: 1\r\n", 1024);
    chunked_err!(chunked_over_limit_before_data, b"b\r\n", 10 => 413);
    chunked_err!(chunked_over_limit_running_total, b"5\r\nhello\r\n6\r\n", 10 => 413);
    chunked_err!(chunked_huge_size, b"ffffffffffffffff\r\n", 1 << 20 => 413);
    chunked_err!(chunked_zero_limit, b"1\r\n", 0 => 413);
    chunked_err!(chunked_size_not_hex, b"g\r\n", 1024 => 400);
    chunked_err!(chunked_size_then_junk, b"5g\r\nhello\r\n", 1024 => 400);
    chunked_err!(chunked_size_missing, b"\r\nhello\r\n", 1024 => 400);
    chunked_err!(chunked_only_extension, b";a=b\r\n", 1024 => 400);
    chunked_err!(chunked_size_negative, b"-5\r\n", 1024 => 400);
    chunked_err!(chunked_size_overflow, b"10000000000000000\r\n", usize::MAX => 400);
    chunked_err!(chunked_size_lf_only, b"5\nhello\r\n", 1024 => 400);
    chunked_err!(chunked_extension_bare_lf, b"5;a\nb\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(chunked_data_too_long, b"5\r\nhello!\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(chunked_data_bad_crlf, b"5\r\nhello\rx", 1024 => 400);
    chunked_err!(chunked_trailer_bare_lf, b"0\r\nX-Sum: 1\n\r\n", 1024 => 400);
    chunked_err!(chunked_trailer_bare_cr, b"0\r\nX-Sum: 1\rX\r\n\r\n", 1024 => 400);
    chunked_err!(chunked_end_lf_only, b"0\r\n\n", 1024 => 400);
    chunked_partial!(
        chunked_line_exactly_max,
        &long_chunk_line(MAX_CHUNK_LINE),
        1024
    );
    chunked_err!(chunked_line_max_plus_one, &long_chunk_line(MAX_CHUNK_LINE + 1), 1024 => 400);
    chunked_partial!(chunked_trailers_exactly_max, &long_trailers(MAX_HEAD), 1024);
    chunked_err!(chunked_trailers_max_plus_one, &long_trailers(MAX_HEAD + 1), 1024 => 431);

    /// An unfinished chunk-size line of `len` bytes (all extension).
    fn long_chunk_line(len: usize) -> Vec<u8> {
        let mut buf = b"5;x=".to_vec();
        buf.resize(len, b'a');
        buf
    }

    /// A last chunk followed by `len` bytes of one unfinished trailer line.
    fn long_trailers(len: usize) -> Vec<u8> {
        let mut buf = b"0\r\nX-Pad: ".to_vec();
        buf.resize(3 + len, b'a');
        buf
    }

    #[test]
    fn chunked_trailers_up_to_max_complete() {
        // A trailer line of MAX_HEAD - 2 bytes with its CRLF, then the final
        // CRLF: the section is MAX_HEAD + 2 bytes.
        let mut buf = long_trailers(MAX_HEAD - 2);
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(decode_chunked(&buf, 0).map_err(|e| e.status), Err(431));
        // Two bytes shorter: exactly MAX_HEAD.
        let mut buf = long_trailers(MAX_HEAD - 4);
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            decode_chunked(&buf, 0),
            Ok(Status::Complete((Vec::new(), buf.len())))
        );
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

    #[test]
    fn reasons() {
        let expected = [
            (100, "Continue"),
            (200, "OK"),
            (400, "Bad Request"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
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

    #[test]
    fn error_display() {
        assert_eq!(BODY_TOO_LARGE.to_string(), "413 request body too large");
    }

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

    /// The same for the chunked body after the head, with a pipelined
    /// request behind it that must not be consumed.
    #[test]
    fn every_prefix_of_a_chunked_body_is_partial() {
        let head = complete_head(CHUNKED_PUSH);
        assert_eq!(head.framing, Framing::Chunked);
        assert!(head.expect_continue);
        let body = &CHUNKED_PUSH[head.len..];
        for end in 0..body.len() {
            assert_eq!(
                decode_chunked(&body[..end], 1024),
                Ok(Status::Partial),
                "prefix {end}"
            );
        }
        let mut pipelined = body.to_vec();
        pipelined.extend_from_slice(BLOCKING_GET);
        for buf in [body, &pipelined] {
            assert_eq!(
                decode_chunked(buf, 1024),
                Ok(Status::Complete((b"{\"a\":1}  ".to_vec(), body.len())))
            );
        }
        // The limit counts decoded bytes, not framing.
        assert_eq!(decode_chunked(body, 8).map_err(|e| e.status), Err(413));
        assert!(matches!(decode_chunked(body, 9), Ok(Status::Complete(_))));
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
