//! The access log (`--access-log`): one line per answered request, in
//! `key=value` form, gathered during a turn of the loop and written with one
//! `write` at its end.
//!
//! What it owns: the text of the lines, and what it must remember about a
//! request between the moment its head is read and the moment it is
//! answered, which for a parked blocking-get may be a poll timeout later
//! and on behalf of another connection's push. It knows nothing of sockets
//! or clocks: the loop hands it the peer (asked once per connection), the
//! time in microseconds and the wall clock, so the line format is tested
//! with made-up values.
//!
//! Cost: nothing at all when the log is off, since the loop holds no
//! `AccessLog` then and a [`Connection`](crate::connection) carries no field
//! for it; the ~440 bytes a parked connection costs do not grow. When it is
//! on, a request's fields are rendered once, when its head is read, into a
//! buffer reused by the next request; a parked one keeps a copy in a map
//! by connection token until it is answered or dropped, and each open
//! connection's peer address is kept as text (asked of the kernel once). Lines go to stderr beside the
//! logger's, in one `write` per turn rather than one per request, so a
//! turn that answers 10,000 consumers of one push makes one system call.
//!
//! A line, after the timestamp and level the logger's lines start with:
//!
//! ```text
//! 2026-12-01T09:30:00.123Z INFO  [event_syncer::access] peer=127.0.0.1:40312
//!     xff=10.1.2.3 method=GET path=/blocking-get key=orders groupId=billing
//!     status=200 bytes=27 duration_ms=1250.347
//! ```
//!
//! (one line in the log; wrapped here). `xff`, `key` and `groupId` are left
//! out when the request had none. Values with spaces, quotes, `=`, `\` or
//! control characters are quoted with backslash escapes (logfmt), so a key
//! can never forge a field or a line.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;

use crate::http::{Method, push_decimal};

/// What the log says of a request, known when its head has been read.
pub struct Fields<'a> {
    /// The raw `X-Forwarded-For` value, if sent.
    pub forwarded_for: Option<&'a [u8]>,
    /// The method.
    pub method: Method,
    /// The path, as sent (not decoded).
    pub path: &'a str,
    /// The decoded `key` parameter, if any.
    pub key: Option<&'a str>,
    /// The decoded `groupId` parameter, if any.
    pub group: Option<&'a str>,
}

/// A parked request: its rendered fields and when its head was read.
struct Begun {
    fields: Box<str>,
    since_us: u64,
}

/// The access log of one server.
#[derive(Default)]
pub struct AccessLog {
    /// Lines of this turn, not yet written.
    lines: Vec<u8>,
    /// The connection whose request is being answered now (it is answered
    /// at once or parks before the next request is read), its fields
    /// rendered in `fields` (a buffer reused from request to request) and
    /// when its head was read.
    current: Option<usize>,
    fields: String,
    since_us: u64,
    /// Parked requests, by connection token.
    parked: HashMap<usize, Begun>,
    /// Each open connection's peer, as text: asked of the kernel once per
    /// connection, not once per request.
    peers: HashMap<usize, Box<str>>,
    /// The timestamp of the millisecond `stamp_ms`, formatted once.
    stamp_ms: u64,
    stamp: String,
}

impl AccessLog {
    /// Remembers the request connection `token` has just sent; `peer` is
    /// asked for the connection's address the first time only.
    pub fn begin(
        &mut self,
        token: usize,
        request: &Fields<'_>,
        now_us: u64,
        peer: impl FnOnce() -> String,
    ) {
        let peer = self
            .peers
            .entry(token)
            .or_insert_with(|| peer().into_boxed_str());
        let fields = &mut self.fields;
        fields.clear();
        fields.push_str("peer=");
        fields.push_str(peer);
        if let Some(xff) = request.forwarded_for {
            fields.push_str(" xff=");
            push_value(fields, &String::from_utf8_lossy(xff));
        }
        fields.push_str(" method=");
        fields.push_str(method_name(request.method));
        fields.push_str(" path=");
        push_value(fields, request.path);
        for (name, value) in [(" key=", request.key), (" groupId=", request.group)] {
            if let Some(value) = value {
                fields.push_str(name);
                push_value(fields, value);
            }
        }
        self.current = Some(token);
        self.since_us = now_us;
    }

    /// The request connection `token` sent has parked: it is answered
    /// later, perhaps in the turn of another connection's request.
    pub fn park(&mut self, token: usize) {
        if self.current == Some(token) {
            self.current = None;
            let begun = Begun {
                fields: self.fields.as_str().into(),
                since_us: self.since_us,
            };
            self.parked.insert(token, begun);
        }
    }

