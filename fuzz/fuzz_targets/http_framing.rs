//! Request framing fed as it arrives from a socket: in pieces.
//!
//! The input is a small header followed by the bytes of one or more
//! pipelined requests:
//!
//! - byte 0: bit 0 set feeds the payload straight to `decode_chunked`
//!   instead of `parse_head`; bits 1-2 pick the body limit (0, 16, 1 KiB,
//!   1 MiB);
//! - byte 1: how many split points follow (0 to 15);
//! - then two bytes (little-endian) per split point: where a read ends,
//!   taken modulo the length of the request being parsed;
//! - then the payload.
//!
//! For every prefix a read would leave in the buffer, the parsers must not
//! panic and must answer `Partial`, `Complete` or an error with a 4xx/5xx
//! status; a prefix that is `Complete` or an error must give exactly what the
//! whole payload gives (so a longer prefix never changes the answer); and a
//! strict prefix of a complete head or body must be `Partial`. One
//! `HeadScanner` fed the same growing buffer read by read must find what a
//! fresh one finds in the whole buffer, and agree with `parse_head`.

#![no_main]

use event_syncer::http::{
    Framing, HeadScanner, HttpError, MAX_HEAD, Status, decode_chunked, parse_head, query_param,
    write_response,
};
use libfuzzer_sys::fuzz_target;

/// Most pipelined requests followed in one input: enough to cross a body
/// boundary a few times without making one input slow.
const MAX_REQUESTS: usize = 4;

/// Below this length every prefix is checked, not only the split points.
const ALL_PREFIXES_UP_TO: usize = 128;

fuzz_target!(|data: &[u8]| {
    let [mode, count, rest @ ..] = data else {
        return;
    };
    let count = usize::from(count % 16);
    if rest.len() < 2 * count {
        return;
    }
    let (split_bytes, payload) = rest.split_at(2 * count);
    let splits: Vec<usize> = split_bytes
        .chunks_exact(2)
        .map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])))
        .collect();
    let max_body = [0, 16, 1024, 1 << 20][usize::from((mode >> 1) & 3)];

    if mode & 1 == 1 {
        check_chunked(payload, &splits, max_body);
        return;
    }
    let mut start = 0;
    for _ in 0..MAX_REQUESTS {
        let Some(next) = check_request(&payload[start..], &splits, max_body) else {
            return;
        };
        start += next;
    }
});

/// Checks the request at the start of `buf`; returns where the next one
/// starts, if this one is complete, head and body.
fn check_request(buf: &[u8], splits: &[usize], max_body: usize) -> Option<usize> {
    let full = parse_head(buf);
    check_scanner(buf, splits, &full);
    for end in prefix_ends(buf.len(), splits) {
        let partial = parse_head(&buf[..end]);
        check_status(&partial);
        match (&partial, &full) {
            (Ok(Status::Partial), Ok(Status::Complete(head))) => {
                assert!(end < head.len, "prefix {end} holds the whole head {head:?}")
            }
            (Ok(Status::Partial), _) => {}
            (partial, full) => assert_eq!(partial, full, "prefix {end} of {}", buf.len()),
        }
    }
    check_status(&full);
    let Ok(Status::Complete(head)) = full else {
        return None;
    };
    assert!(head.len <= buf.len() && head.len <= MAX_HEAD, "{head:?}");
    assert!(head.minor_version <= 1);
    for name in ["key", "groupId", "timeout"] {
        if let Err(e) = query_param(head.query, name) {
            assert_eq!(e.status, 400, "{e}");
        }
    }

    let rest = &buf[head.len..];
    let body_len = match head.framing {
        Framing::Empty => 0,
        Framing::Length(n) if n <= rest.len() => n,
        Framing::Length(_) => return None,
        Framing::Chunked => return check_chunked(rest, splits, max_body).map(|n| head.len + n),
    };
    let mut out = Vec::new();
    write_response(
        &mut out,
        200,
        "application/json",
        &[],
        &rest[..body_len],
        head.keep_alive,
        head.minor_version,
    );
    assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n") && out.ends_with(&rest[..body_len]));
    Some(head.len + body_len)
}

/// The same checks for a chunked body at the start of `buf`; returns the
/// bytes it takes, if complete.
fn check_chunked(buf: &[u8], splits: &[usize], max_body: usize) -> Option<usize> {
    let full = decode_chunked(buf, max_body);
    for end in prefix_ends(buf.len(), splits) {
        let partial = decode_chunked(&buf[..end], max_body);
        check_status(&partial);
        match (&partial, &full) {
            (Ok(Status::Partial), Ok(Status::Complete((_, consumed)))) => {
                assert!(
                    end < *consumed,
                    "prefix {end} holds the whole body of {consumed}"
                )
            }
            (Ok(Status::Partial), _) => {}
            (partial, full) => assert_eq!(partial, full, "prefix {end} of {}", buf.len()),
        }
    }
    check_status(&full);
    let Ok(Status::Complete((body, consumed))) = full else {
        return None;
    };
    assert!(consumed <= buf.len() && body.len() <= max_body && body.len() < consumed);
    Some(consumed)
}

/// The scanner, fed `buf` read by read, ends where a fresh scan of all of
/// `buf` ends, and where `parse_head` says the head ends.
fn check_scanner<T>(buf: &[u8], splits: &[usize], full: &Result<Status<T>, HttpError>) {
    let once = HeadScanner::default().scan(buf);
    let mut scanner = HeadScanner::default();
    let mut growing = Ok(None);
    for end in prefix_ends(buf.len(), splits)
        .into_iter()
        .chain([buf.len()])
    {
        growing = scanner.scan(&buf[..end]);
        if !matches!(growing, Ok(None)) {
            break;
        }
    }
    assert_eq!(growing, once, "read by read vs at once");
    match (&once, full) {
        (Ok(None), Ok(Status::Partial)) | (Ok(Some(_)), Ok(Status::Complete(_)) | Err(_)) => {}
        (Err(scanned), Err(parsed)) => assert_eq!(scanned, parsed),
        (once, full) => panic!(
            "scanner says {once:?}, parse_head says {}",
            match full {
                Ok(Status::Partial) => "Partial",
                Ok(Status::Complete(_)) => "Complete",
                Err(_) => "an error",
            }
        ),
    }
}

fn check_status<T>(result: &Result<Status<T>, HttpError>) {
    if let Err(e) = result {
        assert!((400..600).contains(&e.status), "{e}");
        assert!(!e.message.is_empty());
    }
}

/// Where the reads end: the split points (modulo the length), or every
/// length when the input is short; always ascending, without the full length
/// (the caller checks that separately).
fn prefix_ends(len: usize, splits: &[usize]) -> Vec<usize> {
    let mut ends: Vec<usize> = if len <= ALL_PREFIXES_UP_TO {
        (0..len).collect()
    } else {
        splits.iter().map(|&split| split % len).collect()
    };
    ends.sort_unstable();
    ends.dedup();
    ends
}
