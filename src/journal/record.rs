//! One record of the log, and its bytes on disk.
//!
//! A record is what changed the store, in the terms the store is rebuilt
//! from on start (see `replay.rs`): an event pushed, a batch handed out, a
//! lease that ran out, an ack, a nack, an extend. Each carries `at`, the
//! store's clock when it happened (the server's clock counts Unix
//! milliseconds whenever a data directory is set, so times mean the same
//! across restarts).
//!
//! # Framing
//!
//! `len: u32 LE` (payload bytes), `crc: u32 LE` (CRC-32 of the payload),
//! then the payload: a tag byte and the fields, integers little-endian,
//! strings as `u32 LE` length and bytes. A crash mid-`write` leaves a
//! prefix of a record: [`decode`] says [`Decoded::Partial`] for it, as
//! httparse says `Partial` for half a request, and a record whose bytes
//! are all there but do not match their checksum is [`Decoded::Corrupt`].
//! Neither is an error of the server: replay stops there and the tail is
//! cut off.

use crate::store::HandOut;

/// Bytes of framing before a payload: length and checksum.
pub const HEADER: usize = 8;

/// The largest payload a record may have: a 1 MiB body limit is the
/// default, and the flag allows more, but a length beyond this is garbage,
/// not a record.
pub const MAX_PAYLOAD: usize = 256 << 20;

/// What changed the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// Event `id` was pushed under `key` at `at`.
    Push {
        /// When.
        at: u64,
        /// Its id.
        id: u64,
        /// Its key.
        key: &'a str,
        /// Its JSON, as stored.
        json: &'a [u8],
    },
    /// A batch was handed out, as the store notes it: group (`key`,
    /// `group`), sequences `first..end` with `len` events, attempt
    /// `attempt` (1: taken from the group's cursor, which moves to `end`;
    /// more: handed out again from its due list), under lease `batch` of
    /// `lease` ms (0: no lease).
    Take(HandOut<'a>),
    /// Lease `batch` ran out at `at`.
    Due {
        /// When.
        at: u64,
        /// The batch.
        batch: u64,
    },
    /// Batch `batch` of (`key`, `group`) was acked.
    Ack {
        /// When.
        at: u64,
        /// The key.
        key: &'a str,
        /// The groupId.
        group: &'a str,
        /// The batch.
        batch: u64,
    },
    /// Batch `batch` of (`key`, `group`) was given back.
    Nack {
        /// When.
        at: u64,
        /// The key.
        key: &'a str,
        /// The groupId.
        group: &'a str,
        /// The batch.
        batch: u64,
    },
    /// Batch `batch`'s lease was moved to `lease` ms after `at`.
    Extend {
        /// When.
        at: u64,
        /// The key.
        key: &'a str,
        /// The groupId.
        group: &'a str,
        /// The batch.
        batch: u64,
        /// The new lease, ms from `at`.
        lease: u64,
    },
}

const PUSH: u8 = 1;
const TAKE: u8 = 2;
const DUE: u8 = 3;
const ACK: u8 = 4;
const NACK: u8 = 5;
const EXTEND: u8 = 6;

impl Record<'_> {
    /// When it happened.
    pub fn at(&self) -> u64 {
        match *self {
            Record::Push { at, .. }
            | Record::Take(HandOut { at, .. })
            | Record::Due { at, .. }
            | Record::Ack { at, .. }
            | Record::Nack { at, .. }
            | Record::Extend { at, .. } => at,
        }
    }
}

/// What [`decode`] found at the start of its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A whole record, and how many bytes it took.
    Complete(Record<'a>, usize),
    /// The input ends inside a record (or is empty): a torn tail.
    Partial,
    /// A record whose length is absurd, whose checksum does not match, or
    /// whose payload does not parse.
    Corrupt,
}

/// Appends `record`, framed, to `out`.
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    match *record {
        Record::Push { at, id, key, json } => {
            out.push(PUSH);
            put_u64(out, at);
            put_u64(out, id);
            put_bytes(out, key.as_bytes());
            put_bytes(out, json);
        }
        Record::Take(HandOut {
            at,
            key,
            group,
            first,
            end,
            len,
            attempt,
            lease,
            batch,
        }) => {
            out.push(TAKE);
            put_u64(out, at);
            put_bytes(out, key.as_bytes());
            put_bytes(out, group.as_bytes());
            put_u64(out, first);
            put_u64(out, end);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&attempt.to_le_bytes());
            out.extend_from_slice(&lease.to_le_bytes());
            put_u64(out, batch);
        }
        Record::Due { at, batch } => {
            out.push(DUE);
            put_u64(out, at);
            put_u64(out, batch);
        }
        Record::Ack {
            at,
            key,
            group,
            batch,
        }
        | Record::Nack {
            at,
            key,
            group,
            batch,
        } => {
            out.push(if matches!(record, Record::Ack { .. }) {
                ACK
            } else {
                NACK
            });
            put_u64(out, at);
            put_bytes(out, key.as_bytes());
            put_bytes(out, group.as_bytes());
            put_u64(out, batch);
        }
        Record::Extend {
            at,
            key,
            group,
            batch,
            lease,
        } => {
            out.push(EXTEND);
            put_u64(out, at);
            put_bytes(out, key.as_bytes());
            put_bytes(out, group.as_bytes());
            put_u64(out, batch);
            put_u64(out, lease);
        }
    }
    let payload = &out[start + HEADER..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The record at the start of `bytes`.
pub fn decode(bytes: &[u8]) -> Decoded<'_> {
    let Some(header) = bytes.get(..HEADER) else {
        return Decoded::Partial;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Decoded::Corrupt;
    }
    let Some(payload) = bytes.get(HEADER..HEADER + len) else {
        return Decoded::Partial;
    };
    if crc32fast::hash(payload) != crc {
        return Decoded::Corrupt;
    }
    match parse(payload) {
        Some(record) => Decoded::Complete(record, HEADER + len),
        None => Decoded::Corrupt,
    }
}

