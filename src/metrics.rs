//! Counters and gauges, and their Prometheus text exposition (format 0.0.4).
//!
//! Counters are plain `u64` fields bumped by the loop and the API: one
//! thread, so no atomics. Gauges are not stored here at all: they are read
//! from the store and the connection slab when `/metrics` is scraped, so
//! they can never drift from the truth.

use std::fmt::Write as _;

/// Which endpoint a request was for, as a metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /push`
    Push,
    /// `GET /blocking-get`
    BlockingGet,
    /// `GET /healthz`
    Healthz,
    /// `GET /metrics`
    Metrics,
    /// `POST /ack`
    Ack,
    /// `POST /nack`
    Nack,
    /// `POST /extend`
    Extend,
    /// `OPTIONS *`: the server as a whole.
    Server,
    /// Anything else, including requests refused before routing.
    Other,
}

impl Endpoint {
    const ALL: [Endpoint; 9] = [
        Endpoint::Push,
        Endpoint::BlockingGet,
        Endpoint::Ack,
        Endpoint::Nack,
        Endpoint::Extend,
        Endpoint::Healthz,
        Endpoint::Metrics,
        Endpoint::Server,
        Endpoint::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Endpoint::Push => "push",
            Endpoint::BlockingGet => "blocking_get",
            Endpoint::Healthz => "healthz",
            Endpoint::Metrics => "metrics",
            Endpoint::Ack => "ack",
            Endpoint::Nack => "nack",
            Endpoint::Extend => "extend",
            Endpoint::Server => "server",
            Endpoint::Other => "other",
        }
    }
}

/// Why a request was refused, as a metrics label: every 4xx and 5xx the
/// server sends has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// 400: malformed request, bad parameter or invalid JSON.
    BadRequest,
    /// 404: no such path.
    NotFound,
    /// 405: the path does not take that method.
    MethodNotAllowed,
    /// 408: the request did not arrive within `--header-timeout`.
    Timeout,
    /// 409: the batch is not leased to that group.
    NotLeased,
    /// 401: no token, or one that does not verify.
    Unauthorized,
    /// 403: a token that does not allow the request.
    Forbidden,
    /// 403: a page from an origin not on `--cors-origin`.
    Origin,
    /// 503: the data directory's log cannot be written.
    LogFailing,
    /// 413: body over `--max-body`.
    BodyTooLarge,
    /// 431: head over 8 KiB.
    HeadTooLarge,
    /// 501: a transfer coding the server does not implement.
    NotImplemented,
    /// 503: `--max-memory` is reached.
    MemoryFull,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
    /// Any other 4xx or 5xx.
    Other,
}

impl Rejection {
    const ALL: [Rejection; 15] = [
        Rejection::BadRequest,
        Rejection::NotFound,
        Rejection::MethodNotAllowed,
        Rejection::Timeout,
        Rejection::NotLeased,
        Rejection::Unauthorized,
        Rejection::Forbidden,
        Rejection::Origin,
        Rejection::LogFailing,
        Rejection::BodyTooLarge,
        Rejection::HeadTooLarge,
        Rejection::NotImplemented,
        Rejection::MemoryFull,
        Rejection::VersionNotSupported,
        Rejection::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            Rejection::BadRequest => "bad_request",
            Rejection::NotFound => "not_found",
            Rejection::MethodNotAllowed => "method_not_allowed",
            Rejection::Timeout => "timeout",
            Rejection::NotLeased => "not_leased",
            Rejection::Unauthorized => "unauthorized",
            Rejection::Forbidden => "forbidden",
            Rejection::Origin => "origin",
            Rejection::LogFailing => "log_failing",
            Rejection::BodyTooLarge => "body_too_large",
            Rejection::HeadTooLarge => "head_too_large",
            Rejection::NotImplemented => "not_implemented",
            Rejection::MemoryFull => "memory_full",
            Rejection::VersionNotSupported => "version_not_supported",
            Rejection::Other => "other",
        }
    }

    /// The rejection a status stands for: `None` below 400.
    pub fn for_status(status: u16) -> Option<Rejection> {
        Some(match status {
            0..=399 => return None,
            400 => Rejection::BadRequest,
            401 => Rejection::Unauthorized,
            403 => Rejection::Forbidden,
            404 => Rejection::NotFound,
            405 => Rejection::MethodNotAllowed,
            408 => Rejection::Timeout,
            409 => Rejection::NotLeased,
            413 => Rejection::BodyTooLarge,
            431 => Rejection::HeadTooLarge,
            501 => Rejection::NotImplemented,
            503 => Rejection::MemoryFull,
            505 => Rejection::VersionNotSupported,
            _ => Rejection::Other,
        })
    }
}

