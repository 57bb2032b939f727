//! What one connection owes its client, in order, and how it goes out.
//!
//! Answers are queued as pieces: bytes made for this connection (a head, an
//! error, the push answer, the metrics text) and batch bodies that read
//! their bytes from the store when the socket has room ([`BatchBody`]).
//! [`Outbox::flush`] gathers a window across consecutive pieces and writes
//! it with one `writev`, so a pipelined burst of small answers costs one
//! syscall, and a large batch goes out straight from the stored bytes.
//!
//! Every byte queued here is counted in the server's [`Meter`] until it is
//! written, and a body's store range is pinned ([`Outbox::pin_bodies`]) so
//! its events outlive their TTL for as long as the client takes: the memory
//! limit covers stalled answers exactly, and nothing is ever copied per
//! consumer.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use crate::memory::Meter;
use crate::render::{BatchBody, MAX_SEGMENTS, Segments};
use crate::store::{Pin, Store};

/// Bytes charged for a queued body on top of the events it shares: the
/// piece itself.
const BODY_COST: usize = std::mem::size_of::<Piece>();

/// Capacity of a written-out byte buffer that is kept (as an empty last
/// piece) for the next answer rather than freed: enough for the usual head
/// and small body, so keep-alive traffic does not allocate per request.
const KEEP_CAPACITY: usize = 4 * 1024;

#[derive(Debug)]
enum Piece {
    Bytes { buf: Vec<u8>, at: usize },
    Body { body: BatchBody, pin: Option<Pin> },
}

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Bytes the socket took.
    pub wrote: usize,
    /// Everything queued is written.
    pub done: bool,
}

/// The queue of unwritten answers of one connection. Small on purpose (it
/// is in every connection, parked ones included): the server-wide [`Meter`]
/// is passed in rather than kept.
#[derive(Debug, Default)]
pub struct Outbox {
    pieces: VecDeque<Piece>,
    /// Bytes still to write, bodies included.
    pending: usize,
}

impl Outbox {
    /// Bytes not yet written.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Whether everything queued has been written.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Appends bytes made for this connection: `write` adds them to the
    /// tail buffer (joined with the previous bytes when nothing else is in
    /// between).
    pub fn push_bytes(&mut self, meter: &Meter, write: impl FnOnce(&mut Vec<u8>)) {
        if !matches!(self.pieces.back(), Some(Piece::Bytes { .. })) {
            self.pieces.push_back(Piece::Bytes {
                buf: Vec::new(),
                at: 0,
            });
        }
        let Some(Piece::Bytes { buf, .. }) = self.pieces.back_mut() else {
            unreachable!("a bytes piece was just ensured at the back");
        };
        let before = buf.len();
        write(buf);
        let added = buf.len() - before;
        self.pending += added;
        meter.add(added);
    }

    /// Appends a batch body. It must be pinned before the store can change
    /// (see [`Outbox::pin_bodies`]) unless it is written first.
    pub fn push_body(&mut self, meter: &Meter, body: BatchBody) {
        self.pending += body.remaining();
        meter.add(BODY_COST);
        self.pieces.push_back(Piece::Body { body, pin: None });
    }

    /// Pins the store range of every body not pinned yet, and moves the
    /// pin of a body partly written past what it has sent (so a slow reader
    /// frees expired events as it goes). Called whenever the loop is done
    /// with a connection for now, before any timer can expire events.
    pub fn pin_bodies(&mut self, store: &mut Store) {
        for piece in &mut self.pieces {
            if let Piece::Body { body, pin } = piece {
                match pin {
                    None => *pin = Some(store.pin(body.batch())),
                    Some(pin) => store.repin(pin, body.next_seq()),
                }
            }
        }
    }

    /// Writes until everything is out or the socket is full (`WouldBlock`:
    /// epoll reports writable again when it drains). Pins of bodies written
    /// out are appended to `released` for the caller to give back.
    pub fn flush(
        &mut self,
        stream: &mut impl Write,
        store: &Store,
        meter: &Meter,
        scratch: &mut Vec<u8>,
        released: &mut Vec<Pin>,
    ) -> io::Result<Flushed> {
        let mut wrote = 0;
        while self.pending > 0 {
            let mut window = Segments::new(scratch);
            for piece in &self.pieces {
                if !window.has_room() {
                    break;
                }
                match piece {
                    Piece::Bytes { buf, at } => window.push_stored(&buf[*at..]),
                    Piece::Body { body, .. } => body.segments(store, &mut window),
                }
            }
            let Some(n) = write_window(stream, &window)? else {
                break;
            };
            wrote += n;
            self.consume(n, store, meter, released);
        }
        Ok(Flushed {
            wrote,
            done: self.pending == 0,
        })
    }

