//! The chunked transfer coding (RFC 9112 section 7.1), decoded as it arrives.
//!
//! [`ChunkedDecoder`] is a byte-at-a-time state machine over the framing
//! that keeps its state between reads, so every byte of the body is looked
//! at once however the client splits it: a body of a million 1-byte chunks
//! with long extensions costs what its bytes cost, not their square. Chunk
//! data is copied in runs.
//!
//! The grammar is enforced exactly, extensions and trailers included, though
//! their content is thrown away: they are where two parsers' ideas of where
//! a body ends drift apart. Every line ends in CRLF. Limits, both checked
//! before anything is buffered past them: the decoded data may not exceed
//! the body limit, and the framing (every byte that is not chunk data) may
//! not exceed [`MAX_CHUNK_FRAMING`].
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-val  = token / quoted-string
//! trailer-section = *( field-line CRLF )
//! ```

use super::{BODY_TOO_LARGE, HttpError, MAX_CHUNK_FRAMING, Status, hex_value, is_tchar};

/// Hex digits in the largest chunk size we read: 16 fill a `u64`.
const MAX_SIZE_DIGITS: u8 = 16;

const BAD_SIZE: HttpError = HttpError::new(400, "malformed chunk size");
const BAD_EXTENSION: HttpError = HttpError::new(400, "malformed chunk extension");
const BAD_LINE_END: HttpError = HttpError::new(400, "chunked framing lines must end in CRLF");
const BAD_DATA_END: HttpError = HttpError::new(400, "chunk data not followed by CRLF");
const BAD_TRAILER: HttpError = HttpError::new(400, "malformed trailer field");
const FRAMING_TOO_LARGE: HttpError = HttpError::new(413, "chunked framing is larger than 64 KiB");

/// Where the decoder is, by the last byte it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the chunk-size digits (none yet at the start of a chunk).
    Size,
    /// BWS after the size or an extension value: only `;` may follow.
    SemicolonNext,
    /// After `;`: BWS, then an extension name.
    NameNext,
    /// In an extension name.
    Name,
    /// BWS after an extension name: `=` or `;` may follow.
    AfterName,
    /// After `=`: BWS, then a token or a quoted string.
    ValueNext,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted string.
    QuotedPair,
    /// Just after a quoted string's closing quote.
    AfterQuoted,
    /// The CR ending a chunk-size line.
    SizeCr,
    /// Inside chunk data, with `remaining` bytes of it to go.
    Data,
    /// After chunk data: CR then LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the empty line ending the body.
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value.
    TrailerValue,
    /// The CR ending a trailer line.
    TrailerCr,
    /// The CR of the final empty line.
    EndCr,
    /// The body is complete.
    Done,
}

/// Decodes one chunked body fed in pieces.
#[derive(Debug)]
pub struct ChunkedDecoder {
    max_body: usize,
    state: State,
    /// The chunk size read so far, then the data bytes left in the chunk.
    remaining: u64,
    digits: u8,
    /// Data bytes decoded so far.
    body_len: usize,
    /// Non-data bytes taken so far.
    framing: usize,
    examined: u64,
    /// The error that stopped this body: it stays stopped.
    failed: Option<HttpError>,
}

