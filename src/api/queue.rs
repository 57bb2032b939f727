//! The queue's endpoints: push, blocking-get, and the lease operations
//! (ack, nack, extend), plus what happens when a lease runs out.

use serde::de::IgnoredAny;

use super::params;
use super::{Api, Body, Outcome, Response, Wake};
use crate::config::Millis;
use crate::http::push_decimal;
use crate::journal::record::Record;
use crate::metrics::{Endpoint, Rejection};
use crate::render::{BatchBody, Format};
use crate::store::{Batch, ConsumerId, Delivery, LeaseTimer, PushError, Take};

/// The reference server's answer to a push, to which the event's id is added.
const PUSHED: &[u8] = br#"{"message":"Data pushed successfully","id":"#;

/// The answer to ack, nack or extend of a batch not leased to the group.
const NOT_LEASED: &str = "batch is not leased to this group (acked already, or handed out again)";

/// What a lease's timer means for the loop.
#[derive(Debug)]
pub enum LeaseFired {
    /// Nothing to do.
    Nothing,
    /// The lease was extended: fire again then.
    Rearm(Millis),
    /// Its events went to this parked consumer.
    Wake(Wake),
}

impl Api {
    pub(super) fn push(
        &mut self,
        req: &super::Request<'_>,
        cx: &super::Context,
        wakes: &mut Vec<Wake>,
    ) -> Result<Response, &'static str> {
        let key = params::name(req.query, "key")?;
        let json = if req.body.is_empty() {
            // The reference server stores an empty body as an empty object.
            &b"{}"[..]
        } else {
            params::trim_json_whitespace(req.body)
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
        if self.journal.as_ref().is_some_and(|j| j.failing()) {
            let mut r = Response::error(
                Endpoint::Push,
                503,
                "the data directory cannot be written; retry later",
            );
            r.extra = &[("Retry-After", "1")];
            r.rejection = Some(Rejection::LogFailing);
            return Ok(r);
        }
        let pushed =
            self.store
                .push_within(&key, json, cx.now, cx.held_elsewhere, &mut self.deliveries);
        let id = match pushed {
            Ok(id) => id,
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
        self.log(&Record::Push {
            at: cx.now,
            id,
            key: &key,
            json,
        });
        self.log_hand_outs();
        // Groups at the same cursor get the same batch, which is usually
        // every group: measure each distinct batch once.
        let mut last: Option<BatchBody> = None;
        let mut deliveries = std::mem::take(&mut self.deliveries);
        for delivery in deliveries.drain(..) {
            let format = format_of(delivery.take);
            let body = match last.take() {
                Some(body)
                    if body.batch().same_events(&delivery.batch) && body.format() == format =>
                {
                    body.for_batch(delivery.batch.clone())
                }
                _ => BatchBody::new(&self.store, delivery.batch.clone(), format),
            };
            last = Some(body.clone());
            wakes.push(self.wake(delivery, body));
        }
        self.deliveries = deliveries;
        let mut body = Vec::with_capacity(PUSHED.len() + 21);
        body.extend_from_slice(PUSHED);
        push_decimal(&mut body, id);
        body.push(b'}');
        Ok(Response::json(Endpoint::Push, 200, Body::Owned(body)))
    }

    pub(super) fn blocking_get(
        &mut self,
        query: &str,
        consumer: ConsumerId,
        now: Millis,
    ) -> Result<Outcome, &'static str> {
        let key = params::name(query, "key")?;
        let group = params::name(query, "groupId")?;
        let wait = params::timeout(query, self.poll_timeout)?;
        let take = Take {
            limit: params::limit(query)?,
            // At most 300,000 ms: fits.
            lease: params::lease(query, false)? as u32,
            envelope: params::envelope(query)?,
        };
        if !self.store.admits_group(&key, &group) {
            let mut r = Response::error(
                Endpoint::BlockingGet,
                503,
                "too many groups remembered; a new group must wait until events expire",
            );
            r.extra = &[("Retry-After", "1")];
            return Ok(Outcome::Reply(r));
        }
        if let Some(batch) = self.store.take_with(&key, &group, now, take) {
            self.log_hand_outs();
            return Ok(Outcome::Reply(self.batch_answer(batch, take)));
        }
        if wait == 0 {
            return Ok(Outcome::Reply(Response::empty_batch()));
        }
        let park = self.store.park_with(&key, &group, consumer, take);
        Ok(Outcome::Park { park, wait })
    }

