//! The bytes a connection has received, and how requests are cut out of
//! them.
//!
//! Requests are read into one window of at most [`WINDOW`] bytes. Heads and
//! small bodies are parsed where they lie (the parsed head borrows from the
//! window, nothing is copied); consumed requests advance a cursor, and the
//! window is compacted only when the consumed part is the larger, so a
//! client pipelining thousands of tiny requests costs no quadratic shifting.
//!
//! A body that does not fit the window (a push of up to `--max-body`) is
//! moved out of it as it arrives, into a buffer of its own that counts
//! against the memory limit (the [`Meter`]): a thousand slow uploaders
//! cannot hold more memory than `--max-memory` allows, and the window itself
//! never holds more than [`WINDOW`] bytes, which is SPEC.md's "at most 64 KiB
//! of unparsed input per open connection".

use crate::http::{self, BODY_TOO_LARGE, ChunkedDecoder, Framing, Head, HeadScanner, HttpError};
use crate::memory::Meter;

/// Most unparsed bytes kept per connection: 64 KiB.
pub const WINDOW: usize = 64 * 1024;

/// A body that does not fit the window was refused for want of memory.
pub const NO_MEMORY: HttpError = HttpError::new(
    503,
    "the server is out of memory for request bodies; retry later",
);

/// One request, or how far it has come.
#[derive(Debug)]
pub enum Framed<'a> {
    /// Not all of it is here yet.
    Partial,
    /// Its head has just become whole, and its body is still to come: the
    /// caller may refuse it now, before reading a byte of the body, or
    /// send `100 Continue` if the head asks for it. Returned once per
    /// request; later looks say `Partial` until the body is whole.
    Started {
        /// Its head.
        head: Head<'a>,
    },
    /// A whole request, to be handled and then consumed with
    /// [`Inbox::finish_request`].
    Request {
        /// Its head.
        head: Head<'a>,
        /// Its body, decoded if it was chunked.
        body: &'a [u8],
    },
}

/// Where the request being received stands.
#[derive(Debug, Default)]
enum Progress {
    /// Looking for the end of a head.
    #[default]
    Head,
    /// The head (`head_len` bytes at the window's cursor) is complete; its
    /// body lies in the window after it.
    InWindow { head_len: usize, body_len: usize },
    /// The head is complete; its body is moved out of the window as it comes.
    Spilled { head_len: usize, body: Box<Spill> },
}

#[derive(Debug)]
struct Spill {
    body: Vec<u8>,
    /// Bytes charged to the meter for this body.
    charged: usize,
    framing: SpillFraming,
}

#[derive(Debug)]
enum SpillFraming {
    Length(usize),
    Chunked { decoder: ChunkedDecoder, done: bool },
}

/// How far the request being received has come. Boxed in the inbox and
/// dropped when a connection parks: a parked connection carries none of it.
#[derive(Debug, Default)]
struct Receiving {
    progress: Progress,
    scanner: HeadScanner,
}

/// A connection's received bytes.
#[derive(Debug, Default)]
pub struct Inbox {
    buf: Vec<u8>,
    /// Bytes before this are consumed requests.
    start: usize,
    rx: Option<Box<Receiving>>,
    /// Bytes arrived (or a request was consumed) since the last look found
    /// no complete request: there may be work without reading the socket.
    fresh: bool,
    /// The peer sent FIN: what is here is all that will come.
    finished: bool,
}

