//! Path normalization before route matching. Owns the one canonical form of a request path that
//! routes match against and upstreams receive, and refuses the encodings that let a path mean
//! one thing here and another thing upstream (encoded `/`, raw or encoded `\`, `;`, NUL,
//! control characters). It knows nothing of routes or hosts and never looks at the query.

use std::borrow::Cow;

/// Why a path was refused (answered with 400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must start with '/'")]
    NotAbsolute,
    #[error("encoded '/' in path")]
    EncodedSlash,
    #[error("backslash in path")]
    Backslash,
    #[error("NUL in path")]
    Nul,
    #[error("';' in path segment")]
    Semicolon,
    #[error("invalid percent-encoding in path")]
    BadEncoding,
    #[error("overlong UTF-8 encoding in path")]
    OverlongUtf8,
}

/// Normalizes a request path (no query): refuses encoded `/`, raw or encoded `\`, NUL and
/// `;`; decodes percent-encoded unreserved characters; removes dot segments (RFC 3986
/// 5.2.4, after decoding, so `%2e%2e` counts); collapses repeated slashes.
///
/// Other escapes are kept with uppercase hex (`%e2` becomes `%E2`), so `%252e` stays a literal
/// `%252e` and is never decoded twice. A trailing slash is kept. `..` above the root stays at
/// the root. Returns [`Cow::Borrowed`] without allocating when the path is already normal.
pub fn normalize_path(path: &str) -> Result<Cow<'_, str>, PathError> {
    if scan(path.as_bytes())? {
        rebuild(path.as_bytes()).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(path))
    }
}

/// One pass over the raw path: refuses what must be refused and reports whether anything
/// needs rewriting (an escape to decode or uppercase, an empty or dot segment).
fn scan(bytes: &[u8]) -> Result<bool, PathError> {
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut rewrite = false;
    let mut segment_start = 1;
    let mut i = 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'/' => {
                rewrite |= is_removable_segment(&bytes[segment_start..i]);
                segment_start = i + 1;
                i += 1;
            }
            b'%' => {
                let (hi, lo) = escape_digits(bytes, i)?;
                let decoded = refuse_decoded(escape_value(hi, lo))?;
                if decoded >= 0xC0 {
                    refuse_overlong(bytes, i, decoded)?;
                }
                rewrite |=
                    is_unreserved(decoded) || hi.is_ascii_lowercase() || lo.is_ascii_lowercase();
                i += 3;
            }
            _ => {
                refuse_raw(b)?;
                i += 1;
            }
        }
    }
    // A trailing empty segment is a kept trailing slash; only dots need work there.
    let last = &bytes[segment_start.min(bytes.len())..];
    rewrite |= last == b"." || last == b"..";
    Ok(rewrite)
}

/// An empty segment (from `//`) or a dot segment, in the middle of a path.
fn is_removable_segment(segment: &[u8]) -> bool {
    segment.is_empty() || segment == b"." || segment == b".."
}

/// The two hex digits after the `%` at `at`, or `BadEncoding`.
fn escape_digits(bytes: &[u8], at: usize) -> Result<(u8, u8), PathError> {
    match (bytes.get(at + 1), bytes.get(at + 2)) {
        (Some(&hi), Some(&lo)) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => Ok((hi, lo)),
        _ => Err(PathError::BadEncoding),
    }
}

