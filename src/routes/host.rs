//! Host patterns and request hosts. Owns how a route's `host` is written (`app.corp.example`,
//! `*.corp.example`) and how a request's `Host` header or URI authority becomes the lowercase,
//! port-free name that patterns match. It does not pick routes ([`super::RouteTable`] does)
//! and does not resolve or trust names: it only compares them.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest DNS name, without the trailing dot (RFC 1035).
const MAX_NAME: usize = 253;
/// Longest DNS label (RFC 1035).
const MAX_LABEL: usize = 63;

/// A route's host: exact or `*.domain`. Stored lowercased, without a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Matches this host only.
    Exact(String),
    /// `*.corp.example` is stored as `corp.example`; matches any host ending in
    /// `.corp.example` (one or more labels in front), never `corp.example` itself.
    Wildcard(String),
}

impl HostPattern {
    /// Parses `app.corp.example` or `*.corp.example` (any case; one trailing dot is ignored).
    /// IPv4 literals and bracketed IPv6 literals (`[::1]`) are accepted as exact hosts.
    /// Refuses empty values, schemes, ports, paths, `*` anywhere but a whole leading label,
    /// and characters other than ASCII letters, digits, `-` and `.`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("host must not be empty".into());
        }
        if s.contains("://") {
            return Err("host must not include a scheme (write `app.corp.example`)".into());
        }
        if s.contains('/') {
            return Err("host must not include a path (use `path`)".into());
        }
        if s.starts_with('[') {
            return match split_ipv6_literal(s) {
                Some((addr, "")) => Ok(HostPattern::Exact(format!("[{addr}]"))),
                Some(_) => Err("host must not include a port".into()),
                None => Err("not a valid bracketed IPv6 literal".into()),
            };
        }
        if s.contains(':') {
            return Err("host must not include a port".into());
        }
        let lower = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
        if lower == "*" {
            return Err(
                "bare `*` is not a host pattern; leave `host` out to match any host".into(),
            );
        }
        if let Some(domain) = lower.strip_prefix("*.") {
            name_problem(domain).map_or(Ok(()), |p| Err(p.to_string()))?;
            if domain.parse::<Ipv4Addr>().is_ok() {
                return Err("a wildcard cannot stand in front of an IP address".into());
            }
            return Ok(HostPattern::Wildcard(domain.to_string()));
        }
        match name_problem(&lower) {
            Some(problem) => Err(problem.to_string()),
            None => Ok(HostPattern::Exact(lower)),
        }
    }

    /// Whether `host` (as from [`host_of`]: lowercase, no port) matches. Compares ASCII
    /// case-insensitively anyway, so a caller that skipped lowercasing cannot miss a route.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => host.eq_ignore_ascii_case(exact),
            HostPattern::Wildcard(domain) => {
                // Needs at least one character and a dot in front of the domain.
                let Some(split) = host.len().checked_sub(domain.len() + 1) else {
                    return false;
                };
                split > 0
                    && host.as_bytes().get(split) == Some(&b'.')
                    && host
                        .get(split + 1..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(domain))
            }
        }
    }
}

/// The host of a `Host` header value or URI authority: the port is stripped (`host:8080`,
/// `[::1]:8080`), as is one trailing dot, and the name is lowercased. Borrows unless it had to
/// lowercase (or canonicalize an IPv6 literal). `None` for anything that is not a plain DNS
/// name, IPv4 or bracketed IPv6 literal with an optional numeric port: userinfo, spaces, `_`,
/// non-ASCII, empty labels, over-long names.
pub fn host_of(value: &str) -> Option<Cow<'_, str>> {
    if value.starts_with('[') {
        let (addr, rest) = split_ipv6_literal(value)?;
        if !is_port_suffix(rest) {
            return None;
        }
        let literal = value.get(..value.len() - rest.len())?;
        // Canonical form, so `[0:0::1]` and `[::1]` are the same host as far as routes go.
        let canonical = format!("[{addr}]");
        return Some(if canonical == literal {
            Cow::Borrowed(literal)
        } else {
            Cow::Owned(canonical)
        });
    }
    let (name, port) = match value.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (value, None),
    };
    if port.is_some_and(|p| !is_port(p)) {
        return None;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    // Nearly every request names its host in lower case: one cheap pass settles it.
    if is_lowercase_name(name.as_bytes()) {
        return Some(Cow::Borrowed(name));
    }
    if name_problem(name).is_some() {
        return None;
    }
    Some(if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    })
}

