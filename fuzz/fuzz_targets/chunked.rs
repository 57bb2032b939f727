//! The chunked decoder fed one body in arbitrary pieces.
//!
//! The input is a small header followed by the bytes after a request head:
//!
//! - byte 0: bits 0-1 pick the body limit (0, 16, 1 KiB, 1 MiB);
//! - byte 1: how many split points follow (0 to 31);
//! - then two bytes (little-endian) per split point: where a read ends,
//!   taken modulo the payload length;
//! - then the payload.
//!
//! Fed in those pieces (and, when short, one byte at a time), the decoder
//! must give exactly what one feed of the whole payload gives: the same
//! body, the same bytes consumed, the same error. It must take all of each
//! piece until it is done, never take a byte after the end, and examine no
//! byte twice: `examined()` never exceeds the bytes fed.

#![no_main]

use event_syncer::http::{ChunkedDecoder, Decoded, HttpError};
use libfuzzer_sys::fuzz_target;

/// Below this length the payload is also fed one byte at a time.
const BYTE_AT_A_TIME_UP_TO: usize = 256;

fuzz_target!(|data: &[u8]| {
    let [mode, count, rest @ ..] = data else {
        return;
    };
    let count = usize::from(count % 32);
    if rest.len() < 2 * count {
        return;
    }
    let (split_bytes, payload) = rest.split_at(2 * count);
    let max_body = [0, 16, 1024, 1 << 20][usize::from(mode & 3)];
    let mut cuts: Vec<usize> = split_bytes
        .chunks_exact(2)
        .map(|pair| usize::from(u16::from_le_bytes([pair[0], pair[1]])) % (payload.len() + 1))
        .collect();
    cuts.sort_unstable();

    let once = feed(payload, max_body, &[]);
    assert_eq!(feed(payload, max_body, &cuts), once, "cut at {cuts:?}");
    if payload.len() <= BYTE_AT_A_TIME_UP_TO {
        let every: Vec<usize> = (1..payload.len()).collect();
        assert_eq!(feed(payload, max_body, &every), once, "byte at a time");
    }
    if let Ok((body, consumed, true)) = &once {
        assert!(body.len() <= max_body && body.len() < *consumed && *consumed <= payload.len());
    }
});

/// One decoder fed `payload` cut at `cuts` (ascending, possibly repeated):
/// the body, the bytes consumed and whether it is done, or the error.
fn feed(
    payload: &[u8],
    max_body: usize,
    cuts: &[usize],
) -> Result<(Vec<u8>, usize, bool), HttpError> {
    let mut decoder = ChunkedDecoder::new(max_body);
    let mut body = Vec::new();
    let (mut start, mut consumed) = (0, 0);
    for end in cuts.iter().copied().chain([payload.len()]) {
        let result = decoder.feed(&payload[start..end], &mut body);
        // Linear work: each byte fed is examined at most once.
        assert!(
            decoder.examined() <= end as u64,
            "examined {} of {end}",
            decoder.examined()
        );
        let Decoded {
            consumed: taken,
            done,
        } = result?;
        consumed += taken;
        if done {
            assert_eq!(decoder.examined(), consumed as u64);
            return Ok((body, consumed, true));
        }
        assert_eq!(taken, end - start, "not done, yet left bytes");
        start = end;
    }
    Ok((body, consumed, false))
}
