//! The request-parsing cases of the Http11Probe compliance suite
//! (github.com/MDA2AV/Http11Probe), one line each, named after the probe's
//! test id, with the outcome the parser gives: the request is whole, needs
//! more bytes, or is refused with a status. Where the probe passes either a
//! `400` or a close, we send the `400`. Cases about what the server answers
//! to a valid request (routing, methods, response fields) are the
//! connection's and the API's, and are not here.

use super::{ChunkedDecoder, Framing, Status, parse_head};

const HOST: &str = "localhost:8080";

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Head and body are in; the next request starts this many bytes in.
    Whole(usize),
    /// A valid beginning: wait for more.
    Partial,
    /// Refused with this status.
    Refused(u16),
}
use Outcome::{Partial, Refused, Whole};

/// What the parser makes of the first request in `input`.
fn outcome(input: &[u8]) -> Outcome {
    let head = match parse_head(input) {
        Ok(Status::Complete(head)) => head,
        Ok(Status::Partial) => return Partial,
        Err(e) => return Refused(e.status),
    };
    let rest = &input[head.len..];
    match head.framing {
        Framing::Empty => Whole(head.len),
        Framing::Length(n) if n <= rest.len() => Whole(head.len + n),
        Framing::Length(_) => Partial,
        Framing::Chunked => {
            let mut body = Vec::new();
            match ChunkedDecoder::new(1 << 20).feed(rest, &mut body) {
                Ok(decoded) if decoded.done => Whole(head.len + decoded.consumed),
                Ok(_) => Partial,
                Err(e) => Refused(e.status),
            }
        }
    }
}

