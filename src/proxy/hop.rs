//! Hop-by-hop headers (RFC 9110 section 7.6.1): they describe one connection, so they are
//! removed in both directions, together with every header the `Connection` header names.
//! Upgrades are detected here before `Connection`/`Upgrade` disappear; re-adding them for the
//! upstream is [`super::forward`]'s job. Nothing here sets end-to-end headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `Keep-Alive`, not in `http`'s constants.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection`, a non-standard relative of `Connection` some clients still send.
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `HTTP2-Settings`: connection-specific by definition (RFC 7540 3.2.1), sent with `h2c`.
const HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Always removed (besides the ones `Connection` names); `TE` is handled apart.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    HTTP2_SETTINGS,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The one protocol an upgrade may switch to. Anything else, `h2c` above all, is dropped: an
/// upstream that switched to HTTP/2 on a relayed connection would take every later request
/// on it directly, past routing and policy ("h2c smuggling"), and tunnels of unknown
/// protocols are the same hole.
const WEBSOCKET: &str = "websocket";

/// What `Connection` said, besides the headers it named.
#[derive(Default)]
struct ConnectionTokens {
    upgrade: bool,
    /// Header names listed in `Connection`; empty (no allocation) for the usual
    /// `keep-alive`/`close`/`upgrade`.
    named: Vec<HeaderName>,
}

fn connection_tokens(headers: &HeaderMap) -> ConnectionTokens {
    let mut tokens = ConnectionTokens::default();
    for value in headers.get_all(header::CONNECTION) {
        let Ok(value) = value.to_str() else { continue };
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if token.eq_ignore_ascii_case("upgrade") {
                tokens.upgrade = true;
            } else if token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
            {
                // Connection options, not header names (keep-alive is removed anyway).
            } else if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                tokens.named.push(name);
            }
        }
    }
    tokens
}

fn remove_named(headers: &mut HeaderMap, named: Vec<HeaderName>) {
    for name in named {
        headers.remove(name);
    }
}

/// Whether any header is hop-by-hop (the fixed set, `TE` or `Upgrade`; `Connection` is in
/// the set, so headers it names only matter when this holds). Most messages carry none, and
/// one pass over the names costs less than a hash lookup per hop-by-hop name.
fn any_hop_by_hop(headers: &HeaderMap) -> bool {
    headers.keys().any(is_hop_by_hop)
}

/// Whether `name` is hop-by-hop (see [`any_hop_by_hop`]), for callers that pass over the
/// names anyway.
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == header::TE || name == header::UPGRADE
}

/// Removes hop-by-hop headers from a client request. Returns `websocket` when the client
/// asked to switch to it (`Connection: upgrade` plus an `Upgrade` listing `websocket`, with
/// or without a version); any other upgrade is no upgrade (see [`WEBSOCKET`]) and the
/// request goes on as a plain one. Keeps `TE: trailers` (gRPC needs it) and drops every
/// other `TE`.
pub(crate) fn strip_request(headers: &mut HeaderMap) -> Option<HeaderValue> {
    if !any_hop_by_hop(headers) {
        return None;
    }
    let tokens = connection_tokens(headers);
    let upgrade = (tokens.upgrade && asks_for_websocket(headers))
        .then(|| HeaderValue::from_static(WEBSOCKET));
    // A token may carry parameters (`trailers;q=1` is not allowed, but be lenient).
    let te_trailers = list_elements(headers, &header::TE).any(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case("trailers")
    });
    remove_named(headers, tokens.named);
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    } else {
        headers.remove(header::TE);
    }
    upgrade
}

/// The comma-separated elements of every `name` field (RFC 9110 5.6.1), untrimmed.
fn list_elements<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
}

/// Whether an `Upgrade` field lists `websocket` (RFC 9110 7.8: `protocol[/version]`).
fn asks_for_websocket(headers: &HeaderMap) -> bool {
    list_elements(headers, &header::UPGRADE).any(|p| {
        let name = p.split('/').next().unwrap_or("").trim();
        name.eq_ignore_ascii_case(WEBSOCKET)
    })
}