    /// Writes an answer (its head and small body as `head`, then `body`)
    /// at once when nothing is queued before it, and queues only what the
    /// socket does not take: the usual answer then costs no buffer of its
    /// own. A fan-out to 10,000 parked consumers writes 10,000 answers this
    /// way without allocating for any that the socket takes whole.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        stream: &mut impl Write,
        store: &Store,
        meter: &Meter,
        scratch: &mut Vec<u8>,
        released: &mut Vec<Pin>,
        head: &[u8],
        body: Option<BatchBody>,
    ) -> io::Result<Flushed> {
        if !self.is_empty() {
            // Earlier answers first: queue behind them and write in order.
            self.push_bytes(meter, |out| out.extend_from_slice(head));
            if let Some(body) = body {
                self.push_body(meter, body);
            }
            return self.flush(stream, store, meter, scratch, released);
        }
        let wrote = {
            let mut window = Segments::new(scratch);
            window.push_stored(head);
            if let Some(body) = &body {
                body.segments(store, &mut window);
            }
            write_window(stream, &window)?.unwrap_or(0)
        };
        let rest = head.get(wrote..).unwrap_or(&[]);
        if !rest.is_empty() {
            self.push_bytes(meter, |out| out.extend_from_slice(rest));
        }
        if let Some(mut body) = body {
            let taken = wrote.saturating_sub(head.len());
            body.advance(store, taken);
            if body.remaining() > 0 {
                self.push_body(meter, body);
            }
        }
        Ok(Flushed {
            wrote,
            done: self.is_empty(),
        })
    }

    /// Drops everything unwritten (the connection is closing), handing back
    /// the pins.
    pub fn discard(&mut self, meter: &Meter, released: &mut Vec<Pin>) {
        for piece in self.pieces.drain(..) {
            match piece {
                Piece::Bytes { buf, at } => meter.sub(buf.len() - at),
                Piece::Body { pin, .. } => {
                    meter.sub(BODY_COST);
                    released.extend(pin);
                }
            }
        }
        self.pending = 0;
    }

    /// Releases the memory kept for the next answer when everything is
    /// written: a parked connection holds no buffer.
    pub fn release(&mut self) {
        if self.pending == 0 {
            self.pieces = VecDeque::new();
        }
    }

    /// Takes `n` written bytes off the front pieces.
    fn consume(&mut self, mut n: usize, store: &Store, meter: &Meter, released: &mut Vec<Pin>) {
        self.pending -= n;
        while n > 0 {
            let only = self.pieces.len() == 1;
            let Some(front) = self.pieces.front_mut() else {
                debug_assert!(false, "the socket took more than was queued");
                return;
            };
            match front {
                Piece::Bytes { buf, at } => {
                    let take = n.min(buf.len() - *at);
                    *at += take;
                    n -= take;
                    meter.sub(take);
                    if *at < buf.len() {
                        return;
                    }
                    if only && buf.capacity() <= KEEP_CAPACITY {
                        // Kept, empty, for the next answer.
                        buf.clear();
                        *at = 0;
                        return;
                    }
                    self.pieces.pop_front();
                }
                Piece::Body { body, pin } => {
                    let take = n.min(body.remaining());
                    body.advance(store, take);
                    n -= take;
                    if body.remaining() > 0 {
                        return;
                    }
                    released.extend(pin.take());
                    meter.sub(BODY_COST);
                    self.pieces.pop_front();
                }
            }
        }
    }
}