/// What one [`ChunkedDecoder::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input taken; all of it unless `done`.
    pub consumed: usize,
    /// The last chunk and the trailer section are in: the body is complete.
    pub done: bool,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `max_body` decoded bytes.
    pub fn new(max_body: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            max_body,
            state: State::Size,
            remaining: 0,
            digits: 0,
            body_len: 0,
            framing: 0,
            examined: 0,
            failed: None,
        }
    }

    /// Decodes `input` (bytes not given to it before), appending chunk data to `body`.
    /// Returns how much of `input` it consumed and whether the message body is complete
    /// (last-chunk and trailer section done). It consumes all of `input` unless done:
    /// bytes after the end belong to the next request and are not consumed.
    ///
    /// Errors: `413` ([`BODY_TOO_LARGE`]) as soon as a chunk size would take
    /// the data past `max_body`, before its data arrives; `413` once the
    /// framing passes [`MAX_CHUNK_FRAMING`]; `400` for anything off the
    /// grammar. After an error every call returns the same error; after
    /// `done`, every call consumes nothing.
    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<Decoded, HttpError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let result = self.run(input, body);
        if let Err(error) = result {
            self.failed = Some(error);
        }
        result
    }

    /// Total bytes this decoder has examined so far (for the fuzz target's linearity check).
    pub fn examined(&self) -> u64 {
        self.examined
    }

    fn run(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<Decoded, HttpError> {
        let mut pos = 0;
        while pos < input.len() {
            if self.state == State::Done {
                break;
            }
            if self.state == State::Data {
                // remaining > 0 here, and bounded by max_body: it fits.
                let run = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(input.len() - pos);
                body.extend_from_slice(&input[pos..pos + run]);
                pos += run;
                self.examined += run as u64;
                self.remaining -= run as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.framing += 1;
            self.examined += 1;
            if self.framing > MAX_CHUNK_FRAMING {
                return Err(FRAMING_TOO_LARGE);
            }
            self.state = self.step(input[pos])?;
            pos += 1;
        }
        Ok(Decoded {
            consumed: pos,
            done: self.state == State::Done,
        })
    }

    /// One byte of framing: the state it leads to.
    fn step(&mut self, b: u8) -> Result<State, HttpError> {
        use State::*;
        let bws = b == b' ' || b == b'\t';
        Ok(match (self.state, b) {
            (Size, _) if b.is_ascii_hexdigit() => {
                if self.digits == MAX_SIZE_DIGITS {
                    return Err(BAD_SIZE);
                }
                self.digits += 1;
                self.remaining = (self.remaining << 4) | hex_value(b).map_or(0, u64::from);
                Size
            }
            (Size, _) if self.digits == 0 => return Err(BAD_SIZE),
            (Size, _) => {
                self.check_size()?;
                match b {
                    b';' => NameNext,
                    b'\r' => SizeCr,
                    _ if bws => SemicolonNext,
                    _ => return Err(BAD_SIZE),
                }
            }
            (SemicolonNext, b';') | (Name | AfterName | Token | AfterQuoted, b';') => NameNext,
            (SemicolonNext | AfterName | NameNext | ValueNext, _) if bws => self.state,
            (NameNext | Name, _) if is_tchar(b) => Name,
            (Name, _) if bws => AfterName,
            (Name | AfterName, b'=') => ValueNext,
            (ValueNext, b'"') => Quoted,
            (ValueNext | Token, _) if is_tchar(b) => Token,
            (Token | AfterQuoted, _) if bws => SemicolonNext,
            (Quoted, b'"') => AfterQuoted,
            (Quoted, b'\\') => QuotedPair,
            (Quoted, _) if is_qdtext(b) => Quoted,
            (QuotedPair, _) if b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80 => {
                Quoted
            }
            (Name | Token | AfterQuoted, b'\r') => SizeCr,
            (SizeCr, b'\n') if self.remaining == 0 => TrailerStart,
            (SizeCr, b'\n') => Data,
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => {
                self.remaining = 0;
                self.digits = 0;
                Size
            }
            (DataCr | DataLf, _) => return Err(BAD_DATA_END),
            (TrailerStart, b'\r') => EndCr,
            (EndCr, b'\n') => Done,
            (TrailerStart | TrailerName, _) if is_tchar(b) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerValue, b'\r') => TrailerCr,
            (TrailerValue, _) if b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80 => {
                TrailerValue
            }
            (TrailerCr, b'\n') => TrailerStart,
            (SemicolonNext | NameNext | AfterName | ValueNext, b'\r') => return Err(BAD_EXTENSION),
            (_, b'\r' | b'\n') | (SizeCr | EndCr | TrailerCr, _) => return Err(BAD_LINE_END),
            (TrailerStart | TrailerName | TrailerValue, _) => return Err(BAD_TRAILER),
            // `run` copies data itself and stops at Done.
            (Data | Done, _) => self.state,
            (_, _) => return Err(BAD_EXTENSION),
        })
    }

    /// The size just read fits the body limit with the data so far.
    fn check_size(&mut self) -> Result<(), HttpError> {
        let size = usize::try_from(self.remaining).map_err(|_| BODY_TOO_LARGE)?;
        match self.body_len.checked_add(size) {
            Some(total) if total <= self.max_body => {
                self.body_len = total;
                Ok(())
            }
            _ => Err(BODY_TOO_LARGE),
        }
    }
}

/// `qdtext` of RFC 9110 section 5.6.4: HTAB, SP, visible ASCII but `"` and
/// `\`, and obs-text.
fn is_qdtext(b: u8) -> bool {
    b == b'\t' || b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\') || b >= 0x80
}

/// Decodes a chunked body at the start of `buf` (the bytes after the head). On Complete returns the body and the bytes consumed (through the last CRLF after trailers).
///
/// A one-shot [`ChunkedDecoder`], for callers that keep the whole body in
/// their buffer and call again from its start on every read. That costs a
/// pass over everything buffered per call: new code should keep a decoder
/// and feed it only the new bytes.
pub fn decode_chunked(buf: &[u8], max_body: usize) -> Result<Status<(Vec<u8>, usize)>, HttpError> {
    let mut decoder = ChunkedDecoder::new(max_body);
    let mut body = Vec::new();
    let decoded = decoder.feed(buf, &mut body)?;
    Ok(if decoded.done {
        Status::Complete((body, decoded.consumed))
    } else {
        Status::Partial
    })
}
