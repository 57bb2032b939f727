//! The API: what each endpoint means, from a parsed request to a response.
//!
//! This is the only module that knows JSON. It validates pushed bodies,
//! renders batches as `[e1,e2,...]` from the stored bytes (never
//! re-serialising an event), and turns store outcomes into responses. It
//! knows nothing of sockets: a request comes in as method, path, query and
//! body; what goes out is an [`Outcome`] for the requesting connection plus,
//! for a push, a list of [`Wake`]s for parked consumers on other
//! connections, which the event loop writes before it answers the pusher.

use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;

use serde::de::IgnoredAny;

use crate::config::{Millis, parse_seconds};
use crate::http::{Method, push_decimal, query_param};
use crate::metrics::{Endpoint, Gauges, Metrics};
use crate::store::{ConsumerId, Delivery, ParkKey, PushError, Store};

/// Longest key or groupId, in bytes after percent-decoding.
pub const MAX_NAME: usize = 1024;

/// What the event loop hands the API: one complete request.
#[derive(Debug)]
pub struct Request<'a> {
    /// The method.
    pub method: Method,
    /// The target's path, before `?`.
    pub path: &'a str,
    /// The raw query, after `?`.
    pub query: &'a str,
    /// The decoded body (empty for none).
    pub body: &'a [u8],
}

/// A response body: static text, bytes made for this response, or bytes
/// shared by every consumer that receives the same batch.
#[derive(Debug, Clone)]
pub enum Body {
    /// Text fixed at compile time.
    Static(&'static [u8]),
    /// Bytes made for this response.
    Owned(Vec<u8>),
    /// Bytes shared between responses.
    Shared(Rc<[u8]>),
}

impl Body {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Body::Static(b) => b,
            Body::Owned(b) => b,
            Body::Shared(b) => b,
        }
    }
}

/// A response, before HTTP framing.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content-Type.
    pub content_type: &'static str,
    /// Extra headers (`Allow`, `Retry-After`).
    pub extra: &'static [(&'static str, &'static str)],
    /// Body.
    pub body: Body,
    /// Which endpoint answered, for the metrics.
    pub endpoint: Endpoint,
}

const JSON: &str = "application/json";
const EMPTY_BATCH: &[u8] = b"[]";
/// The reference server's answer to a push, to which the event's id is added.
const PUSHED: &[u8] = br#"{"message":"Data pushed successfully","id":"#;

impl Response {
    fn json(endpoint: Endpoint, status: u16, body: Body) -> Response {
        Response {
            status,
            content_type: JSON,
            extra: &[],
            body,
            endpoint,
        }
    }

    /// `{"error": message}` with the given status.
    pub fn error(endpoint: Endpoint, status: u16, message: &str) -> Response {
        let body = serde_json::json!({ "error": message })
            .to_string()
            .into_bytes();
        Response::json(endpoint, status, Body::Owned(body))
    }

    /// The answer to a consumer that waited and got nothing.
    pub fn empty_batch() -> Response {
        Response::json(Endpoint::BlockingGet, 200, Body::Static(EMPTY_BATCH))
    }
}

/// What the requesting connection should do next.
#[derive(Debug)]
pub enum Outcome {
    /// Answer now.
    Reply(Response),
    /// Nothing is waiting: park until an event, or for `wait` ms. The loop
    /// turns that into a deadline with its own clock, rounded up, so that
    /// `[]` never comes early.
    Park {
        /// The consumer's place in its group's queue.
        park: ParkKey,
        /// How long to wait before answering `[]`, in ms.
        wait: Millis,
    },
}

/// A parked consumer on another connection that a push has answered.
#[derive(Debug)]
pub struct Wake {
    /// Who: the connection's token, as given to [`Api::handle`].
    pub consumer: ConsumerId,
    /// The batch, rendered once and shared by every group that got the
    /// same events.
    pub body: Rc<[u8]>,
}

