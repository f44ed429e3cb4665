//! The upstream's response head: parsed with httparse from the front of the connection's
//! buffer, turned into `http` types without copying header values, and the body framing
//! decided by RFC 9112 section 6.3. Anything ambiguous about where the body ends is an error:
//! a proxy that guesses differently from its client is how responses get smuggled.

use std::mem::MaybeUninit;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

/// Bound on a response head; a larger one is refused.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Bound on the number of response header fields.
pub(crate) const MAX_HEADERS: usize = 128;
/// Fields parsed without the large table.
const COMMON_HEADERS: usize = 24;

#[cfg(test)]
thread_local! {
    /// How many times [`parse`] ran on this thread.
    pub(super) static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Where the response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the upstream closes the connection.
    Close,
}

/// A complete final (non-1xx) response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    pub(crate) version: Version,
    pub(crate) headers: HeaderMap,
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request once this body is read.
    pub(crate) keep_alive: bool,
}

/// Why a response head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("malformed response head: {0}")]
    Malformed(String),
    #[error("response head over {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("invalid response header field")]
    BadField,
    #[error("invalid or conflicting Content-Length")]
    BadContentLength,
    #[error("unsupported Transfer-Encoding (only chunked is accepted)")]
    BadTransferEncoding,
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncodingInHttp10,
    #[error("101 Switching Protocols to a request that asked for no upgrade")]
    UnexpectedSwitch,
}

