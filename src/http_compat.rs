//! TEMPORARY: the incremental head scanner and chunked decoder, by the
//! interface the strict HTTP layer will provide, built on the old parser.
//! Removed when that lands.
#![allow(missing_docs)]

use crate::http::{self, HttpError, Status};

pub const MALFORMED: HttpError = HttpError {
    status: 400,
    message: "malformed request",
};
pub const BODY_TOO_LARGE: HttpError = HttpError {
    status: 413,
    message: "request body is larger than --max-body",
};

#[derive(Debug, Default)]
pub struct HeadScanner;

impl HeadScanner {
    pub fn default_scanner() -> HeadScanner {
        HeadScanner
    }

    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, HttpError> {
        match http::parse_head(buf)? {
            Status::Partial => Ok(None),
            Status::Complete(head) => Ok(Some(head.len)),
        }
    }
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    max_body: usize,
    seen: Vec<u8>,
}

pub struct Decoded {
    pub consumed: usize,
    pub done: bool,
}

impl ChunkedDecoder {
    pub fn new(max_body: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            max_body,
            seen: Vec::new(),
        }
    }

    pub fn feed(&mut self, input: &[u8], body: &mut Vec<u8>) -> Result<Decoded, HttpError> {
        let before = self.seen.len();
        self.seen.extend_from_slice(input);
        match http::decode_chunked(&self.seen, self.max_body) {
            Err(e) if e.status == 413 => Err(BODY_TOO_LARGE),
            Err(e) => Err(e),
            Ok(Status::Partial) => Ok(Decoded {
                consumed: input.len(),
                done: false,
            }),
            Ok(Status::Complete((data, used))) => {
                body.extend_from_slice(&data);
                Ok(Decoded {
                    consumed: used - before,
                    done: true,
                })
            }
        }
    }
}
