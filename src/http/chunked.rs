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

#[cfg(test)]
mod tests {
    use super::*;

    /// `input` fed to one decoder in pieces cut at `cuts` (ascending):
    /// the body, the bytes consumed, whether done, or the error status.
    fn feed_cut(
        input: &[u8],
        max_body: usize,
        cuts: &[usize],
    ) -> Result<(Vec<u8>, usize, bool), u16> {
        let mut decoder = ChunkedDecoder::new(max_body);
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut start = 0;
        for end in cuts.iter().copied().chain([input.len()]) {
            let decoded = decoder
                .feed(&input[start..end], &mut body)
                .map_err(|e| e.status)?;
            consumed += decoded.consumed;
            if decoded.done {
                return Ok((body, consumed, true));
            }
            assert_eq!(
                decoded.consumed,
                end - start,
                "not done, so all of it is taken"
            );
            start = end;
        }
        assert!(decoder.examined() <= input.len() as u64);
        Ok((body, consumed, false))
    }

    /// One feed, every split into two feeds, and one byte at a time all
    /// give `expected`.
    fn check_every_split(
        input: &[u8],
        max_body: usize,
        expected: Result<(Vec<u8>, usize, bool), u16>,
    ) {
        assert_eq!(feed_cut(input, max_body, &[]), expected, "one feed");
        // Every cut of a short input; of a long one, a few hundred spread
        // over it, which is where the state changes are anyway.
        let step = (input.len() / 256).max(1);
        for cut in (0..=input.len()).step_by(step).chain([input.len()]) {
            assert_eq!(feed_cut(input, max_body, &[cut]), expected, "cut at {cut}");
        }
        let every: Vec<usize> = (1..input.len()).collect();
        assert_eq!(
            feed_cut(input, max_body, &every),
            expected,
            "byte at a time"
        );
    }

    /// A complete chunked body: the decoded bytes and how many were consumed.
    macro_rules! chunked_ok {
        ($name:ident, $buf:expr, $max:expr => $body:expr, $consumed:expr) => {
            #[test]
            fn $name() {
                let expected: &[u8] = $body;
                assert_eq!(
                    decode_chunked($buf, $max),
                    Ok(Status::Complete((expected.to_vec(), $consumed)))
                );
                check_every_split($buf, $max, Ok((expected.to_vec(), $consumed, true)));
            }
        };
    }

    /// A valid beginning: everything taken, nothing decided.
    macro_rules! chunked_partial {
        ($name:ident, $buf:expr, $max:expr) => {
            #[test]
            fn $name() {
                let buf: &[u8] = $buf;
                assert_eq!(decode_chunked(buf, $max), Ok(Status::Partial));
                let body = feed_cut(buf, $max, &[])
                    .map(|(body, _, _)| body)
                    .unwrap_or_default();
                check_every_split(buf, $max, Ok((body, buf.len(), false)));
            }
        };
    }

    macro_rules! chunked_err {
        ($name:ident, $buf:expr, $max:expr => $status:expr) => {
            #[test]
            fn $name() {
                match decode_chunked($buf, $max) {
                    Err(e) => assert_eq!(e.status, $status, "{e}"),
                    other => panic!("expected a {} error, got {other:?}", $status),
                }
                check_every_split($buf, $max, Err($status));
            }
        };
    }

