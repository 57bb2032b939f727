//! HTTP/1.x framing: where a request's head ends, what it says, how its body
//! is delimited and decoded, what its query says, and the bytes of a
//! response.
//!
//! This module is pure: bytes in, values out. It never touches a socket or a
//! clock, so the connection state machine hands it what it has read so far
//! and asks again when more arrives.
//!
//! # Layout
//!
//! - `head`: [`HeadScanner`] finds where a head ends, remembering how far it
//!   has looked, and [`parse_head`] reads a complete head once.
//! - `fields`: what the header fields say (framing, keep-alive, `Host`, the
//!   raw values other layers need).
//! - `chunked`: [`ChunkedDecoder`], a resumable RFC 9112 section 7.1 decoder.
//! - `query`: [`query_param`].
//! - `response`: [`write_response`] and friends.
//!
//! # Shape
//!
//! As in `httparse`, which still tokenizes the header fields here, "not
//! enough bytes yet" is a value ([`Status::Partial`] or `None`), not an
//! error. Work is linear in what the client sends: the scanner and the
//! chunked decoder keep their position between calls and look at each byte
//! once, and a head is parsed once, when the scanner has found its end. A
//! longer prefix of the same stream never changes a `Complete` or an error
//! into something else (the fuzz targets in `fuzz/fuzz_targets/` check that,
//! and that splitting the input anywhere changes nothing).
//!
//! Every refusal is an [`HttpError`] carrying the status to answer with, so
//! the caller writes `{"error": message}` without knowing why.
//!
//! # Strictness
//!
//! Requests follow RFC 9112 strictly, because every leniency is a place where
//! a proxy in front of us and we could disagree about where a request ends
//! (request smuggling). Lines end in CRLF only: a bare LF or CR is a `400`
//! (the RFC allows accepting bare LF; refusing it is the safe reading).
//! Control characters, obs-fold, whitespace before a colon, a malformed
//! version, target or `Host` are all `400`. The body-length rules follow
//! section 6: `Content-Length` with `Transfer-Encoding` is a `400`;
//! `Content-Length` must be digits only and repeated values must agree;
//! `Transfer-Encoding` must end in a single `chunked` (else `400`) and contain
//! nothing else (else `501`); an HTTP/1.0 request with `Transfer-Encoding` is
//! a `400`.
//!
//! Every limit is checked against the bytes already seen, before the caller
//! has a reason to buffer more: a head over [`MAX_HEAD`] is a `431` as soon
//! as `MAX_HEAD + 1` bytes are in without its end; a chunked body is a `413`
//! as soon as a chunk-size line pushes the total over the body limit (before
//! its data arrives), or its framing passes [`MAX_CHUNK_FRAMING`].

use std::fmt;

use fields::{RawField, RawFields};

mod chunked;
mod fields;
mod head;
#[cfg(test)]
mod probe_tests;
mod query;
mod response;

pub use chunked::{ChunkedDecoder, Decoded, decode_chunked};
pub use head::{HeadScanner, parse_head, parse_scanned};
pub use query::query_param;
pub use response::{push_decimal, reason, write_response, write_response_head};

/// Longest request head we accept (request line + headers + blank line): 8 KiB.
pub const MAX_HEAD: usize = 8 * 1024;

/// Most bytes of chunked framing (size lines, extensions, line ends, the
/// trailer section) one body may have besides its data: 64 KiB. SPEC: "at
/// most the body limit plus 64 KiB of framing".
pub const MAX_CHUNK_FRAMING: usize = 64 * 1024;

/// The interim response for Expect: 100-continue.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The one `413` for a body over the limit, whatever its framing (SPEC: one
/// message for `Content-Length` and chunked bodies alike).
pub const BODY_TOO_LARGE: HttpError = HttpError::new(413, "request body is larger than --max-body");

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
    /// `OPTIONS`: the only method that may use the asterisk-form target.
    Options,
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
    /// `Transfer-Encoding: chunked`: decode with a [`ChunkedDecoder`].
    Chunked,
}

/// A parsed request head: the little the server needs. Everything borrows
/// from the input buffer, so parsing a request allocates nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct Head<'a> {
    /// The request method.
    pub method: Method,
    /// The target before `?`, not decoded, e.g. `"/push"`. An absolute-form
    /// target (`http://host/push`) is reduced to its path (`"/push"`, or `"/"`
    /// when it has none), as RFC 9112 section 3.2.2 asks of servers; the
    /// asterisk-form of `OPTIONS *` is `"*"`.
    pub path: &'a str,
    /// Raw text after the first `?`, `""` if none, not decoded.
    pub query: &'a str,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The `Host` field, validated as `uri-host [":" port]`, e.g.
    /// `"localhost:3031"`. Always present in HTTP/1.1; `""` for an HTTP/1.0
    /// request without one.
    pub host: &'a str,
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
    /// `Origin`, `Authorization` and the other raw values, read through
    /// the methods below. Kept as offsets into the head (4 bytes each rather
    /// than 16) so that a `Head` stays small enough to move around by value.
    raw: RawFields<'a>,
    /// Bytes of the head, including leading empty lines and the final
    /// CRLFCRLF: the body starts at `buf[len..]`.
    pub len: usize,
}

impl<'a> Head<'a> {
    /// The raw value of `Origin`, trimmed; the first if repeated.
    pub fn origin(&self) -> Option<&'a [u8]> {
        self.raw.get(RawField::Origin)
    }

    /// The raw value of `Authorization`, trimmed; the first if repeated.
    pub fn authorization(&self) -> Option<&'a [u8]> {
        self.raw.get(RawField::Authorization)
    }

    /// The raw value of `Sec-Fetch-Site`, trimmed; the first if repeated.
    pub fn sec_fetch_site(&self) -> Option<&'a [u8]> {
        self.raw.get(RawField::SecFetchSite)
    }

    /// The raw value of `X-Forwarded-For`, trimmed; the first if repeated
    /// (a proxy chain that splits it over several fields shows only the
    /// first).
    pub fn x_forwarded_for(&self) -> Option<&'a [u8]> {
        self.raw.get(RawField::XForwardedFor)
    }

    /// The raw value of `Access-Control-Request-Method`, trimmed; the first
    /// if repeated.
    pub fn access_control_request_method(&self) -> Option<&'a [u8]> {
        self.raw.get(RawField::AccessControlRequestMethod)
    }

    /// The raw value of `Access-Control-Request-Headers`, trimmed; the
    /// first if repeated.
    pub fn access_control_request_headers(&self) -> Option<&'a [u8]> {
        self.raw.get(RawField::AccessControlRequestHeaders)
    }
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
    /// An error answered with `status` and `{"error": message}`.
    pub const fn new(status: u16, message: &'static str) -> HttpError {
        HttpError { status, message }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

/// `tchar` of RFC 9110 section 5.6.2: what methods, field names, codings and
/// chunk-extension names are made of.
fn is_tchar(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ) || b.is_ascii_alphanumeric()
}

/// A byte no request head may hold anywhere: the C0 controls but HTAB (CR
/// and LF are line ends, handled apart) and DEL. NUL, VT and FF are the
/// classic ways to make two parsers split one field differently.
fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}