/// Writes one window: `Some(bytes taken)`, or `None` if the socket is full
/// (`WouldBlock`). A window of one slice goes out with a plain `send`:
/// `writev` takes a longer path through the kernel for the same bytes.
fn write_window(stream: &mut impl Write, window: &Segments<'_, '_>) -> io::Result<Option<usize>> {
    let mut slices = [IoSlice::new(&[]); MAX_SEGMENTS];
    let slices = window.io_slices(&mut slices);
    loop {
        let written = match slices {
            [one] => stream.write(one),
            many => stream.write_vectored(many),
        };
        return match written {
            // The socket cannot take more, ever.
            Ok(0) if !window.is_empty() => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            // A signal arrived during the syscall: try again.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Format;

    /// A socket that takes at most `per_write` bytes, then `WouldBlock`
    /// after `writes` calls.
    struct Socket {
        got: Vec<u8>,
        per_write: usize,
        writes: usize,
    }

    impl Write for Socket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[io::IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
            if self.writes == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.writes -= 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.per_write - n);
                self.got.extend_from_slice(&b[..take]);
                n += take;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn pieces_go_out_in_order_and_the_meter_returns_to_zero() {
        let mut store = Store::new(60_000, usize::MAX);
        let mut woken = Vec::new();
        let big = format!("\"{}\"", "a".repeat(3000));
        store.push("k", big.as_bytes(), 0, &mut woken).unwrap();
        store.push("k", b"2", 0, &mut woken).unwrap();
        let batch = store.take("k", "g", 0).unwrap();
        let meter = Meter::default();
        let mut out = Outbox::default();
        out.push_bytes(&meter, |b| b.extend_from_slice(b"HEAD1 "));
        out.push_body(&meter, BatchBody::new(&store, batch, Format::Raw));
        out.push_bytes(&meter, |b| b.extend_from_slice(b" HEAD2"));
        out.pin_bodies(&mut store);
        assert!(meter.held() > 12);
        let mut socket = Socket {
            got: Vec::new(),
            per_write: 7,
            writes: 3,
        };
        let (mut scratch, mut released) = (Vec::new(), Vec::new());
        let first = out
            .flush(&mut socket, &store, &meter, &mut scratch, &mut released)
            .unwrap();
        assert_eq!(
            first,
            Flushed {
                wrote: 21,
                done: false
            }
        );
        socket.writes = usize::MAX;
        socket.per_write = 1000;
        let rest = out
            .flush(&mut socket, &store, &meter, &mut scratch, &mut released)
            .unwrap();
        assert!(rest.done);
        let want = format!("HEAD1 [{big},2] HEAD2");
        assert_eq!(String::from_utf8(socket.got).unwrap(), want);
        assert_eq!(meter.held(), 0);
        assert_eq!(released.len(), 1, "the body's pin comes back");
    }

    #[test]
    fn discarding_returns_pins_and_bytes() {
        let mut store = Store::new(60_000, usize::MAX);
        let mut woken = Vec::new();
        store.push("k", b"1", 0, &mut woken).unwrap();
        let batch = store.take("k", "g", 0).unwrap();
        let meter = Meter::default();
        let mut out = Outbox::default();
        out.push_bytes(&meter, |b| b.extend_from_slice(b"head"));
        out.push_body(&meter, BatchBody::new(&store, batch, Format::Raw));
        out.pin_bodies(&mut store);
        let mut released = Vec::new();
        out.discard(&meter, &mut released);
        assert_eq!((meter.held(), released.len(), out.pending()), (0, 1, 0));
    }

    #[test]
    fn an_answer_sent_at_once_queues_only_what_the_socket_left() {
        let mut store = Store::new(60_000, usize::MAX);
        store.push("k", b"[1,2,3]", 0, &mut Vec::new()).unwrap();
        let batch = store.take("k", "g", 0).unwrap();
        let meter = Meter::default();
        let (mut scratch, mut released) = (Vec::new(), Vec::new());
        for per_write in [1000, 3] {
            let mut out = Outbox::default();
            let mut socket = Socket {
                got: Vec::new(),
                per_write,
                writes: 1,
            };
            let body = BatchBody::new(&store, batch.clone(), Format::Raw);
            let sent = out
                .send(
                    &mut socket,
                    &store,
                    &meter,
                    &mut scratch,
                    &mut released,
                    b"HEAD ",
                    Some(body),
                )
                .unwrap();
            assert_eq!(sent.done, per_write == 1000, "per write {per_write}");
            socket.writes = usize::MAX;
            socket.per_write = 1000;
            out.flush(&mut socket, &store, &meter, &mut scratch, &mut released)
                .unwrap();
            assert_eq!(socket.got, b"HEAD [[1,2,3]]", "per write {per_write}");
            assert_eq!((out.pending(), meter.held()), (0, 0));
        }
    }
}
