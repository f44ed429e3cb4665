//! End-to-end request header rewriting for the upstream: drops identity-looking headers a
//! client could spoof (pinned behaviour 7), `Expect`, `Authorization` (unless the route passes
//! it) and untrusted `Forwarded`; then sets `X-Forwarded-*`, `Host`, the decision id and the
//! route's claim headers. Hop-by-hop removal comes first (in [`super::hop`]) so a client's
//! `Connection` header can never remove what is set here. Pure functions over a `HeaderMap`.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use uuid::Uuid;

use crate::config::ClaimHeader;
use crate::identity::Identity;

/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Real-IP`: the client address, as nginx deployments commonly pass it.
pub const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// `X-Portcullis-Decision-Id`: the allow decision's id.
pub const X_PORTCULLIS_DECISION_ID: HeaderName =
    HeaderName::from_static("x-portcullis-decision-id");
/// `X-Portcullis-Jwt-Assertion`: portcullis's signed statement of who the caller is.
pub const X_PORTCULLIS_JWT_ASSERTION: HeaderName =
    HeaderName::from_static("x-portcullis-jwt-assertion");
/// `X-Portcullis-User`: the subject.
pub const X_PORTCULLIS_USER: HeaderName = HeaderName::from_static("x-portcullis-user");
/// `X-Portcullis-Email`.
pub const X_PORTCULLIS_EMAIL: HeaderName = HeaderName::from_static("x-portcullis-email");
/// `X-Portcullis-Groups`: comma-separated.
pub const X_PORTCULLIS_GROUPS: HeaderName = HeaderName::from_static("x-portcullis-groups");

/// Everything [`rewrite_request`] needs besides the headers.
pub(crate) struct RequestRewrite<'a> {
    /// The TCP peer, already canonical (IPv4-mapped IPv6 as IPv4).
    pub(crate) peer: IpAddr,
    pub(crate) tls: bool,
    pub(crate) trusted_peer: bool,
    /// The client as far as trusted proxies vouch for it (the peer when untrusted).
    pub(crate) client_ip: IpAddr,
    pub(crate) pass_authorization: bool,
    pub(crate) preserve_host: bool,
    /// The request URI's authority (HTTP/2 carries the host there, not in `Host`).
    pub(crate) uri_authority: Option<&'a Authority>,
    /// The upstream's `Host` value.
    pub(crate) upstream_host: &'a HeaderValue,
    pub(crate) decision_id: Uuid,
    pub(crate) identity: Option<&'a Identity>,
    pub(crate) assertion: Option<&'a HeaderValue>,
    /// Replaces any client `Authorization` (route `pass_access_token`).
    pub(crate) access_token: Option<&'a HeaderValue>,
    pub(crate) claim_headers: &'a [ClaimHeader],
}

/// Header names a client must never be able to send upstream: the upstream may believe them.
pub(crate) fn is_identity_looking(name: &str) -> bool {
    name.starts_with("x-portcullis-")
        || name.starts_with("x-auth-request-")
        || name.contains('_')
        || matches!(
            name,
            "x-forwarded-user"
                | "x-forwarded-email"
                | "x-forwarded-groups"
                | "x-forwarded-preferred-username"
                | "remote-user"
                | "x-remote-user"
        )
}

/// Client-address headers that CDNs and other proxies set and upstreams may believe: from a
/// peer that is not a trusted proxy they are the client's own claims, and are dropped.
/// (`X-Real-IP` is not listed: portcullis always sets it.)
fn is_client_address_claim(name: &str) -> bool {
    matches!(
        name,
        "true-client-ip"
            | "x-client-ip"
            | "x-cluster-client-ip"
            | "cf-connecting-ip"
            | "fastly-client-ip"
            | "x-original-forwarded-for"
    )
}

/// Where the request came in, as proxies state it: frameworks build redirects and absolute
/// links from these (Spring's ForwardedHeaderFilter, ASP.NET's ForwardedHeaders, Rails and
/// Django behind proxies read the port, prefix and scheme), so a client's own would let it
/// choose the host, port, path prefix or scheme of a password-reset link or a cached page.
/// From a peer that is not a trusted proxy every `X-Forwarded-*` goes (portcullis then sets
/// For, Proto and Host itself), with the older spellings of the same facts.
fn is_forwarding_claim(name: &str) -> bool {
    name.starts_with("x-forwarded-")
        || matches!(
            name,
            "x-original-host"
                | "x-host"
                | "x-http-host-override"
                | "x-url-scheme"
                | "x-scheme"
                | "front-end-https"
                | "x-original-uri"
        )
}

/// Headers some frameworks read to replace the request's path or method (Symfony, IIS URL
/// Rewrite, Rails/Express method overrides): a client could send `GET /public` with
/// `X-Original-URL: /admin`, or `X-HTTP-Method-Override: DELETE`, and be served what the
/// policy decided about something else. Dropped from every peer: the decision is made on the
/// path and method portcullis saw.
fn overrides_path_or_method(name: &str) -> bool {
    matches!(
        name,
        "x-original-url"
            | "x-rewrite-url"
            | "x-http-method-override"
            | "x-http-method"
            | "x-method-override"
    )
}

/// The fields portcullis sets on a forwarded request, kept apart from the client's so the
/// own HTTP/1 client can write them straight into the request head (a map insert hashes the
/// name and may grow the table; this runs on every request). Any other client gets them
/// inserted by [`Added::apply`]. `host` replaces the client's `Host`; no other client field
/// left in the map shares a name with one of these ([`rewrite_request`] removed those).
#[derive(Default)]
pub(crate) struct Added {
    pub(crate) host: Option<HeaderValue>,
    real_ip: Option<HeaderValue>,
    forwarded_for: Option<HeaderValue>,
    forwarded_proto: Option<HeaderValue>,
    forwarded_host: Option<HeaderValue>,
    /// Formatted where it is written: as a header value it would cost an allocation.
    decision_id: Option<Uuid>,
    /// Claim headers, the assertion and the access token: empty for public routes.
    identity: Vec<(HeaderName, HeaderValue)>,
}

impl Added {
    /// Calls `f` with each field but `Host` (the callers place that one themselves: first
    /// in the own client's head, in place of the client's in a map).
    fn fields(&self, mut f: impl FnMut(&HeaderName, Value<'_>)) {
        // Statics: a reference to a `const` name is a temporary dropped after each use.
        static NAMES: [HeaderName; 4] = [
            X_REAL_IP,
            X_FORWARDED_FOR,
            X_FORWARDED_PROTO,
            X_FORWARDED_HOST,
        ];
        static DECISION_ID: HeaderName = X_PORTCULLIS_DECISION_ID;
        let values = [
            &self.real_ip,
            &self.forwarded_for,
            &self.forwarded_proto,
            &self.forwarded_host,
        ];
        for (name, value) in NAMES.iter().zip(values) {
            if let Some(value) = value {
                f(name, Value::Header(value));
            }
        }
        if let Some(id) = self.decision_id {
            f(&DECISION_ID, Value::Id(id));
        }
        for (name, value) in &self.identity {
            f(name, Value::Header(value));
        }
    }

    /// Calls `f` with each field's name and value bytes, except `Host` ([`Added::host`]).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&HeaderName, &[u8])) {
        self.fields(|name, value| match value {
            Value::Header(value) => f(name, value.as_bytes()),
            Value::Id(id) => {
                let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
                f(name, id.hyphenated().encode_lower(&mut buf).as_bytes());
            }
        });
    }

    /// Inserts every field, `Host` included, into `headers`, replacing any of the same name.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        if let Some(host) = &self.host {
            headers.insert(header::HOST, host.clone());
        }
        self.fields(|name, value| {
            let value = match value {
                Value::Header(value) => value.clone(),
                Value::Id(id) => uuid_header_value(id),
            };
            headers.insert(name, value);
        });
    }
}

/// One of [`Added`]'s values.
enum Value<'a> {
    Header(&'a HeaderValue),
    Id(Uuid),
}

/// Rewrites end-to-end request headers: removes in place what must not reach the upstream,
/// and returns what portcullis sets (see [`Added`]). Call after [`super::hop::strip_request`],
/// with the client's host taken before it (a `Connection: host` cannot hide it then).
pub(crate) fn rewrite_request(
    headers: &mut HeaderMap,
    client_host: Option<HeaderValue>,
    rw: &RequestRewrite<'_>,
) -> Added {
    // One pass over the names finds what must go; most requests carry none of it, and a
    // pass is cheaper than a hash lookup per candidate.
    let mut spoofed: Vec<HeaderName> = Vec::new();
    let mut seen = Seen::default();
    for name in headers.keys() {
        if name == header::EXPECT {
            seen.expect = true;
        } else if name == header::AUTHORIZATION {
            seen.authorization = true;
        } else if name == header::FORWARDED {
            seen.forwarded = true;
        } else if name == X_REAL_IP {
            seen.real_ip = true;
        } else if rw.trusted_peer && name == X_FORWARDED_FOR {
            seen.forwarded_for = true;
        } else if rw.trusted_peer && name == X_FORWARDED_PROTO {
            seen.forwarded_proto = true;
        } else if rw.trusted_peer && name == X_FORWARDED_HOST {
            seen.forwarded_host = true;
        } else if is_identity_looking(name.as_str())
            || overrides_path_or_method(name.as_str())
            || (!rw.trusted_peer
                && (is_client_address_claim(name.as_str()) || is_forwarding_claim(name.as_str())))
        {
            spoofed.push(name.clone());
        }
    }
    // hyper answers `100-continue` itself when the body is first read.
    if seen.expect {
        headers.remove(header::EXPECT);
    }
    for name in spoofed {
        headers.remove(name);
    }
    // The route's access token, when it passes one, replaces the client's.
    let token_replaces = rw.identity.is_some() && rw.access_token.is_some();
    if seen.authorization && (!rw.pass_authorization || token_replaces) {
        headers.remove(header::AUTHORIZATION);
    }
    if seen.forwarded && !rw.trusted_peer {
        headers.remove(header::FORWARDED);
    }
    // Always portcullis's own: whatever a client or proxy sent is replaced.
    if seen.real_ip {
        headers.remove(X_REAL_IP);
    }

    let peer = ip_header_value(rw.peer);
    let real_ip = if rw.client_ip == rw.peer {
        peer.clone()
    } else {
        ip_header_value(rw.client_ip)
    };
    let forwarded_for = if seen.forwarded_for {
        let list = append_to_list(headers.get_all(&X_FORWARDED_FOR), &peer);
        headers.remove(&X_FORWARDED_FOR);
        list
    } else {
        peer
    };
    // A trusted proxy's own `X-Forwarded-Proto` and `-Host` stay as it sent them.
    let forwarded_proto = (!seen.forwarded_proto)
        .then(|| HeaderValue::from_static(if rw.tls { "https" } else { "http" }));
    let client_host = client_host.or_else(|| {
        rw.uri_authority
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let forwarded_host = if seen.forwarded_host {
        None
    } else {
        client_host.clone()
    };
    let host = match client_host {
        Some(host) if rw.preserve_host => host,
        _ => rw.upstream_host.clone(),
    };

    let mut identity = Vec::new();
    if let Some(who) = rw.identity {
        identity = claim_headers(who, rw.claim_headers);
        if let Some(assertion) = rw.assertion {
            identity.push((X_PORTCULLIS_JWT_ASSERTION, assertion.clone()));
        }
        if let Some(token) = rw.access_token {
            identity.push((header::AUTHORIZATION, token.clone()));
        }
    }
    Added {
        host: Some(host),
        real_ip: Some(real_ip),
        forwarded_for: Some(forwarded_for),
        forwarded_proto,
        forwarded_host,
        decision_id: Some(rw.decision_id),
        identity,
    }
}

/// Which of the names [`rewrite_request`] acts on a request carries.
#[derive(Default)]
struct Seen {
    expect: bool,
    authorization: bool,
    forwarded: bool,
    real_ip: bool,
    /// The next three only from a trusted peer (from others they are spoofed).
    forwarded_for: bool,
    forwarded_proto: bool,
    forwarded_host: bool,
}

fn claim_headers(identity: &Identity, wanted: &[ClaimHeader]) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(wanted.len() + 2);
    for claim in wanted {
        let (name, value) = match claim {
            ClaimHeader::User => (X_PORTCULLIS_USER, claim_value(&identity.subject)),
            ClaimHeader::Email => match &identity.email {
                Some(email) => (X_PORTCULLIS_EMAIL, claim_value(email)),
                None => continue,
            },
            ClaimHeader::Groups if identity.groups.is_empty() => continue,
            ClaimHeader::Groups => (X_PORTCULLIS_GROUPS, claim_value(&identity.groups.join(","))),
        };
        // A value that is not a valid header value (control characters) is skipped rather
        // than mangled: the signed assertion still carries the claim.
        // Each claim header once, whatever the route lists.
        if let Some(value) = value
            && !out.iter().any(|(seen, _)| *seen == name)
        {
            out.push((name, value));
        }
    }
    out
}

/// Claims may be UTF-8 (sent as obs-text bytes); control characters make them invalid.
fn claim_value(s: &str) -> Option<HeaderValue> {
    if s.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(s.as_bytes()).ok()
}

thread_local! {
    /// The last address [`ip_header_value`] formatted on this thread: a keep-alive connection,
    /// or a load balancer in front, sends many requests from one address.
    static LAST_IP: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// `ip` as a header value; clones of the last one made on this thread share its bytes.
fn ip_header_value(ip: IpAddr) -> HeaderValue {
    LAST_IP.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((cached, value)) = last.as_ref()
            && *cached == ip
        {
            return value.clone();
        }
        let value = format_ip(ip);
        *last = Some((ip, value.clone()));
        value
    })
}

fn format_ip(ip: IpAddr) -> HeaderValue {
    if let IpAddr::V4(v4) = ip {
        // Every request formats its peer: digits by hand, without the fmt machinery.
        let mut buf = [0u8; 15];
        let mut len = 0;
        for (i, octet) in v4.octets().into_iter().enumerate() {
            if i > 0 {
                buf[len] = b'.';
                len += 1;
            }
            if octet >= 100 {
                buf[len] = b'0' + octet / 100;
                len += 1;
            }
            if octet >= 10 {
                buf[len] = b'0' + octet / 10 % 10;
                len += 1;
            }
            buf[len] = b'0' + octet % 10;
            len += 1;
        }
        return HeaderValue::from_bytes(&buf[..len])
            .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    }
    let mut s = String::with_capacity(45);
    let _ = write!(s, "{ip}");
    // An IP address always makes a valid header value.
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

fn uuid_header_value(id: Uuid) -> HeaderValue {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let s = id.hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// `existing[, existing...], last`: every client line joined, then ours.
fn append_to_list<'a>(
    existing: impl IntoIterator<Item = &'a HeaderValue>,
    last: &HeaderValue,
) -> HeaderValue {
    let mut out: Vec<u8> = Vec::with_capacity(64);
    for value in existing {
        let trimmed = value.as_bytes().trim_ascii();
        if trimmed.is_empty() {
            continue;
        }
        out.extend_from_slice(trimmed);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(last.as_bytes());
    // Built from valid header values and ASCII separators.
    HeaderValue::from_maybe_shared(bytes::Bytes::from(out)).unwrap_or_else(|_| last.clone())
}

/// Removes the cookies named in `names` (portcullis's own) from the `Cookie` header, keeping
/// the others byte for byte, and leaves at most one `Cookie` field: several (HTTP/2 sends
/// each cookie as its own field) are joined with `; `, which RFC 9113 8.2.3 requires before
/// a request goes on over HTTP/1.1, where servers read one field (and some only the first).
/// Allocates only when there is something to remove or join.
pub fn remove_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let ours = |pair: &[u8]| names.iter().any(|name| is_cookie(pair, name));
    let mut fields = 0;
    let mut present = false;
    for value in headers.get_all(header::COOKIE) {
        fields += 1;
        present |= cookie_pairs(value.as_bytes()).any(ours);
    }
    if !present && fields < 2 {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in cookie_pairs(value.as_bytes()).filter(|p| !ours(p)) {
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair);
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(kept))
    {
        headers.insert(header::COOKIE, value);
    }
}

/// Removes every `Set-Cookie` field that sets a cookie named in `names` (RFC 6265 5.2: the
/// name is what precedes the first `=` of the part before the first `;`, trimmed; without
/// a `=` the name is empty), keeping the others in order. Allocates only when one is present.
pub fn remove_set_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let sets_one = |value: &HeaderValue| {
        let pair = value
            .as_bytes()
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default();
        pair.contains(&b'=') && names.iter().any(|name| is_cookie(pair, name))
    };
    if !headers.get_all(header::SET_COOKIE).iter().any(sets_one) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|value| !sets_one(value))
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

fn cookie_pairs(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

fn is_cookie(pair: &[u8], name: &str) -> bool {
    let key = pair.split(|&b| b == b'=').next().unwrap_or(pair);
    key.trim_ascii() == name.as_bytes()
}

#[cfg(test)]
#[test]
fn ipv4_peers_format_like_display() {
    for ip in [
        "0.0.0.0",
        "127.0.0.1",
        "10.20.30.40",
        "255.255.255.255",
        "1.100.10.9",
    ] {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(format_ip(parsed), ip);
        // Twice: the second comes from the per-thread cache.
        assert_eq!(ip_header_value(parsed), ip);
        assert_eq!(ip_header_value(parsed), ip);
    }
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(ip_header_value(v6), "2001:db8::1");
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert_eq!(ip_header_value(mapped), "::ffff:10.0.0.1");
    assert_eq!(ip_header_value("10.0.0.1".parse().unwrap()), "10.0.0.1");
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