    /// Connection `token` is closed, or its consumer dropped: nothing is
    /// logged for a request never answered.
    pub fn forget(&mut self, token: usize, closed: bool) {
        self.parked.remove(&token);
        if self.current == Some(token) {
            self.current = None;
        }
        if closed {
            self.peers.remove(&token);
        }
    }

    /// Writes the line of a request on connection `token`. A refusal of a
    /// request that could not be read (a malformed head, a header timeout)
    /// has no remembered fields: its line names the peer (asked of `peer`),
    /// and `-` for method and path.
    pub fn answered(&mut self, token: usize, answer: Answer, peer: impl FnOnce() -> String) {
        if answer.unix_ms != self.stamp_ms || self.stamp.is_empty() {
            self.stamp.clear();
            push_timestamp(&mut self.stamp, answer.unix_ms);
            self.stamp_ms = answer.unix_ms;
        }
        let line = &mut self.lines;
        line.extend_from_slice(self.stamp.as_bytes());
        line.extend_from_slice(b" INFO  [event_syncer::access] ");
        let since = if self.current == Some(token) {
            self.current = None;
            line.extend_from_slice(self.fields.as_bytes());
            self.since_us
        } else if let Some(begun) = self.parked.remove(&token) {
            line.extend_from_slice(begun.fields.as_bytes());
            begun.since_us
        } else {
            let peer = self.peers.get(&token).map_or_else(peer, |p| p.to_string());
            line.extend_from_slice(b"peer=");
            line.extend_from_slice(peer.as_bytes());
            line.extend_from_slice(b" method=- path=-");
            answer.now_us
        };
        let took = answer.now_us.saturating_sub(since);
        line.extend_from_slice(b" status=");
        push_decimal(line, u64::from(answer.status));
        line.extend_from_slice(b" bytes=");
        push_decimal(line, answer.bytes as u64);
        line.extend_from_slice(b" duration_ms=");
        push_decimal(line, took / 1000);
        let frac = took % 1000;
        line.extend_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
            b'\n',
        ]);
    }

    /// Writes the lines of this turn to `out` in one `write_all`, and
    /// forgets them whether or not that worked: a log that cannot be
    /// written must not grow without bound.
    pub fn flush(&mut self, out: &mut impl io::Write) -> io::Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let written = out.write_all(&self.lines);
        self.lines.clear();
        if self.lines.capacity() > 1 << 20 {
            // One turn that answered 100,000 consumers must not keep its
            // megabytes for the rest of the run.
            self.lines = Vec::new();
        }
        written
    }

    /// Requests parked and remembered, for tests.
    #[cfg(test)]
    fn parked(&self) -> usize {
        self.parked.len()
    }
}

/// How a request was answered, and when.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Bytes of body (0 for `HEAD`).
    pub bytes: usize,
    /// Microseconds on the loop's clock.
    pub now_us: u64,
    /// Milliseconds since the Unix epoch, for the timestamp.
    pub unix_ms: u64,
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Post => "POST",
        Method::Head => "HEAD",
        Method::Options => "OPTIONS",
        // The parser keeps only the methods it routes; the 405 says the rest.
        Method::Other => "OTHER",
    }
}

