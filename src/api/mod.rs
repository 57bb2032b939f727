//! The API: what each endpoint means, from a parsed request to a response.
//!
//! This module and `render.rs` are the only ones that know JSON. The API
//! validates pushed bodies, answers batches with bodies that read the
//! stored bytes at write time (never re-serialising or copying an event),
//! and turns store outcomes into responses. It knows nothing of sockets: a
//! request comes in as method, path, query and body; what goes out is an
//! [`Outcome`] for the requesting connection plus, for a push or a nack, a
//! list of [`Wake`]s for parked consumers on other connections, which the
//! event loop writes before it answers the request that woke them.
//!
//! - `mod.rs`: routing, methods, the response type, health and metrics;
//! - `queue.rs`: push, blocking-get, ack, nack, extend, lease timers;
//! - `params.rs`: what a query parameter or a body may be.

pub(crate) mod params;
mod queue;

use crate::config::Millis;
use crate::guard::{Refusal, Refused};
use crate::http::Method;
use crate::journal::Journal;
use crate::metrics::{Endpoint, Gauges, Metrics, Rejection};
use crate::render::BatchBody;
use crate::store::{ConsumerId, Delivery, Leased, ParkKey, Store};

pub use queue::LeaseFired;

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
    /// The lease a batch goes out under: the loop writes `Batch-Id` and
    /// `Batch-Attempt` and arms a timer at its deadline.
    pub lease: Option<Leased>,
    /// Why it refuses, for the metrics, where the status alone does not say
    /// (two kinds of `403`).
    pub rejection: Option<Rejection>,
}

const JSON: &str = "application/json";
const EMPTY_BATCH: &[u8] = b"[]";

impl Response {
    /// A JSON response.
    pub fn json(endpoint: Endpoint, status: u16, body: Body) -> Response {
        Response {
            status,
            content_type: JSON,
            extra: &[],
            body,
            endpoint,
            lease: None,
            rejection: None,
        }
    }

    /// The answer to a request the guard refused.
    pub fn refused(endpoint: Endpoint, refused: &Refused) -> Response {
        match refused.why {
            Refusal::Unauthorized(message) => Response {
                extra: &[("WWW-Authenticate", "Bearer")],
                ..Response::error(endpoint, 401, message)
            },
            Refusal::Forbidden(message) => Response::error(endpoint, 403, message),
            Refusal::Origin => Response {
                rejection: Some(Rejection::Origin),
                ..Response::error(
                    endpoint,
                    403,
                    "this page's origin may not call the server (see --cors-origin)",
                )
            },
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

    fn text(endpoint: Endpoint, content_type: &'static str, body: Body) -> Response {
        Response {
            content_type,
            ..Response::json(endpoint, 200, body)
        }
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

/// A parked consumer on another connection that a push, a nack or a lease
/// running out has answered.
#[derive(Debug)]
pub struct Wake {
    /// Who: the connection's token, as given to [`Api::handle`].
    pub consumer: ConsumerId,
    /// Its answer.
    pub response: Response,
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
    /// The log of the data directory, if there is one: every change to
    /// the store is recorded here as it is made (`queue.rs`).
    pub journal: Option<Journal>,
    /// How long the replay on start took, in seconds, for `/metrics`.
    pub replay_seconds: f64,
}

impl Api {
    /// An API over `store`, parking consumers at most `poll_timeout` ms.
    pub fn new(store: Store, poll_timeout: Millis) -> Api {
        Api {
            store,
            metrics: Metrics::default(),
            poll_timeout,
            deliveries: Vec::new(),
            journal: None,
            replay_seconds: 0.0,
        }
    }

    /// Handles one request from connection `consumer`. A push or a nack
    /// appends to `wakes` the parked consumers it answers.
    pub fn handle(
        &mut self,
        req: &Request<'_>,
        consumer: ConsumerId,
        cx: &Context,
        wakes: &mut Vec<Wake>,
    ) -> Outcome {
        let endpoint = route(req.path);
        let Some(allow) = allowed(endpoint) else {
            return Outcome::Reply(Response::error(endpoint, 404, "no such path"));
        };
        if req.method == Method::Options {
            return Outcome::Reply(Response {
                status: 204,
                extra: allow,
                ..Response::text(endpoint, "", Body::Static(b""))
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
            Endpoint::BlockingGet | Endpoint::Healthz | Endpoint::Metrics => Method::Get,
            _ => Method::Post,
        };
        if method != wanted || endpoint == Endpoint::Server {
            let mut r = Response::error(endpoint, 405, "method not allowed");
            r.extra = allow;
            return Outcome::Reply(r);
        }
        let result = match endpoint {
            Endpoint::Push => self.push(req, cx, wakes).map(Outcome::Reply),
            Endpoint::BlockingGet => self.blocking_get(req.query, consumer, cx.now),
            Endpoint::Ack => self.ack(req.query, cx.now).map(Outcome::Reply),
            Endpoint::Nack => self.nack(req.query, cx.now, wakes).map(Outcome::Reply),
            Endpoint::Extend => self.extend(req.query, cx.now).map(Outcome::Reply),
            Endpoint::Healthz => Ok(Outcome::Reply(Response::text(
                endpoint,
                "text/plain",
                Body::Static(b"ok"),
            ))),
            Endpoint::Metrics => {
                // Gauges are read only when scraped, from the live state.
                let mut text = self.metrics.render(&self.gauges(cx));
                if let Some(journal) = &self.journal {
                    crate::journal::exposition::render(&mut text, journal, self.replay_seconds);
                }
                Ok(Outcome::Reply(Response::text(
                    endpoint,
                    "text/plain; version=0.0.4",
                    Body::Owned(text.into_bytes()),
                )))
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
            bookkeeping_bytes: store.bookkeeping_bytes(),
            keys: store.keys(),
            groups: store.groups(),
            leased_batches: store.leased_batches(),
            leases: store.lease_stats(),
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
}

/// The endpoint a path names.
pub fn route(path: &str) -> Endpoint {
    match path {
        "/push" => Endpoint::Push,
        "/blocking-get" => Endpoint::BlockingGet,
        "/ack" => Endpoint::Ack,
        "/nack" => Endpoint::Nack,
        "/extend" => Endpoint::Extend,
        "/healthz" => Endpoint::Healthz,
        "/metrics" => Endpoint::Metrics,
        "*" => Endpoint::Server,
        _ => Endpoint::Other,
    }
}

/// The methods a known path allows, for `Allow`; `None` for an unknown
/// path. `*` (the server as a whole, `OPTIONS *`) lists every method.
fn allowed(endpoint: Endpoint) -> Option<&'static [(&'static str, &'static str)]> {
    Some(match endpoint {
        Endpoint::Push | Endpoint::Ack | Endpoint::Nack | Endpoint::Extend => {
            &[("Allow", "POST, OPTIONS")]
        }
        Endpoint::BlockingGet => &[("Allow", "GET, OPTIONS")],
        Endpoint::Healthz | Endpoint::Metrics => &[("Allow", "GET, HEAD, OPTIONS")],
        Endpoint::Server => &[("Allow", "GET, HEAD, POST, OPTIONS")],
        Endpoint::Other => return None,
    })
}