    pub(super) fn ack(&mut self, query: &str, now: Millis) -> Result<Response, &'static str> {
        let (key, group, batch) = lease_params(query)?;
        Ok(match self.store.ack(&key, &group, batch) {
            Ok(n) => {
                self.log(&Record::Ack {
                    at: now,
                    key: &key,
                    group: &group,
                    batch,
                });
                let mut body = br#"{"acked":"#.to_vec();
                push_decimal(&mut body, n as u64);
                body.push(b'}');
                Response::json(Endpoint::Ack, 200, Body::Owned(body))
            }
            Err(_) => Response::error(Endpoint::Ack, 409, NOT_LEASED),
        })
    }

    pub(super) fn nack(
        &mut self,
        query: &str,
        now: Millis,
        wakes: &mut Vec<Wake>,
    ) -> Result<Response, &'static str> {
        let (key, group, batch) = lease_params(query)?;
        Ok(match self.store.nack(&key, &group, batch, now) {
            Ok(delivery) => {
                self.log(&Record::Nack {
                    at: now,
                    key: &key,
                    group: &group,
                    batch,
                });
                self.log_hand_outs();
                wakes.extend(delivery.map(|d| self.delivered(d)));
                Response::json(Endpoint::Nack, 200, Body::Static(b"{}"))
            }
            Err(_) => Response::error(Endpoint::Nack, 409, NOT_LEASED),
        })
    }

    pub(super) fn extend(&mut self, query: &str, now: Millis) -> Result<Response, &'static str> {
        let (key, group, batch) = lease_params(query)?;
        let lease = params::lease(query, true)?;
        Ok(match self.store.extend(&key, &group, batch, lease, now) {
            // The lease's timer fires at the old deadline and finds the new.
            Ok(_) => {
                self.log(&Record::Extend {
                    at: now,
                    key: &key,
                    group: &group,
                    batch,
                    lease,
                });
                Response::json(Endpoint::Extend, 200, Body::Static(b"{}"))
            }
            Err(_) => Response::error(Endpoint::Extend, 409, NOT_LEASED),
        })
    }

    /// The timer of lease `id` fired at `now`.
    pub fn lease_timer(&mut self, id: u64, now: Millis) -> LeaseFired {
        let fired = self.store.lease_timer(id, now);
        if let LeaseTimer::Due(_) = fired {
            self.log(&Record::Due { at: now, batch: id });
            self.log_hand_outs();
        }
        match fired {
            LeaseTimer::Gone | LeaseTimer::Due(None) => LeaseFired::Nothing,
            LeaseTimer::Rearm(at) => LeaseFired::Rearm(at),
            LeaseTimer::Due(Some(delivery)) => LeaseFired::Wake(self.delivered(delivery)),
        }
    }

    /// Records a change in the log, if there is one.
    fn log(&mut self, record: &Record<'_>) {
        if let Some(journal) = &mut self.journal {
            journal.record(record);
        }
    }

    /// Records the batches the last change handed out, after the change
    /// itself (a push before the batches it woke), as replay needs them.
    fn log_hand_outs(&mut self) {
        let Api { store, journal, .. } = self;
        let Some(journal) = journal else {
            return;
        };
        store.drain_hand_outs(|h| journal.record(&Record::Take(h)));
    }

    /// The answer to a blocking-get that takes `batch`.
    fn batch_answer(&mut self, batch: Batch, take: Take) -> Response {
        self.count(&batch);
        let lease = batch.lease;
        let body = BatchBody::new(&self.store, batch, format_of(take));
        Response {
            lease,
            ..Response::json(Endpoint::BlockingGet, 200, Body::Batch(body))
        }
    }

    /// A parked consumer's answer, for a delivery the store made.
    fn delivered(&mut self, delivery: Delivery) -> Wake {
        let body = BatchBody::new(
            &self.store,
            delivery.batch.clone(),
            format_of(delivery.take),
        );
        self.wake(delivery, body)
    }

    fn wake(&mut self, delivery: Delivery, body: BatchBody) -> Wake {
        self.count(&delivery.batch);
        Wake {
            consumer: delivery.consumer,
            response: Response {
                lease: delivery.batch.lease,
                ..Response::json(Endpoint::BlockingGet, 200, Body::Batch(body))
            },
        }
    }

    fn count(&mut self, batch: &Batch) {
        self.metrics.events_delivered += batch.len as u64;
        self.metrics.batches_delivered += 1;
    }
}

fn format_of(take: Take) -> Format {
    if take.envelope {
        Format::Envelope
    } else {
        Format::Raw
    }
}

/// `key`, `groupId` and `batch` of an ack, nack or extend.
fn lease_params(query: &str) -> Result<(String, String, u64), &'static str> {
    let key = params::name(query, "key")?.into_owned();
    let group = params::name(query, "groupId")?.into_owned();
    Ok((key, group, params::batch(query)?))
}
