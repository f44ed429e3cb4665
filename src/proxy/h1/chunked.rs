//! Decoder for the chunked transfer coding (RFC 9112 section 7.1), driven by whatever bytes
//! have arrived: it hands out chunk data as zero-copy slices of the connection's buffer and
//! the trailer section as headers. Strict on the wire format (CRLF only, bounded size lines
//! and trailers, no size overflow): the decoder decides where the response ends, so leniency
//! here would let an upstream hide a second response in the first.

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

use super::head::{MAX_HEAD_BYTES, MAX_HEADERS};

/// Longest chunk-size line accepted, extensions included.
const MAX_SIZE_LINE: usize = 4096;

/// What the decoder produced from the buffer.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded {
    /// Chunk data.
    Data(Bytes),
    /// The buffer holds no complete next piece: read more.
    NeedMore,
    /// The last chunk and the trailer section (None when empty) are through.
    Done(Option<HeaderMap>),
}

/// Why a chunked body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub(crate) struct ChunkError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this much left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: the trailer section up to the empty line.
    Trailers,
    Done,
}

/// The decoder state of one chunked body.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
}

impl Decoder {
    pub(crate) fn new() -> Self {
        Decoder { state: State::Size }
    }

    /// Consumes what it can from the front of `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line_end) = find_crlf(buf, MAX_SIZE_LINE)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = chunk_size(&buf[..line_end])?;
                    let _ = buf.split_to(line_end + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(take).freeze();
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Decoded::Data(data));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(ChunkError("chunk data longer than its size"));
                    }
                    let _ = buf.split_to(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    if buf.starts_with(b"\r\n") {
                        let _ = buf.split_to(2);
                        self.state = State::Done;
                        return Ok(Decoded::Done(None));
                    }
                    let Some(trailers) = trailers(buf)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    self.state = State::Done;
                    return Ok(Decoded::Done(Some(trailers)));
                }
                State::Done => return Ok(Decoded::Done(None)),
            }
        }
    }
}

/// The index of the first CRLF, refusing a bare LF or a line longer than `max`.
fn find_crlf(buf: &[u8], max: usize) -> Result<Option<usize>, ChunkError> {
    let window = &buf[..buf.len().min(max + 2)];
    match window.iter().position(|b| *b == b'\n') {
        Some(0) => Err(ChunkError("bare LF")),
        Some(lf) if window[lf - 1] == b'\r' => Ok(Some(lf - 1)),
        Some(_) => Err(ChunkError("bare LF")),
        None if buf.len() > max + 1 => Err(ChunkError("chunk-size line too long")),
        None => Ok(None),
    }
}

/// `chunk-size [ BWS ; chunk-ext ]`: hex digits, at most 16, then optionally whitespace and
/// extensions, which are ignored. Anything else is refused.
fn chunk_size(line: &[u8]) -> Result<u64, ChunkError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkError("missing chunk size"));
    }
    if digits > 16 {
        return Err(ChunkError("chunk size overflows"));
    }
    let rest = &line[digits..];
    let blanks = rest
        .iter()
        .take_while(|b| **b == b' ' || **b == b'\t')
        .count();
    let rest = &rest[blanks..];
    if !(rest.is_empty() || rest.starts_with(b";")) {
        return Err(ChunkError("junk after chunk size"));
    }
    if rest
        .iter()
        .any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
    {
        return Err(ChunkError("control character in chunk extension"));
    }
    let size = line[..digits].iter().fold(0u64, |n, d| {
        // 16 hex digits fit in a u64.
        (n << 4) | u64::from(hex_value(*d))
    });
    Ok(size)
}

fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    }
}

/// Parses a complete trailer section at the front of `buf` and consumes it; None when it has
/// not all arrived.
fn trailers(buf: &mut BytesMut) -> Result<Option<HeaderMap>, ChunkError> {
    let window = &buf[..buf.len().min(MAX_HEAD_BYTES)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (consumed, fields) = match httparse::parse_headers(window, &mut fields) {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(ChunkError("trailer section too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ChunkError("malformed trailer section")),
    };
    let mut map = HeaderMap::with_capacity(fields.len());
    for field in fields {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| ChunkError("malformed trailer field"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| ChunkError("malformed trailer field"))?;
        map.append(name, value);
    }
    let _ = buf.split_to(consumed);
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` one byte at a time (the worst split) and collects everything.
    fn decode_bytewise(input: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>, BytesMut), ChunkError> {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::Done(trailers) => return Ok((out, trailers, buf)),
                Decoded::NeedMore => {
                    if fed == input.len() {
                        return Err(ChunkError("input ended"));
                    }
                    buf.extend_from_slice(&input[fed..=fed]);
                    fed += 1;
                }
            }
        }
    }

    fn decode_whole(input: &[u8]) -> Result<(Vec<u8>, Option<HeaderMap>, BytesMut), ChunkError> {
        let mut decoder = Decoder::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match decoder.decode(&mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::Done(trailers) => return Ok((out, trailers, buf)),
                Decoded::NeedMore => return Err(ChunkError("input ended")),
            }
        }
    }

    #[test]
    fn decodes_chunks_split_anywhere() {
        let input = b"5\r\nhello\r\n1;name=value\r\n \r\nA\r\n0123456789\r\n0\r\n\r\nNEXT";
        let (data, trailers, _) = decode_bytewise(input).unwrap();
        assert_eq!(data, b"hello 0123456789");
        assert!(trailers.is_none());
        let (data, _, rest) = decode_whole(input).unwrap();
        assert_eq!(data, b"hello 0123456789");
        assert_eq!(
            &rest[..],
            b"NEXT",
            "what follows the body stays in the buffer"
        );
    }

    #[test]
    fn passes_trailers_on() {
        let (data, trailers, _) =
            decode_bytewise(b"3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nX-T: 1\r\n\r\n").unwrap();
        assert_eq!(data, b"abc");
        let trailers = trailers.unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["x-t"], "1");
    }

    #[test]
    fn refuses_malformed_framing() {
        for bad in [
            &b"5\r\nhello world\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\r;x\r\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"5;a=\x01\r\nhello\r\n0\r\n\r\n",
            b"0\r\nBad Field: x\r\n\r\n",
        ] {
            assert!(
                decode_whole(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bounds_size_lines_and_trailers() {
        let mut long = b"1;".to_vec();
        long.resize(MAX_SIZE_LINE + 10, b'a');
        assert!(decode_whole(&long).is_err());
        let mut trailer = b"0\r\nX: ".to_vec();
        trailer.resize(MAX_HEAD_BYTES + 10, b'a');
        assert!(decode_whole(&trailer).is_err());
    }

    #[test]
    fn the_largest_size_parses() {
        assert_eq!(chunk_size(b"ffffffffffffffff").unwrap(), u64::MAX);
        assert_eq!(chunk_size(b"1A ; x").unwrap(), 26);
    }
}
