//! Where on the upstream a request goes: the upstream's base URL, plus the normalized path
//! (minus the route prefix with `strip_prefix`), plus the client's query string byte for byte.
//! It never re-encodes or re-normalizes anything: the path was normalized before routing.

use bytes::Bytes;
use http::Uri;
use http::uri::PathAndQuery;

use super::upstream::Upstream;

/// The path the upstream sees before its base path is prepended: `path` itself, or with
/// `strip_prefix` the part after the route prefix, always starting with `/`. With
/// `case_insensitive` (the route's `case_insensitive_paths`) the prefix comes off however
/// the client wrote its case, as it matched.
pub(crate) fn route_relative_path<'a>(
    route_prefix: &str,
    strip_prefix: bool,
    case_insensitive: bool,
    path: &'a str,
) -> &'a str {
    if !strip_prefix {
        return path;
    }
    // "/api/" and "/api" strip the same way; "/api" must not strip "/apis".
    let prefix = route_prefix.trim_end_matches('/');
    let head = path.get(..prefix.len());
    let same = match head {
        Some(head) if case_insensitive => head.eq_ignore_ascii_case(prefix),
        Some(head) => head == prefix,
        None => false,
    };
    match &path[if same { prefix.len() } else { 0 }..] {
        _ if !same => path,
        "" => "/",
        rest if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// The request target in origin form, in its pieces: the upstream's base path, the
/// route-relative path and the query. Both upstream clients write it from here: portcullis's
/// own straight into the request head, hyper's through [`upstream_uri`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    pub(crate) base: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// `path` and `query` on `upstream`.
    pub(crate) fn new(upstream: &'a Upstream, path: &'a str, query: Option<&'a str>) -> Self {
        Target {
            base: &upstream.base_path,
            path,
            query,
        }
    }

    /// A target given whole (`/path?query`).
    #[cfg(test)]
    pub(crate) fn whole(target: &'a str) -> Self {
        Target {
            base: "",
            path: target,
            query: None,
        }
    }

    /// Bytes [`Self::write`] appends, at most.
    pub(crate) fn len(&self) -> usize {
        self.base.len() + self.path.len() + self.query.map_or(0, |q| q.len() + 1) + 1
    }

    /// Origin form, and nothing that could break a request line.
    pub(crate) fn is_valid(&self) -> bool {
        let starts_with_slash = if self.base.is_empty() {
            self.path.starts_with('/')
        } else {
            self.base.starts_with('/')
        };
        let clean = |s: &str| !s.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#');
        starts_with_slash && clean(self.base) && clean(self.path) && self.query.is_none_or(clean)
    }

    /// Appends the target: base, `/` if the path lacks one, path, `?query`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.base.as_bytes());
        if !self.path.starts_with('/') {
            out.push(b'/');
        }
        out.extend_from_slice(self.path.as_bytes());
        if let Some(query) = self.query {
            out.push(b'?');
            out.extend_from_slice(query.as_bytes());
        }
    }
}

/// The absolute URI for the upstream request. The legacy client wants absolute form and
/// writes origin form on the wire.
pub(crate) fn upstream_uri(
    upstream: &Upstream,
    path: &str,
    query: Option<&str>,
) -> Result<Uri, http::Error> {
    let target = Target::new(upstream, path, query);
    let mut pq = Vec::with_capacity(target.len());
    target.write(&mut pq);
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
        assert_eq!(
            route_relative_path("/api/", true, false, "/api/users"),
            "/users"
        );
        assert_eq!(route_relative_path("/api/", true, false, "/api/"), "/");
        assert_eq!(route_relative_path("/api/", true, false, "/api"), "/");
        assert_eq!(route_relative_path("/api", true, false, "/api/x/y"), "/x/y");
        assert_eq!(route_relative_path("/api", true, false, "/apis"), "/apis");
        assert_eq!(route_relative_path("/", true, false, "/x"), "/x");
        assert_eq!(route_relative_path("/", true, false, "/"), "/");
        assert_eq!(
            route_relative_path("/api/", true, false, "/API/x"),
            "/API/x"
        );
        assert_eq!(route_relative_path("/api/", true, true, "/API/x"), "/x");
        assert_eq!(route_relative_path("/api/", true, true, "/Api"), "/");
        assert_eq!(route_relative_path("/api", true, true, "/APIs"), "/APIs");
        assert_eq!(
            route_relative_path("/api/", false, false, "/api/users"),
            "/api/users"
        );
    }

    #[test]
    fn strip_prefix_then_base_path() {
        let path = route_relative_path("/api/", true, false, "/api/v2/items");
        assert_eq!(
            uri("http://u/backend/", path, Some("a=1")),
            "http://u/backend/v2/items?a=1"
        );
    }
}
