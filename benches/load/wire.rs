//! HTTP/1.1 on the wire, as little of it as a load generator needs.
//!
//! Requests are written by hand as bytes, once per scenario, so that the
//! generator spends its time in syscalls and not in formatting. Responses are
//! parsed minimally: the status line, `Content-Length` (or a chunked body, or
//! a body that ends when the server closes, so that other servers speaking the
//! same API can be measured too), the lease headers `Batch-Id` and
//! `Batch-Attempt`, and the body. "Not enough bytes yet" is a value,
//! [`Parsed::Partial`], as in httparse.

/// What [`parse_response`] found at the start of a buffer.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A whole response: its status, its lease (if it carried one), its
    /// body, and how many bytes it took.
    Complete {
        status: u16,
        lease: Option<Lease>,
        body: Vec<u8>,
        len: usize,
    },
    /// The buffer holds the beginning of a response only.
    Partial,
    /// The bytes are not an HTTP/1.x response; the connection is unusable.
    Invalid(&'static str),
}

/// The `Batch-Id` and `Batch-Attempt` of a batch handed out under a lease.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lease {
    pub batch: u64,
    pub attempt: u64,
}

/// A request head is limited by the servers we talk to; ours are short.
const MAX_HEAD: usize = 64 * 1024;

/// Parses the first response in `buf`. `eof` says the peer has closed, which
/// completes a response that has neither `Content-Length` nor chunking.
pub fn parse_response(buf: &[u8], eof: bool) -> Parsed {
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let Some(head_len) = find(rest, b"\r\n\r\n").map(|at| at + 4) else {
            return if rest.len() > MAX_HEAD {
                Parsed::Invalid("response head too long")
            } else {
                Parsed::Partial
            };
        };
        let head = &rest[..head_len];
        let status = match status_of(head) {
            Ok(status) => status,
            Err(why) => return Parsed::Invalid(why),
        };
        // An interim response (`100 Continue`) precedes the real one.
        if (100..200).contains(&status) {
            start += head_len;
            continue;
        }
        let body_at = start + head_len;
        let (framing, lease) = match fields_of(head) {
            Ok(fields) => fields,
            Err(why) => return Parsed::Invalid(why),
        };
        return match framing {
            Framing::Length(n) if buf.len() - body_at >= n => Parsed::Complete {
                status,
                lease,
                body: buf[body_at..body_at + n].to_vec(),
                len: body_at + n,
            },
            Framing::Length(_) => Parsed::Partial,
            Framing::Chunked => match dechunk(&buf[body_at..]) {
                Ok(Some((body, used))) => Parsed::Complete {
                    status,
                    lease,
                    body,
                    len: body_at + used,
                },
                Ok(None) => Parsed::Partial,
                Err(why) => Parsed::Invalid(why),
            },
            Framing::UntilClose if eof => Parsed::Complete {
                status,
                lease,
                body: buf[body_at..].to_vec(),
                len: buf.len(),
            },
            Framing::UntilClose => Parsed::Partial,
        };
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn status_of(head: &[u8]) -> Result<u16, &'static str> {
    // "HTTP/1.1 200 OK": the three digits after the first space.
    if !head.starts_with(b"HTTP/1.") {
        return Err("not an HTTP/1.x status line");
    }
    let digits = head.get(9..12).ok_or("status line too short")?;
    if head.get(8) != Some(&b' ') || !digits.iter().all(u8::is_ascii_digit) {
        return Err("malformed status code");
    }
    Ok(digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
}

/// The body's framing and the lease headers. A lease needs both headers; a
/// response with one of them only is as broken as one with a bad number.
fn fields_of(head: &[u8]) -> Result<(Framing, Option<Lease>), &'static str> {
    let number = |value: &[u8], why| {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(why)
    };
    let mut framing = Framing::UntilClose;
    let (mut batch, mut attempt) = (None, None);
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            // Chunking wins over a length (RFC 9112, 6.3).
            if !matches!(framing, Framing::Chunked) {
                framing = Framing::Length(
                    number(value, "bad Content-Length")?
                        .try_into()
                        .map_err(|_| "bad Content-Length")?,
                );
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            && value.eq_ignore_ascii_case(b"chunked")
        {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case(b"batch-id") {
            batch = Some(number(value, "bad Batch-Id")?);
        } else if name.eq_ignore_ascii_case(b"batch-attempt") {
            attempt = Some(number(value, "bad Batch-Attempt")?);
        }
    }
    let lease = match (batch, attempt) {
        (Some(batch), Some(attempt)) => Some(Lease { batch, attempt }),
        (None, None) => None,
        _ => return Err("Batch-Id without Batch-Attempt, or the reverse"),
    };
    Ok((framing, lease))
}

/// Decodes a chunked body; `Ok(None)` until the last chunk and trailers are in.
fn dechunk(mut buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, &'static str> {
    let total = buf.len();
    let mut body = Vec::new();
    loop {
        let Some(eol) = find(buf, b"\r\n") else {
            return Ok(None);
        };
        let size_text = buf[..eol].split(|&b| b == b';').next().unwrap_or(&[]);
        let size = std::str::from_utf8(trim(size_text))
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
            .ok_or("bad chunk size")?;
        buf = &buf[eol + 2..];
        if size == 0 {
            // Trailers, if any, end with an empty line.
            let Some(end) = find_trailer_end(buf) else {
                return Ok(None);
            };
            let used = total - buf.len() + end;
            return Ok(Some((body, used)));
        }
        if buf.len() < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[..size]);
        buf = &buf[size + 2..];
    }
}

