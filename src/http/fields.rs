//! What a request's header fields say: how its body is framed, whether the
//! connection stays open, its `Host`, and the raw values that the layers
//! above (authentication, CORS, the access log) read.
//!
//! Fields are gathered one at a time because each may be repeated, and the
//! rules about repeats (a second `Host`, two different `Content-Length`s)
//! are where smuggling attempts show.

use super::{Framing, HttpError};

const BAD_LENGTH: HttpError = HttpError::new(400, "invalid Content-Length");
const CONFLICTING_LENGTH: HttpError = HttpError::new(400, "conflicting Content-Length headers");
const LENGTH_AND_CHUNKED: HttpError =
    HttpError::new(400, "both Content-Length and Transfer-Encoding");
const CHUNKED_NOT_LAST: HttpError =
    HttpError::new(400, "Transfer-Encoding must end with a single chunked");
const CODING_UNSUPPORTED: HttpError =
    HttpError::new(501, "only Transfer-Encoding: chunked is supported");
const CHUNKED_IN_1_0: HttpError = HttpError::new(400, "Transfer-Encoding in an HTTP/1.0 request");
const MISSING_HOST: HttpError = HttpError::new(400, "an HTTP/1.1 request needs a Host header");
const REPEATED_HOST: HttpError = HttpError::new(400, "more than one Host header");
const BAD_HOST: HttpError = HttpError::new(400, "invalid Host header");

/// What the header fields say about the connection and the body.
#[derive(Default)]
pub(super) struct Fields<'a> {
    pub(super) close: bool,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
    content_length: Option<usize>,
    /// Any `Transfer-Encoding` field, even one with no codings in it.
    transfer_encoding: bool,
    /// `chunked` codings seen so far, over all `Transfer-Encoding` fields.
    chunked: usize,
    /// The last coding seen was `chunked`.
    chunked_last: bool,
    /// A coding other than `chunked` was seen.
    other_coding: bool,
    /// The first `Host` value, already validated.
    host: Option<&'a str>,
    /// More than one `Host` field.
    hosts: usize,
    /// The first value of each [`RawField`], trimmed.
    raw: [Option<&'a [u8]>; RawField::COUNT],
}

impl<'a> Fields<'a> {
    /// Takes one field line. Values arrive without leading whitespace
    /// (httparse strips it) and with no control bytes but HTAB (the scanner
    /// refused those).
    pub(super) fn add(&mut self, name: &str, value: &'a [u8]) -> Result<(), HttpError> {
        let is = |field: &str| name.eq_ignore_ascii_case(field);
        if is("content-length") {
            let length = parse_content_length(value)?;
            match self.content_length {
                Some(seen) if seen != length => return Err(CONFLICTING_LENGTH),
                _ => self.content_length = Some(length),
            }
        } else if is("transfer-encoding") {
            self.transfer_encoding = true;
            for coding in tokens(value) {
                let chunked = coding.eq_ignore_ascii_case(b"chunked");
                self.chunked += usize::from(chunked);
                self.other_coding |= !chunked;
                self.chunked_last = chunked;
            }
        } else if is("connection") {
            for option in tokens(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if is("expect") {
            self.expect_continue |= value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        } else if is("host") {
            self.hosts += 1;
            if self.host.is_none() {
                self.host = Some(parse_host(value.trim_ascii())?);
            }
        } else {
            let Some(field) = RawField::NAMES.iter().position(|field| is(field)) else {
                return Ok(());
            };
            self.raw[field].get_or_insert(value.trim_ascii());
        }
        Ok(())
    }

    /// The raw values as offsets into `head`, which all of them borrow from.
    pub(super) fn raw(&self, head: &'a [u8]) -> RawFields<'a> {
        let mut spans = [Span::ABSENT; RawField::COUNT];
        for (span, value) in spans.iter_mut().zip(self.raw) {
            if let Some(value) = value {
                *span = Span::within(head, value);
            }
        }
        RawFields { head, spans }
    }

    /// RFC 9112 section 3.2: an HTTP/1.1 request has exactly one `Host`; a
    /// 1.0 request may have none, never two.
    pub(super) fn host(&self, minor_version: u8) -> Result<&'a str, HttpError> {
        match (self.hosts, self.host) {
            (0, _) if minor_version == 0 => Ok(""),
            (0, _) => Err(MISSING_HOST),
            (1, Some(host)) => Ok(host),
            (1, None) => Err(BAD_HOST),
            _ => Err(REPEATED_HOST),
        }
    }

    /// RFC 9112 section 6.3, in its order: Transfer-Encoding overrides
    /// Content-Length, except that here both together are refused outright
    /// (the RFC allows it, and a client sending both is either broken or
    /// probing for a smuggling gap).
    pub(super) fn framing(&self, minor_version: u8) -> Result<Framing, HttpError> {
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

/// The fields kept raw for the layers above, in the order of their spans.
#[derive(Clone, Copy)]
pub(super) enum RawField {
    Origin,
    Authorization,
    SecFetchSite,
    XForwardedFor,
    AccessControlRequestMethod,
    AccessControlRequestHeaders,
}

impl RawField {
    const COUNT: usize = 6;
    /// The field names, in the order of the variants.
    const NAMES: [&'static str; RawField::COUNT] = [
        "origin",
        "authorization",
        "sec-fetch-site",
        "x-forwarded-for",
        "access-control-request-method",
        "access-control-request-headers",
    ];
}

/// The raw values of a head, as spans of the head's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RawFields<'a> {
    head: &'a [u8],
    spans: [Span; RawField::COUNT],
}

impl<'a> RawFields<'a> {
    pub(super) fn get(&self, field: RawField) -> Option<&'a [u8]> {
        let span = self.spans[field as usize];
        if span == Span::ABSENT {
            return None;
        }
        let start = usize::from(span.start);
        self.head.get(start..start + usize::from(span.len))
    }
}

/// Where a value lies in a head of at most [`super::MAX_HEAD`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u16,
    len: u16,
}

impl Span {
    const ABSENT: Span = Span {
        start: u16::MAX,
        len: 0,
    };