/// The endpoints, over one store.
#[derive(Debug)]
pub struct Api {
    /// The events and groups.
    pub store: Store,
    /// The counters.
    pub metrics: Metrics,
    poll_timeout: Millis,
    deliveries: Vec<Delivery>,
    /// Per push: rendered batch by sequence range. Groups at the same
    /// cursor get the same events, so a 10,000-group fan-out usually
    /// renders one body, not 10,000.
    rendered: HashMap<(u64, u64), Rc<[u8]>>,
}

impl Api {
    /// An API over `store`, parking consumers at most `poll_timeout` ms.
    pub fn new(store: Store, poll_timeout: Millis) -> Api {
        Api {
            store,
            metrics: Metrics::default(),
            poll_timeout,
            deliveries: Vec::new(),
            rendered: HashMap::new(),
        }
    }

    /// Handles one request from connection `consumer` at `now`. A push
    /// appends to `wakes` the parked consumers it answers.
    pub fn handle(
        &mut self,
        req: &Request<'_>,
        consumer: ConsumerId,
        now: Millis,
        connections_open: usize,
        wakes: &mut Vec<Wake>,
    ) -> Outcome {
        let endpoint = match req.path {
            "/push" => Endpoint::Push,
            "/blocking-get" => Endpoint::BlockingGet,
            "/healthz" => Endpoint::Healthz,
            "/metrics" => Endpoint::Metrics,
            _ => Endpoint::Other,
        };
        let allow = match endpoint {
            Endpoint::Push => Some(Method::Post),
            Endpoint::Other => None,
            _ => Some(Method::Get),
        };
        if let Some(allow) = allow
            && req.method != allow
        {
            let mut r = Response::error(endpoint, 405, "method not allowed");
            r.extra = match allow {
                Method::Post => &[("Allow", "POST")],
                _ => &[("Allow", "GET")],
            };
            return Outcome::Reply(r);
        }
        let result = match endpoint {
            Endpoint::Push => self.push(req, now, wakes).map(Outcome::Reply),
            Endpoint::BlockingGet => self.blocking_get(req.query, consumer, now),
            Endpoint::Healthz => Ok(Outcome::Reply(Response {
                status: 200,
                content_type: "text/plain",
                extra: &[],
                body: Body::Static(b"ok"),
                endpoint,
            })),
            Endpoint::Metrics => {
                // Gauges are read only when scraped, from the live state.
                let text = self.metrics.render(&self.gauges(connections_open));
                Ok(Outcome::Reply(Response {
                    status: 200,
                    content_type: "text/plain; version=0.0.4",
                    extra: &[],
                    body: Body::Owned(text.into_bytes()),
                    endpoint,
                }))
            }
            Endpoint::Other => Ok(Outcome::Reply(Response::error(
                endpoint,
                404,
                "no such path",
            ))),
        };
        result.unwrap_or_else(|message| Outcome::Reply(Response::error(endpoint, 400, message)))
    }

    fn gauges(&self, connections_open: usize) -> Gauges {
        let store = &self.store;
        Gauges {
            connections_open,
            consumers_parked: store.parked(),
            events_live: store.live_events(),
            event_bytes_live: store.live_bytes(),
            keys: store.keys(),
            groups: store.groups(),
        }
    }

    /// A parked consumer's deadline passed: it consumes nothing and gets `[]`.
    pub fn timed_out(&mut self, park: ParkKey) -> Response {
        self.store.unpark(park);
        self.metrics.poll_timeouts += 1;
        Response::empty_batch()
    }

    /// A parked consumer hung up, or the server is shutting down: it
    /// consumes nothing.
    pub fn release(&mut self, park: ParkKey) {
        self.store.unpark(park);
    }

    /// Frees expired events; returns when the next sweep is due.
    pub fn sweep(&mut self, now: Millis) -> Option<Millis> {
        self.metrics.events_expired += self.store.expire(now) as u64;
        self.store.next_expiry()
    }