fn find_trailer_end(buf: &[u8]) -> Option<usize> {
    if buf.starts_with(b"\r\n") {
        return Some(2);
    }
    find(buf, b"\r\n\r\n").map(|at| at + 4)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes a query value; keys made by the benchmark need none, but
/// a key given from outside might.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /push?key=K` with a JSON body, keep-alive.
pub fn push(host: &str, key: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /push?key={} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        encode(key),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// `GET /blocking-get?key=K&groupId=G`, keep-alive.
pub fn blocking_get(host: &str, key: &str, group: &str) -> Vec<u8> {
    get(
        host,
        &format!(
            "/blocking-get?key={}&groupId={}",
            encode(key),
            encode(group)
        ),
    )
}

/// `GET /blocking-get?key=K&groupId=G&...` with more query parameters
/// (`extra`, already encoded, starting with `&`), keep-alive.
pub fn blocking_get_with(host: &str, key: &str, group: &str, extra: &str) -> Vec<u8> {
    get(
        host,
        &format!(
            "/blocking-get?key={}&groupId={}{extra}",
            encode(key),
            encode(group)
        ),
    )
}

/// `POST /ack?key=K&groupId=G&batch=B` with an empty body, keep-alive.
pub fn ack(host: &str, key: &str, group: &str, batch: u64) -> Vec<u8> {
    format!(
        "POST /ack?key={}&groupId={}&batch={batch} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n",
        encode(key),
        encode(group)
    )
    .into_bytes()
}

/// A plain `GET` of `path`, keep-alive.
pub fn get(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// The integers found after `"i":` in a JSON array of `{"i":N}` events, in
/// order. Good enough for bodies the benchmark pushed itself; anything else
/// is reported as `None`, which the churn check treats as a failure.
pub fn event_numbers(body: &[u8]) -> Option<Vec<u64>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .as_array()?
        .iter()
        .map(|event| event.get("i").and_then(serde_json::Value::as_u64))
        .collect()
}

/// The `(id, i)` of each element of a `format=envelope` batch of `{"i":N}`
/// events, in order; `None` for anything else.
pub fn envelope_events(body: &[u8]) -> Option<Vec<(u64, u64)>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .as_array()?
        .iter()
        .map(|element| {
            let id = element.get("id")?.as_u64()?;
            let i = element.get("data")?.get("i")?.as_u64()?;
            Some((id, i))
        })
        .collect()
}

/// The `id` of a push's answer, `{"message":...,"id":ID}`.
pub fn pushed_id(body: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("id")?.as_u64()
}

/// The `N` of an ack's answer, `{"acked":N}`.
pub fn acked_count(body: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("acked")?.as_u64()
}

/// Checks of the parser, run by `--self-test` (a `harness = false` target has
/// no test runner). Each returns a description of the first failure.
pub fn self_test() -> Result<(), String> {
    let full: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 2\r\n\r\n[]";
    macro_rules! expect {
        ($buf:expr, $eof:expr, $want:expr) => {
            let got = parse_response($buf, $eof);
            if got != $want {
                return Err(format!(
                    "parse_response({:?}) = {got:?}, want {:?}",
                    String::from_utf8_lossy($buf),
                    $want
                ));
            }
        };
    }
    let whole = Parsed::Complete {
        status: 200,
        lease: None,
        body: b"[]".to_vec(),
        len: full.len(),
    };
    expect!(full, false, whole);
    for end in 0..full.len() {
        expect!(&full[..end], false, Parsed::Partial);
    }
    let two = [full, full].concat();
    expect!(&two, false, whole);
    let chunked: &[u8] =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n";
    for end in 0..chunked.len() {
        expect!(&chunked[..end], false, Parsed::Partial);
    }
    expect!(
        chunked,
        false,
        Parsed::Complete {
            status: 200,
            lease: None,
            body: b"[1,2]".to_vec(),
            len: chunked.len()
        }
    );
    let interim: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    expect!(
        interim,
        false,
        Parsed::Complete {
            status: 404,
            lease: None,
            body: Vec::new(),
            len: interim.len()
        }
    );
    let closing: &[u8] = b"HTTP/1.0 200 OK\r\n\r\nok";
    expect!(closing, false, Parsed::Partial);
    expect!(
        closing,
        true,
        Parsed::Complete {
            status: 200,
            lease: None,
            body: b"ok".to_vec(),
            len: closing.len()
        }
    );
    expect!(
        b"SSH-2.0\r\n\r\n",
        false,
        Parsed::Invalid("not an HTTP/1.x status line")
    );
    let leased: &[u8] =
        b"HTTP/1.1 200 OK\r\nBatch-Id: 17\r\nContent-Length: 2\r\nbatch-attempt: 2\r\n\r\n[]";
    expect!(
        leased,
        false,
        Parsed::Complete {
            status: 200,
            lease: Some(Lease {
                batch: 17,
                attempt: 2
            }),
            body: b"[]".to_vec(),
            len: leased.len()
        }
    );
    expect!(
        b"HTTP/1.1 200 OK\r\nBatch-Id: 17\r\nContent-Length: 0\r\n\r\n",
        false,
        Parsed::Invalid("Batch-Id without Batch-Attempt, or the reverse")
    );
    expect!(
        b"HTTP/1.1 200 OK\r\nBatch-Id: x\r\nBatch-Attempt: 1\r\n\r\n",
        false,
        Parsed::Invalid("bad Batch-Id")
    );
    if envelope_events(br#"[{"id":9,"data":{"i":3}},{"id":12,"data":{"i":4}}]"#)
        != Some(vec![(9, 3), (12, 4)])
    {
        return Err("envelope_events on two events".into());
    }
    if envelope_events(br#"[{"i":3}]"#).is_some() {
        return Err("envelope_events accepted a bare event".into());
    }
    if pushed_id(br#"{"message":"Data pushed successfully","id":41}"#) != Some(41) {
        return Err("pushed_id on a push answer".into());
    }
    if event_numbers(br#"[{"i":3},{"i":4}]"#) != Some(vec![3, 4]) {
        return Err("event_numbers on two events".into());
    }
    if event_numbers(br#"[{"n":1}]"#).is_some() {
        return Err("event_numbers accepted an event without i".into());
    }
    Ok(())
}
