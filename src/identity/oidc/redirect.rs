//! Where a browser may be sent after login (`rd`). Only a same-origin relative path or an
//! absolute http(s) URL on our own host or a host in `server.allowed_redirect_hosts` is kept;
//! everything else becomes `/`. This is the open-redirect guard (pinned behaviour 8): it never
//! widens what it accepts to be helpful.

use url::Url;

/// The safe post-login destination for `rd`: `rd` itself when acceptable, else `/`.
pub fn return_to(rd: Option<&str>, public_url: &Url, allowed_hosts: &[String]) -> String {
    match rd {
        Some(rd) if acceptable(rd, public_url, allowed_hosts) => rd.to_owned(),
        _ => "/".to_owned(),
    }
}

fn acceptable(rd: &str, public_url: &Url, allowed_hosts: &[String]) -> bool {
    // Visible ASCII only: browsers strip tabs and newlines (`/\t/evil` becomes `//evil`),
    // treat `\` as `/`, and a Location header cannot carry the rest anyway.
    if rd.is_empty() || !rd.bytes().all(|b| b.is_ascii_graphic()) || rd.contains('\\') {
        return false;
    }
    if rd.starts_with('/') {
        return relative_path_ok(rd);
    }
    let Ok(url) = Url::parse(rd) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
        // `http:evil` parses as `http://evil/`: only the spelled-out form is accepted.
        || !rd.to_ascii_lowercase().starts_with(&format!("{}://", url.scheme()))
    {
        return false;
    }
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let own = public_url
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(&host))
        && url.port_or_known_default() == public_url.port_or_known_default()
        && url.scheme() == public_url.scheme();
    own || allowed_hosts
        .iter()
        .any(|allowed| host_matches(allowed, &host))
}

/// `/path`, not `//host` (protocol-relative), even once percent-decoded, because some
/// frameworks downstream decode before redirecting again.
fn relative_path_ok(rd: &str) -> bool {
    let decoded = percent_decode(rd);
    !rd.starts_with("//")
        && !decoded.starts_with("//")
        && !decoded.contains('\\')
        && decoded.bytes().all(|b| b >= 0x20 && b != 0x7f)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|rest| rest.len() > 1 && rest.ends_with('.')),
        None => pattern == host,
    }
}

/// Decodes `%XX` escapes (repeatedly, to catch double encoding); invalid escapes stay as-is.
fn percent_decode(text: &str) -> String {
    let mut current = text.to_owned();
    for _ in 0..3 {
        let bytes = current.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
            {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(value: &str) -> String {
        let public = Url::parse("https://gate.corp.example").unwrap();
        let allowed = vec!["app.corp.example".to_owned(), "*.tools.example".to_owned()];
        return_to(Some(value), &public, &allowed)
    }

    #[test]
    fn relative_paths_are_kept() {
        assert_eq!(rd("/"), "/");
        assert_eq!(rd("/app/page?x=1&y=%2F#frag"), "/app/page?x=1&y=%2F#frag");
        assert_eq!(rd("/a/b/"), "/a/b/");
    }

    #[test]
    fn protocol_relative_and_backslash_tricks_go_home() {
        for value in [
            "//evil",
            "//evil.example/path",
            "/\\evil",
            "\\\\evil",
            "/%2F%2Fevil",
            "/%2f/evil",
            "/%252F%252Fevil",
            "/%5Cevil",
            "/%09/evil",
        ] {
            assert_eq!(rd(value), "/", "{value}");
        }
    }

    #[test]
    fn foreign_schemes_and_hosts_go_home() {
        for value in [
            "https://evil",
            "https://evil.example/app",
            "http:evil",
            "https:app.corp.example",
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "evil.example",
            "https://user@app.corp.example/",
            "https://app.corp.example.evil/",
            "https://tools.example/",
            "ftp://app.corp.example/",
            "",
        ] {
            assert_eq!(rd(value), "/", "{value}");
        }
    }

    #[test]
    fn control_characters_go_home() {
        for value in [
            "/\t/evil",
            "/\n/evil",
            "/a\r\nSet-Cookie: x=1",
            "/ space",
            "/\u{7f}",
            "/é",
        ] {
            assert_eq!(rd(value), "/", "{value:?}");
        }
    }

    #[test]
    fn allowed_hosts_and_own_origin_are_kept() {
        assert_eq!(
            rd("https://app.corp.example/x?y=1"),
            "https://app.corp.example/x?y=1"
        );
        assert_eq!(rd("https://a.tools.example/"), "https://a.tools.example/");
        assert_eq!(
            rd("https://gate.corp.example/p"),
            "https://gate.corp.example/p"
        );
        // Our host on another scheme or port is another origin.
        assert_eq!(rd("http://gate.corp.example/p"), "/");
        assert_eq!(rd("https://gate.corp.example:8443/p"), "/");
    }

    #[test]
    fn missing_rd_goes_home() {
        let public = Url::parse("https://gate.corp.example").unwrap();
        assert_eq!(return_to(None, &public, &[]), "/");
    }
}