    /// The span of `value`, a subslice of `head` (httparse hands out
    /// slices of the buffer it parsed).
    fn within(head: &[u8], value: &[u8]) -> Span {
        let start = value.as_ptr().addr().checked_sub(head.as_ptr().addr());
        match start.map(u16::try_from) {
            Some(Ok(start)) if usize::from(start) + value.len() <= head.len() => Span {
                start,
                // A head fits in u16, so any part of it does.
                len: u16::try_from(value.len()).unwrap_or(0),
            },
            _ => Span::ABSENT,
        }
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

/// `uri-host [":" port]` (RFC 9110 section 7.2, RFC 3986 section 3.2.2):
/// a reg-name or IPv4 address, or an IP-literal in brackets; the port is
/// digits. Userinfo (`user@`), a path, whitespace or an empty host are
/// refused, and so is a comma, which RFC 3986 allows in a reg-name but which
/// in a `Host` only ever means a list of hosts.
fn parse_host(value: &[u8]) -> Result<&str, HttpError> {
    let (host, port) = if let Some(literal) = value.strip_prefix(b"[") {
        let close = literal.iter().position(|&b| b == b']').ok_or(BAD_HOST)?;
        if !is_ip_literal(&literal[..close]) {
            return Err(BAD_HOST);
        }
        match &literal[close + 1..] {
            [] => (value, &[][..]),
            [b':', port @ ..] => (&value[..close + 2], port),
            _ => return Err(BAD_HOST),
        }
    } else {
        let colon = value.iter().position(|&b| b == b':');
        let (host, port) = colon.map_or((value, &[][..]), |c| (&value[..c], &value[c + 1..]));
        if host.is_empty() || !is_reg_name(host) {
            return Err(BAD_HOST);
        }
        (host, port)
    };
    if !host.is_empty() && port.iter().all(u8::is_ascii_digit) {
        // Only ASCII got this far.
        std::str::from_utf8(value).map_err(|_| BAD_HOST)
    } else {
        Err(BAD_HOST)
    }
}

/// `*( unreserved / pct-encoded / sub-delims )`, without `,`; IPv4
/// addresses are a subset.
fn is_reg_name(host: &[u8]) -> bool {
    let mut bytes = host.iter();
    while let Some(&b) = bytes.next() {
        let ok = match b {
            b'%' => {
                bytes.next().is_some_and(u8::is_ascii_hexdigit)
                    && bytes.next().is_some_and(u8::is_ascii_hexdigit)
            }
            _ => is_unreserved(b) || (is_sub_delim(b) && b != b','),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The inside of `[...]`: an IPv6 address (hex digits, `:` and a dotted
/// IPv4 tail), or `v` HEXDIG "." followed by IPvFuture characters.
fn is_ip_literal(literal: &[u8]) -> bool {
    match literal {
        [b'v' | b'V', rest @ ..] => match rest.iter().position(|&b| b == b'.') {
            Some(dot) if dot > 0 && dot + 1 < rest.len() => {
                rest[..dot].iter().all(u8::is_ascii_hexdigit)
                    && rest[dot + 1..]
                        .iter()
                        .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
            }
            _ => false,
        },
        _ => {
            literal.contains(&b':')
                && literal
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}
