//! Answers: a response rendered into its head (and small body) and either
//! queued on the connection's outbox, so pipelined answers go out together,
//! or, for a parked consumer woken by someone else's request, sent at once
//! from the stack and the store.

use log::debug;

use super::Server;
use crate::api::{Body, Response};
use crate::connection::ReplyStyle;
use crate::guard::cors::{self, Cors, CorsReply};
use crate::http;
use crate::memory::Meter;
use crate::outbox::Outbox;
use crate::render::BatchBody;

impl Server {
    /// Queues `response` on the connection and moves it to its next state.
    /// It is written by the flush that follows.
    pub(super) fn respond(&mut self, token: usize, response: &Response, reply: ReplyStyle) {
        self.api
            .metrics
            .request(response.endpoint, response.status, response.rejection);
        self.log_answer(token, response, reply);
        debug!(
            "#{token} {:?} answered {}",
            response.endpoint, response.status
        );
        if response.status == 503 {
            let held = self.api.store.memory_used() + self.meter.held();
            self.warn_limited(
                "memory",
                format_args!(
                    "refusing pushes: {held} bytes held for events and answers (--max-memory)"
                ),
            );
        }
        if let Some(lease) = response.lease {
            self.wheel
                .insert(lease.deadline, super::Timer::Lease(lease.id));
        }
        let now = self.now();
        let date = self.date.now();
        let conn = &mut self.conns[token];
        let cors = self.guard.cors();
        queue_response(&mut conn.outbox, &self.meter, response, reply, date, cors);
        conn.answered(reply.keep_alive, now);
    }

    /// Answers a parked consumer and writes the answer now, from the stack
    /// and the store: a fan-out allocates nothing for the answers the
    /// sockets take whole. Returns false if the connection was closed.
    pub(super) fn respond_now(
        &mut self,
        token: usize,
        response: &Response,
        reply: ReplyStyle,
    ) -> bool {
        // The log first: no answer leaves before what it promises.
        if !self.may_write(token, true) {
            self.respond_held(token, response, reply);
            return true;
        }
        self.api
            .metrics
            .request(response.endpoint, response.status, response.rejection);
        self.log_answer(token, response, reply);
        if let Some(lease) = response.lease {
            self.wheel
                .insert(lease.deadline, super::Timer::Lease(lease.id));
        }
        let now = self.now();
        let Server {
            conns,
            api,
            write_scratch,
            head_scratch,
            meter,
            date,
            released,
            guard,
            ..
        } = self;
        let conn = &mut conns[token];
        head_scratch.clear();
        let body = render_response(head_scratch, response, reply, date.now(), guard.cors());
        let sent = conn.outbox.send(
            &mut conn.stream,
            &api.store,
            meter,
            write_scratch,
            released,
            head_scratch,
            body,
        );
        conn.answered(reply.keep_alive, now);
        self.wrote(token, sent, now)
    }
}

/// Queues the head and body of `response` framed for `reply`: the head and
/// small bodies as bytes, a batch as a body read from the store at write
/// time. Pipelined answers queued this way go out together in one `writev`.
fn queue_response(
    outbox: &mut Outbox,
    meter: &Meter,
    response: &Response,
    reply: ReplyStyle,
    date: &str,
    cors: &Cors,
) {
    let mut body = None;
    outbox.push_bytes(meter, |out| {
        body = render_response(out, response, reply, date, cors)
    });
    if let Some(body) = body {
        outbox.push_body(meter, body);
    }
}

/// Renders the head of `response` (and its body, unless that is a batch,
/// which is returned to be written from the store). Every response carries
/// `Date` and `Cache-Control: no-store` (a queue's answers must never be
/// served from a cache); an answer to an allowed page origin carries the
/// CORS fields.
fn render_response(
    out: &mut Vec<u8>,
    response: &Response,
    reply: ReplyStyle,
    date: &str,
    cors: &Cors,
) -> Option<BatchBody> {
    let mut fields = [("", ""); 12];
    fields[0] = ("Date", date);
    fields[1] = ("Cache-Control", "no-store");
    let mut n = 2;
    let mut digits = [[0u8; 20]; 2];
    if let Some(lease) = &response.lease {
        let [id, attempt] = &mut digits;
        fields[2] = ("Batch-Id", decimal(lease.id, id));
        fields[3] = ("Batch-Attempt", decimal(u64::from(lease.attempt), attempt));
        n = 4;
    }
    let (allowed, preflight) = match reply.cors {
        CorsReply::None => (None, false),
        CorsReply::Answer(a) => (Some(a), false),
        CorsReply::Preflight(a) => (Some(a), true),
    };
    let cors_fields = allowed.map(|a| {
        [
            ("Access-Control-Allow-Origin", cors.allow_origin(a)),
            ("Vary", "Origin"),
        ]
    });
    // Every answer to an allowed origin says what the page may read, the
    // preflight's too (SPEC.md: "every answer").
    let preflight_fields: &[(&str, &str)] = if preflight {
        &[
            ("Access-Control-Expose-Headers", cors::EXPOSE_HEADERS),
            ("Access-Control-Allow-Methods", cors::ALLOW_METHODS),
            ("Access-Control-Allow-Headers", cors::ALLOW_HEADERS),
            ("Access-Control-Max-Age", cors::MAX_AGE),
        ]
    } else if allowed.is_some() {
        &[("Access-Control-Expose-Headers", cors::EXPOSE_HEADERS)]
    } else {
        &[]
    };
    let extra = response.extra.iter().copied();
    let all = extra
        .chain(cors_fields.into_iter().flatten())
        .chain(preflight_fields.iter().copied());
    for field in all.take(fields.len() - n) {
        fields[n] = field;
        n += 1;
    }
    let body_len = response.body.len();
    http::write_response_head(
        out,
        response.status,
        response.content_type,
        &fields[..n],
        body_len,
        reply.keep_alive,
        reply.minor_version,
    );
    if reply.head_only {
        return None;
    }
    match &response.body {
        Body::Static(bytes) => out.extend_from_slice(bytes),
        Body::Owned(bytes) => out.extend_from_slice(bytes),
        Body::Batch(body) => return Some(body.clone()),
    }
    None
}

/// `n` in decimal, written into `digits`.
fn decimal(n: u64, digits: &mut [u8; 20]) -> &str {
    let mut text = Vec::with_capacity(20);
    http::push_decimal(&mut text, n);
    digits[..text.len()].copy_from_slice(&text);
    // Only ASCII digits were written.
    std::str::from_utf8(&digits[..text.len()]).unwrap_or("0")
}