/// Whether `value` is a valid `Host` field value (RFC 9110 7.2: `uri-host [ ":" port ]`, with
/// RFC 3986's grammar): an IP literal in brackets, or a reg-name of unreserved characters,
/// sub-delims and percent-escapes, then an optional all-digit port. Empty is valid (a target
/// without authority). A server must answer 400 to anything else (RFC 9112 3.2): spaces,
/// userinfo (`user@host`), a path, a second colon. Looser than [`host_of`], which routes only
/// plain DNS names and IPs: `my_service` is a valid field that matches no host pattern.
pub fn is_host_field(value: &[u8]) -> bool {
    let (host, port) = match value.strip_prefix(b"[") {
        Some(literal) => {
            let Some(end) = literal.iter().position(|&b| b == b']') else {
                return false;
            };
            if !is_ip_literal(&literal[..end]) {
                return false;
            }
            (&[][..], &literal[end + 1..])
        }
        None => match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &[][..]),
        },
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok && is_reg_name(host)
}

/// RFC 3986 unreserved and sub-delims: the bytes a reg-name may hold besides `%XX`. A table,
/// because every request's Host goes through it.
const REG_NAME: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// RFC 3986 reg-name: unreserved, sub-delims and `%XX`.
fn is_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b == b'%' {
            let hex = name.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if REG_NAME[usize::from(b)] {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// The inside of `[...]`: an IPv6 address, or RFC 3986's IPvFuture (`v1.x`).
fn is_ip_literal(inner: &[u8]) -> bool {
    if let Some(future) = inner
        .strip_prefix(b"v")
        .or_else(|| inner.strip_prefix(b"V"))
    {
        let Some(dot) = future.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, rest) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest.iter().all(|&b| REG_NAME[usize::from(b)] || b == b':');
    }
    std::str::from_utf8(inner).is_ok_and(|s| s.parse::<Ipv6Addr>().is_ok())
}

/// `[addr]` at the start of `s`, and what follows the `]`.
fn split_ipv6_literal(s: &str) -> Option<(Ipv6Addr, &str)> {
    let inner = s.strip_prefix('[')?;
    let (addr, rest) = inner.split_once(']')?;
    Some((addr.parse().ok()?, rest))
}

/// Nothing, or `:` and a port.
fn is_port_suffix(rest: &str) -> bool {
    rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)
}

/// RFC 3986 allows an empty port; otherwise up to five digits that fit in 16 bits.
fn is_port(port: &str) -> bool {
    port.len() <= 5
        && port
            .bytes()
            .try_fold(0u32, |n, b| {
                b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
            })
            .is_some_and(|n| n <= u32::from(u16::MAX))
}

/// Whether `name` is a DNS name or IPv4 literal we accept, written in lower case: what
/// [`name_problem`] accepts, minus upper case, in one pass over the bytes.
fn is_lowercase_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > MAX_NAME {
        return false;
    }
    let mut label = 0;
    for &b in name {
        if b == b'.' {
            if label == 0 {
                return false;
            }
            label = 0;
        } else if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
            label += 1;
            if label > MAX_LABEL {
                return false;
            }
        } else {
            return false;
        }
    }
    label > 0
}