/// A payload whose checksum matched: it was written by us, so a field that
/// does not parse means a bug or a foreign file, reported as corrupt.
fn parse(payload: &[u8]) -> Option<Record<'_>> {
    let (&tag, rest) = payload.split_first()?;
    let mut r = Reader(rest);
    let record = match tag {
        PUSH => Record::Push {
            at: r.u64()?,
            id: r.u64()?,
            key: r.str()?,
            json: r.bytes()?,
        },
        TAKE => Record::Take(HandOut {
            at: r.u64()?,
            key: r.str()?,
            group: r.str()?,
            first: r.u64()?,
            end: r.u64()?,
            len: r.u32()?,
            attempt: r.u32()?,
            lease: r.u32()?,
            batch: r.u64()?,
        }),
        DUE => Record::Due {
            at: r.u64()?,
            batch: r.u64()?,
        },
        ACK | NACK => {
            let (at, key, group, batch) = (r.u64()?, r.str()?, r.str()?, r.u64()?);
            if tag == ACK {
                Record::Ack {
                    at,
                    key,
                    group,
                    batch,
                }
            } else {
                Record::Nack {
                    at,
                    key,
                    group,
                    batch,
                }
            }
        }
        EXTEND => Record::Extend {
            at: r.u64()?,
            key: r.str()?,
            group: r.str()?,
            batch: r.u64()?,
            lease: r.u64()?,
        },
        _ => return None,
    };
    r.0.is_empty().then_some(record)
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Record<'static>> {
        vec![
            Record::Push {
                at: 1_700_000_000_000,
                id: 42,
                key: "k",
                json: br#"{"a":[1,2]}"#,
            },
            Record::Push {
                at: 0,
                id: u64::MAX,
                key: "ключ",
                json: b"",
            },
            Record::Take(HandOut {
                at: 5,
                key: "k",
                group: "g",
                first: 10,
                end: 20,
                len: 7,
                attempt: 2,
                lease: 300_000,
                batch: 99,
            }),
            Record::Due { at: 6, batch: 99 },
            Record::Ack {
                at: 7,
                key: "k",
                group: "g",
                batch: 99,
            },
            Record::Nack {
                at: 8,
                key: "k",
                group: "",
                batch: 1,
            },
            Record::Extend {
                at: 9,
                key: "k",
                group: "g",
                batch: 3,
                lease: 1500,
            },
        ]
    }

    fn all_bytes() -> Vec<u8> {
        let mut out = Vec::new();
        for r in samples() {
            encode(&r, &mut out);
        }
        out
    }

    #[test]
    fn every_record_round_trips() {
        let bytes = all_bytes();
        let mut at = 0;
        let mut back = Vec::new();
        while at < bytes.len() {
            match decode(&bytes[at..]) {
                Decoded::Complete(r, n) => {
                    back.push(r);
                    at += n;
                }
                other => panic!("at {at}: {other:?}"),
            }
        }
        assert_eq!(back, samples());
    }

    #[test]
    fn a_torn_tail_at_every_byte_offset_is_partial() {
        for record in samples() {
            let mut bytes = Vec::new();
            encode(&record, &mut bytes);
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode(&bytes[..cut]),
                    Decoded::Partial,
                    "{record:?} cut at {cut}"
                );
            }
            assert!(
                matches!(decode(&bytes), Decoded::Complete(r, n) if r == record && n == bytes.len())
            );
        }
    }

    #[test]
    fn a_flipped_bit_anywhere_is_detected() {
        let mut bytes = Vec::new();
        encode(&samples()[2], &mut bytes);
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                // A flip in the length may make the record look longer than
                // the input (torn) or shorter (corrupt); never complete.
                assert!(
                    !matches!(decode(&bad), Decoded::Complete(..)),
                    "byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn a_corrupt_checksum_is_corrupt_not_partial() {
        let mut bytes = Vec::new();
        encode(&samples()[0], &mut bytes);
        bytes[5] ^= 0xff;
        assert_eq!(decode(&bytes), Decoded::Corrupt);
    }

    #[test]
    fn zeros_and_absurd_lengths_are_corrupt() {
        assert_eq!(decode(&[0; 64]), Decoded::Corrupt);
        let mut bytes = vec![0xff; 8];
        bytes.extend_from_slice(&[0; 8]);
        assert_eq!(decode(&bytes), Decoded::Corrupt);
    }

    #[test]
    fn a_checksummed_payload_with_an_unknown_tag_is_corrupt() {
        let payload = [77u8, 1, 2, 3];
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        assert_eq!(decode(&bytes), Decoded::Corrupt);
    }
}