    fn push(
        &mut self,
        req: &Request<'_>,
        now: Millis,
        wakes: &mut Vec<Wake>,
    ) -> Result<Response, &'static str> {
        let key = name_param(req.query, "key")?;
        let json = if req.body.is_empty() {
            // The reference server stores an empty body as an empty object.
            &b"{}"[..]
        } else {
            trim_json_whitespace(req.body)
        };
        // JSON text is UTF-8 (RFC 8259 section 8.1). serde_json does not
        // check the bytes of strings it skips, so check them first; then
        // validate without building a value: IgnoredAny only walks the text.
        let Ok(text) = std::str::from_utf8(json) else {
            return Err("body is not valid JSON: not UTF-8");
        };
        if serde_json::from_str::<IgnoredAny>(text).is_err() {
            return Err("body is not valid JSON");
        }
        let seq = match self.store.push(&key, json, now, &mut self.deliveries) {
            Ok(seq) => seq,
            Err(PushError::Full) => {
                let mut r = Response::error(
                    Endpoint::Push,
                    503,
                    "the store is full; retry when events expire",
                );
                r.extra = &[("Retry-After", "1")];
                return Ok(r);
            }
        };
        self.metrics.pushes += 1;
        self.rendered.clear();
        for Delivery { consumer, batch } in self.deliveries.drain(..) {
            let store = &self.store;
            let body = self
                .rendered
                .entry((batch.seqs.start, batch.seqs.end))
                .or_insert_with(|| render(store.batch_events(&batch)).into())
                .clone();
            self.metrics.events_delivered += batch.len as u64;
            self.metrics.batches_delivered += 1;
            wakes.push(Wake { consumer, body });
        }
        let mut body = Vec::with_capacity(PUSHED.len() + 21);
        body.extend_from_slice(PUSHED);
        push_decimal(&mut body, seq);
        body.push(b'}');
        Ok(Response::json(Endpoint::Push, 200, Body::Owned(body)))
    }

    fn blocking_get(
        &mut self,
        query: &str,
        consumer: ConsumerId,
        now: Millis,
    ) -> Result<Outcome, &'static str> {
        let key = name_param(query, "key")?;
        let group = name_param(query, "groupId")?;
        let wait = match query_param(query, "timeout").map_err(|e| e.message)? {
            None => self.poll_timeout,
            Some(text) => parse_seconds(&text)
                .ok_or("timeout must be a plain decimal number of seconds")?
                .min(self.poll_timeout),
        };
        if let Some(batch) = self.store.take(&key, &group, now) {
            self.metrics.events_delivered += batch.len as u64;
            self.metrics.batches_delivered += 1;
            let body = render(self.store.batch_events(&batch));
            return Ok(Outcome::Reply(Response::json(
                Endpoint::BlockingGet,
                200,
                Body::Owned(body),
            )));
        }
        if wait == 0 {
            return Ok(Outcome::Reply(Response::empty_batch()));
        }
        let park = self.store.park(&key, &group, consumer);
        Ok(Outcome::Park { park, wait })
    }
}

/// A required, non-empty, at most [`MAX_NAME`]-byte query parameter.
fn name_param<'a>(query: &'a str, name: &'static str) -> Result<Cow<'a, str>, &'static str> {
    let value = query_param(query, name).map_err(|e| e.message)?;
    match value {
        None => Err(match name {
            "key" => "missing query parameter: key",
            _ => "missing query parameter: groupId",
        }),
        Some(v) if v.is_empty() => Err(match name {
            "key" => "key must not be empty",
            _ => "groupId must not be empty",
        }),
        Some(v) if v.len() > MAX_NAME => Err(match name {
            "key" => "key is longer than 1024 bytes",
            _ => "groupId is longer than 1024 bytes",
        }),
        Some(v) => Ok(v),
    }
}

/// The body without surrounding JSON whitespace: space, tab, CR and LF
/// only (RFC 8259 section 2); a form feed is not JSON whitespace.
fn trim_json_whitespace(mut body: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while let [first, rest @ ..] = body
        && ws(first)
    {
        body = rest;
    }
    while let [rest @ .., last] = body
        && ws(last)
    {
        body = rest;
    }
    body
}

/// `[e1,e2,...]` from the events' stored bytes.
fn render<'a>(events: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(b'[');
    for (i, e) in events.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(e);
    }
    out.push(b']');
    out
}
