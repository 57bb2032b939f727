//! The HTTP/1.1 compliance cases of the independent probe MDA2AV/Http11Probe
//! (its 194 cases: the Compliance, Smuggling, Malformed Input and
//! Normalization suites, graded by the RFC level its requirement dashboard
//! gives), run against the real server, plus the lines of SPEC.md that the
//! probe has no case for (`SPEC-*`).
//!
//! # Mapping
//!
//! The probe aims at `/` of a generic server. Here each request goes where
//! its case keeps its meaning: a GET to `/healthz`, a body to
//! `/push?key=probe`. Bodies are valid JSON of the probe's length (`12345`
//! for `hello`), so that a `400` can only come from the framing under test,
//! never from the JSON check. An embedded (smuggled) request asks for
//! `/healthz`, so that executing it shows as a second `200`.
//!
//! # Grading
//!
//! Each case has an expectation (pass) and optionally a tolerated outcome
//! (warn). A case fails when the probe would fail it, or when SPEC.md's
//! explicit rule is broken; where SPEC.md is stricter (a malformed request
//! is a `400` *then close*, a close alone is not enough) or more specific
//! (`431`, `505`, `405` with `Allow`, `204` for OPTIONS) it wins. It warns
//! when the probe would only warn and SPEC.md says nothing against it.
//! Independently of its expectation, every case fails if one send is
//! answered more than once (the bytes were read as two requests: a
//! desync), and every response must carry `Date` and, for 4xx/5xx, a JSON
//! `{"error":...}` body (checked over the whole run as two `SPEC-*` lines).
//!
//! All cases run, on parallel connections to one server; every failure is
//! collected and the test fails once at the end, listing them all.

mod common;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use common::{Raw, Response, Server, get};

/// How long a case waits for the first byte of an answer. The probe waits
/// 5 s; 2 s tells "answered" from "waiting for more bytes" here.
const FIRST_BYTE: Duration = Duration::from_secs(2);

/// How long after the last byte a case keeps reading, to see a close or a
/// second (smuggled) response.
const QUIET: Duration = Duration::from_millis(1000);

/// Connections run at once: the machine has 2 cores shared with others, and
/// the cases mostly wait.
const WORKERS: usize = 6;

/// The RFC 2119 level the probe's dashboard gives a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Must,
    Should,
    May,
    OughtTo,
    Unscored,
    NotApplicable,
    /// Not a probe case: a SPEC.md line the probe does not check.
    Spec,
}