/// Why `name` is not a DNS name or IPv4 literal we accept, if it is not. One pass and no
/// allocation, as [`host_of`] runs it on every request. Which problem is reported when there
/// are several: empty, too long, a `*` anywhere, then the first bad label (empty, too long,
/// or a character other than ASCII letters, digits and `-`).
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("host must not be empty");
    }
    if name.len() > MAX_NAME {
        return Some("host is longer than 253 characters");
    }
    let mut star = false;
    let mut first_bad_label = None;
    let (mut label_len, mut label_chars_ok) = (0, true);
    // A dot after the last byte closes the last label like the others.
    for b in name.bytes().chain(std::iter::once(b'.')) {
        if b == b'.' {
            let problem = if label_len == 0 {
                Some("host has an empty label (`..`, or a leading dot)")
            } else if label_len > MAX_LABEL {
                Some("host has a label longer than 63 characters")
            } else if !label_chars_ok {
                Some(
                    "host may contain only ASCII letters, digits, `-` and `.` (write IDNs in punycode)",
                )
            } else {
                None
            };
            first_bad_label = first_bad_label.or(problem);
            (label_len, label_chars_ok) = (0, true);
        } else {
            star |= b == b'*';
            label_chars_ok &= b.is_ascii_alphanumeric() || b == b'-';
            label_len += 1;
        }
    }
    if star {
        return Some("`*` is only allowed as a whole first label (`*.corp.example`)");
    }
    first_bad_label
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> HostPattern {
        HostPattern::Exact(s.into())
    }

    fn wildcard(s: &str) -> HostPattern {
        HostPattern::Wildcard(s.into())
    }

    #[test]
    fn parses_exact_and_wildcard_lowercased() {
        let cases = [
            ("app.corp.example", exact("app.corp.example")),
            ("App.Corp.EXAMPLE", exact("app.corp.example")),
            ("app.corp.example.", exact("app.corp.example")),
            ("localhost", exact("localhost")),
            ("x-1.corp.example", exact("x-1.corp.example")),
            ("10.0.0.1", exact("10.0.0.1")),
            ("[::1]", exact("[::1]")),
            ("[0:0::1]", exact("[::1]")),
            ("[2001:DB8::1]", exact("[2001:db8::1]")),
            ("*.corp.example", wildcard("corp.example")),
            ("*.Corp.Example", wildcard("corp.example")),
            ("*.example", wildcard("example")),
        ];
        for (input, want) in cases {
            assert_eq!(HostPattern::parse(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn refuses_bad_patterns() {
        for input in [
            "",
            "*",
            "*.",
            "**.corp.example",
            "a.*.example",
            "app*.corp.example",
            "*app.corp.example",
            "*.*.corp.example",
            "https://app.corp.example",
            "app.corp.example/path",
            "app.corp.example:8080",
            "[::1]:8080",
            "[::1",
            "[not-v6]",
            "::1",
            "app corp",
            " app.corp.example",
            "app_1.corp.example",
            "app..corp.example",
            ".corp.example",
            "café.example",
            "user@app.corp.example",
            "*.10.0.0.1",
        ] {
            assert!(HostPattern::parse(input).is_err(), "{input:?} was accepted");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(HostPattern::parse(&long_label).is_err());
        let long_name = ["abcdefghi"; 26].join(".");
        assert!(long_name.len() > MAX_NAME);
        assert!(HostPattern::parse(&long_name).is_err());
    }

    #[test]
    fn exact_matches_only_itself() {
        let p = exact("app.corp.example");
        assert!(p.matches("app.corp.example"));
        assert!(p.matches("APP.corp.example"));
        assert!(!p.matches("x.app.corp.example"));
        assert!(!p.matches("app.corp.example.evil"));
        assert!(!p.matches("corp.example"));
        assert!(!p.matches(""));
    }

    #[test]
    fn wildcard_matches_subdomains_only() {
        let p = wildcard("corp.example");
        assert!(p.matches("a.corp.example"));
        assert!(p.matches("a.b.corp.example"));
        assert!(p.matches("A.Corp.Example"));
        assert!(!p.matches("corp.example"));
        assert!(!p.matches(".corp.example"));
        assert!(!p.matches("xcorp.example"));
        assert!(!p.matches("a.corp.example.evil"));
        assert!(!p.matches("a.corp.exampl"));
        assert!(!p.matches("example"));
        assert!(!p.matches(""));
    }

    #[test]
    fn host_of_strips_port_and_lowercases() {
        let cases = [
            ("app.corp.example", "app.corp.example"),
            ("app.corp.example:8080", "app.corp.example"),
            ("App.Corp.Example:443", "app.corp.example"),
            ("app.corp.example.", "app.corp.example"),
            ("app.corp.example.:80", "app.corp.example"),
            ("app.corp.example:", "app.corp.example"),
            ("10.0.0.1:80", "10.0.0.1"),
            ("[::1]", "[::1]"),
            ("[::1]:8080", "[::1]"),
            ("[0:0::1]:8080", "[::1]"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
        ];
        for (input, want) in cases {
            assert_eq!(host_of(input).as_deref(), Some(want), "{input:?}");
        }
    }

    #[test]
    fn host_of_borrows_when_already_lowercase() {
        assert!(matches!(
            host_of("app.corp.example"),
            Some(Cow::Borrowed(_))
        ));
        assert!(matches!(
            host_of("app.corp.example:8080"),
            Some(Cow::Borrowed(_))
        ));
        assert!(matches!(host_of("[::1]:8080"), Some(Cow::Borrowed(_))));
        assert!(matches!(host_of("App.corp.example"), Some(Cow::Owned(_))));
    }

    #[test]
    fn host_of_rejects_garbage() {
        for input in [
            "",
            ":8080",
            ".",
            "app.corp.example:http",
            "app.corp.example:99999",
            "app.corp.example:123456",
            "app.corp.example:80:80",
            "user@app.corp.example",
            "user:pw@app.corp.example",
            "app corp",
            "app_x.corp.example",
            "app..corp.example",
            "*.corp.example",
            "café.example",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[zz]",
            "::1",
            "app.corp.example/x",
        ] {
            assert_eq!(host_of(input), None, "{input:?}");
        }
    }

    #[test]
    fn the_lower_case_fast_path_accepts_exactly_what_the_full_check_accepts() {
        let label63 = "a".repeat(63);
        let names = [
            "a".to_owned(),
            "app.corp.example".into(),
            "127.0.0.1".into(),
            "a-1.b2".into(),
            "-a.b".into(),
            format!("{label63}.b"),
            format!("{label63}a.b"),
            format!("{}a", "a.".repeat(126)),
            format!("{}ab", "a.".repeat(126)),
            "App.corp.example".into(),
            "a..b".into(),
            ".a".into(),
            "a.".into(),
            "".into(),
            "a_b".into(),
            "*.a".into(),
            "caf\u{e9}".into(),
        ];
        for name in &names {
            let full =
                name_problem(name).is_none() && !name.bytes().any(|b| b.is_ascii_uppercase());
            assert_eq!(is_lowercase_name(name.as_bytes()), full, "{name:?}");
        }
    }

    #[test]
    fn ports_are_up_to_five_digits_within_16_bits() {
        for port in ["", "0", "8080", "65535", "00080"] {
            assert!(is_port(port), "{port:?}");
        }
        for port in ["65536", "99999", "123456", "+80", "8o", " 80", "-1"] {
            assert!(!is_port(port), "{port:?}");
        }
    }

    #[test]
    fn name_problem_reports_in_a_fixed_order() {
        let long_label = "a".repeat(64);
        let cases: [(&str, Option<&str>); 9] = [
            ("app.corp.example", None),
            ("a-1.B2", None),
            ("", Some("must not be empty")),
            ("a_b..c*", Some("`*`")),
            (".a", Some("empty label")),
            ("a.", Some("empty label")),
            ("a_b..c", Some("only ASCII")),
            ("a..b_c", Some("empty label")),
            (&format!("{long_label}.a_b"), Some("longer than 63")),
        ];
        for (name, expected) in cases {
            match (name_problem(name), expected) {
                (None, None) => {}
                (Some(problem), Some(part)) => assert!(problem.contains(part), "{name}: {problem}"),
                (got, _) => panic!("{name}: got {got:?}, expected {expected:?}"),
            }
        }
        assert!(
            name_problem(&"a.".repeat(127))
                .unwrap()
                .contains("longer than 253")
        );
    }

    #[test]
    fn host_fields_follow_the_uri_host_grammar() {
        for valid in [
            "",
            "app.corp.example",
            "app.corp.example:8443",
            "app:",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[v1.fe80::a+en1]",
            "my_service",
            "a%2Db",
            "x!$&'()*+,;=~",
        ] {
            assert!(is_host_field(valid.as_bytes()), "{valid:?} refused");
        }
        for invalid in [
            "a b",
            "user@app",
            "app/x",
            "app?x",
            "app#x",
            "app:80:81",
            "app:8x",
            "[::1",
            "[::g]",
            "[::1]x",
            "[::1]:8x",
            "[v.x]",
            "[v1.]",
            "a%2",
            "a%zz",
            "caf\u{e9}",
            "tab\there",
            "\"quoted\"",
        ] {
            assert!(!is_host_field(invalid.as_bytes()), "{invalid:?} accepted");
        }
    }

    #[test]
    fn host_of_output_matches_parsed_patterns() {
        let p = HostPattern::parse("*.Corp.Example").unwrap();
        let host = host_of("Api.CORP.example:8443").unwrap();
        assert!(p.matches(&host));
        let v6 = HostPattern::parse("[0::1]").unwrap();
        assert!(v6.matches(&host_of("[::0:1]:80").unwrap()));
    }
}
