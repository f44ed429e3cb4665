//! Redirects that name the upstream itself. An upstream that builds absolute URLs from the
//! `Host` it received (portcullis sends the upstream's own unless `preserve_host`) answers
//! `Location: http://10.0.0.5:8080/login`, which sends a browser to an address it cannot
//! reach and tells it how the inside is laid out. Such a `Location` becomes the path the
//! client would use for the same resource (nginx's `proxy_redirect default`): the
//! upstream's base path comes off, the route prefix goes back on with `strip_prefix`. Any
//! other `Location` (relative, or naming another host) passes unchanged. The URL in a
//! `Refresh` field gets the same treatment.

use http::header::{self, HeaderMap, HeaderValue};
use http::{StatusCode, uri::Scheme};

use super::upstream::UpstreamSet;

/// Rewrites `Location` on a 3xx or 201 when it names one of `upstreams`. `route_prefix` and
/// `strip_prefix` are the route's, as [`super::target::route_relative_path`] applies them.
pub(crate) fn rewrite_location(
    status: StatusCode,
    headers: &mut HeaderMap,
    upstreams: &UpstreamSet,
    route_prefix: &str,
    strip_prefix: bool,
) {
    // Only these carry a Location a client follows; a 200 costs no lookup.
    if !(status.is_redirection() || status == StatusCode::CREATED) {
        return;
    }
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some(path) = client_path(location, upstreams, route_prefix, strip_prefix) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&path) {
        headers.insert(header::LOCATION, value);
    }
}

/// Rewrites the URL of a `Refresh: <seconds>; url=<URL>` field (any status: browsers follow
/// it on a 200 page) when it names one of `upstreams`, as [`rewrite_location`] does for
/// `Location` and as nginx's `proxy_redirect` does for both. Call only when the head has a
/// `Refresh` field; other forms pass unchanged.
pub(crate) fn rewrite_refresh(
    headers: &mut HeaderMap,
    upstreams: &UpstreamSet,
    route_prefix: &str,
    strip_prefix: bool,
) {
    let Some(refresh) = headers.get(header::REFRESH).and_then(|v| v.to_str().ok()) else {
        return;
    };
    let Some((delay, url)) = refresh_url(refresh) else {
        return;
    };
    let Some(path) = client_path(url, upstreams, route_prefix, strip_prefix) else {
        return;
    };
    if let Ok(value) = HeaderValue::from_str(&format!("{delay}; url={path}")) {
        headers.insert(header::REFRESH, value);
    }
}

/// The delay and URL of a `Refresh` value (`5; url=/x`, `0;URL='/x'`, `3, url=/x`), as
/// browsers read it (HTML's "shared declarative refresh steps").
fn refresh_url(value: &str) -> Option<(&str, &str)> {
    let (delay, rest) = value.split_once([';', ','])?;
    let rest = rest.trim_start();
    let name = rest.get(..3)?;
    if !name.eq_ignore_ascii_case("url") {
        return None;
    }
    let url = rest[3..].trim_start().strip_prefix('=')?.trim();
    let url = match url.as_bytes().first() {
        Some(&quote @ (b'\'' | b'"')) => {
            let inner = &url[1..];
            inner.strip_suffix(char::from(quote)).unwrap_or(inner)
        }
        _ => url,
    };
    Some((delay.trim(), url))
}

/// The path a client uses for `url` when it names one of `upstreams`: the upstream's base
/// path off, the route prefix back on with `strip_prefix`. `None` for any other URL.
fn client_path(
    url: &str,
    upstreams: &UpstreamSet,
    route_prefix: &str,
    strip_prefix: bool,
) -> Option<String> {
    let rest = (0..upstreams.len()).find_map(|i| {
        let upstream = upstreams.get(i);
        after_upstream(
            url,
            &upstream.scheme,
            upstream.authority.as_str(),
            &upstream.base_path,
        )
    })?;
    let prefix = if strip_prefix {
        route_prefix.trim_end_matches('/')
    } else {
        ""
    };
    let path = if rest.starts_with('/') { "" } else { "/" };
    Some(format!("{prefix}{path}{rest}"))
}

/// What follows `scheme://authority` + `base_path` in `location`, when it starts with them
/// (scheme and host case-insensitively, a default port written out or not) and the base path
/// ends at a segment boundary: `""`, or text starting with `/`, `?` or `#`.
fn after_upstream<'a>(
    location: &'a str,
    scheme: &Scheme,
    authority: &str,
    base_path: &str,
) -> Option<&'a str> {
    let (written_scheme, rest) = location.split_once("://")?;
    if !written_scheme.eq_ignore_ascii_case(scheme.as_str()) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (written_authority, rest) = rest.split_at(end);
    if !same_authority(written_authority, authority, scheme) {
        return None;
    }
    let rest = rest.strip_prefix(base_path)?;
    (rest.is_empty() || rest.starts_with(['/', '?', '#'])).then_some(rest)
}