/// What a case's answer must look like.
#[derive(Clone, Debug)]
enum Expect {
    /// This status; the connection may stay open or close.
    Status(u16),
    /// This status, then the server closes the connection.
    StatusThenClose(u16),
    /// One of these statuses.
    OneOf(&'static [u16]),
    /// One of these statuses, then close.
    OneOfThenClose(&'static [u16]),
    /// Any 2xx.
    Ok2xx,
    /// A 2xx, then close.
    Ok2xxThenClose,
    /// A 2xx, and the connection stays open.
    Ok2xxOpen,
    /// Any response but these, or a close without one.
    Not(&'static [u16]),
    /// A 4xx/5xx, or a close without a response.
    Rejects,
    /// The request is incomplete: no answer yet (waiting or closed), or 400.
    Incomplete,
    /// Rejected with one of these (or closed); or a 2xx, after which the
    /// follow-up is answered exactly once, with 2xx or 400: the body was
    /// consumed, not left to poison the next request.
    KeepsSync(&'static [u16]),
    /// A 2xx, the connection stays open, the follow-up gets one 2xx.
    Pipelined,
    /// Any of these.
    Any(Vec<Expect>),
}

use Expect::*;

impl Expect {
    fn matches(&self, o: &Observed) -> bool {
        let status = o.first.as_ref().map(|r| r.status);
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        match self {
            Status(s) => status == Some(*s),
            StatusThenClose(s) => status == Some(*s) && o.closed,
            OneOf(set) => status.is_some_and(|s| set.contains(&s)),
            OneOfThenClose(set) => status.is_some_and(|s| set.contains(&s)) && o.closed,
            Ok2xx => ok,
            Ok2xxThenClose => ok && o.closed,
            Ok2xxOpen => ok && !o.closed,
            Not(set) => match status {
                Some(s) => !set.contains(&s),
                None => o.closed,
            },
            Rejects => match status {
                Some(s) => s >= 400,
                None => o.closed,
            },
            Incomplete => status.is_none_or(|s| s == 400),
            KeepsSync(set) => {
                if status.is_some_and(|s| set.contains(&s)) || o.closed {
                    return true;
                }
                ok && o.follow.as_ref().is_some_and(|f| {
                    f.len() == 1 && (f[0].status == 400 || (200..300).contains(&f[0].status))
                })
            }
            Pipelined => {
                ok && !o.closed
                    && o.follow
                        .as_ref()
                        .is_some_and(|f| f.len() == 1 && (200..300).contains(&f[0].status))
            }
            Any(all) => all.iter().any(|e| e.matches(o)),
        }
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status(s) => write!(f, "{s}"),
            StatusThenClose(s) => write!(f, "{s} then close"),
            OneOf(set) => write!(f, "one of {set:?}"),
            OneOfThenClose(set) => write!(f, "one of {set:?} then close"),
            Ok2xx => write!(f, "2xx"),
            Ok2xxThenClose => write!(f, "2xx then close"),
            Ok2xxOpen => write!(f, "2xx, connection kept open"),
            Not(set) => write!(f, "any status but {set:?}, or close"),
            Rejects => write!(f, "4xx/5xx or close"),
            Incomplete => write!(
                f,
                "400, close or waiting for the rest (never another answer)"
            ),
            KeepsSync(set) => write!(
                f,
                "one of {set:?} or close; or 2xx and the follow-up answered once (2xx/400)"
            ),
            Pipelined => write!(f, "2xx, kept open, follow-up 2xx"),
            Any(all) => {
                let parts: Vec<String> = all.iter().map(|e| e.to_string()).collect();
                write!(f, "{}", parts.join(", or "))
            }
        }
    }
}

/// A header-level requirement on the first response, checked once its
/// status passes or warns.
#[derive(Clone, Debug)]
enum Check {
    Header(&'static str),
    HeaderHas(&'static str, &'static str),
    NoHeader(&'static str),
    NoBody,
    ImfDate,
    BodyLacks(&'static str),
    NoInterim,
}

impl Check {
    /// `None` if it holds, else what is wrong.
    fn failure(&self, o: &Observed) -> Option<String> {
        let r = o.first.as_ref()?;
        match self {
            Check::Header(h) => r.header(h).is_none().then(|| format!("no {h} header")),
            Check::HeaderHas(h, v) => match r.header(h) {
                Some(got) if got.to_ascii_lowercase().contains(&v.to_ascii_lowercase()) => None,
                got => Some(format!("{h} should contain {v:?}, is {got:?}")),
            },
            Check::NoHeader(h) => r
                .header(h)
                .map(|v| format!("must not send {h} (sent {v:?})")),
            Check::NoBody => (!r.body.is_empty() || !o.trailing.is_empty())
                .then(|| format!("sent a body: {}", esc(&[&r.body[..], &o.trailing].concat()))),
            Check::ImfDate => match r.header("date") {
                Some(d) if is_imf_fixdate(d) => None,
                d => Some(format!("Date is not IMF-fixdate: {d:?}")),
            },
            Check::BodyLacks(s) => r.text().contains(s).then(|| format!("body echoes {s:?}")),
            Check::NoInterim => (!o.interim.is_empty())
                .then(|| format!("sent a {} interim response", o.interim[0].status)),
        }
    }
}

/// One probe case (or SPEC line) as a request and what must come back.
#[derive(Clone, Debug)]
struct Case {
    id: &'static str,
    level: Level,
    req: Vec<u8>,
    expect: Expect,
    warn: Option<Expect>,
    /// A second request sent on the same connection if it is still open
    /// after the first answer (the probe's sequence cases).
    follow: Option<Vec<u8>>,
    checks: Vec<Check>,
    /// Whether a second response to the first send is legitimate (the bytes
    /// after a body-less request are a second, malformed, request).
    extras_ok: bool,
}

fn c(id: &'static str, level: Level, req: impl AsRef<[u8]>, expect: Expect) -> Case {
    Case {
        id,
        level,
        req: req.as_ref().to_vec(),
        expect,
        warn: None,
        follow: None,
        checks: Vec::new(),
        extras_ok: false,
    }
}

impl Case {
    fn warn(mut self, e: Expect) -> Case {
        self.warn = Some(e);
        self
    }
    fn follow(mut self, f: impl AsRef<[u8]>) -> Case {
        self.follow = Some(f.as_ref().to_vec());
        self
    }
    fn check(mut self, ch: Check) -> Case {
        self.checks.push(ch);
        self
    }
    fn extras_ok(mut self) -> Case {
        self.extras_ok = true;
        self
    }
    fn is_head(&self) -> bool {
        self.req.starts_with(b"HEAD ")
    }
}

/// What came back for one case.
#[derive(Debug, Default)]
struct Observed {
    /// 1xx responses before the final one.
    interim: Vec<Response>,
    first: Option<Response>,
    /// Further final responses to the same send.
    extra: Vec<Response>,
    /// Bytes after the responses that do not parse as one.
    trailing: Vec<u8>,
    closed: bool,
    /// Responses to the follow-up, if it was sent.
    follow: Option<Vec<Response>>,
    /// Set if the harness itself could not run the case.
    harness_error: Option<String>,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.harness_error {
            return write!(f, "harness error: {e}");
        }
        for r in &self.interim {
            write!(f, "{} {} (interim), ", r.status, r.reason)?;
        }
        match &self.first {
            Some(r) => write!(f, "{} {} {}", r.status, r.reason, esc(&r.body))?,
            None => write!(f, "no response")?,
        }
        for r in &self.extra {
            write!(f, " + another response {} {}", r.status, esc(&r.body))?;
        }
        if !self.trailing.is_empty() {
            write!(f, " + unparsed bytes {}", esc(&self.trailing))?;
        }
        write!(
            f,
            ", {}",
            if self.closed {
                "then closed"
            } else {
                "connection left open"
            }
        )?;
        if let Some(fo) = &self.follow {
            let s: Vec<String> = fo.iter().map(|r| r.status.to_string()).collect();
            write!(f, "; follow-up answered [{}]", s.join(", "))?;
        }
        Ok(())
    }
}

/// Printable bytes: escapes, and at most 160 characters.
fn esc(b: &[u8]) -> String {
    let s: String = b.escape_ascii().to_string();
    if s.len() > 160 {
        format!("\"{}...\" ({} bytes)", &s[..160], b.len())
    } else {
        format!("\"{s}\"")
    }
}

/// Splits raw bytes into responses. `head` says the first final response
/// answers a HEAD, so it has no body whatever its Content-Length says.
fn parse_responses(mut raw: &[u8], mut head: bool) -> (Vec<Response>, Vec<u8>) {
    let mut out = Vec::new();
    loop {
        if raw.is_empty() {
            return (out, Vec::new());
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        let head_len = match parsed.parse(raw) {
            Ok(httparse::Status::Complete(n)) => n,
            _ => return (out, raw.to_vec()),
        };
        let status = parsed.code.unwrap_or(0);
        let mut resp = Response {
            version: parsed.version.unwrap_or(1),
            status,
            reason: parsed.reason.unwrap_or("").to_string(),
            headers: parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            body: Vec::new(),
            head: raw[..head_len].to_vec(),
        };
        let interim = (100..200).contains(&status);
        let bodyless = interim || status == 204 || status == 304 || head;
        let rest = &raw[head_len..];
        let body_len = if bodyless {
            0
        } else if resp.header("transfer-encoding").is_some() {
            // event-syncer never sends chunked responses: show it raw.
            return (out, raw.to_vec());
        } else if let Some(cl) = resp.header("content-length") {
            match cl.trim().parse::<usize>() {
                Ok(n) if n <= rest.len() => n,
                _ => return (out, raw.to_vec()),
            }
        } else {
            rest.len()
        };
        resp.body = rest[..body_len].to_vec();
        raw = &rest[body_len..];
        if !interim {
            head = false;
        }
        out.push(resp);
    }
}

/// Runs one case on a fresh connection.
fn observe(server: &Server, case: &Case) -> Observed {
    let mut o = Observed::default();
    let mut conn = Raw::connect(server);
    conn.send_lossy(&case.req);
    let raw = conn.read_until_quiet(FIRST_BYTE, QUIET);
    o.closed = conn.saw_eof();
    let (responses, trailing) = parse_responses(&raw, case.is_head());
    o.trailing = trailing;
    for r in responses {
        if o.first.is_none() && (100..200).contains(&r.status) {
            o.interim.push(r);
        } else if o.first.is_none() {
            o.first = Some(r);
        } else {
            o.extra.push(r);
        }
    }
    if let Some(f) = &case.follow
        && !o.closed
    {
        conn.send_lossy(f);
        let raw = conn.read_until_quiet(FIRST_BYTE, QUIET);
        let (responses, trailing) = parse_responses(&raw, false);
        o.trailing.extend_from_slice(&trailing);
        o.follow = Some(responses);
    }
    o
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grade {
    Pass,
    Warn,
    Fail,
}

/// The grade of a case and, unless it passed, why.
fn grade(case: &Case, o: &Observed) -> (Grade, String) {
    if o.harness_error.is_some() {
        return (Grade::Fail, "the harness could not run it".into());
    }
    let mut g = if case.expect.matches(o) {
        Grade::Pass
    } else if case.warn.as_ref().is_some_and(|w| w.matches(o)) {
        Grade::Warn
    } else {
        Grade::Fail
    };
    let mut why = Vec::new();
    if g == Grade::Fail {
        why.push("status/connection not as expected".to_string());
    }
    if g != Grade::Fail {
        for ch in &case.checks {
            if let Some(w) = ch.failure(o) {
                g = Grade::Fail;
                why.push(w);
            }
        }
    }
    if !case.extras_ok && (!o.extra.is_empty() || !o.trailing.is_empty()) {
        g = Grade::Fail;
        why.push("one send was answered more than once, or with unparsable bytes: the request was not framed as one".into());
    }
    (g, why.join("; "))
}

// ---------------------------------------------------------------------------
// The table.
// ---------------------------------------------------------------------------

/// `12345` of the given length: valid JSON that stands for the probe's
/// `hello`-style bodies.
fn digits(n: usize) -> String {
    (0..n).map(|i| char::from(b'1' + (i % 9) as u8)).collect()
}

/// The request the smuggling cases embed in a body.
const SMUGGLED_GET: &str = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A push with the given extra header lines (each ending in CRLF) and body.
fn push(headers: &str, body: impl AsRef<[u8]>) -> Vec<u8> {
    let mut r =
        format!("POST /push?key=probe HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").into_bytes();
    r.extend_from_slice(body.as_ref());
    r
}

/// A GET of `/healthz` with the given extra header lines.
fn health(headers: &str) -> Vec<u8> {
    format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n").into_bytes()
}

/// The probe's CL.TE-with-embedded-request family: `0` chunk, then an
/// embedded request, with these framing header lines (`{cl}` is replaced by
/// the body's length).
fn clte_smuggle(framing: &str, embedded: &str) -> Vec<u8> {
    let body = format!("0\r\n\r\n{embedded}");
    push(&framing.replace("{cl}", &body.len().to_string()), body)
}

fn garbage() -> Vec<u8> {
    // Deterministic bytes (the probe's are .NET Random(42)); the first is
    // not a token character, so even an incremental parser knows at once.
    let mut x: u32 = 42;
    let mut out = vec![0x8f];
    for _ in 1..256 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        out.push((x >> 16) as u8);
    }
    out
}

fn cases() -> Vec<Case> {
    use Level::*;
    let h = "Host: localhost\r\n";
    let te_cl = |te: &str| {
        push(
            &format!("Transfer-Encoding: {te}\r\nContent-Length: 5\r\n"),
            "12345",
        )
    };
    let chunked = |body: &[u8]| push("Transfer-Encoding: chunked\r\n", body);
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    let reject_or_close_ok = || Any(vec![StatusThenClose(400), Ok2xxThenClose]);
    let reject_400 = || StatusThenClose(400);
    vec![
        // ── Compliance suite ────────────────────────────────────────────
        c("COMP-BASELINE", NotApplicable, health(""), Ok2xx),
        c("RFC9112-2.2-BARE-LF-REQUEST-LINE", May, "GET /healthz HTTP/1.1\nHost: localhost\r\n\r\n", reject_400()).warn(Ok2xx),
        c("RFC9112-2.2-BARE-LF-HEADER", May, "GET /healthz HTTP/1.1\r\nHost: localhost\nX-Test: value\r\n\r\n", reject_400()).warn(Ok2xx),
        c("RFC9112-5.1-OBS-FOLD", Must, health("X-Test: value\r\n continued\r\n"), reject_400()),
        c("RFC9110-5.6.2-SP-BEFORE-COLON", Must, health("X-Test : value\r\n"), reject_400()),
        c("RFC9112-3-MULTI-SP-REQUEST-LINE", Should, "GET  /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()).warn(Ok2xx),
        c("RFC9112-7.1-MISSING-HOST", Must, "GET /healthz HTTP/1.1\r\n\r\n", reject_400()),
        c("RFC9112-2.3-INVALID-VERSION", Should, "GET /healthz HTTP/9.9\r\nHost: localhost\r\n\r\n", StatusThenClose(505)),
        c("RFC9112-5-EMPTY-HEADER-NAME", Must, health(": empty-name\r\n"), reject_400()),
        c("RFC9112-3-CR-ONLY-LINE-ENDING", Must, "GET /healthz HTTP/1.1\rHost: localhost\r\n\r\n", reject_400()),
        c("RFC9112-3-MISSING-TARGET", Must, "GET HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("RFC9112-3.2-FRAGMENT-IN-TARGET", Should, "GET /healthz#frag HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("RFC9112-2.3-HTTP09-REQUEST", Should, "GET /healthz\r\n", reject_400()),
        c("RFC9112-5-INVALID-HEADER-NAME", Must, health("Bad[Name: value\r\n"), reject_400()),
        c("RFC9112-5-HEADER-NO-COLON", Must, health("NoColonHere\r\n"), reject_400()),
        c("RFC9110-5.4-DUPLICATE-HOST", Must, health("Host: other.example.com\r\n"), reject_400()),
        c("RFC9112-6.1-CL-NON-NUMERIC", Must, push("Content-Length: abc\r\n", ""), reject_400()),
        c("RFC9112-6.1-CL-PLUS-SIGN", Must, push("Content-Length: +5\r\n", "12345"), reject_400()),
        c("COMP-WHITESPACE-BEFORE-HEADERS", Must, "GET /healthz HTTP/1.1\r\n \r\nHost: localhost\r\n\r\n", reject_400()),
        c("COMP-DUPLICATE-HOST-SAME", Must, health(h), reject_400()),
        c("COMP-HOST-WITH-USERINFO", Must, "GET /healthz HTTP/1.1\r\nHost: user@localhost\r\n\r\n", reject_400()),
        c("COMP-HOST-WITH-PATH", Must, "GET /healthz HTTP/1.1\r\nHost: localhost/path\r\n\r\n", reject_400()),
        c("COMP-ASTERISK-WITH-GET", Must, "GET * HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("COMP-OPTIONS-STAR", Must, "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(204))
            .check(Check::Header("allow")).check(Check::NoHeader("content-length")),
        c("COMP-UNKNOWN-TE-501", Must, push("Transfer-Encoding: gzip\r\n", ""), OneOfThenClose(&[400, 501])),
        c("COMP-LEADING-CRLF", Should, "\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()).warn(Ok2xx),
        c("COMP-ABSOLUTE-FORM", Unscored, "GET http://localhost/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Ok2xx).warn(reject_400()),
        c("COMP-METHOD-CASE", Unscored, "get /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(405)).check(Check::Header("allow")),
        c("COMP-POST-CL-BODY", Must, push("Content-Length: 5\r\n", "12345"), Ok2xx),
        c("COMP-POST-CL-ZERO", Must, push("Content-Length: 0\r\n", ""), Ok2xx),
        c("COMP-POST-NO-CL-NO-TE", Must, push("", ""), Ok2xx),
        c("COMP-POST-CL-UNDERSEND", Must, push("Content-Length: 10\r\n", "12345"), Incomplete),
        c("COMP-CHUNKED-BODY", Must, chunked(b"5\r\n12345\r\n0\r\n\r\n"), Ok2xx),
        c("COMP-CHUNKED-MULTI", Must, chunked(b"5\r\n12345\r\n6\r\n678901\r\n0\r\n\r\n"), Ok2xx),
        c("COMP-CHUNKED-EMPTY", Must, chunked(b"0\r\n\r\n"), Ok2xx),
        c("COMP-CHUNKED-NO-FINAL", Must, chunked(b"5\r\n12345\r\n"), Incomplete),
        c("COMP-UPGRADE-POST", Must, push(upgrade, ""), Not(&[101])),
        c("COMP-UPGRADE-MISSING-CONN", Must, health("Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"), Not(&[101])),
        c("COMP-UPGRADE-UNKNOWN", Must, health("Connection: Upgrade\r\nUpgrade: totally-made-up/1.0\r\n"), Not(&[101])),
        c("COMP-METHOD-CONNECT", Should, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", OneOf(&[400, 405, 501])),
        c("COMP-EXPECT-UNKNOWN", May, health("Expect: 200-ok\r\n"), Status(417)).warn(Ok2xx),
        c("COMP-GET-WITH-CL-BODY", May, health("Content-Length: 5\r\n").into_iter().chain(*b"hello").collect::<Vec<u8>>(), reject_400()).warn(Ok2xx),
        c("COMP-CHUNKED-EXTENSION", Must, chunked(b"5;ext=value\r\n12345\r\n0\r\n\r\n"), Ok2xx),
        c("COMP-UPGRADE-INVALID-VER", Must, health(&format!("{upgrade}Sec-WebSocket-Version: 99\r\n")), Rejects).warn(Ok2xx),
        c("COMP-METHOD-TRACE", Should, "TRACE /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(405)).check(Check::Header("allow")),
        c("COMP-HOST-EMPTY-VALUE", Must, "GET /healthz HTTP/1.1\r\nHost: \r\n\r\n", reject_400()),
        c("COMP-REQUEST-LINE-TAB", Should, "GET\t/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()).warn(Ok2xx),
        c("COMP-VERSION-MISSING-MINOR", Must, "GET /healthz HTTP/1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("COMP-VERSION-LEADING-ZEROS", Must, "GET /healthz HTTP/01.01\r\nHost: localhost\r\n\r\n", reject_400()),
        c("COMP-VERSION-WHITESPACE", Must, "GET /healthz HTTP/ 1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("COMP-CONNECTION-CLOSE", Must, health("Connection: close\r\n"), Ok2xxThenClose),
        c("COMP-HTTP10-DEFAULT-CLOSE", Should, "GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n", Ok2xxThenClose),
        c("COMP-HTTP10-NO-HOST", May, "GET /healthz HTTP/1.0\r\n\r\n", Ok2xxThenClose).warn(reject_400()),
        c("COMP-HTTP12-VERSION", May, "GET /healthz HTTP/1.2\r\nHost: localhost\r\n\r\n", StatusThenClose(505)).warn(Ok2xx),
        c("COMP-TRACE-WITH-BODY", Should, "TRACE /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello", Status(405)).check(Check::Header("allow")),
        c("COMP-CHUNKED-TRAILER-VALID", Must, chunked(b"5\r\n12345\r\n0\r\nX-Checksum: abc\r\n\r\n"), Ok2xx),
        c("COMP-CHUNKED-HEX-UPPERCASE", Must, chunked(b"A\r\n1234567890\r\n0\r\n\r\n"), Ok2xx),
        c("COMP-RANGE-POST", Must, push("Content-Length: 5\r\nRange: bytes=0-10\r\n", "12345"), Status(200)),
        c("COMP-UPGRADE-HTTP10", Must, format!("GET /healthz HTTP/1.0\r\nHost: localhost\r\n{upgrade}Sec-WebSocket-Version: 13\r\n\r\n"), Not(&[101])),
        c("COMP-HEAD-NO-BODY", Must, "HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Ok2xx).check(Check::NoBody),
        c("COMP-UNKNOWN-METHOD", Should, "FOOBAR /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(405)).check(Check::Header("allow")),
        c("COMP-405-ALLOW", Must, "DELETE /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(405)).check(Check::Header("allow")),
        c("COMP-DATE-HEADER", Must, health(""), Ok2xx).check(Check::Header("date")),
        c("COMP-DATE-FORMAT", Unscored, health(""), Ok2xx).check(Check::ImfDate),
        c("COMP-NO-1XX-HTTP10", Must, "POST /push?key=probe HTTP/1.0\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n12345", Ok2xxThenClose).check(Check::NoInterim),
        c("COMP-NO-CL-IN-204", Must, "OPTIONS /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(204)).check(Check::NoHeader("content-length")),
        c("COMP-OPTIONS-ALLOW", Should, "OPTIONS /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(204)).check(Check::Header("allow")),
        c("COMP-CONTENT-TYPE", Should, health(""), Ok2xx).check(Check::Header("content-type")),
        c("COMP-VERSION-CASE", Must, "GET /healthz http/1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("COMP-LONG-URL-OK", Should, format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(7900)), Status(404)),
        c("COMP-SPACE-IN-TARGET", Must, "GET /pa th HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("COMP-DUPLICATE-CT", Should, push("Content-Length: 5\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n", "12345"), Status(400)).warn(Ok2xx),
        c("COMP-TRACE-SENSITIVE", Unscored, "TRACE /healthz HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer secret-token-123\r\n\r\n", Status(405))
            .check(Check::Header("allow")).check(Check::BodyLacks("secret-token-123")),
        c("COMP-RANGE-INVALID", Unscored, health("Range: bytes=abc-xyz\r\n"), OneOf(&[200, 416])),
        c("COMP-ACCEPT-NONSENSE", Unscored, health("Accept: application/x-nonsense\r\n"), Status(406)).warn(Ok2xx),
        c("COMP-POST-UNSUPPORTED-CT", Unscored, push("Content-Length: 5\r\nContent-Type: application/x-nonsense\r\n", "12345"), Status(200)),
        // ── Smuggling suite ─────────────────────────────────────────────
        c("SMUG-CL-TE-BOTH", OughtTo, push("Content-Length: 23\r\nTransfer-Encoding: chunked\r\n", "D\r\n\"hello-banan\"\r\n0\r\n\r\n"), reject_400()).warn(Ok2xxThenClose),
        c("SMUG-DUPLICATE-CL", Must, push("Content-Length: 5\r\nContent-Length: 10\r\n", "1234567890"), reject_400()),
        c("SMUG-CL-LEADING-ZEROS", Should, push("Content-Length: 005\r\n", "12345"), reject_400()).warn(Ok2xx),
        c("SMUG-TE-XCHUNKED", Must, te_cl("xchunked"), OneOfThenClose(&[400, 501])),
        c("SMUG-TE-TRAILING-SPACE", Must, te_cl("chunked "), OneOfThenClose(&[400, 501])).warn(Ok2xxThenClose),
        c("SMUG-TE-SP-BEFORE-COLON", Must, push("Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", "12345"), reject_400()),
        c("SMUG-CL-NEGATIVE", Must, push("Content-Length: -1\r\n", ""), reject_400()),
        c("SMUG-CLTE-PIPELINE", Must, push("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), reject_or_close_ok()),
        c("SMUG-TECL-PIPELINE", Must, push("Transfer-Encoding: chunked\r\nContent-Length: 30\r\n", "0\r\n\r\n"), reject_or_close_ok()),
        c("SMUG-CL-TRAILING-SPACE", Should, push("Content-Length: 5 \r\n", "12345"), reject_400()).warn(Ok2xx),
        c("SMUG-TE-DOUBLE-CHUNKED", Should, te_cl("chunked, chunked"), reject_400()).warn(Ok2xxThenClose),
        c("SMUG-CL-EXTRA-LEADING-SP", Should, push("Content-Length:  5\r\n", "12345"), reject_400()).warn(Ok2xx),
        c("SMUG-TE-CASE-MISMATCH", Should, te_cl("Chunked"), reject_400()).warn(Ok2xxThenClose),
        c("SMUG-CL-COMMA-DIFFERENT", Must, push("Content-Length: 5, 10\r\n", "12345"), reject_400()),
        c("SMUG-TE-NOT-FINAL-CHUNKED", Must, push("Transfer-Encoding: chunked, gzip\r\n", "0\r\n\r\n"), reject_400()),
        c("SMUG-TE-HTTP10", Must, "POST /push?key=probe HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n12345", reject_400()),
        c("SMUG-CHUNK-BARE-SEMICOLON", Must, chunked(b"5;\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-CHUNK-EXT-INVALID-TOKEN", Must, chunked(b"5;bad[=x\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-BARE-CR-HEADER-VALUE", Must, push("Content-Length: 5\r\nX-Test: val\rue\r\n", "12345"), reject_400()),
        c("SMUG-CL-OCTAL", Must, push("Content-Length: 0o5\r\n", "12345"), reject_400()),
        c("SMUG-CHUNK-UNDERSCORE", Must, chunked(format!("1_0\r\n{}\r\n0\r\n\r\n", digits(16)).as_bytes()), reject_400()),
        c("SMUG-TE-EMPTY-VALUE", Must, te_cl(""), reject_400()),
        c("SMUG-TE-LEADING-COMMA", Should, te_cl(", chunked"), reject_400()).warn(Ok2xxThenClose),
        c("SMUG-TE-DUPLICATE-HEADERS", Must, push("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n", "12345"), reject_400()),
        c("SMUG-CHUNK-HEX-PREFIX", Must, chunked(b"0x5\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-CHUNK-SIZE-PLUS", Must, chunked(b"+5\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-CHUNK-SIZE-TRAILING-OWS", Must, chunked(b"5 \r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-CL-HEX-PREFIX", Must, push("Content-Length: 0x5\r\n", "12345"), reject_400()),
        c("SMUG-CL-INTERNAL-SPACE", Must, push("Content-Length: 1 0\r\n", "1234567890"), reject_400()),
        c("SMUG-CHUNK-LEADING-SP", Must, chunked(b" 5\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-CHUNK-MISSING-TRAILING-CRLF", Must, chunked(b"5\r\n123450\r\n\r\n"), reject_400()),
        // "5;" is a bare semicolon whatever the line end: the grammar breaks.
        c("SMUG-CHUNK-EXT-LF", May, chunked(b"5;\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-CHUNK-SPILL", Must, chunked(b"5\r\n12345!!\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-CHUNK-LF-TERM", May, chunked(b"5\r\n12345\n0\r\n\r\n"), reject_400()).warn(Ok2xx),
        c("SMUG-CHUNK-EXT-CTRL", Must, chunked(b"5;\x00ext\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-CHUNK-EXT-CR", Must, chunked(b"5;a\rX\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-TE-VTAB", Must, te_cl("\x0bchunked"), reject_400()),
        c("SMUG-TE-FORMFEED", Must, te_cl("\x0cchunked"), reject_400()),
        c("SMUG-TE-NULL", Must, te_cl("chunked\x00"), reject_400()),
        c("SMUG-CHUNK-LF-TRAILER", May, chunked(b"5\r\n12345\r\n0\r\n\n"), reject_400()).warn(Ok2xx),
        c("SMUG-TE-IDENTITY", Must, te_cl("identity"), OneOfThenClose(&[400, 501])),
        c("SMUG-CHUNK-NEGATIVE", Must, chunked(b"-1\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("SMUG-TRANSFER_ENCODING", Unscored, push("Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", "12345"), Status(400)).warn(Ok2xx),
        c("SMUG-CL-COMMA-SAME", Unscored, push("Content-Length: 5, 5\r\n", "12345"), reject_400()).warn(Ok2xx),
        c("SMUG-CL-COMMA-TRIPLE", Unscored, push("Content-Length: 5, 5, 5\r\n", "12345"), reject_400()).warn(Ok2xx),
        c("SMUG-CHUNKED-WITH-PARAMS", Unscored, te_cl("chunked;ext=val"), reject_400()).warn(Ok2xxThenClose),
        c("SMUG-EXPECT-100-CL", Unscored, push("Content-Length: 5\r\nExpect: 100-continue\r\n", "12345"), Ok2xx),
        c("SMUG-TRAILER-CL", Unscored, chunked(b"5\r\n12345\r\n0\r\nContent-Length: 50\r\n\r\n"), reject_400()).warn(Ok2xx),
        c("SMUG-TRAILER-TE", Unscored, chunked(b"5\r\n12345\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"), reject_400()).warn(Ok2xx),
        c("SMUG-TRAILER-HOST", Unscored, chunked(b"5\r\n12345\r\n0\r\nHost: evil.example.com\r\n\r\n"), reject_400()).warn(Ok2xx),
        c("SMUG-TRAILER-AUTH", Unscored, chunked(b"5\r\n12345\r\n0\r\nAuthorization: Bearer evil\r\n\r\n"), reject_400()).warn(Ok2xx),
        c("SMUG-TRAILER-CONTENT-TYPE", Unscored, chunked(b"5\r\n12345\r\n0\r\nContent-Type: text/evil\r\n\r\n"), reject_400()).warn(Ok2xx),
        c("SMUG-HEAD-CL-BODY", Unscored, "HEAD /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello", reject_400()).warn(Ok2xx).check(Check::NoBody),
        c("SMUG-OPTIONS-CL-BODY", Unscored, "OPTIONS /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello", reject_400()).warn(Status(204)),
        c("SMUG-CL-UNDERSCORE", Must, push("Content-Length: 1_0\r\n", "1234567890"), reject_400()),
        c("SMUG-CL-NEGATIVE-ZERO", Must, push("Content-Length: -0\r\n", ""), reject_400()),
        c("SMUG-CL-DOUBLE-ZERO", Should, push("Content-Length: 00\r\n", ""), reject_400()).warn(Ok2xx),
        c("SMUG-CL-LEADING-ZEROS-OCTAL", Should, push("Content-Length: 0200\r\n", format!("\"{}\"", "A".repeat(198))), reject_400()).warn(Ok2xx),
        c("SMUG-TE-OBS-FOLD", Must, push("Transfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n", "12345"), reject_400()),
        c("SMUG-TE-TRAILING-COMMA", Should, te_cl("chunked,"), reject_400()).warn(Ok2xxThenClose),
        c("SMUG-TE-TAB-BEFORE-VALUE", Unscored, push("Transfer-Encoding:\tchunked\r\nContent-Length: 5\r\n", "12345"), reject_400()).warn(Ok2xxThenClose),
        c("SMUG-ABSOLUTE-URI-HOST-MISMATCH", Unscored, "GET http://other.example.com/healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(400)).warn(Ok2xx),
        c("SMUG-MULTIPLE-HOST-COMMA", Must, "GET /healthz HTTP/1.1\r\nHost: localhost, other.example.com\r\n\r\n", reject_400()),
        c("SMUG-CHUNK-BARE-CR-TERM", Must, chunked(b"5\r12345\r\n0\r\n\r\n"), reject_400()),
        // Sequence cases: the follow-up goes only if the connection is open.
        c("SMUG-CLTE-CONN-CLOSE", Must, push("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), reject_or_close_ok()).follow(health("")),
        c("SMUG-TECL-CONN-CLOSE", Must, push("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), reject_or_close_ok()).follow(health("")),
        c("SMUG-CLTE-DESYNC", Must, push("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\nX"), reject_or_close_ok()).follow(health("")),
        c("SMUG-CLTE-SMUGGLED-GET", Must, clte_smuggle("Content-Length: {cl}\r\nTransfer-Encoding: chunked\r\n", SMUGGLED_GET), reject_or_close_ok()),
        c("SMUG-CLTE-SMUGGLED-GET-CL-PLUS", Must, clte_smuggle("Content-Length: +{cl}\r\nTransfer-Encoding: chunked\r\n", SMUGGLED_GET), reject_or_close_ok()),
        c("SMUG-CLTE-SMUGGLED-GET-CL-NON-NUMERIC", Must, clte_smuggle("Content-Length: {cl}x\r\nTransfer-Encoding: chunked\r\n", SMUGGLED_GET), reject_or_close_ok()),
        c("SMUG-CLTE-SMUGGLED-GET-TE-OBS-FOLD", Must, clte_smuggle("Transfer-Encoding:\r\n chunked\r\nContent-Length: {cl}\r\n", SMUGGLED_GET), reject_400()),
        c("SMUG-CLTE-SMUGGLED-HEAD", Must, clte_smuggle("Content-Length: {cl}\r\nTransfer-Encoding: chunked\r\n", "HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"), reject_or_close_ok()),
        c("SMUG-CLTE-SMUGGLED-GET-TE-TRAILING-SPACE", Must, clte_smuggle("Content-Length: {cl}\r\nTransfer-Encoding: chunked \r\n", SMUGGLED_GET), reject_or_close_ok()),
        c("SMUG-CLTE-SMUGGLED-GET-TE-LEADING-COMMA", Must, clte_smuggle("Content-Length: {cl}\r\nTransfer-Encoding: , chunked\r\n", SMUGGLED_GET), reject_or_close_ok()),
        c("SMUG-CLTE-SMUGGLED-GET-TE-CASE-MISMATCH", Must, clte_smuggle("Content-Length: {cl}\r\nTransfer-Encoding: Chunked\r\n", SMUGGLED_GET), reject_or_close_ok()),
        c("SMUG-TE-DUPLICATE-HEADERS-SMUGGLED-GET", Must, clte_smuggle("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: {cl}\r\n", SMUGGLED_GET), reject_400()),
        c("SMUG-TECL-SMUGGLED-GET", Must, tecl_smuggle(), reject_or_close_ok()),
        c("SMUG-DUPLICATE-CL-SMUGGLED-GET", Must, push(&format!("Content-Length: 4\r\nContent-Length: {}\r\n", 4 + SMUGGLED_GET.len()), format!("1234{SMUGGLED_GET}")), reject_400()),
        c("SMUG-GET-CL-PREFIX-DESYNC", Unscored, get_cl_prefix(), KeepsSync(&[400])).follow("\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        c("SMUG-TECL-DESYNC", Must, push("Transfer-Encoding: chunked\r\nContent-Length: 30\r\n", "0\r\n\r\nX"), reject_or_close_ok()).follow(health("")),
        c("SMUG-CL0-BODY-POISON", Unscored, push("Content-Length: 0\r\n", "X"), reject_400()).warn(Ok2xx).follow(health("")),
        c("SMUG-GET-CL-BODY-DESYNC", Unscored, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello", KeepsSync(&[400])).follow(health("")),
        c("SMUG-OPTIONS-CL-BODY-DESYNC", Unscored, "OPTIONS /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello", KeepsSync(&[400])).follow(health("")),
        c("SMUG-EXPECT-100-CL-DESYNC", Unscored, push("Content-Length: 5\r\nExpect: 100-continue\r\n", "12345"), KeepsSync(&[400, 417])).follow(health("")),
        c("SMUG-OPTIONS-TE-OBS-FOLD", Must, "OPTIONS /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello", reject_400()).follow(health("")),
        c("SMUG-CHUNK-INVALID-SIZE-DESYNC", Must, chunked(b"+0\r\n\r\nX"), reject_400()).follow(health("")),
        c("SMUG-PIPELINE-SAFE", Unscored, health(""), Pipelined).follow(health("")),
        // ── Malformed input suite ───────────────────────────────────────
        c("MAL-BINARY-GARBAGE", Should, garbage(), reject_400()).warn(Incomplete),
        c("MAL-LONG-URL", Should, format!("GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "A".repeat(100_000)), Status(431)),
        c("MAL-LONG-HEADER-VALUE", Should, health(&format!("X-Big: {}\r\n", "B".repeat(100_000))), Status(431)),
        c("MAL-MANY-HEADERS", NotApplicable, health(&(0..10_000).map(|i| format!("X-H-{i}: value\r\n")).collect::<String>()), Status(431)),
        c("MAL-NUL-IN-URL", Must, "GET /healthz\x00test HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("MAL-CONTROL-CHARS-HEADER", Must, health("X-Test: abc\x07\x08\x0bdef\r\n"), reject_400()),
        c("MAL-INCOMPLETE-REQUEST", NotApplicable, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Test: value", Incomplete),
        c("MAL-EMPTY-REQUEST", NotApplicable, "", Incomplete),
        c("MAL-LONG-HEADER-NAME", Should, health(&format!("{}: val\r\n", "A".repeat(100_000))), Status(431)),
        // The probe passes only 400 (or a close) here, SPEC says 431 for a
        // head over 8 KiB: a method longer than any known one is malformed
        // long before 8 KiB, which satisfies both.
        c("MAL-LONG-METHOD", Should, format!("{} /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n", "A".repeat(100_000)), reject_400()).warn(Status(431)),
        c("MAL-NON-ASCII-HEADER-NAME", Must, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-T\xc3\xabst: value\r\n\r\n", reject_400()),
        c("MAL-NON-ASCII-URL", Must, b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("MAL-CL-OVERFLOW", Must, push("Content-Length: 99999999999999999999\r\n", ""), reject_400()),
        c("MAL-WHITESPACE-ONLY-LINE", NotApplicable, "   \r\n\r\n", reject_400()).warn(Incomplete),
        c("MAL-NUL-IN-HEADER-VALUE", Must, health("X-Test: val\x00ue\r\n"), reject_400()),
        c("MAL-CHUNK-SIZE-OVERFLOW", Must, chunked(b"FFFFFFFFFFFFFFFF0\r\n12345\r\n0\r\n\r\n"), reject_400()),
        c("MAL-CL-EMPTY", Must, push("Content-Length: \r\n", ""), reject_400()),
        c("MAL-URL-OVERLONG-UTF8", Must, b"GET /\xc0\xaf HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()),
        c("MAL-POST-CL-HUGE-NO-BODY", Must, push("Content-Length: 999999999\r\n", ""), Status(413)),
        c("MAL-H2-PREFACE", NotApplicable, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", OneOfThenClose(&[400, 505])),
        c("MAL-URL-PERCENT-NULL", NotApplicable, "GET /path%00.html HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(400)).warn(OneOf(&[200, 404])),
        c("MAL-URL-PERCENT-CRLF", NotApplicable, "GET /path%0d%0aX-Injected:%20true HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(400)).warn(OneOf(&[200, 404])).check(Check::NoHeader("x-injected")),
        c("MAL-CHUNK-EXT-64K", NotApplicable, chunked(format!("5;ext={}\r\n12345\r\n0\r\n\r\n", "a".repeat(65_536)).as_bytes()), Any(vec![reject_400(), Status(413), Status(431)])).warn(Ok2xx),
        c("MAL-RANGE-OVERLAPPING", Unscored, health(&format!("Range: bytes={}\r\n", vec!["0-"; 1000].join(","))), OneOf(&[200, 206, 400, 416])),
        c("MAL-URL-BACKSLASH", Unscored, "GET /path\\file HTTP/1.1\r\nHost: localhost\r\n\r\n", reject_400()).warn(OneOf(&[200, 404])),
        c("MAL-CL-TAB-BEFORE-VALUE", May, push("Content-Length:\t5\r\n", "12345"), reject_400()).warn(Ok2xx),
        // ── Normalization suite ─────────────────────────────────────────
        c("NORM-UNDERSCORE-CL", NotApplicable, push("Content-Length: 11\r\nContent_Length: 99\r\n", digits(11)), Any(vec![Ok2xx, Rejects])),
        c("NORM-SP-BEFORE-COLON-CL", Must, push("Content-Length: 11\r\nContent-Length : 5\r\n", digits(11)), reject_400()),
        c("NORM-TAB-IN-NAME", Must, push("Content-Length: 11\r\nContent\tLength: 99\r\n", digits(11)), reject_400()),
        c("NORM-CASE-TE", Unscored, push("TRANSFER-ENCODING: chunked\r\n", format!("B\r\n{}\r\n0\r\n\r\n", digits(11))), Any(vec![Ok2xx, Rejects])),
        // Transfer_Encoding is not Transfer-Encoding: the push has no body,
        // and the chunk bytes after it are a second, malformed request.
        c("NORM-UNDERSCORE-TE", NotApplicable, push("Transfer_Encoding: chunked\r\n", format!("B\r\n{}\r\n0\r\n\r\n", digits(11))), Any(vec![Ok2xx, Rejects])).extras_ok(),
        // ── SPEC.md lines the probe has no case for ─────────────────────
        c("SPEC-VERSION-2.0-505", Spec, "GET /healthz HTTP/2.0\r\nHost: localhost\r\n\r\n", StatusThenClose(505)),
        c("SPEC-HTTP10-KEEPALIVE", Spec, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", Ok2xxOpen),
        c("SPEC-404-UNKNOWN-PATH", Spec, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(404)),
        c("SPEC-405-ALLOW-PUSH", Spec, "GET /push?key=probe HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(405)).check(Check::HeaderHas("allow", "POST")),
        c("SPEC-405-ALLOW-HEALTHZ", Spec, "POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", Status(405)).check(Check::HeaderHas("allow", "GET")),
        c("SPEC-405-ALLOW-BLOCKING-GET", Spec, "POST /blocking-get?key=probe&groupId=g HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n", Status(405)).check(Check::HeaderHas("allow", "GET")),
        c("SPEC-OPTIONS-PUSH", Spec, "OPTIONS /push?key=probe HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(204)).check(Check::HeaderHas("allow", "POST")).check(Check::NoHeader("content-length")),
        c("SPEC-OPTIONS-STAR-ALLOW", Spec, "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(204)).check(Check::Header("allow")).check(Check::Header("date")),
        c("SPEC-HEAD-METRICS", Spec, "HEAD /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(200)).check(Check::NoBody).check(Check::Header("content-length")),
        c("SPEC-CACHE-CONTROL-PUSH", Spec, push("Content-Length: 2\r\n", "{}"), Status(200)).check(Check::HeaderHas("cache-control", "no-store")),
        c("SPEC-CACHE-CONTROL-BLOCKING-GET", Spec, "GET /blocking-get?key=probe-cc&groupId=g&timeout=0 HTTP/1.1\r\nHost: localhost\r\n\r\n", Status(200)).check(Check::HeaderHas("cache-control", "no-store")),
        c("SPEC-431-HEAD-OVER-8K", Spec, health(&format!("X-Pad: {}\r\n", "p".repeat(9000))), Status(431)),
        c("SPEC-413-CL-OVER-LIMIT", Spec, push("Content-Length: 1048577\r\n", ""), Status(413)),
    ]
}

/// TE.CL with a chunk-size prefix: Content-Length covers only the size
/// line, the chunk data is a complete request.
fn tecl_smuggle() -> Vec<u8> {
    let smuggled = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: 7\r\n\r\n";
    let hex = format!("{:x}", smuggled.len());
    let cl = hex.len() + 2;
    push(
        &format!("Transfer-Encoding: chunked\r\nContent-Length: {cl}\r\n"),
        format!("{hex}\r\n{smuggled}\r\n0\r\n\r\n"),
    )
}

/// A GET whose Content-Length body is a request head missing its blank line.
fn get_cl_prefix() -> Vec<u8> {
    let prefix = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n";
    format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{prefix}",
        prefix.len()
    )
    .into_bytes()
}

/// Whether `d` is an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
fn is_imf_fixdate(d: &str) -> bool {
    let b = d.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    b.len() == 29
        && ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&&d[..3])
        && &d[3..5] == ", "
        && digit(5)
        && digit(6)
        && b[7] == b' '
        && [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .contains(&&d[8..11])
        && b[11] == b' '
        && (12..16).all(digit)
        && b[16] == b' '
        && digit(17)
        && digit(18)
        && b[19] == b':'
        && digit(20)
        && digit(21)
        && b[22] == b':'
        && digit(23)
        && digit(24)
        && &d[25..] == " GMT"
}

/// Whether `body` is `{"error":"<non-empty>"}`.
fn is_json_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(|s| !s.is_empty()))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Checks that need more than one request.
// ---------------------------------------------------------------------------

/// A failure line: what was sent, expected and seen.
fn failure(id: &str, level: Level, req: &[u8], expected: &str, got: &str) -> String {
    format!(
        "[{level:?}] {id}\n    sent:     {}\n    expected: {expected}\n    got:      {got}",
        esc(req)
    )
}

/// Reads one response with the bodyless-HEAD rule; `None` on silence.
fn one_response(server: &Server, req: &[u8]) -> (Option<Response>, Vec<u8>, bool) {
    let mut conn = Raw::connect(server);
    conn.send_lossy(req);
    let raw = conn.read_until_quiet(FIRST_BYTE, Duration::from_millis(300));
    let (mut rs, trailing) = parse_responses(&raw, req.starts_with(b"HEAD "));
    let first = if rs.is_empty() {
        None
    } else {
        Some(rs.remove(0))
    };
    (first, trailing, conn.saw_eof())
}

/// SPEC: HEAD on /healthz answers the same head as GET, without the body.
fn head_matches_get(server: &Server) -> Option<String> {
    let get_req = health("");
    let head_req = b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (g, _, _) = one_response(server, &get_req);
    let (h, trailing, _) = one_response(server, head_req);
    let describe = |r: &Option<Response>| match r {
        Some(r) => format!(
            "{} {}",
            r.status,
            String::from_utf8_lossy(&r.head).escape_debug()
        ),
        None => "no response".into(),
    };
    let same = match (&g, &h) {
        (Some(g), Some(h)) => {
            let names = |r: &Response| {
                let mut v: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, _)| k.to_ascii_lowercase())
                    .collect();
                v.sort();
                v
            };
            g.status == h.status
                && names(g) == names(h)
                && g.header("content-length") == h.header("content-length")
                && g.header("content-type") == h.header("content-type")
                && h.body.is_empty()
                && trailing.is_empty()
        }
        _ => false,
    };
    (!same).then(|| {
        failure(
            "SPEC-HEAD-HEALTHZ",
            Level::Spec,
            head_req,
            "the head of GET /healthz (same status, header names, Content-Length, Content-Type), no body",
            &format!("GET: {}; HEAD: {} + body bytes {}", describe(&g), describe(&h), esc(&trailing)),
        )
    })
}

/// The sum of every `event_syncer_rejected_total{reason=...}` line, and the
/// lines themselves.
fn rejected(server: &Server) -> (u64, Vec<String>) {
    let (status, body) = get(server, "/metrics");
    if status != 200 {
        return (0, vec![format!("/metrics answered {status}")]);
    }
    let lines: Vec<String> = body
        .lines()
        .filter(|l| l.starts_with("event_syncer_rejected_total"))
        .map(str::to_string)
        .collect();
    let sum = lines
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64;
    (sum, lines)
}

/// SPEC: every request answered 4xx/5xx is counted in
/// `event_syncer_rejected_total` by reason, and each of those answers,
/// 408 included, carries Date and a JSON error body. Runs on its own
/// server with a 1 s header timeout, so that a 408 comes quickly.
fn metrics_and_timeout_checks() -> Vec<String> {
    let server = Server::start(&["--header-timeout", "1"]);
    let mut out = Vec::new();
    let probes: [(&str, u16, Vec<u8>); 7] = [
        (
            "SPEC-METRICS-REJECTED-400",
            400,
            b"GET /healthz HTTP/1.1\r\n\r\n".to_vec(),
        ),
        (
            "SPEC-METRICS-REJECTED-404",
            404,
            b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        (
            "SPEC-METRICS-REJECTED-405",
            405,
            b"DELETE /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        (
            "SPEC-METRICS-REJECTED-413",
            413,
            push("Content-Length: 1048577\r\n", ""),
        ),
        (
            "SPEC-METRICS-REJECTED-431",
            431,
            health(&format!("X-Pad: {}\r\n", "p".repeat(9000))),
        ),
        (
            "SPEC-METRICS-REJECTED-505",
            505,
            b"GET /healthz HTTP/2.0\r\nHost: localhost\r\n\r\n".to_vec(),
        ),
        // Half a head, then nothing: the header timeout answers 408.
        (
            "SPEC-METRICS-REJECTED-408",
            408,
            b"GET /healthz HTTP/1.1\r\nHost: loc".to_vec(),
        ),
    ];
    for (id, status, req) in probes {
        let (before, lines_before) = rejected(&server);
        let mut conn = Raw::connect(&server);
        conn.send_lossy(&req);
        let wait = if status == 408 {
            Duration::from_secs(5)
        } else {
            FIRST_BYTE
        };
        let raw = conn.read_until_quiet(wait, Duration::from_millis(300));
        let (rs, _) = parse_responses(&raw, false);
        let (after, lines_after) = rejected(&server);
        let got = match rs.first() {
            Some(r) => format!("{} {}", r.status, esc(&r.body)),
            None => "no response".into(),
        };
        let answer_ok = rs.first().is_some_and(|r| {
            r.status == status && r.header("date").is_some() && is_json_error(&r.body)
        });
        if !answer_ok {
            out.push(failure(
                &id.replace("METRICS-REJECTED", "ANSWER"),
                Level::Spec,
                &req,
                &format!("{status} with Date and a JSON {{\"error\":...}} body"),
                &format!(
                    "{got}; head {:?}",
                    rs.first()
                        .map(|r| String::from_utf8_lossy(&r.head).into_owned())
                ),
            ));
        }
        if after != before + 1 {
            out.push(failure(
                id,
                Level::Spec,
                &req,
                &format!("event_syncer_rejected_total{{reason=...}} to rise by 1 for a {status}"),
                &format!("{got}; counters before {lines_before:?}, after {lines_after:?}"),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

/// The first dozen items, and how many more.
fn abbreviated(items: &[String]) -> String {
    let mut s = items
        .iter()
        .take(12)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 12 {
        s.push_str(&format!(", ... and {} more", items.len() - 12));
    }
    s
}

#[test]
fn http11probe_cases_and_spec_lines() {
    let table = cases();
    let server = Server::start(&[]);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Observed)>> = Mutex::new(Vec::new());

    let (extra_failures, head_failure) = thread::scope(|s| {
        let side = s.spawn(metrics_and_timeout_checks);
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = table.get(i) else { break };
                    let o = catch_unwind(AssertUnwindSafe(|| observe(&server, case)))
                        .unwrap_or_else(|e| Observed {
                            harness_error: Some(
                                e.downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_else(|| "panic".into()),
                            ),
                            ..Observed::default()
                        });
                    results.lock().expect("results").push((i, o));
                }
            });
        }
        let head = head_matches_get(&server);
        (side.join().expect("metrics checks"), head)
    });
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|(i, _)| *i);

    // COMPLIANCE_VERBOSE=1 lists every case with what came back.
    let verbose = std::env::var_os("COMPLIANCE_VERBOSE").is_some();
    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    let mut no_date = Vec::new();
    let mut non_json_errors = Vec::new();
    let (mut pass, mut warn, mut fail, mut must_fail) = (0, 0, 0, 0);
    for (i, o) in &results {
        let case = &table[*i];
        let (g, why) = grade(case, o);
        let mut expected = case.expect.to_string();
        if let Some(w) = &case.warn {
            expected.push_str(&format!(" (tolerated: {w})"));
        }
        for ch in &case.checks {
            expected.push_str(&format!("; {ch:?}"));
        }
        let line = failure(
            case.id,
            case.level,
            &case.req,
            &expected,
            &format!("{o}  [{why}]"),
        );
        if verbose {
            eprintln!("{g:?} {line}");
        }
        match g {
            Grade::Pass => pass += 1,
            Grade::Warn => {
                warn += 1;
                warnings.push(line);
            }
            Grade::Fail => {
                fail += 1;
                if case.level == Level::Must {
                    must_fail += 1;
                }
                failures.push(line);
            }
        }
        let all = o
            .interim
            .iter()
            .chain(&o.first)
            .chain(&o.extra)
            .chain(o.follow.iter().flatten());
        for (n, r) in all.enumerate() {
            if r.header("date").is_none() {
                no_date.push(format!("{} ({})", case.id, r.status));
            }
            let bodyless_head = n == 0 && case.is_head();
            if r.status >= 400 && !bodyless_head && !is_json_error(&r.body) {
                non_json_errors.push(format!("{} ({} {})", case.id, r.status, esc(&r.body)));
            }
        }
    }
    if !no_date.is_empty() {
        failures.push(format!(
            "[Spec] SPEC-DATE-EVERY-RESPONSE\n    expected: a Date header on every response\n    got:      {} responses without one: {}",
            no_date.len(),
            abbreviated(&no_date)
        ));
    }
    if !non_json_errors.is_empty() {
        failures.push(format!(
            "[Spec] SPEC-JSON-ERROR-BODY\n    expected: every 4xx/5xx body is {{\"error\":\"...\"}}\n    got:      {} that are not: {}",
            non_json_errors.len(),
            abbreviated(&non_json_errors)
        ));
    }
    failures.extend(head_failure);
    failures.extend(extra_failures);

    eprintln!(
        "{} table cases: {pass} pass, {warn} warn, {fail} fail ({must_fail} of them MUST-level); {} further SPEC failures",
        table.len(),
        failures.len() - fail
    );
    if !warnings.is_empty() {
        eprintln!(
            "\nTolerated (the probe would warn):\n{}",
            warnings.join("\n")
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
