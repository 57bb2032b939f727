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
//! - [`server`]: the event loop. Accepts, serves readiness by token, fires
//!   timers, answers parked consumers in the turn of the push; one file per
//!   concern (accepting, serving, fan-out, timers, shutdown).
//! - `connection`: one connection's state machine (`Reading`, `Parked`,
//!   `Writing`, `Closing`, `Lingering`), with its epoll interest and its
//!   timer derived from the state.
//! - `inbox`: the bytes received, and how requests are cut out of them in
//!   linear time within a 64 KiB window.
//! - [`http`]: HTTP/1.1 on `httparse`, strictly by RFC 9112: the head
//!   scanner and parser, the chunked decoder, queries, response heads.
//! - `guard`: who may do what: the page's origin (CORS and the
//!   cross-site rule), the token and what it allows, the `/metrics` secret;
//!   asked as soon as a head is whole, before its body is read.
//! - `api`: the endpoints. With [`render`], the only code that knows JSON.
//! - [`store`]: keys, events, consumer groups, parked consumers, leases and
//!   pins. Pure.
//! - [`render`]: how a batch becomes bytes on the wire, read from the store
//!   at write time instead of copied.
//! - [`outbox`]: a connection's unwritten answers, written with `writev`.
//! - [`memory`]: the count of bytes held for clients outside the store.
//! - [`wheel`]: the hierarchical timer wheel behind every deadline. Pure.
//! - `metrics`: counters and the Prometheus exposition.
//! - `access`: the access log's lines (`--access-log`), written once per
//!   turn of the loop.
//! - [`config`]: the settings, as flags and environment variables.
//!
//! The store and the wheel never read the clock and never touch a socket;
//! the event loop never looks inside a body. Modules without a link are
//! private: they are the server's insides, not an API.

#![deny(missing_docs)]

mod access;
mod api;
pub mod config;
mod connection;
mod guard;
pub mod http;
mod inbox;
pub mod memory;
mod metrics;
pub mod outbox;
pub mod render;
pub mod server;
pub mod store;
pub mod wheel;

pub use guard::mint::mint_token;