    chunked_ok!(chunked_one_chunk, b"5\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 15);
    chunked_ok!(chunked_two_chunks, b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", 1024 => b"hello", 20);
    chunked_ok!(chunked_empty_body, b"0\r\n\r\n", 0 => b"", 5);
    chunked_ok!(chunked_upper_hex, b"A\r\n0123456789\r\n0\r\n\r\n", 1024 => b"0123456789", 20);
    chunked_ok!(chunked_leading_zeros, b"0005\r\nhello\r\n000\r\n\r\n", 1024 => b"hello", 20);
    chunked_ok!(chunked_extensions, b"5;a=b;c=\"d\"\r\nhello\r\n0;last\r\n\r\n", 1024 => b"hello", 30);
    chunked_ok!(chunked_space_before_extension, b"5 ;a\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 18);
    chunked_ok!(chunked_trailers, b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-More: 2\r\n\r\n", 1024 => b"hello", 36);
    chunked_ok!(chunked_stops_at_end, b"2\r\n{}\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1024 => b"{}", 12);
    chunked_ok!(chunked_exactly_at_limit, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 5 => b"abcde", 20);
    chunked_ok!(chunked_data_may_hold_crlf, b"4\r\n\r\n\r\n\r\n0\r\n\r\n", 4 => b"\r\n\r\n", 14);
    chunked_partial!(chunked_nothing_yet, b"", 1024);
    chunked_partial!(chunked_size_only, b"5", 1024);
    chunked_partial!(chunked_size_cr, b"5\r", 1024);
    chunked_partial!(chunked_data_short, b"5\r\nhel", 1024);
    chunked_partial!(chunked_data_no_crlf, b"5\r\nhello", 1024);
    chunked_partial!(chunked_data_cr, b"5\r\nhello\r", 1024);
    chunked_partial!(chunked_no_last_chunk, b"5\r\nhello\r\n", 1024);
    chunked_partial!(chunked_no_final_crlf, b"5\r\nhello\r\n0\r\n", 1024);
    chunked_partial!(chunked_trailer_unfinished, b"0\r\nX-Sum: 1\r\n", 1024);
    chunked_err!(chunked_over_limit_before_data, b"b\r\n", 10 => 413);
    chunked_err!(chunked_over_limit_running_total, b"5\r\nhello\r\n6\r\n", 10 => 413);
    chunked_err!(chunked_huge_size, b"ffffffffffffffff\r\n", 1 << 20 => 413);
    chunked_err!(chunked_zero_limit, b"1\r\n", 0 => 413);
    chunked_err!(chunked_size_not_hex, b"g\r\n", 1024 => 400);
    chunked_err!(chunked_size_then_junk, b"5g\r\nhello\r\n", 1024 => 400);
    chunked_err!(chunked_size_missing, b"\r\nhello\r\n", 1024 => 400);
    chunked_err!(chunked_only_extension, b";a=b\r\n", 1024 => 400);
    chunked_err!(chunked_size_negative, b"-5\r\n", 1024 => 400);
    chunked_err!(chunked_size_overflow, b"10000000000000000\r\n", usize::MAX => 400);
    chunked_err!(chunked_size_lf_only, b"5\nhello\r\n", 1024 => 400);
    chunked_err!(chunked_extension_bare_lf, b"5;a\nb\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(chunked_data_too_long, b"5\r\nhello!\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(chunked_data_bad_crlf, b"5\r\nhello\rx", 1024 => 400);
    chunked_err!(chunked_trailer_bare_lf, b"0\r\nX-Sum: 1\n\r\n", 1024 => 400);
    chunked_err!(chunked_trailer_bare_cr, b"0\r\nX-Sum: 1\rX\r\n\r\n", 1024 => 400);
    chunked_err!(chunked_end_lf_only, b"0\r\n\n", 1024 => 400);

    // Extensions: *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ).
    chunked_ok!(ext_bws_everywhere, b"5 \t; a \t= b ;c\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 28);
    chunked_ok!(ext_quoted, b"5;a=\"x y;z\"\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 25);
    chunked_ok!(ext_quoted_pair, b"5;a=\"x\\\"y\"\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 24);
    chunked_ok!(ext_quoted_then_more, b"5;a=\"\";b\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 22);
    chunked_ok!(ext_quoted_obs_text, b"5;a=\"\x80\xff\"\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 22);
    chunked_ok!(ext_on_last_chunk, b"0;a=b\r\n\r\n", 1024 => b"", 9);
    chunked_err!(ext_empty_name, b"5;\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(ext_empty_name_then_more, b"5;;a\r\n", 1024 => 400);
    chunked_err!(ext_bad_name_char, b"5;bad[=x\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(ext_empty_value, b"5;a=\r\n", 1024 => 400);
    chunked_err!(ext_bad_value_char, b"5;a=b@c\r\n", 1024 => 400);
    chunked_err!(ext_two_values, b"5;a=b=c\r\n", 1024 => 400);
    chunked_err!(ext_space_inside_token, b"5;a=b c\r\n", 1024 => 400);
    chunked_err!(ext_bws_before_crlf, b"5;a \r\n", 1024 => 400);
    chunked_err!(ext_value_bws_before_crlf, b"5;a=b \r\n", 1024 => 400);
    chunked_err!(ext_control_byte, b"5;a\x00\r\n", 1024 => 400);
    chunked_err!(ext_control_in_quotes, b"5;a=\"\x07\"\r\n", 1024 => 400);
    chunked_err!(ext_unclosed_quote, b"5;a=\"x\r\nhello\r\n", 1024 => 400);
    chunked_err!(ext_bare_cr, b"5;a\rX\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(ext_after_quote_junk, b"5;a=\"x\"y\r\n", 1024 => 400);
    chunked_err!(size_then_space_then_crlf, b"5 \r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(size_leading_space, b" 5\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(size_plus, b"+5\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(size_hex_prefix, b"0x5\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(size_underscore, b"1_0\r\nhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_ok!(size_sixteen_digits, b"0000000000000005\r\nhello\r\n0\r\n\r\n", 1024 => b"hello", 30);
    chunked_err!(size_seventeen_digits, b"00000000000000005\r\n", 1024 => 400);
    chunked_err!(size_bare_cr, b"5\rhello\r\n0\r\n\r\n", 1024 => 400);
    chunked_err!(data_lf_only, b"5\r\nhello\n0\r\n\r\n", 1024 => 400);

    // Trailers: field lines like a head's, skipped.
    chunked_ok!(trailer_empty_value, b"0\r\nX-A:\r\n\r\n", 1024 => b"", 11);
    chunked_ok!(trailer_tab_and_obs_text, b"0\r\nX-A: a\tb\x80\r\n\r\n", 1024 => b"", 16);
    chunked_err!(trailer_space_before_colon, b"0\r\nX-A : b\r\n\r\n", 1024 => 400);
    chunked_err!(trailer_obs_fold, b"0\r\nX-A: b\r\n c\r\n\r\n", 1024 => 400);
    chunked_err!(trailer_no_colon, b"0\r\nX-A\r\n\r\n", 1024 => 400);
    chunked_err!(trailer_empty_name, b"0\r\n: b\r\n\r\n", 1024 => 400);
    chunked_err!(trailer_bad_name, b"0\r\nX[A]: b\r\n\r\n", 1024 => 400);
    chunked_err!(trailer_control_in_value, b"0\r\nX-A: \x0b\r\n\r\n", 1024 => 400);
    chunked_err!(trailer_final_cr_bare, b"0\r\n\rX", 1024 => 400);

    // The framing limit: every byte but chunk data, at most 64 KiB.
    chunked_ok!(framing_exactly_max, &framing_of(MAX_CHUNK_FRAMING), 16 => b"ab", MAX_CHUNK_FRAMING + 2);
    chunked_err!(framing_max_plus_one, &framing_of(MAX_CHUNK_FRAMING + 1), 16 => 413);
    chunked_err!(framing_in_trailers, &long_trailers(MAX_CHUNK_FRAMING + 1), 16 => 413);
    chunked_partial!(
        framing_trailers_up_to_max,
        &long_trailers(MAX_CHUNK_FRAMING),
        16
    );

    /// A complete body of `2` data bytes and exactly `framing` framing
    /// bytes, most of them in one extension.
    fn framing_of(framing: usize) -> Vec<u8> {
        let tail = b"\r\nab\r\n0\r\n\r\n";
        let mut buf = b"2;x=".to_vec();
        buf.resize(framing + 2 - tail.len(), b'a');
        buf.extend_from_slice(tail);
        buf
    }

    /// A last chunk followed by one unfinished trailer line: `framing`
    /// bytes in all.
    fn long_trailers(framing: usize) -> Vec<u8> {
        let mut buf = b"0\r\nX-Pad: ".to_vec();
        buf.resize(framing, b'a');
        buf
    }

    #[test]
    fn the_413_is_the_same_for_every_framing() {
        assert_eq!(decode_chunked(b"b\r\n", 10), Err(BODY_TOO_LARGE));
        assert_eq!(
            BODY_TOO_LARGE.message,
            "request body is larger than --max-body"
        );
    }

    #[test]
    fn pipelined_bytes_are_not_consumed() {
        let input = b"3\r\nabc\r\n0\r\nX: y\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let end = input.len() - b"GET / HTTP/1.1\r\n\r\n".len();
        for cut in 0..=input.len() {
            let mut decoder = ChunkedDecoder::new(16);
            let mut body = Vec::new();
            let first = decoder.feed(&input[..cut], &mut body);
            let Ok(first) = first else {
                panic!("{first:?}")
            };
            let second = decoder.feed(&input[first.consumed..], &mut body);
            let done = if first.done {
                first
            } else {
                second.unwrap_or(first)
            };
            let consumed = if first.done {
                first.consumed
            } else {
                cut + done.consumed
            };
            assert!(done.done, "cut {cut}");
            assert_eq!((body.as_slice(), consumed), (&b"abc"[..], end), "cut {cut}");
            // Done is final: more input is not taken.
            assert_eq!(
                decoder.feed(b"more", &mut body),
                Ok(Decoded {
                    consumed: 0,
                    done: true
                })
            );
        }
    }

    #[test]
    fn an_error_is_final() {
        let mut decoder = ChunkedDecoder::new(16);
        let mut body = Vec::new();
        assert_eq!(
            decoder.feed(b"5;", &mut body),
            Ok(Decoded {
                consumed: 2,
                done: false
            })
        );
        let error = decoder.feed(b"\r\n", &mut body);
        assert_eq!(error.map_err(|e| e.status), Err(400));
        assert_eq!(decoder.feed(b"hello\r\n0\r\n\r\n", &mut body), error);
    }

    #[test]
    fn data_is_appended_to_what_the_body_held() {
        let mut decoder = ChunkedDecoder::new(3);
        let mut body = b"previous".to_vec();
        let decoded = decoder.feed(b"3\r\nabc\r\n0\r\n\r\n", &mut body);
        assert_eq!(
            decoded,
            Ok(Decoded {
                consumed: 13,
                done: true
            })
        );
        assert_eq!(body, b"previousabc");
    }

    /// SPEC: no request costs work out of proportion to its bytes. 1-byte
    /// chunks each with a 4 KiB extension: every byte is examined once, and
    /// the body is refused once its framing passes 64 KiB.
    #[test]
    fn linear_in_the_bytes_fed() {
        let mut chunk = b"1;x=".to_vec();
        chunk.resize(4 + 4096, b'a');
        chunk.extend_from_slice(b"\r\nz\r\n");
        let input = chunk.repeat(64);
        for piece in [1, 100] {
            let mut decoder = ChunkedDecoder::new(1 << 20);
            let mut body = Vec::new();
            let mut fed = 0u64;
            let mut result = Ok(Decoded {
                consumed: 0,
                done: false,
            });
            for bytes in input.chunks(piece) {
                fed += bytes.len() as u64;
                result = decoder.feed(bytes, &mut body);
                assert!(
                    decoder.examined() <= 2 * fed,
                    "examined {} of {fed}",
                    decoder.examined()
                );
                if result.is_err() {
                    break;
                }
            }
            assert_eq!(result.map_err(|e| e.status), Err(413), "pieces of {piece}");
            // It stopped at the byte that passed the limit, not later.
            let framing_per_chunk = (chunk.len() - 1) as u64;
            assert!(
                fed <= (MAX_CHUNK_FRAMING as u64 / framing_per_chunk + 1) * chunk.len() as u64
                    + piece as u64
            );
            assert_eq!(
                body.len() as u64,
                MAX_CHUNK_FRAMING as u64 / framing_per_chunk
            );
        }
    }

    /// The body of a real push, after its head, every split.
    #[test]
    fn a_typical_body_in_any_split() {
        let body = b"4;name=value\r\n{\"a\"\r\n5 ; x\r\n:1}  \r\n0;last\r\nX-Checksum: abc\r\n\r\n";
        check_every_split(body, 1024, Ok((b"{\"a\":1}  ".to_vec(), body.len(), true)));
        // The limit counts decoded bytes, not framing.
        check_every_split(body, 8, Err(413));
        check_every_split(body, 9, Ok((b"{\"a\":1}  ".to_vec(), body.len(), true)));
    }
}