/// The byte an escape's two hex digits stand for.
fn escape_value(hi: u8, lo: u8) -> u8 {
    (hex_value(hi) << 4) | hex_value(lo)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

/// Characters a raw path may not carry. Hyper already refuses most control bytes; the check
/// is here so a path from any other source gets the same answer.
fn refuse_raw(b: u8) -> Result<(), PathError> {
    match b {
        b'\\' => Err(PathError::Backslash),
        b';' => Err(PathError::Semicolon),
        0 => Err(PathError::Nul),
        b if b < 0x20 || b == 0x7F => Err(PathError::BadEncoding),
        _ => Ok(()),
    }
}

/// Bytes an escape may not decode to: each would change the path's meaning upstream.
fn refuse_decoded(b: u8) -> Result<u8, PathError> {
    match b {
        b'/' => Err(PathError::EncodedSlash),
        b'\\' => Err(PathError::Backslash),
        b';' => Err(PathError::Semicolon),
        _ => refuse_raw(b).map(|()| b),
    }
}

/// Refuses an overlong UTF-8 sequence starting with the escape at `at` (which decoded to
/// `lead`): `%C0%AE` is a `.` and `%C0%AF` a `/` to a decoder that does not check for them
/// (old IIS, Tomcat and JVM decoders did not), so `/app/%C0%AE%C0%AE/admin` would pass the
/// policy as a path under `/app/` and reach `/admin` upstream. Valid UTF-8 never holds these
/// (RFC 3629 section 3); a lone `%C0` (Latin-1 `À`) still passes.
fn refuse_overlong(bytes: &[u8], at: usize, lead: u8) -> Result<(), PathError> {
    let continuation = |at: usize| match (bytes.get(at), escape_digits(bytes, at)) {
        (Some(b'%'), Ok((hi, lo))) => Some(escape_value(hi, lo)),
        _ => None,
    };
    let Some(next) = continuation(at + 3) else {
        return Ok(());
    };
    let overlong = match lead {
        0xC0 | 0xC1 => (0x80..=0xBF).contains(&next),
        0xE0 => (0x80..=0x9F).contains(&next),
        0xF0 => (0x80..=0x8F).contains(&next),
        _ => false,
    };
    if overlong {
        Err(PathError::OverlongUtf8)
    } else {
        Ok(())
    }
}

/// RFC 3986 unreserved: decoding these never changes what the path means.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// The slow path, for a path `scan` accepted: decode, then drop empty and dot segments.
fn rebuild(bytes: &[u8]) -> Result<String, PathError> {
    let decoded = decode_unreserved(bytes)?;
    let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
    let mut trailing_slash = false;
    // `decoded` starts with '/', so the first piece is empty and skipped.
    for segment in decoded.split(|&b| b == b'/').skip(1) {
        trailing_slash = is_removable_segment(segment);
        match segment {
            b"" | b"." => {}
            b".." => {
                // Pops the last segment only, so each byte is scanned once: linear overall.
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            _ => {
                out.push(b'/');
                out.extend_from_slice(segment);
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push(b'/');
    }
    // Only ASCII was replaced in valid UTF-8, so this cannot fail; refuse rather than panic.
    String::from_utf8(out).map_err(|_| PathError::BadEncoding)
}

/// Decodes escapes of unreserved characters and uppercases the hex of every other escape.
fn decode_unreserved(bytes: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let (hi, lo) = escape_digits(bytes, i)?;
        let value = escape_value(hi, lo);
        if is_unreserved(value) {
            out.push(value);
        } else {
            out.extend_from_slice(&[b'%', hi.to_ascii_uppercase(), lo.to_ascii_uppercase()]);
        }
        i += 3;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, PathError> {
        normalize_path(p).map(Cow::into_owned)
    }

    fn assert_borrowed(p: &str) {
        let got = normalize_path(p);
        assert!(matches!(got, Ok(Cow::Borrowed(_))), "{p:?} -> {got:?}");
        assert_eq!(got.map(Cow::into_owned).as_deref(), Ok(p));
    }

    #[test]
    fn already_normal_paths_are_borrowed() {
        for p in [
            "/",
            "/a",
            "/a/",
            "/api/v1/users/42",
            "/a/b/c/",
            "/%E2%82%AC",
            "/a/%252e",
            "/a/%20b",
            "/.well-known/x",
            "/a/.b/..c/...",
            "/a.b/c..d",
            "/~user/",
            "/caf\u{e9}",
            "/a?b",
        ] {
            assert_borrowed(p);
        }
    }

    #[test]
    fn removes_dot_segments() {
        let cases = [
            ("/a/../b", "/b"),
            ("/a/./b", "/a/b"),
            ("/./", "/"),
            ("/.", "/"),
            ("/..", "/"),
            ("/../", "/"),
            ("/../../etc", "/etc"),
            ("/a/./b/../c/", "/a/c/"),
            ("/a/.", "/a/"),
            ("/a/b/..", "/a/"),
            ("/a/..", "/"),
            ("/a/b/../../..", "/"),
            ("/a/b/../../../c", "/c"),
            ("/a/b/c/./../../g", "/a/g"),
            ("/a/.../b", "/a/.../b"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn decoded_dots_are_dot_segments() {
        let cases = [
            ("/a/%2e%2e/b", "/b"),
            ("/a/%2E%2e/b", "/b"),
            ("/a/.%2e/b", "/b"),
            ("/a/%2e/b", "/a/b"),
            ("/a/%2E%2E", "/"),
            ("/a/b/%2e%2E/", "/a/"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn double_encoding_is_never_decoded_twice() {
        assert_borrowed("/a/%252e");
        assert_eq!(norm("/a/%252e%252e/b").as_deref(), Ok("/a/%252e%252e/b"));
        assert_eq!(norm("/a/%252F").as_deref(), Ok("/a/%252F"));
        assert_eq!(norm("/a/%252f").as_deref(), Ok("/a/%252f"));
    }

    #[test]
    fn collapses_repeated_slashes() {
        let cases = [
            ("//b", "/b"),
            ("/a///b", "/a/b"),
            ("//", "/"),
            ("///", "/"),
            ("/a//", "/a/"),
            ("/a//..", "/"),
            ("//..//a", "/a"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn decodes_unreserved_and_uppercases_the_rest() {
        let cases = [
            ("/%41%42", "/AB"),
            ("/%7e", "/~"),
            ("/%7E", "/~"),
            ("/%2d%5f%30", "/-_0"),
            ("/%61pi/x", "/api/x"),
            ("/%e2%82%ac", "/%E2%82%AC"),
            ("/a%3fb", "/a%3Fb"),
            ("/%25", "/%25"),
            ("/%c3%a9/%41", "/%C3%A9/A"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input).as_deref(), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn refuses_dangerous_paths() {
        use PathError::*;
        let cases = [
            ("", NotAbsolute),
            ("*", NotAbsolute),
            ("a/b", NotAbsolute),
            ("%2F", NotAbsolute),
            ("/%2F", EncodedSlash),
            ("/a%2fb", EncodedSlash),
            ("/a\\b", Backslash),
            ("/a%5cb", Backslash),
            ("/a%5Cb", Backslash),
            ("/a%00", Nul),
            ("/a\0b", Nul),
            ("/a;jsessionid=1", Semicolon),
            ("/a/%3b", Semicolon),
            ("/a/%3B", Semicolon),
            ("/;", Semicolon),
            ("/%zz", BadEncoding),
            ("/%", BadEncoding),
            ("/%4", BadEncoding),
            ("/a/%g0", BadEncoding),
            ("/a/%0g", BadEncoding),
            ("/%0a", BadEncoding),
            ("/%1F", BadEncoding),
            ("/%7f", BadEncoding),
            ("/a\tb", BadEncoding),
            ("/a\u{7f}", BadEncoding),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn overlong_utf8_is_refused_and_valid_or_latin1_escapes_pass() {
        for p in [
            "/app/%C0%AE%C0%AE/admin",
            "/app/%c0%ae%c0%ae/admin",
            "/a%C0%AFb",
            "/%C1%9C",
            "/%E0%80%AE%E0%80%AE/x",
            "/%F0%80%80%AE",
        ] {
            assert_eq!(norm(p), Err(PathError::OverlongUtf8), "{p}");
        }
        for p in [
            "/caf%C3%A9",
            "/%E2%82%AC",
            "/%F0%9F%98%80",
            "/%E0%A4%85",
            "/caf%E9",
            "/%C0",
            "/%C0x",
            "/%C0%41",
        ] {
            assert!(norm(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn refusals_win_over_rewrites() {
        // A path that would be rewritten is still refused for a later bad byte.
        assert_eq!(norm("//a/../%2f"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/%41/b;c"), Err(PathError::Semicolon));
        assert_eq!(norm("/a/%2e%2e/%"), Err(PathError::BadEncoding));
    }

    #[test]
    fn normalizing_is_idempotent_and_borrowed_the_second_time() {
        for p in [
            "/a/../b",
            "/a/%2e%2e/b",
            "//b",
            "/%41%42",
            "/%e2%82%ac/./x//",
            "/a/b/..",
            "/..",
            "/a/%252e%252e/b",
        ] {
            let once = norm(p).unwrap();
            assert_borrowed(&once);
        }
    }

    #[test]
    fn long_paths_are_linear() {
        let many_segments = "/a".repeat(50_000);
        assert_borrowed(&many_segments);

        let climbing = format!("{}{}", "/a".repeat(25_000), "/..".repeat(25_000));
        assert_eq!(norm(&climbing).as_deref(), Ok("/"));

        let encoded_dots = "/%2e%2e".repeat(15_000);
        assert_eq!(norm(&encoded_dots).as_deref(), Ok("/"));

        let slashes = "/".repeat(100_000);
        assert_eq!(norm(&slashes).as_deref(), Ok("/"));

        let long_segment = format!("/{}/..", "x".repeat(100_000));
        assert_eq!(norm(&long_segment).as_deref(), Ok("/"));

        let escapes = format!("/{}", "%41".repeat(33_000));
        assert_eq!(norm(&escapes).map(|s| s.len()), Ok(33_001));
    }
}