/// Parses the response head at the front of `buf`, consuming it (and any 1xx interim heads
/// before it). `Ok(None)`: the head is not complete yet; read more and call again.
/// `head_request`: the request was HEAD, so the response has no body whatever it says.
pub(crate) fn parse(buf: &mut BytesMut, head_request: bool) -> Result<Option<Head>, HeadError> {
    #[cfg(test)]
    PARSES.with(|n| n.set(n.get() + 1));
    loop {
        // Most heads have a handful of fields: a small table first, the full one if needed.
        let mut small = [Span::default(); COMMON_HEADERS];
        let mut large;
        let (parsed, spans): (_, &[Span]) = match parse_spans(buf, &mut small) {
            Err(HeadError::TooLarge) => {
                large = Box::new([Span::default(); MAX_HEADERS]);
                (parse_spans(buf, &mut large)?, &large[..])
            }
            other => (other?, &small[..]),
        };
        let Some(parsed) = parsed else {
            if buf.len() > MAX_HEAD_BYTES {
                return Err(HeadError::TooLarge);
            }
            return Ok(None);
        };
        let raw = buf.split_to(parsed.consumed).freeze();
        if parsed.status.is_informational() {
            if parsed.status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(HeadError::UnexpectedSwitch);
            }
            // 100 Continue, 102, 103 Early Hints: interim, the final head follows.
            continue;
        }
        let mut headers = HeaderMap::with_capacity(parsed.fields);
        let mut present = Present::default();
        for span in &spans[..parsed.fields] {
            let name = field_name(&raw[span.name()])?;
            present.note(&name);
            let value = HeaderValue::from_maybe_shared(raw.slice(span.value()))
                .map_err(|_| HeadError::BadField)?;
            headers.append(name, value);
        }
        let (framing, keep_alive) = framing(
            parsed.status,
            parsed.version,
            &mut headers,
            present,
            head_request,
        )?;
        return Ok(Some(Head {
            status: parsed.status,
            version: parsed.version,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// The name of a response field. The names nearly every response carries are recognized
/// by length and a case-insensitive compare, which costs a fraction of the general parser
/// (this runs for every field of every response); anything else goes through it.
fn field_name(bytes: &[u8]) -> Result<HeaderName, HeadError> {
    let common = match bytes.len() {
        4 => match bytes[0].to_ascii_lowercase() {
            b'd' => Some(header::DATE),
            b'e' => Some(header::ETAG),
            b'v' => Some(header::VARY),
            _ => None,
        },
        6 => Some(header::SERVER),
        7 => Some(header::EXPIRES),
        8 => Some(header::LOCATION),
        10 => match bytes[0].to_ascii_lowercase() {
            b'c' => Some(header::CONNECTION),
            b's' => Some(header::SET_COOKIE),
            _ => None,
        },
        12 => Some(header::CONTENT_TYPE),
        13 => match bytes[0].to_ascii_lowercase() {
            b'c' => Some(header::CACHE_CONTROL),
            b'l' => Some(header::LAST_MODIFIED),
            _ => None,
        },
        14 => Some(header::CONTENT_LENGTH),
        16 => Some(header::CONTENT_ENCODING),
        17 => Some(header::TRANSFER_ENCODING),
        _ => None,
    };
    match common {
        Some(name) if token_eq_lowercase(bytes, name.as_str().as_bytes()) => Ok(name),
        _ => HeaderName::from_bytes(bytes).map_err(|_| HeadError::BadField),
    }
}

/// Whether the token `bytes` (a field name httparse accepted) is `lower` (lower-case letters
/// and `-`) in any case. Setting bit 5 folds case; among token characters only the letters'
/// cases and `-` itself land on a letter or `-`, so the fold is exact here, and without an
/// early exit it compiles to a few wide compares instead of a loop.
fn token_eq_lowercase(bytes: &[u8], lower: &[u8]) -> bool {
    bytes.len() == lower.len()
        && bytes
            .iter()
            .zip(lower)
            .fold(0u8, |diff, (b, l)| diff | ((b | 0x20) ^ l))
            == 0
}

/// Which framing fields a head carries, noted while its fields are read, so a head without
/// them (most of them) costs no lookups.
#[derive(Clone, Copy, Default)]
struct Present {
    connection: bool,
    transfer_encoding: bool,
    content_length: bool,
}

impl Present {
    fn note(&mut self, name: &HeaderName) {
        self.connection |= name == header::CONNECTION;
        self.transfer_encoding |= name == header::TRANSFER_ENCODING;
        self.content_length |= name == header::CONTENT_LENGTH;
    }
}

/// Byte ranges of one header field inside the head (a head is at most 64 KiB, so u32 fits).
#[derive(Clone, Copy, Default)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

impl Span {
    fn name(&self) -> std::ops::Range<usize> {
        self.name.0 as usize..self.name.1 as usize
    }

    fn value(&self) -> std::ops::Range<usize> {
        self.value.0 as usize..self.value.1 as usize
    }
}

/// What httparse found besides the fields.
struct Parsed {
    consumed: usize,
    status: StatusCode,
    version: Version,
    fields: usize,
}

/// Runs httparse over `buf` and records in `spans` where each field lies, so the values can
/// be sliced out of the frozen head afterwards instead of copied.
fn parse_spans<const N: usize>(
    buf: &BytesMut,
    spans: &mut [Span; N],
) -> Result<Option<Parsed>, HeadError> {
    // Never look past the bound: a huge buffer is refused, not parsed.
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; N];
    let mut response = httparse::Response::new(&mut []);
    let consumed = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        window,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let code = response.code.unwrap_or(0);
    let status = StatusCode::from_u16(code)
        .map_err(|_| HeadError::Malformed(format!("status code {code}")))?;
    let version = match response.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let base = window.as_ptr() as usize;
    let offset = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        // Inside a window of at most MAX_HEAD_BYTES.
        (start as u32, (start + s.len()) as u32)
    };
    for (span, field) in spans.iter_mut().zip(response.headers.iter()) {
        span.name = offset(field.name.as_bytes());
        span.value = offset(field.value);
    }
    Ok(Some(Parsed {
        consumed,
        status,
        version,
        fields: response.headers.len(),
    }))
}

/// RFC 9112 section 6.3: how the body is delimited, and whether the connection can be
/// reused after it. Normalizes the headers the client will see so they agree with the body
/// portcullis sends: no `Content-Length` beside a `Transfer-Encoding`, one `Content-Length`
/// value at most.
fn framing(
    status: StatusCode,
    version: Version,
    headers: &mut HeaderMap,
    present: Present,
    head_request: bool,
) -> Result<(Framing, bool), HeadError> {
    let mut keep_alive =
        version == Version::HTTP_11 && !(present.connection && connection_close(headers));
    let has_te = present.transfer_encoding;
    if has_te && version == Version::HTTP_10 {
        return Err(HeadError::TransferEncodingInHttp10);
    }
    if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok((Framing::Empty, keep_alive));
    }
    if has_te {
        if !only_chunked(headers) {
            return Err(HeadError::BadTransferEncoding);
        }
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            // Both framings at once: the message is suspect, the connection is not reused.
            keep_alive = false;
        }
        return Ok((Framing::Chunked, keep_alive));
    }
    if !present.content_length {
        return Ok((Framing::Close, false));
    }
    match content_length(headers)? {
        Some(length) => Ok((Framing::Length(length), keep_alive)),
        None => Ok((Framing::Close, false)),
    }
}

/// Whether `Connection` carries the `close` option.
fn connection_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// Whether every `Transfer-Encoding` token is `chunked`, exactly once in all.
fn only_chunked(headers: &HeaderMap) -> bool {
    let mut chunked = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        for token in value.as_bytes().split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() {
                continue;
            }
            if !token.eq_ignore_ascii_case(b"chunked") {
                return false;
            }
            chunked += 1;
        }
    }
    chunked == 1
}

/// The body length from `Content-Length`: every field and list element must be the same
/// plain decimal number. A repeated value is collapsed to one field.
fn content_length(headers: &mut HeaderMap) -> Result<Option<u64>, HeadError> {
    let mut length = None;
    let mut elements = 0;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for element in value.as_bytes().split(|b| *b == b',') {
            let digits = element.trim_ascii();
            if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
                return Err(HeadError::BadContentLength);
            }
            // 19 digits or fewer always fit in a u64.
            let n = digits
                .iter()
                .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|seen| seen != n) {
                return Err(HeadError::BadContentLength);
            }
            length = Some(n);
            elements += 1;
        }
    }
    if let Some(n) = length
        && elements > 1
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    Ok(length)
}