/// What a case expects, where "whole" needs to say how far the request goes.
enum Expect {
    /// The request is whole and takes all of the input.
    All,
    /// The request is whole and ends where this text, left for the next
    /// request, begins.
    Before(&'static str),
    Is(Outcome),
}
use Expect::{All, Before};

impl From<Outcome> for Expect {
    fn from(outcome: Outcome) -> Expect {
        Expect::Is(outcome)
    }
}

/// `$request` with `{h}` standing for the probe's host.
macro_rules! probe {
    ($name:ident, $request:expr => $expected:expr) => {
        #[test]
        fn $name() {
            let request = $request.replace("{h}", HOST);
            let expected = match Expect::from($expected) {
                All => Whole(request.len()),
                Before(rest) => Whole(request.len() - rest.replace("{h}", HOST).len()),
                Expect::Is(outcome) => outcome,
            };
            assert_eq!(outcome(request.as_bytes()), expected, "{request:?}");
        }
    };
}

/// The same for raw bytes (the probe's NUL, CR and non-ASCII cases).
macro_rules! probe_bytes {
    ($name:ident, $request:expr => $expected:expr) => {
        #[test]
        fn $name() {
            let request: Vec<u8> = $request;
            assert_eq!(outcome(&request), $expected);
        }
    };
}

fn with_host(before: &str, middle: &[u8], after: &str) -> Vec<u8> {
    [
        before.replace("{h}", HOST).as_bytes(),
        middle,
        after.as_bytes(),
    ]
    .concat()
}

// ComplianceSuite.
probe!(comp_baseline, "GET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(rfc9112_2_2_bare_lf_request_line, "GET / HTTP/1.1\nHost: {h}\r\n\r\n" => Refused(400));
probe!(rfc9112_2_2_bare_lf_header, "GET / HTTP/1.1\r\nHost: {h}\nX-Test: value\r\n\r\n" => Refused(400));
probe!(rfc9112_5_1_obs_fold, "GET / HTTP/1.1\r\nHost: {h}\r\nX-Test: value\r\n continued\r\n\r\n" => Refused(400));
probe!(rfc9110_5_6_2_sp_before_colon, "GET / HTTP/1.1\r\nHost: {h}\r\nX-Test : value\r\n\r\n" => Refused(400));
probe!(rfc9112_3_multi_sp_request_line, "GET  / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(rfc9112_7_1_missing_host, "GET / HTTP/1.1\r\n\r\n" => Refused(400));
probe!(rfc9112_2_3_invalid_version, "GET / HTTP/9.9\r\nHost: {h}\r\n\r\n" => Refused(505));
probe!(rfc9112_5_empty_header_name, "GET / HTTP/1.1\r\nHost: {h}\r\n: empty-name\r\n\r\n" => Refused(400));
probe!(rfc9112_3_cr_only_line_ending, "GET / HTTP/1.1\rHost: {h}\r\n\r\n" => Refused(400));
probe!(rfc9112_3_missing_target, "GET HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(rfc9112_3_2_fragment_in_target, "GET /path#frag HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(rfc9112_2_3_http09_request, "GET /\r\n" => Refused(400));
probe!(rfc9112_5_invalid_header_name, "GET / HTTP/1.1\r\nHost: {h}\r\nBad[Name: value\r\n\r\n" => Refused(400));
probe!(rfc9112_5_header_no_colon, "GET / HTTP/1.1\r\nHost: {h}\r\nNoColonHere\r\n\r\n" => Refused(400));
probe!(rfc9110_5_4_duplicate_host, "GET / HTTP/1.1\r\nHost: {h}\r\nHost: other.example.com\r\n\r\n" => Refused(400));
probe!(rfc9112_6_1_cl_non_numeric, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: abc\r\n\r\n" => Refused(400));
probe!(rfc9112_6_1_cl_plus_sign, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: +5\r\n\r\nhello" => Refused(400));
probe!(comp_whitespace_before_headers, "GET / HTTP/1.1\r\n \r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_duplicate_host_same, "GET / HTTP/1.1\r\nHost: {h}\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_host_with_userinfo, "GET / HTTP/1.1\r\nHost: user@{h}\r\n\r\n" => Refused(400));
probe!(comp_host_with_path, "GET / HTTP/1.1\r\nHost: {h}/path\r\n\r\n" => Refused(400));
probe!(comp_asterisk_with_get, "GET * HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_options_star, "OPTIONS * HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_unknown_te_501, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: gzip\r\n\r\n" => Refused(400));
probe!(comp_leading_crlf, "\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_absolute_form, "GET http://{h}/ HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_method_case, "get / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_post_cl_body, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(comp_post_cl_zero, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 0\r\n\r\n" => All);
probe!(comp_post_no_cl_no_te, "POST / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_post_cl_undersend, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 10\r\n\r\nhello" => Partial);
probe!(comp_chunked_body, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" => All);
probe!(comp_chunked_multi, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" => All);
probe!(comp_chunked_empty, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => All);
probe!(comp_chunked_no_final, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" => Partial);
probe!(comp_upgrade_post, "POST / HTTP/1.1\r\nHost: {h}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" => All);
probe!(comp_upgrade_missing_conn, "GET / HTTP/1.1\r\nHost: {h}\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" => All);
probe!(comp_upgrade_unknown, "GET / HTTP/1.1\r\nHost: {h}\r\nConnection: Upgrade\r\nUpgrade: totally-made-up/1.0\r\n\r\n" => All);
probe!(comp_method_connect, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n" => Refused(400));
probe!(comp_expect_unknown, "GET / HTTP/1.1\r\nHost: {h}\r\nExpect: 200-ok\r\n\r\n" => All);
probe!(comp_get_with_cl_body, "GET / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(comp_chunked_extension, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=value\r\nhello\r\n0\r\n\r\n" => All);
probe!(comp_upgrade_invalid_ver, "GET / HTTP/1.1\r\nHost: {h}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 99\r\n\r\n" => All);
probe!(comp_method_trace, "TRACE / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_host_empty_value, "GET / HTTP/1.1\r\nHost: \r\n\r\n" => Refused(400));
probe!(comp_request_line_tab, "GET\t/ HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_version_missing_minor, "GET / HTTP/1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_version_leading_zeros, "GET / HTTP/01.01\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_version_whitespace, "GET / HTTP/ 1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_connection_close, "GET / HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n" => All);
probe!(comp_http10_default_close, "GET / HTTP/1.0\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_http10_no_host, "GET / HTTP/1.0\r\n\r\n" => All);
probe!(comp_http12_version, "GET / HTTP/1.2\r\nHost: {h}\r\n\r\n" => Refused(505));
probe!(comp_trace_with_body, "TRACE / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(comp_chunked_trailer_valid, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n" => All);
probe!(comp_chunked_hex_uppercase, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\nA\r\nhelloworld\r\n0\r\n\r\n" => All);
probe!(comp_range_post, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nRange: bytes=0-10\r\n\r\nhello" => All);
probe!(comp_upgrade_http10, "GET / HTTP/1.0\r\nHost: {h}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" => All);
probe!(comp_head_no_body, "HEAD / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_unknown_method, "FOOBAR / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_405_allow, "DELETE / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_no_1xx_http10, "POST / HTTP/1.0\r\nHost: {h}\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(comp_no_cl_in_204, "OPTIONS / HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(comp_version_case, "GET / http/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_long_url_ok, format!("GET /{} HTTP/1.1\r\nHost: {{h}}\r\n\r\n", "a".repeat(7900)) => All);
probe!(comp_space_in_target, "GET /pa th HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(comp_duplicate_ct, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nContent-Type: text/plain\r\nContent-Type: text/html\r\n\r\nhello" => All);
probe!(comp_trace_sensitive, "TRACE / HTTP/1.1\r\nHost: {h}\r\nAuthorization: Bearer secret-token-123\r\n\r\n" => All);
probe!(comp_range_invalid, "GET / HTTP/1.1\r\nHost: {h}\r\nRange: bytes=abc-xyz\r\n\r\n" => All);
probe!(comp_accept_nonsense, "GET / HTTP/1.1\r\nHost: {h}\r\nAccept: application/x-nonsense\r\n\r\n" => All);
probe!(comp_post_unsupported_ct, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nContent-Type: application/x-nonsense\r\n\r\nhello" => All);

// SmugglingSuite: single requests.
probe!(smug_cl_te_both, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 24\r\nTransfer-Encoding: chunked\r\n\r\nD\r\nhello-bananas\r\n0\r\n\r\n" => Refused(400));
probe!(smug_duplicate_cl, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nContent-Length: 10\r\n\r\nhelloworld" => Refused(400));
probe!(smug_cl_leading_zeros, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 005\r\n\r\nhello" => All);
probe!(smug_te_xchunked, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: xchunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_te_trailing_space, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked \r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_te_sp_before_colon, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_cl_negative, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: -1\r\n\r\n" => Refused(400));
probe!(smug_clte_pipeline, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => Refused(400));
probe!(smug_tecl_pipeline, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\n" => Refused(400));
probe!(smug_cl_trailing_space, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5 \r\n\r\nhello" => All);
probe!(smug_te_double_chunked, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked, chunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_cl_extra_leading_sp, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length:  5\r\n\r\nhello" => All);
probe!(smug_te_case_mismatch, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: Chunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_cl_comma_different, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5, 10\r\n\r\nhello" => Refused(400));
probe!(smug_te_not_final_chunked, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" => Refused(400));
probe!(smug_te_http10, "POST / HTTP/1.0\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_chunk_bare_semicolon, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n" => Refused(400));
probe!(smug_chunk_ext_invalid_token, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5;bad[=x\r\nhello\r\n0\r\n\r\n" => Refused(400));
probe!(smug_bare_cr_header_value, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nX-Test: val\rue\r\n\r\nhello" => Refused(400));
probe!(smug_cl_octal, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 0o5\r\n\r\nhello" => Refused(400));
probe!(smug_chunk_underscore, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\nhello world!!!!!\r\n0\r\n\r\n" => Refused(400));
probe!(smug_te_empty_value, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: \r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_te_leading_comma, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: , chunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_te_duplicate_headers, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_chunk_hex_prefix, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" => Refused(400));
probe!(smug_chunk_size_plus, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n" => Refused(400));
probe!(smug_chunk_size_trailing_ows, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n" => Refused(400));
probe!(smug_cl_hex_prefix, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 0x5\r\n\r\nhello" => Refused(400));
probe!(smug_cl_internal_space, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 1 0\r\n\r\nhello12345" => Refused(400));
probe!(smug_chunk_leading_sp, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n" => Refused(400));
probe!(smug_chunk_missing_trailing_crlf, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n" => Refused(400));
probe!(smug_chunk_ext_lf, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5;\nhello\r\n0\r\n\r\n" => Refused(400));
probe!(smug_chunk_spill, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello!!\r\n0\r\n\r\n" => Refused(400));
probe!(smug_chunk_lf_term, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n" => Refused(400));
probe_bytes!(smug_chunk_ext_ctrl, with_host("POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5;", b"\0", "ext\r\nhello\r\n0\r\n\r\n") => Refused(400));
probe_bytes!(smug_chunk_ext_cr, with_host("POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5;a", b"\r", "X\r\nhello\r\n0\r\n\r\n") => Refused(400));
probe_bytes!(smug_te_vtab, with_host("POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: ", b"\x0b", "chunked\r\nContent-Length: 5\r\n\r\nhello") => Refused(400));
probe_bytes!(smug_te_formfeed, with_host("POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: ", b"\x0c", "chunked\r\nContent-Length: 5\r\n\r\nhello") => Refused(400));
probe_bytes!(smug_te_null, with_host("POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked", b"\0", "\r\nContent-Length: 5\r\n\r\nhello") => Refused(400));
probe!(smug_chunk_lf_trailer, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n" => Refused(400));
probe!(smug_te_identity, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_chunk_negative, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nhello\r\n0\r\n\r\n" => Refused(400));
probe!(smug_transfer_encoding_underscore, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(smug_cl_comma_same, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5, 5\r\n\r\nhello" => Refused(400));
probe!(smug_cl_comma_triple, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5, 5, 5\r\n\r\nhello" => Refused(400));
probe!(smug_chunked_with_params, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked;ext=val\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_expect_100_cl, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello" => All);
probe!(smug_trailer_cl, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n" => All);
probe!(smug_trailer_te, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n" => All);
probe!(smug_trailer_host, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nHost: evil.example.com\r\n\r\n" => All);
probe!(smug_trailer_auth, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nAuthorization: Bearer evil\r\n\r\n" => All);
probe!(smug_trailer_content_type, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Type: text/evil\r\n\r\n" => All);
probe!(smug_head_cl_body, "HEAD / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(smug_options_cl_body, "OPTIONS / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(smug_cl_underscore, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 1_0\r\n\r\nhelloworld" => Refused(400));
probe!(smug_cl_negative_zero, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: -0\r\n\r\n" => Refused(400));
probe!(smug_cl_double_zero, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 00\r\n\r\n" => All);
probe!(smug_cl_leading_zeros_octal, format!("POST / HTTP/1.1\r\nHost: {{h}}\r\nContent-Length: 0200\r\n\r\n{}", "A".repeat(200)) => All);
probe!(smug_te_obs_fold, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_te_trailing_comma, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked,\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_te_tab_before_value, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding:\tchunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_absolute_uri_host_mismatch, "GET http://other.example.com/ HTTP/1.1\r\nHost: {h}\r\n\r\n" => All);
probe!(smug_multiple_host_comma, "GET / HTTP/1.1\r\nHost: {h}, other.example.com\r\n\r\n" => Refused(400));
probe!(smug_chunk_bare_cr_term, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n" => Refused(400));

// SmugglingSuite: sequences; the first request decides.
probe!(smug_clte_conn_close, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => Refused(400));
probe!(smug_tecl_conn_close, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" => Refused(400));
probe!(smug_clte_desync, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX" => Refused(400));
probe!(smug_clte_smuggled_get, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 41\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_clte_smuggled_get_cl_plus, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: +41\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_clte_smuggled_get_cl_non_numeric, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 41x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_clte_smuggled_get_te_obs_fold, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 41\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_clte_smuggled_head, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 42\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHEAD / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_clte_smuggled_get_te_trailing_space, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 41\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_clte_smuggled_get_te_leading_comma, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 41\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_clte_smuggled_get_te_case_mismatch, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 41\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_te_duplicate_headers_smuggled_get, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 41\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_tecl_smuggled_get, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n37\r\nGET / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 7\r\n\r\n\r\n0\r\n\r\n" => Refused(400));
probe!(smug_duplicate_cl_smuggled_get, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nPINGGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(smug_get_cl_prefix_desync, "GET / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 38\r\n\r\nGET / HTTP/1.1\r\nHost: localhost:8080\r\n" => All);
probe!(smug_tecl_desync, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n0\r\n\r\nX" => Refused(400));
probe!(smug_cl0_body_poison, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 0\r\n\r\nX" => Before("X"));
probe!(smug_get_cl_body_desync, "GET / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(smug_options_cl_body_desync, "OPTIONS / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\n\r\nhello" => All);
probe!(smug_expect_100_cl_desync, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello" => All);
probe!(smug_options_te_obs_fold, "OPTIONS / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\nhello" => Refused(400));
probe!(smug_chunk_invalid_size_desync, "POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\n\r\n+0\r\n\r\nX" => Refused(400));
probe!(smug_pipeline_safe, "GET / HTTP/1.1\r\nHost: {h}\r\n\r\nGET / HTTP/1.1\r\nHost: {h}\r\n\r\n" => Before("GET / HTTP/1.1\r\nHost: {h}\r\n\r\n"));

// MalformedInputSuite.
probe_bytes!(mal_binary_garbage, vec![0x89, 0x1f, 0xc4, 0x00, 0xfe, 0x13, 0x7a, 0x0d, 0x99, 0x42] => Refused(400));
probe!(mal_long_url, format!("GET /{} HTTP/1.1\r\nHost: {{h}}\r\n\r\n", "A".repeat(100_000)) => Refused(431));
probe!(mal_long_header_value, format!("GET / HTTP/1.1\r\nHost: {{h}}\r\nX-Big: {}\r\n\r\n", "B".repeat(100_000)) => Refused(431));
probe!(mal_many_headers, format!("GET / HTTP/1.1\r\nHost: {{h}}\r\n{}\r\n", (0..10_000).map(|i| format!("X-H-{i}: value\r\n")).collect::<String>()) => Refused(431));
probe!(mal_nul_in_url, "GET /\0test HTTP/1.1\r\nHost: {h}\r\n\r\n" => Refused(400));
probe!(mal_control_chars_header, "GET / HTTP/1.1\r\nHost: {h}\r\nX-Test: abc\x07\x08\x0bdef\r\n\r\n" => Refused(400));
probe!(mal_incomplete_request, "GET / HTTP/1.1\r\nHost: {h}\r\nX-Test: value" => Partial);
probe!(mal_empty_request, "" => Partial);
probe!(mal_long_header_name, format!("GET / HTTP/1.1\r\nHost: {{h}}\r\n{}: val\r\n\r\n", "A".repeat(100_000)) => Refused(431));
probe!(mal_long_method, format!("{} / HTTP/1.1\r\nHost: {{h}}\r\n\r\n", "A".repeat(100_000)) => Refused(400));
probe_bytes!(mal_non_ascii_header_name, with_host("GET / HTTP/1.1\r\nHost: {h}\r\nX-T", b"\xc3\xab", "st: value\r\n\r\n") => Refused(400));
probe_bytes!(mal_non_ascii_url, with_host("GET /caf", b"\xc3\xa9", " HTTP/1.1\r\nHost: {h}\r\n\r\n") => Refused(400));
probe!(mal_cl_overflow, "POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 99999999999999999999\r\n\r\n" => Refused(400));
probe!(mal_whitespace_only_line, "   \r\n\r\n" => Refused(400));

// NormalizationSuite: a malformed name is refused or left alone, never
// mapped onto the field it imitates.
probe!(norm_underscore_cl, "POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 11\r\nContent_Length: 99\r\n\r\nhello world" => All);
probe!(norm_sp_before_colon_cl, "POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 11\r\nContent-Length : 5\r\n\r\nhello world" => Refused(400));
probe!(norm_tab_in_name, "POST /echo HTTP/1.1\r\nHost: {h}\r\nContent-Length: 11\r\nContent\tLength: 99\r\n\r\nhello world" => Refused(400));
probe!(norm_case_te, "POST /echo HTTP/1.1\r\nHost: {h}\r\nTRANSFER-ENCODING: chunked\r\n\r\nB\r\nhello world\r\n0\r\n\r\n" => All);
probe!(norm_underscore_te, "POST /echo HTTP/1.1\r\nHost: {h}\r\nTransfer_Encoding: chunked\r\n\r\nB\r\nhello world\r\n0\r\n\r\n" => Before("B\r\nhello world\r\n0\r\n\r\n"));

// CookieSuite: the parser's part (what /echo says back is the API's).
probe!(cook_oversized, format!("GET /echo HTTP/1.1\r\nHost: {{h}}\r\nCookie: big={}\r\n\r\n", "A".repeat(65_536)) => Refused(431));
probe!(cook_empty, "GET /echo HTTP/1.1\r\nHost: {h}\r\nCookie: \r\n\r\n" => All);
probe!(cook_nul, "GET /echo HTTP/1.1\r\nHost: {h}\r\nCookie: foo=\0bar\r\n\r\n" => Refused(400));
probe!(cook_control_chars, "GET /echo HTTP/1.1\r\nHost: {h}\r\nCookie: foo=\x01\x02\x03\r\n\r\n" => Refused(400));
probe!(cook_many_pairs, format!("GET /echo HTTP/1.1\r\nHost: {{h}}\r\nCookie: {}\r\n\r\n", (0..1000).map(|i| format!("k{i}=v{i}")).collect::<Vec<_>>().join("; ")) => Refused(431));
probe!(cook_malformed, "GET /echo HTTP/1.1\r\nHost: {h}\r\nCookie: ===;;;\r\n\r\n" => All);
probe!(cook_multi_header, "GET /echo HTTP/1.1\r\nHost: {h}\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n" => All);