impl Inbox {
    /// Unparsed bytes held.
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether no unparsed byte is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
            && self
                .rx
                .as_ref()
                .is_none_or(|rx| matches!(rx.progress, Progress::Head))
    }

    /// Bytes that may be read into the window now.
    pub fn room(&self) -> usize {
        WINDOW.saturating_sub(self.len())
    }

    /// Whether bytes arrived that no look for a request has seen yet.
    pub fn has_unexamined(&self) -> bool {
        self.fresh && !self.is_empty()
    }

    /// Whether a request has begun arriving and is not complete.
    pub fn in_request(&self) -> bool {
        !self.is_empty()
    }

    /// Says that the window must be looked at again though no byte came
    /// (it waited behind a parked get or a full outbox).
    pub fn mark_unexamined(&mut self) {
        self.fresh = true;
    }

    /// The peer sent FIN: serve what is here, then stop.
    pub fn finish_input(&mut self) {
        self.finished = true;
    }

    /// Whether the peer has sent FIN.
    pub fn input_finished(&self) -> bool {
        self.finished
    }

    /// Appends bytes read from the socket.
    pub fn append(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            // The consumed part is at least half: moving the rest costs no
            // more than the bytes already consumed, so over a connection's
            // life this is linear in what it sent.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        self.fresh = true;
    }

    /// Releases the window's memory if it holds nothing: a parked or idle
    /// connection costs no buffer.
    pub fn release(&mut self) {
        if self.is_empty() {
            self.buf = Vec::new();
            self.start = 0;
            self.rx = None;
        }
    }

    /// Cuts the next request out of the window. A body larger than
    /// `max_body` is refused (`413`) as soon as its size is known; a body
    /// too large for the window is charged to `meter` and refused (`503`)
    /// if `memory_left` cannot hold it.
    pub fn next_request(
        &mut self,
        max_body: usize,
        meter: &Meter,
        memory_left: usize,
    ) -> Result<Framed<'_>, HttpError> {
        self.fresh = false;
        let rx = self.rx.get_or_insert_with(Box::default);
        // A body being moved out takes what came, first: from here on the
        // window is only read, so a head parsed from it can be returned.
        if let Progress::Spilled { head_len, body } = &mut rx.progress {
            let from = self.start + *head_len;
            let taken = body.take(&self.buf[from..], meter, memory_left)?;
            self.buf.drain(from..from + taken);
        }
        let window = &self.buf[self.start..];
        if matches!(rx.progress, Progress::Head) {
            let Some(head_len) = rx.scanner.scan(window)? else {
                return Ok(Framed::Partial);
            };
            // One parse per request in the common case: a head whose body
            // is already here (or that has none) is answered from here.
            let head = http::parse_scanned(&window[..head_len])?;
            let body_len = match head.framing {
                Framing::Empty => 0,
                Framing::Length(n) if n > max_body => return Err(BODY_TOO_LARGE),
                Framing::Length(n) if head_len + n <= WINDOW => n,
                Framing::Length(n) => {
                    rx.progress = spill(head_len, n, SpillFraming::Length(n), meter, memory_left)?;
                    // The bytes of it already here are taken on the next
                    // look, which `fresh` asks the loop for.
                    self.fresh = true;
                    return Ok(Framed::Started { head });
                }
                Framing::Chunked => {
                    let decoder = SpillFraming::Chunked {
                        decoder: ChunkedDecoder::new(max_body),
                        done: false,
                    };
                    rx.progress = spill(head_len, 0, decoder, meter, memory_left)?;
                    self.fresh = true;
                    return Ok(Framed::Started { head });
                }
            };
            rx.progress = Progress::InWindow { head_len, body_len };
            if window.len() < head_len + body_len {
                return Ok(Framed::Started { head });
            }
            let body = &window[head_len..head_len + body_len];
            return Ok(Framed::Request { head, body });
        }
        // A request whose body took more than one look: its head again.
        let (head_len, complete) = match &rx.progress {
            Progress::Head => unreachable!("handled above"),
            Progress::InWindow { head_len, body_len } => {
                (*head_len, window.len() >= head_len + body_len)
            }
            Progress::Spilled { head_len, body } => (*head_len, body.is_complete()),
        };
        if !complete {
            return Ok(Framed::Partial);
        }
        let head = http::parse_scanned(&window[..head_len])?;
        let body = match &rx.progress {
            Progress::InWindow { head_len, body_len } => &window[*head_len..head_len + body_len],
            Progress::Spilled { body, .. } => &body.body[..],
            Progress::Head => unreachable!("handled above"),
        };
        Ok(Framed::Request { head, body })
    }

    /// Consumes the request [`Inbox::next_request`] returned, once it has
    /// been handled, and gives its spilled body's memory back.
    pub fn finish_request(&mut self, meter: &Meter) {
        let Some(rx) = self.rx.as_mut() else {
            return;
        };
        let consumed = match std::mem::take(&mut rx.progress) {
            Progress::Head => 0,
            Progress::InWindow { head_len, body_len } => head_len + body_len,
            Progress::Spilled { head_len, body } => {
                meter.sub(body.charged);
                head_len
            }
        };
        self.start += consumed;
        if self.start == self.buf.len() {
            self.start = 0;
            self.buf.clear();
            if self.buf.capacity() > WINDOW {
                self.buf = Vec::new();
            }
        }
        rx.scanner = HeadScanner::default();
        self.fresh = true;
    }

    /// Gives back a spilled body's memory without finishing the request
    /// (the connection is closing).
    pub fn discard(&mut self, meter: &Meter) {
        if let Some(rx) = self.rx.take()
            && let Progress::Spilled { body, .. } = rx.progress
        {
            meter.sub(body.charged);
        }
        self.buf = Vec::new();
        self.start = 0;
    }
}

/// Starts moving a body out of the window, charging `reserve` bytes now.
fn spill(
    head_len: usize,
    reserve: usize,
    framing: SpillFraming,
    meter: &Meter,
    memory_left: usize,
) -> Result<Progress, HttpError> {
    if reserve > memory_left {
        return Err(NO_MEMORY);
    }
    meter.add(reserve);
    Ok(Progress::Spilled {
        head_len,
        body: Box::new(Spill {
            body: Vec::with_capacity(reserve),
            charged: reserve,
            framing,
        }),
    })
}

