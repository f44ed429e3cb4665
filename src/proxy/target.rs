//! Where on the upstream a request goes: the upstream's base URL, plus the normalized path
//! (minus the route prefix with `strip_prefix`), plus the client's query string byte for byte.
//! It never re-encodes or re-normalizes anything: the path was normalized before routing.

use bytes::Bytes;
use http::Uri;
use http::uri::PathAndQuery;

use super::upstream::Upstream;

/// The path the upstream sees before its base path is prepended: `path` itself, or with
/// `strip_prefix` the part after the route prefix, always starting with `/`.
pub(crate) fn route_relative_path<'a>(
    route_prefix: &str,
    strip_prefix: bool,
    path: &'a str,
) -> &'a str {
    if !strip_prefix {
        return path;
    }
    // "/api/" and "/api" strip the same way; "/api" must not strip "/apis".
    let prefix = route_prefix.trim_end_matches('/');
    match path.strip_prefix(prefix) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// The request target in origin form: the upstream's base path, the route-relative path and
/// the query.
pub(crate) fn origin_form(upstream: &Upstream, path: &str, query: Option<&str>) -> String {
    let base = &*upstream.base_path;
    let query_len = query.map_or(0, |q| q.len() + 1);
    let mut pq = String::with_capacity(base.len() + path.len() + query_len + 1);
    pq.push_str(base);
    if !path.starts_with('/') {
        pq.push('/');
    }
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    pq
}

/// The absolute URI for the upstream request. The legacy client wants absolute form and
/// writes origin form on the wire.
pub(crate) fn upstream_uri(
    upstream: &Upstream,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, http::Error> {
    let pq = origin_form(upstream, path, query);
    let pq = PathAndQuery::from_maybe_shared(Bytes::from(pq))?;
    Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(pq)
        .build()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;
    use url::Url;

    use super::*;
    use crate::config::EjectPolicy;
    use crate::proxy::upstream::UpstreamSet;

    fn uri(base: &str, path: &str, query: Option<&str>) -> String {
        let eject = EjectPolicy {
            failures: 1,
            duration: Duration::from_secs(1),
        };
        let set = UpstreamSet::new(&[Url::parse(base).unwrap()], eject, Instant::now()).unwrap();
        upstream_uri(set.get(0), path, query).unwrap().to_string()
    }

    #[test]
    fn joins_base_and_path_without_double_slashes() {
        assert_eq!(uri("http://u:8080", "/a/b", None), "http://u:8080/a/b");
        assert_eq!(uri("http://u:8080/", "/a", None), "http://u:8080/a");
        assert_eq!(uri("http://u/v1", "/a", None), "http://u/v1/a");
        assert_eq!(uri("http://u/v1/", "/a", None), "http://u/v1/a");
        assert_eq!(uri("http://u/v1/", "/", None), "http://u/v1/");
        assert_eq!(uri("https://u/", "/", None), "https://u/");
    }

    #[test]
    fn keeps_the_query_untouched() {
        assert_eq!(
            uri("http://u/base", "/s", Some("q=a%2Fb&x=%20+y&&z")),
            "http://u/base/s?q=a%2Fb&x=%20+y&&z"
        );
        assert_eq!(uri("http://u", "/s", Some("")), "http://u/s?");
        assert_eq!(
            uri("http://u", "/%7Euser/a%20b", None),
            "http://u/%7Euser/a%20b"
        );
    }

    #[test]
    fn strip_prefix_keeps_a_leading_slash() {
        assert_eq!(route_relative_path("/api/", true, "/api/users"), "/users");
        assert_eq!(route_relative_path("/api/", true, "/api/"), "/");
        assert_eq!(route_relative_path("/api/", true, "/api"), "/");
        assert_eq!(route_relative_path("/api", true, "/api/x/y"), "/x/y");
        assert_eq!(route_relative_path("/api", true, "/apis"), "/apis");
        assert_eq!(route_relative_path("/", true, "/x"), "/x");
        assert_eq!(route_relative_path("/", true, "/"), "/");
        assert_eq!(
            route_relative_path("/api/", false, "/api/users"),
            "/api/users"
        );
    }

    #[test]
    fn strip_prefix_then_base_path() {
        let path = route_relative_path("/api/", true, "/api/v2/items");
        assert_eq!(
            uri("http://u/backend/", path, Some("a=1")),
            "http://u/backend/v2/items?a=1"
        );
    }
}
