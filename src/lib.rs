//! event-syncer: an HTTP long-poll event queue on one hand-written `mio`
//! event loop.
//!
//! Clients push JSON events under a key; consumer groups read them with
//! blocking gets that park until an event arrives. The contract is SPEC.md;
//! the README follows one request through the modules below.
//!
//! # Layout
//!
//! The modules, in the order a request meets them:
//!
//! - [`server`]: the event loop. Accepts, dispatches readiness by token,
//!   fires timers, answers parked consumers in the turn of the push.
//! - [`connection`]: one connection's state machine (`Reading`, `Parked`,
//!   `Writing`, `Closing`), its buffers, and how requests are cut out of
//!   its byte stream.
//! - [`http`]: HTTP/1.1 framing on `httparse`: heads, chunked bodies, query
//!   decoding, response heads.
//! - [`api`]: the endpoints. The only module that knows JSON.
//! - [`store`]: keys, events, consumer groups and parked consumers. Pure.
//! - [`wheel`]: the hierarchical timer wheel behind every deadline. Pure.
//! - [`metrics`]: counters and the Prometheus exposition.
//! - [`config`]: the settings, as flags and environment variables.
//!
//! The store and the wheel never read the clock and never touch a socket;
//! the event loop never looks inside a body.

#![deny(missing_docs)]

mod api;
pub mod config;
mod connection;
pub mod http;
mod inbox;
pub mod memory;
mod metrics;
pub mod outbox;
pub mod render;
pub mod server;
pub mod store;
pub mod wheel;