/// Appends `value`, quoted and escaped if it would otherwise not read back
/// as one value (logfmt): empty, or holding a space, `"`, `=`, `\` or a
/// control character.
fn push_value(out: &mut String, value: &str) {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c == '\\' || c.is_control());
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `unix_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC), the form the
/// logger's own lines start with.
fn push_timestamp(out: &mut String, unix_ms: u64) {
    let secs = unix_ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let in_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        unix_ms % 1000
    );
}

/// The Gregorian date `days` after 1970-01-01: Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch (eras of 400 years,
/// 146,097 days each, shifted so the year starts in March and the leap day
/// comes last).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "127.0.0.1:40312";

    fn fields<'a>(key: Option<&'a str>, group: Option<&'a str>) -> Fields<'a> {
        Fields {
            forwarded_for: None,
            method: Method::Get,
            path: "/blocking-get",
            key,
            group,
        }
    }

    fn peer() -> String {
        PEER.to_string()
    }

    fn answer(status: u16, bytes: usize, now_us: u64) -> Answer {
        Answer {
            status,
            bytes,
            now_us,
            // 2026-12-01T09:30:00.123Z
            unix_ms: 1_796_117_400_123,
        }
    }

    fn text(log: &mut AccessLog) -> String {
        let mut out = Vec::new();
        log.flush(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_line_has_every_field_in_order() {
        let mut log = AccessLog::default();
        let mut f = fields(Some("orders"), Some("billing"));
        f.forwarded_for = Some(b"10.1.2.3");
        log.begin(3, &f, 1_000, peer);
        log.answered(3, answer(200, 27, 1_251_347), peer);
        assert_eq!(
            text(&mut log),
            "2026-12-01T09:30:00.123Z INFO  [event_syncer::access] peer=127.0.0.1:40312 \
             xff=10.1.2.3 method=GET path=/blocking-get key=orders groupId=billing \
             status=200 bytes=27 duration_ms=1250.347\n"
        );
    }

    #[test]
    fn absent_fields_are_left_out() {
        let mut log = AccessLog::default();
        log.begin(0, &fields(None, None), 0, peer);
        log.answered(0, answer(400, 30, 7), peer);
        let line = text(&mut log);
        assert!(
            line.ends_with("peer=127.0.0.1:40312 method=GET path=/blocking-get status=400 bytes=30 duration_ms=0.007\n"),
            "{line}"
        );
    }

    #[test]
    fn values_that_could_forge_a_field_or_a_line_are_quoted() {
        let cases = [
            ("plain", "plain"),
            ("my alpha", "\"my alpha\""),
            ("a=b", "\"a=b\""),
            ("", "\"\""),
            ("say \"hi\"\\", "\"say \\\"hi\\\"\\\\\""),
            ("x\nINFO fake", "\"x\\nINFO fake\""),
            ("\u{1}", "\"\\u{1}\""),
            ("ünïcode", "ünïcode"),
        ];
        for (raw, logged) in cases {
            let mut out = String::new();
            push_value(&mut out, raw);
            assert_eq!(out, logged, "{raw:?}");
        }
    }

    #[test]
    fn a_parked_request_is_logged_when_answered_from_another_connection() {
        let mut log = AccessLog::default();
        log.begin(5, &fields(Some("k"), Some("g")), 2_000_000, peer);
        log.park(5);
        assert_eq!(log.parked(), 1);
        // Connection 9 pushes; its own request is current while 5 is woken.
        log.begin(9, &fields(Some("k"), None), 3_000_000, peer);
        log.answered(5, answer(200, 4, 3_000_500), peer);
        log.answered(9, answer(200, 50, 3_000_600), peer);
        let text = text(&mut log);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("groupId=g status=200 bytes=4 duration_ms=1000.500"));
        assert!(lines[1].contains("key=k status=200 bytes=50 duration_ms=0.600"));
        assert_eq!(log.parked(), 0);
    }

    #[test]
    fn a_dropped_consumer_is_forgotten_and_an_unread_request_names_its_peer() {
        let mut log = AccessLog::default();
        log.begin(5, &fields(Some("k"), Some("g")), 0, peer);
        log.park(5);
        log.forget(5, true);
        assert_eq!(log.parked(), 0);
        log.answered(5, answer(408, 60, 10), peer);
        let line = text(&mut log);
        assert!(
            line.contains(
                "peer=127.0.0.1:40312 method=- path=- status=408 bytes=60 duration_ms=0.000"
            ),
            "{line}"
        );
    }

    #[test]
    fn a_turn_is_written_in_one_write_and_then_forgotten() {
        struct Counting(usize, Vec<u8>);
        impl io::Write for Counting {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0 += 1;
                self.1.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut log = AccessLog::default();
        for token in 0..100 {
            log.begin(token, &fields(Some("k"), Some("g")), 0, peer);
            log.answered(token, answer(200, 2, 1), peer);
        }
        let mut out = Counting(0, Vec::new());
        log.flush(&mut out).unwrap();
        assert_eq!(out.0, 1);
        assert_eq!(out.1.iter().filter(|&&b| b == b'\n').count(), 100);
        log.flush(&mut out).unwrap();
        assert_eq!(out.0, 1, "nothing left to write");
    }

    #[test]
    fn timestamps_at_the_calendar_boundaries() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_399_999, "2000-02-28T23:59:59.999Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (951_868_800_000, "2000-03-01T00:00:00.000Z"),
            (1_709_164_800_000, "2024-02-29T00:00:00.000Z"),
            (1_798_761_599_999, "2026-12-31T23:59:59.999Z"),
            (1_798_761_600_000, "2027-01-01T00:00:00.000Z"),
        ];
        for (ms, want) in cases {
            let mut out = String::new();
            push_timestamp(&mut out, ms);
            assert_eq!(out, want, "{ms}");
        }
    }
}
