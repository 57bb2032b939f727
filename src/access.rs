//! The access log (`--access-log`): one line per answered request, in
//! `key=value` form, gathered during a turn of the loop and written with one
//! `write` at its end.
//!
//! What it owns: the text of the lines, and what it must remember about a
//! request between the moment its head is read and the moment it is
//! answered, which for a parked blocking-get may be a poll timeout later
//! and on behalf of another connection's push. It knows nothing of sockets
//! or clocks: the loop hands it the peer (as something printable), the
//! time in microseconds and the wall clock, so the line format is tested
//! with made-up values.
//!
//! Cost: nothing at all when the log is off, since the loop holds no
//! `AccessLog` then and a [`Connection`](crate::connection) carries no field
//! for it; the ~440 bytes a parked connection costs do not grow. When it is
//! on, a request costs one small string (its fields, rendered once when its
//! head is read) and a parked one keeps that string in a map by connection
//! token until it is answered or dropped. Lines go to stderr beside the
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
use std::fmt::{self, Write as _};
use std::io;

use crate::http::Method;

/// What the log says of a request, known when its head has been read.
pub struct Fields<'a> {
    /// The connection's peer address.
    pub peer: &'a dyn fmt::Display,
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

/// A request read and not yet answered.
struct Begun {
    /// Its fields, rendered: `peer=... method=... path=...`.
    fields: String,
    /// When its head was read, in microseconds on the loop's clock.
    since_us: u64,
}

/// The access log of one server.
#[derive(Default)]
pub struct AccessLog {
    /// Lines of this turn, not yet written.
    lines: Vec<u8>,
    /// The request being answered now, by connection token: it is answered
    /// at once or parks before the next request is read.
    current: Option<(usize, Begun)>,
    /// Parked requests, by connection token.
    parked: HashMap<usize, Begun>,
}

impl AccessLog {
    /// Remembers the request connection `token` has just sent.
    pub fn begin(&mut self, token: usize, request: &Fields<'_>, now_us: u64) {
        let mut fields = String::with_capacity(128);
        // Writing into a String cannot fail.
        let _ = write!(fields, "peer={}", request.peer);
        if let Some(xff) = request.forwarded_for {
            fields.push_str(" xff=");
            push_value(&mut fields, &String::from_utf8_lossy(xff));
        }
        fields.push_str(" method=");
        fields.push_str(method_name(request.method));
        fields.push_str(" path=");
        push_value(&mut fields, request.path);
        for (name, value) in [(" key=", request.key), (" groupId=", request.group)] {
            if let Some(value) = value {
                fields.push_str(name);
                push_value(&mut fields, value);
            }
        }
        self.current = Some((
            token,
            Begun {
                fields,
                since_us: now_us,
            },
        ));
    }

    /// The request connection `token` sent has parked: it is answered
    /// later, perhaps in the turn of another connection's request.
    pub fn park(&mut self, token: usize) {
        if let Some((t, begun)) = self.current.take() {
            if t == token {
                self.parked.insert(token, begun);
            } else {
                self.current = Some((t, begun));
            }
        }
    }

    /// Connection `token` is closed or its consumer dropped: it will not be
    /// answered, so nothing is logged for it.
    pub fn forget(&mut self, token: usize) {
        self.parked.remove(&token);
        if matches!(self.current, Some((t, _)) if t == token) {
            self.current = None;
        }
    }

    /// Writes the line of a request on connection `token` answered with
    /// `status` and `bytes` of body at `now_us`; `unix_ms` is the wall
    /// clock for the timestamp. A refusal of a request that could not be
    /// read (a malformed head, a header timeout) has no remembered fields:
    /// its line names the peer, and `-` for method and path.
    pub fn answered(&mut self, token: usize, answer: Answer<'_>) {
        let begun = match self.current.take() {
            Some((t, begun)) if t == token => Some(begun),
            other => {
                self.current = other;
                self.parked.remove(&token)
            }
        };
        let mut line = String::with_capacity(192);
        push_timestamp(&mut line, answer.unix_ms);
        line.push_str(" INFO  [event_syncer::access] ");
        let since = match &begun {
            Some(begun) => {
                line.push_str(&begun.fields);
                begun.since_us
            }
            None => {
                let _ = write!(line, "peer={} method=- path=-", answer.peer);
                answer.now_us
            }
        };
        let took = answer.now_us.saturating_sub(since);
        let _ = writeln!(
            line,
            " status={} bytes={} duration_ms={}.{:03}",
            answer.status,
            answer.bytes,
            took / 1000,
            took % 1000
        );
        self.lines.extend_from_slice(line.as_bytes());
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
        written
    }

    /// Requests parked and remembered, for tests.
    #[cfg(test)]
    fn parked(&self) -> usize {
        self.parked.len()
    }
}

/// How a request was answered, and when.
pub struct Answer<'a> {
    /// The connection's peer, for a line with no remembered fields.
    pub peer: &'a dyn fmt::Display,
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
            peer: &PEER,
            forwarded_for: None,
            method: Method::Get,
            path: "/blocking-get",
            key,
            group,
        }
    }

    fn answer(status: u16, bytes: usize, now_us: u64) -> Answer<'static> {
        Answer {
            peer: &PEER,
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
        log.begin(3, &f, 1_000);
        log.answered(3, answer(200, 27, 1_251_347));
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
        log.begin(0, &fields(None, None), 0);
        log.answered(0, answer(400, 30, 7));
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
        log.begin(5, &fields(Some("k"), Some("g")), 2_000_000);
        log.park(5);
        assert_eq!(log.parked(), 1);
        // Connection 9 pushes; its own request is current while 5 is woken.
        log.begin(9, &fields(Some("k"), None), 3_000_000);
        log.answered(5, answer(200, 4, 3_000_500));
        log.answered(9, answer(200, 50, 3_000_600));
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
        log.begin(5, &fields(Some("k"), Some("g")), 0);
        log.park(5);
        log.forget(5);
        assert_eq!(log.parked(), 0);
        log.answered(5, answer(408, 60, 10));
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
            log.begin(token, &fields(Some("k"), Some("g")), 0);
            log.answered(token, answer(200, 2, 1));
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