/// The statuses the server answers with; requests are counted per status.
const STATUSES: [u16; 15] = [
    200, 204, 400, 404, 405, 408, 413, 431, 500, 501, 503, 505, 409, 401, 403,
];

/// Values read from the live state at scrape time.
#[derive(Clone, Copy, Debug, Default)]
pub struct Gauges {
    /// Connections open, the scraping one included.
    pub connections_open: usize,
    /// Bytes held for answers not yet written (heads and small bodies, and
    /// expired events kept only for them) and for bodies arriving.
    pub answer_bytes_held: usize,
    /// Consumers parked.
    pub consumers_parked: usize,
    /// Events retained.
    pub events_live: usize,
    /// Bytes charged against `--max-memory`.
    pub event_bytes_live: usize,
    /// Bytes of keys, groups and leases, charged against `--max-memory`.
    pub bookkeeping_bytes: usize,
    /// Keys remembered.
    pub keys: usize,
    /// Consumer groups remembered.
    pub groups: usize,
    /// Leases outstanding.
    pub leased_batches: usize,
    /// The store's lease counters.
    pub leases: crate::store::LeaseStats,
}

/// Every counter the server keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[u64; STATUSES.len() + 1]; Endpoint::ALL.len()],
    rejected: [u64; Rejection::ALL.len()],
    /// Events stored.
    pub pushes: u64,
    /// Events handed to consumers (an event sent to three groups counts three).
    pub events_delivered: u64,
    /// Non-empty responses to blocking-gets.
    pub batches_delivered: u64,
    /// Blocking-gets answered `[]` at their deadline.
    pub poll_timeouts: u64,
    /// Events freed at the end of their TTL.
    pub events_expired: u64,
    /// Connections accepted and kept.
    pub connections_accepted: u64,
    /// Connections closed at once because `--max-connections` were open.
    pub connections_refused: u64,
}

impl Metrics {
    /// Counts one answered request; a 4xx or 5xx is counted under
    /// `reason`, or under what its status stands for.
    pub fn request(&mut self, endpoint: Endpoint, status: u16, reason: Option<Rejection>) {
        let e = Endpoint::ALL
            .iter()
            .position(|&x| x == endpoint)
            .unwrap_or(Endpoint::ALL.len() - 1);
        let s = STATUSES
            .iter()
            .position(|&x| x == status)
            .unwrap_or(STATUSES.len());
        self.requests[e][s] += 1;
        if let Some(r) = reason.or_else(|| Rejection::for_status(status)) {
            self.rejected[r as usize] += 1;
        }
    }

