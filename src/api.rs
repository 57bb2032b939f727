//! The API: what each endpoint means, from a parsed request to a response.
//!
//! This module and `render.rs` are the only ones that know JSON. The API
//! validates pushed bodies, answers batches with bodies that read the
//! stored bytes at write time (never re-serialising or copying an event),
//! and turns store outcomes into responses. It knows nothing of sockets: a
//! request comes in as method, path, query and body; what goes out is an
//! [`Outcome`] for the requesting connection plus, for a push, a list of
//! [`Wake`]s for parked consumers on other connections, which the event loop
//! writes before it answers the pusher.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use crate::config::{Millis, parse_seconds};
use crate::http::{Method, push_decimal, query_param};
use crate::metrics::{Endpoint, Gauges, Metrics};
use crate::render::{BatchBody, Format};
use crate::store::{Batch, ConsumerId, Delivery, ParkKey, PushError, Store};

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

/// A response body: static text, bytes made for this response, or a batch
/// read from the store when the socket has room.
#[derive(Debug, Clone)]
pub enum Body {
    /// Text fixed at compile time.
    Static(&'static [u8]),
    /// Bytes made for this response.
    Owned(Vec<u8>),
    /// A batch of stored events.
    Batch(BatchBody),
}

impl Body {
    /// Its length, for `Content-Length`.
    pub fn len(&self) -> usize {
        match self {
            Body::Static(b) => b.len(),
            Body::Owned(b) => b.len(),
            Body::Batch(b) => b.len(),
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
    /// Extra header fields (`Allow`, `Retry-After`); `Date` and
    /// `Cache-Control` are added to every response by the loop.
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
    /// A JSON response.
    pub fn json(endpoint: Endpoint, status: u16, body: Body) -> Response {
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
    /// Its batch.
    pub body: BatchBody,
}

/// What the loop tells the API about the moment of a request.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Milliseconds since the server started.
    pub now: Millis,
    /// Connections open, for `/metrics`.
    pub connections_open: usize,
    /// Bytes of the memory limit held outside the store (unwritten
    /// answers, arriving bodies): a push must fit beside them.
    pub held_elsewhere: usize,
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
}

impl Api {
    /// An API over `store`, parking consumers at most `poll_timeout` ms.
    pub fn new(store: Store, poll_timeout: Millis) -> Api {
        Api {
            store,
            metrics: Metrics::default(),
            poll_timeout,
            deliveries: Vec::new(),
        }
    }

    /// Handles one request from connection `consumer`. A push appends to
    /// `wakes` the parked consumers it answers.
    pub fn handle(
        &mut self,
        req: &Request<'_>,
        consumer: ConsumerId,
        cx: &Context,
        wakes: &mut Vec<Wake>,
    ) -> Outcome {
        let endpoint = match req.path {
            "/push" => Endpoint::Push,
            "/blocking-get" => Endpoint::BlockingGet,
            "/healthz" => Endpoint::Healthz,
            "/metrics" => Endpoint::Metrics,
            "*" => Endpoint::Server,
            _ => Endpoint::Other,
        };
        let Some(allow) = allowed(endpoint) else {
            return Outcome::Reply(Response::error(endpoint, 404, "no such path"));
        };
        if req.method == Method::Options {
            return Outcome::Reply(Response {
                status: 204,
                content_type: "",
                extra: allow,
                body: Body::Static(b""),
                endpoint,
            });
        }
        // HEAD is answered like GET where GET is safe; the loop sends the
        // head only.
        let method = match req.method {
            Method::Head if matches!(endpoint, Endpoint::Healthz | Endpoint::Metrics) => {
                Method::Get
            }
            m => m,
        };
        let wanted = match endpoint {
            Endpoint::Push => Method::Post,
            _ => Method::Get,
        };
        if method != wanted || endpoint == Endpoint::Server {
            let mut r = Response::error(endpoint, 405, "method not allowed");
            r.extra = allow;
            return Outcome::Reply(r);
        }
        let result = match endpoint {
            Endpoint::Push => self.push(req, cx, wakes).map(Outcome::Reply),
            Endpoint::BlockingGet => self.blocking_get(req.query, consumer, cx.now),
            Endpoint::Healthz => Ok(Outcome::Reply(Response {
                status: 200,
                content_type: "text/plain",
                extra: &[],
                body: Body::Static(b"ok"),
                endpoint,
            })),
            Endpoint::Metrics => {
                // Gauges are read only when scraped, from the live state.
                let text = self.metrics.render(&self.gauges(cx));
                Ok(Outcome::Reply(Response {
                    status: 200,
                    content_type: "text/plain; version=0.0.4",
                    extra: &[],
                    body: Body::Owned(text.into_bytes()),
                    endpoint,
                }))
            }
            Endpoint::Other | Endpoint::Server => unreachable!("refused above"),
        };
        result.unwrap_or_else(|message| Outcome::Reply(Response::error(endpoint, 400, message)))
    }

    fn gauges(&self, cx: &Context) -> Gauges {
        let store = &self.store;
        Gauges {
            connections_open: cx.connections_open,
            answer_bytes_held: cx.held_elsewhere + store.zombie_bytes(),
            consumers_parked: store.parked(),
            events_live: store.live_events() - store.zombie_events(),
            event_bytes_live: store.live_bytes() - store.zombie_bytes(),
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

    /// The answer to a blocking-get that takes `batch`.
    fn batch_answer(&mut self, batch: Batch) -> Response {
        self.metrics.events_delivered += batch.len as u64;
        self.metrics.batches_delivered += 1;
        let body = BatchBody::new(&self.store, batch, Format::Raw);
        Response::json(Endpoint::BlockingGet, 200, Body::Batch(body))
    }

    /// Frees expired events; returns when the next sweep is due.
    pub fn sweep(&mut self, now: Millis) -> Option<Millis> {
        self.metrics.events_expired += self.store.expire(now) as u64;
        self.store.next_expiry()
    }

    fn push(
        &mut self,
        req: &Request<'_>,
        cx: &Context,
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
        let pushed =
            self.store
                .push_within(&key, json, cx.now, cx.held_elsewhere, &mut self.deliveries);
        let seq = match pushed {
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
        // Groups at the same cursor get the same batch, which is usually
        // every group: measure each distinct batch once.
        let mut last: Option<BatchBody> = None;
        for Delivery { consumer, batch } in self.deliveries.drain(..) {
            self.metrics.events_delivered += batch.len as u64;
            self.metrics.batches_delivered += 1;
            let body = match last.take() {
                Some(body) if *body.batch() == batch => body,
                _ => BatchBody::new(&self.store, batch, Format::Raw),
            };
            last = Some(body.clone());
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
            return Ok(Outcome::Reply(self.batch_answer(batch)));
        }
        if wait == 0 {
            return Ok(Outcome::Reply(Response::empty_batch()));
        }
        let park = self.store.park(&key, &group, consumer);
        Ok(Outcome::Park { park, wait })
    }
}

/// The methods a known path allows, for `Allow`; `None` for an unknown
/// path. `*` (the server as a whole, `OPTIONS *`) lists every method.
fn allowed(endpoint: Endpoint) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match endpoint {
        Endpoint::Push => &[("Allow", "POST, OPTIONS")],
        Endpoint::BlockingGet => &[("Allow", "GET, OPTIONS")],
        Endpoint::Healthz | Endpoint::Metrics => &[("Allow", "GET, HEAD, OPTIONS")],
        Endpoint::Server => &[("Allow", "GET, HEAD, POST, OPTIONS")],
        Endpoint::Other => return None,
    })
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