impl Spill {
    fn is_complete(&self) -> bool {
        match &self.framing {
            SpillFraming::Length(n) => self.body.len() == *n,
            SpillFraming::Chunked { done, .. } => *done,
        }
    }

    /// Takes what belongs to the body from `bytes`; returns how many.
    fn take(
        &mut self,
        bytes: &[u8],
        meter: &Meter,
        memory_left: usize,
    ) -> Result<usize, HttpError> {
        match &mut self.framing {
            SpillFraming::Length(n) => {
                let take = bytes.len().min(*n - self.body.len());
                self.body.extend_from_slice(&bytes[..take]);
                Ok(take)
            }
            SpillFraming::Chunked { decoder, done } => {
                if *done {
                    return Ok(0);
                }
                let decoded = decoder.feed(bytes, &mut self.body)?;
                *done = decoded.done;
                // A chunked body's size is learnt as it comes: charge its
                // growth, and refuse it once memory runs out.
                let grown = self.body.capacity().saturating_sub(self.charged);
                if grown > 0 {
                    if grown > memory_left {
                        return Err(NO_MEMORY);
                    }
                    meter.add(grown);
                    self.charged += grown;
                }
                Ok(decoded.consumed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(inbox: &mut Inbox, meter: &Meter) -> Vec<(String, Vec<u8>)> {
        let mut got = Vec::new();
        loop {
            match inbox.next_request(1 << 20, meter, usize::MAX).unwrap() {
                Framed::Partial => return got,
                Framed::Started { .. } => continue,
                Framed::Request { head, body } => {
                    got.push((head.path.to_string(), body.to_vec()));
                    inbox.finish_request(meter);
                }
            }
        }
    }

    #[test]
    fn pipelined_requests_come_out_in_order_whatever_the_reads() {
        let mut stream = Vec::new();
        for i in 0..50 {
            let body = format!("{{\"n\":{i}}}");
            stream.extend_from_slice(
                format!(
                    "POST /p{i} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
        for piece in [1, 7, 100, 4096, stream.len()] {
            let (mut inbox, meter) = (Inbox::default(), Meter::default());
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                inbox.append(chunk);
                got.extend(frame_all(&mut inbox, &meter));
            }
            assert_eq!(got.len(), 50, "piece {piece}");
            assert_eq!(got[49].0, "/p49");
            assert_eq!(got[3].1, b"{\"n\":3}");
            assert!(inbox.is_empty());
        }
    }

    #[test]
    fn a_body_larger_than_the_window_is_moved_out_and_charged() {
        let body = vec![b'7'; 200_000];
        let mut req = format!(
            "POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(&body);
        req.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        let (mut inbox, meter) = (Inbox::default(), Meter::default());
        let mut got = Vec::new();
        for chunk in req.chunks(WINDOW / 2) {
            assert!(
                chunk.len() <= inbox.room(),
                "the window never grows past its size"
            );
            inbox.append(chunk);
            if !got.is_empty() {
                continue;
            }
            if let Framed::Request { body, .. } =
                inbox.next_request(1 << 20, &meter, usize::MAX).unwrap()
            {
                assert_eq!(meter.held(), 200_000);
                got.push(body.len());
                inbox.finish_request(&meter);
            }
        }
        assert_eq!(got, vec![200_000]);
        assert_eq!(meter.held(), 0);
        assert_eq!(frame_all(&mut inbox, &meter)[0].0, "/next");
    }

    #[test]
    fn a_large_body_without_memory_for_it_is_refused() {
        let (mut inbox, meter) = (Inbox::default(), Meter::default());
        inbox.append(b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!(
            inbox
                .next_request(1 << 20, &meter, 99_999)
                .unwrap_err()
                .status,
            503
        );
        assert_eq!(meter.held(), 0);
    }

    #[test]
    fn a_head_is_started_once() {
        let (mut inbox, meter) = (Inbox::default(), Meter::default());
        inbox.append(
            b"POST /push HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        );
        // Some(expect_continue) for a head just started, None for a partial.
        let look = |inbox: &mut Inbox| match inbox.next_request(10, &meter, usize::MAX).unwrap() {
            Framed::Partial => None,
            Framed::Started { head } => Some(head.expect_continue),
            Framed::Request { .. } => panic!("the body is not here"),
        };
        assert_eq!(look(&mut inbox), Some(true));
        assert_eq!(look(&mut inbox), None);
        inbox.append(b"12");
        assert_eq!(look(&mut inbox), None);
        inbox.append(b"3");
        assert!(matches!(
            inbox.next_request(10, &meter, usize::MAX).unwrap(),
            Framed::Request { body: b"123", .. }
        ));
    }
}