/// Removes hop-by-hop headers from an upstream response. On `101 Switching Protocols`
/// (`switching`) `Connection` and `Upgrade` stay: the client needs them to switch too.
pub(crate) fn strip_response(headers: &mut HeaderMap, switching: bool) {
    if !any_hop_by_hop(headers) {
        return;
    }
    let tokens = connection_tokens(headers);
    remove_named(headers, tokens.named);
    for name in &HOP_BY_HOP {
        if switching && name == header::CONNECTION {
            continue;
        }
        headers.remove(name);
    }
    headers.remove(header::TE);
    if !switching {
        headers.remove(header::UPGRADE);
    }
}

/// RFC 9110 8.6: a 1xx or 204 has no content, and a sender must not state a length for it.
/// An upstream that does anyway has it removed (with any `Transfer-Encoding`): an HTTP/2
/// client resets a stream whose `content-length` disagrees with its DATA (curl, browsers:
/// PROTOCOL_ERROR, the response is lost), and an HTTP/1 client that believed it would read
/// the next response's bytes as this one's body.
pub(crate) fn strip_bodiless_framing(status: http::StatusCode, headers: &mut HeaderMap) {
    if status.is_informational() || status == http::StatusCode::NO_CONTENT {
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::TRANSFER_ENCODING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut v: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn strips_the_fixed_hop_by_hop_set() {
        let mut h = map(&[
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic abc"),
            ("te", "gzip"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("accept", "*/*"),
        ]);
        assert_eq!(strip_request(&mut h), None);
        assert_eq!(names(&h), ["accept"]);
    }

    #[test]
    fn strips_every_header_connection_names() {
        let mut h = map(&[
            ("connection", "close, X-Secret-Hop"),
            ("connection", " x-other ,"),
            ("x-secret-hop", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
        ]);
        strip_request(&mut h);
        assert_eq!(names(&h), ["x-kept"]);
    }

    #[test]
    fn keeps_te_trailers_only() {
        let mut h = map(&[("te", "trailers")]);
        strip_request(&mut h);
        assert_eq!(h.get("te").unwrap(), "trailers");
        let mut h = map(&[("te", "deflate, Trailers")]);
        strip_request(&mut h);
        assert_eq!(h.get("te").unwrap(), "trailers");
        let mut h = map(&[("te", "deflate")]);
        strip_request(&mut h);
        assert!(h.get("te").is_none());
    }

    #[test]
    fn detects_an_upgrade_request() {
        let mut h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        assert_eq!(strip_request(&mut h).unwrap(), "websocket");
        assert_eq!(names(&h), ["sec-websocket-key"]);
        // Upgrade without Connection: upgrade is not a switch request.
        let mut h = map(&[("upgrade", "websocket")]);
        assert_eq!(strip_request(&mut h), None);
        assert!(h.is_empty());
    }

    #[test]
    fn only_websocket_upgrades_pass_and_h2c_never_does() {
        for (upgrade, expected) in [
            ("WebSocket", Some("websocket")),
            ("h2c, websocket/13", Some("websocket")),
            ("h2c", None),
            ("HTTP/2.0", None),
            ("TLS/1.2", None),
            ("websocketx", None),
        ] {
            let mut h = map(&[
                ("connection", "Upgrade"),
                ("upgrade", upgrade),
                // Not named by Connection: still connection-specific, still removed.
                ("http2-settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ]);
            let got = strip_request(&mut h);
            assert_eq!(
                got.as_ref().map(|v| v.to_str().unwrap()),
                expected,
                "{upgrade}"
            );
            assert!(h.is_empty(), "{upgrade}: left {:?}", names(&h));
        }
    }

    #[test]
    fn response_keeps_connection_and_upgrade_only_when_switching() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-accept", "a"),
        ]);
        strip_response(&mut h, true);
        assert_eq!(names(&h), ["connection", "sec-websocket-accept", "upgrade"]);
        strip_response(&mut h, false);
        assert_eq!(names(&h), ["sec-websocket-accept"]);
    }

    #[test]
    fn response_strips_named_and_fixed_headers() {
        let mut h = map(&[
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("trailer", "x-sum"),
            ("content-type", "text/plain"),
        ]);
        strip_response(&mut h, false);
        assert_eq!(names(&h), ["content-type"]);
    }
}