    /// The exposition text, gauges first.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let gauges: [(&str, &str, usize); 9] = [
            (
                "leased_batches",
                "Batches handed out under a lease and not acked or handed out again.",
                g.leased_batches,
            ),
            (
                "connections_open",
                "Open client connections.",
                g.connections_open,
            ),
            (
                "answer_bytes_held",
                "Bytes held for unwritten answers and arriving bodies, counted against --max-memory.",
                g.answer_bytes_held,
            ),
            (
                "consumers_parked",
                "Blocking-gets waiting for an event.",
                g.consumers_parked,
            ),
            (
                "events_live",
                "Events retained (not yet expired).",
                g.events_live,
            ),
            (
                "event_bytes_live",
                "Bytes of retained events, JSON plus bookkeeping, counted against --max-memory.",
                g.event_bytes_live,
            ),
            (
                "bookkeeping_bytes",
                "Bytes of keys, groups and leases, counted against --max-memory.",
                g.bookkeeping_bytes,
            ),
            ("keys", "Keys with events or groups.", g.keys),
            ("groups", "Consumer groups remembered.", g.groups),
        ];
        for (name, help, value) in gauges {
            family(&mut out, name, help, "gauge");
            let _ = writeln!(out, "event_syncer_{name} {value}");
        }

        family(
            &mut out,
            "requests_total",
            "Requests answered, by endpoint and status.",
            "counter",
        );
        for (e, endpoint) in Endpoint::ALL.iter().enumerate() {
            for (s, count) in self.requests[e].iter().enumerate() {
                if *count == 0 {
                    continue;
                }
                let status = STATUSES.get(s).map_or("other".to_string(), u16::to_string);
                let _ = writeln!(
                    out,
                    "event_syncer_requests_total{{endpoint=\"{}\",status=\"{status}\"}} {count}",
                    endpoint.label()
                );
            }
        }
        family(
            &mut out,
            "rejected_total",
            "Requests refused, by reason.",
            "counter",
        );
        for r in Rejection::ALL {
            let _ = writeln!(
                out,
                "event_syncer_rejected_total{{reason=\"{}\"}} {}",
                r.label(),
                self.rejected[r as usize]
            );
        }
        let l = g.leases;
        let counters: [(&str, &str, u64); 12] = [
            ("acks_total", "Leased batches acked.", l.acks),
            (
                "nacks_total",
                "Leased batches given back with a nack.",
                l.nacks,
            ),
            (
                "redeliveries_total",
                "Batches of leased events handed out again.",
                l.redeliveries,
            ),
            (
                "lease_expiries_total",
                "Leases that ran out unacked.",
                l.expiries,
            ),
            (
                "leased_events_expired_total",
                "Leased events whose TTL ended before they were acked.",
                l.events_expired,
            ),
            ("pushes_total", "Events stored.", self.pushes),
            (
                "events_delivered_total",
                "Events handed to consumers, once per group.",
                self.events_delivered,
            ),
            (
                "batches_delivered_total",
                "Non-empty responses to blocking-gets.",
                self.batches_delivered,
            ),
            (
                "poll_timeouts_total",
                "Blocking-gets answered [] at their deadline.",
                self.poll_timeouts,
            ),
            (
                "events_expired_total",
                "Events freed at the end of their TTL.",
                self.events_expired,
            ),
            (
                "connections_accepted_total",
                "Connections accepted and served.",
                self.connections_accepted,
            ),
            (
                "connections_refused_total",
                "Connections closed at once because --max-connections were open.",
                self.connections_refused,
            ),
        ];
        for (name, help, value) in counters {
            family(&mut out, name, help, "counter");
            let _ = writeln!(out, "event_syncer_{name} {value}");
        }
        out
    }
}

pub(crate) fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP event_syncer_{name} {help}");
    let _ = writeln!(out, "# TYPE event_syncer_{name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_and_type_and_counts_move() {
        let mut m = Metrics::default();
        m.request(Endpoint::Push, 200, None);
        m.request(Endpoint::Push, 413, None);
        m.pushes += 1;
        let text = m.render(&Gauges {
            connections_open: 3,
            ..Gauges::default()
        });
        assert!(text.contains("event_syncer_connections_open 3\n"));
        assert!(text.contains("event_syncer_requests_total{endpoint=\"push\",status=\"413\"} 1\n"));
        assert!(text.contains("event_syncer_rejected_total{reason=\"body_too_large\"} 1\n"));
        assert!(text.contains("event_syncer_pushes_total 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
        }
    }
}