/// The frozen bytes of a head, for tests.
#[cfg(test)]
pub(crate) fn parse_bytes(raw: &[u8], head_request: bool) -> Result<Option<Head>, HeadError> {
    let mut buf = BytesMut::from(raw);
    parse(&mut buf, head_request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        parse_bytes(raw.as_bytes(), false).unwrap().unwrap()
    }

    fn refused(raw: &str) -> HeadError {
        parse_bytes(raw.as_bytes(), false).unwrap_err()
    }

    #[test]
    fn field_names_are_recognized_in_any_case_and_near_misses_parsed_in_full() {
        for (raw, expected) in [
            ("Content-Type", "content-type"),
            ("CONTENT-LENGTH", "content-length"),
            ("date", "date"),
            ("Last-Modified", "last-modified"),
            ("Cache-Control", "cache-control"),
            // Same length and first byte as a common name, yet another name.
            ("Datx", "datx"),
            ("Content-Typo", "content-typo"),
            ("X-Request-Id", "x-request-id"),
        ] {
            assert_eq!(
                field_name(raw.as_bytes()).unwrap().as_str(),
                expected,
                "{raw}"
            );
        }
        for bad in ["Content Type", "Dat\u{e9}", ""] {
            assert_eq!(
                field_name(bad.as_bytes()),
                Err(HeadError::BadField),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_content_length_response() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-A: b\r\n\r\n");
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.framing, Framing::Length(3));
        assert!(h.keep_alive);
        assert_eq!(h.headers["x-a"], "b");
    }

    #[test]
    fn leaves_the_body_in_the_buffer() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP"[..]);
        let h = parse(&mut buf, false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Length(2));
        assert_eq!(&buf[..], b"hiHTTP");
    }

    #[test]
    fn an_incomplete_head_asks_for_more() {
        assert!(
            parse_bytes(b"HTTP/1.1 200 OK\r\nContent-Le", false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_oversized_head_is_refused() {
        let mut raw = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        raw.resize(MAX_HEAD_BYTES + 10, b'a');
        assert_eq!(parse_bytes(&raw, false).unwrap_err(), HeadError::TooLarge);
        let mut many = "HTTP/1.1 200 OK\r\n".to_string();
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(refused(&many), HeadError::TooLarge);
    }

    #[test]
    fn interim_heads_are_skipped() {
        let h = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
             HTTP/1.1 204 No Content\r\n\r\n",
        );
        assert_eq!(h.status, StatusCode::NO_CONTENT);
        assert_eq!(h.framing, Framing::Empty);
        assert!(!h.headers.contains_key("link"));
    }

    #[test]
    fn a_switch_nobody_asked_for_is_refused() {
        assert_eq!(
            refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
            HeadError::UnexpectedSwitch
        );
    }

    #[test]
    fn bodiless_responses() {
        let h = parse_bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        assert_eq!(h.headers["content-length"], "10");
        let h = head("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
    }

    #[test]
    fn chunked_wins_over_content_length_and_ends_reuse() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.headers.contains_key("content-length"));
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.keep_alive);
    }

    #[test]
    fn other_transfer_codings_are_refused() {
        for te in [
            "gzip, chunked",
            "chunked, chunked",
            "identity",
            "chunked, gzip",
        ] {
            assert_eq!(
                refused(&format!(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n"
                )),
                HeadError::BadTransferEncoding,
                "{te}"
            );
        }
        assert_eq!(
            refused(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            HeadError::BadTransferEncoding
        );
        assert_eq!(
            refused("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            HeadError::TransferEncodingInHttp10
        );
    }

    #[test]
    fn content_length_must_be_one_plain_number() {
        for bad in [
            "-1",
            "+3",
            "0x10",
            "1 2",
            "",
            "3, 4",
            "99999999999999999999",
        ] {
            assert_eq!(
                refused(&format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n")),
                HeadError::BadContentLength,
                "{bad:?}"
            );
        }
        assert_eq!(
            refused("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            HeadError::BadContentLength
        );
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(3));
        assert_eq!(h.headers.get_all("content-length").iter().count(), 1);
        assert_eq!(h.headers["content-length"], "3");
    }

    #[test]
    fn no_length_means_read_until_close() {
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.keep_alive);
    }

    #[test]
    fn connection_close_and_http10_end_reuse() {
        assert!(
            !head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n")
                .keep_alive
        );
        let h = head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.version, Version::HTTP_10);
        assert!(!h.keep_alive);
    }

    #[test]
    fn malformed_heads_are_refused() {
        for raw in [
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_bytes(raw.as_bytes(), false),
                    Err(HeadError::Malformed(_) | HeadError::BadField)
                ),
                "{raw:?}"
            );
        }
    }
}