/// `host[:port]` equality, case-insensitive, with the scheme's default port optional.
fn same_authority(written: &str, ours: &str, scheme: &Scheme) -> bool {
    let default_port = if *scheme == Scheme::HTTPS {
        ":443"
    } else {
        ":80"
    };
    let strip = |a: &'_ str| -> String {
        let lower = a.to_ascii_lowercase();
        match lower.strip_suffix(default_port) {
            Some(host) => host.to_owned(),
            None => lower,
        }
    };
    !written.is_empty() && !written.contains('@') && strip(written) == strip(ours)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;
    use url::Url;

    use super::*;
    use crate::config::EjectPolicy;

    fn upstreams(urls: &[&str]) -> UpstreamSet {
        let urls: Vec<Url> = urls.iter().map(|u| Url::parse(u).unwrap()).collect();
        let eject = EjectPolicy {
            failures: 3,
            duration: Duration::from_secs(30),
        };
        UpstreamSet::new(&urls, eject, Instant::now()).unwrap()
    }

    fn rewritten(
        status: u16,
        location: &str,
        set: &UpstreamSet,
        prefix: &str,
        strip: bool,
    ) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
        let status = StatusCode::from_u16(status).unwrap();
        rewrite_location(status, &mut headers, set, prefix, strip);
        headers[header::LOCATION].to_str().unwrap().to_owned()
    }

    #[test]
    fn the_upstreams_own_url_becomes_the_clients_path() {
        let plain = upstreams(&["http://10.0.0.5:8080"]);
        let cases = [
            ("http://10.0.0.5:8080/login?next=%2Fa", "/login?next=%2Fa"),
            ("HTTP://10.0.0.5:8080/x#top", "/x#top"),
            ("http://10.0.0.5:8080", "/"),
            ("http://10.0.0.5:8080?x=1", "/?x=1"),
        ];
        for (location, want) in cases {
            assert_eq!(
                rewritten(302, location, &plain, "/", false),
                want,
                "{location}"
            );
        }
        // Another host, a relative Location, userinfo: unchanged.
        for location in [
            "http://10.0.0.6:8080/login",
            "https://10.0.0.5:8080/login",
            "http://10.0.0.5:80800/login",
            "/login",
            "http://user@10.0.0.5:8080/login",
            "https://idp.example/authorize?x=1",
        ] {
            assert_eq!(rewritten(302, location, &plain, "/", false), location);
        }
        // Not a redirect: untouched even when it names the upstream.
        let ok = "http://10.0.0.5:8080/x";
        assert_eq!(rewritten(200, ok, &plain, "/", false), ok);
        assert_eq!(rewritten(201, ok, &plain, "/", false), "/x");
    }

    fn refreshed(value: &str, set: &UpstreamSet, prefix: &str, strip: bool) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(header::REFRESH, HeaderValue::from_str(value).unwrap());
        rewrite_refresh(&mut headers, set, prefix, strip);
        headers[header::REFRESH].to_str().unwrap().to_owned()
    }

    #[test]
    fn a_refresh_naming_the_upstream_sends_the_client_to_its_path() {
        let set = upstreams(&["http://10.0.0.5:8080/base"]);
        let cases = [
            (
                "0; url=http://10.0.0.5:8080/base/x?y=1",
                "0; url=/app/x?y=1",
            ),
            ("5;URL='http://10.0.0.5:8080/base/x'", "5; url=/app/x"),
            ("3, url = \"http://10.0.0.5:8080/base\"", "3; url=/app/"),
        ];
        for (value, want) in cases {
            assert_eq!(refreshed(value, &set, "/app/", true), want, "{value}");
        }
        // Another host, a relative URL, no URL at all, not a url= parameter: unchanged.
        for value in [
            "0; url=http://10.0.0.6:8080/base/x",
            "0; url=/elsewhere",
            "30",
            "0; urlx=http://10.0.0.5:8080/base/x",
        ] {
            assert_eq!(refreshed(value, &set, "/app/", true), value);
        }
    }

    #[test]
    fn base_path_comes_off_and_a_stripped_prefix_goes_back_on() {
        let based = upstreams(&["https://App.Internal/base/", "http://b:81"]);
        assert_eq!(
            rewritten(
                301,
                "https://app.internal:443/base/x",
                &based,
                "/app/",
                true
            ),
            "/app/x"
        );
        assert_eq!(
            rewritten(303, "https://app.internal/base", &based, "/app/", true),
            "/app/"
        );
        assert_eq!(
            rewritten(307, "https://app.internal/base?q", &based, "/app", false),
            "/?q"
        );
        // `/basement` is not under `/base`.
        let other = "https://app.internal/basement";
        assert_eq!(rewritten(302, other, &based, "/app/", true), other);
        // The route's second upstream is recognized too.
        assert_eq!(
            rewritten(302, "http://B:81/y", &based, "/app/", true),
            "/app/y"
        );
    }
}
