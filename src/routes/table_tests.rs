//! Tests for the route table: specificity, prefix boundaries, ties, route path validation.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::*;
use crate::config::{EjectPolicy, RouteConfig, RouteTimeouts};
use crate::identity::AuthMethod;
use crate::policy::RoutePolicy;
use crate::routes::host_of;

/// A route with everything but host, path and methods at plausible defaults.
fn route(host: Option<&str>, path: &str, methods: Option<&[Method]>) -> RouteConfig {
    let id = format!("r-{}-{}", host.unwrap_or("any"), path);
    RouteConfig {
        id: Arc::from(id.as_str()),
        host: host.map(|h| HostPattern::parse(h).unwrap()),
        path: path.to_string(),
        methods: methods.map(<[Method]>::to_vec),
        upstreams: vec!["http://127.0.0.1:9000".parse().unwrap()],
        auth: vec![AuthMethod::Session, AuthMethod::Bearer],
        headers: Vec::new(),
        audience: id,
        policy: RoutePolicy::default(),
        preserve_host: false,
        strip_prefix: false,
        pass_authorization: false,
        bearer_query_param: None,
        pass_access_token: false,
        rewrite_redirects: true,
        case_insensitive_paths: false,
        timeouts: RouteTimeouts {
            connect: Duration::from_secs(5),
            response_header: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        },
        max_body: Some(10 * 1024 * 1024),
        retries: 1,
        eject: EjectPolicy {
            failures: 3,
            duration: Duration::from_secs(30),
        },
        upstream_ca: None,
        providers: Vec::new(),
    }
}

fn any(path: &str) -> RouteConfig {
    route(None, path, None)
}

fn table(routes: &[RouteConfig]) -> RouteTable {
    RouteTable::new(routes).unwrap()
}

/// Builds the table from `routes` and from `routes` reversed, and checks both give the same
/// route (by id) for every probe: file order must never matter.
fn assert_in_both_orders(
    routes: &[RouteConfig],
    probes: &[(Option<&str>, &str, Method, Option<&str>)],
) {
    let reversed: Vec<RouteConfig> = routes.iter().rev().cloned().collect();
    for list in [routes, &reversed[..]] {
        let t = table(list);
        for (host, path, method, want) in probes {
            let got = t.find(*host, path, method).map(|i| &*list[i].id);
            assert_eq!(got, *want, "host {host:?} path {path:?} {method}");
        }
    }
}

const GET: Method = Method::GET;
const POST: Method = Method::POST;

#[test]
fn exact_host_beats_wildcard_beats_any_host() {
    let routes = [
        any("/"),
        route(Some("*.corp.example"), "/", None),
        route(Some("*.app.corp.example"), "/", None),
        route(Some("app.corp.example"), "/", None),
    ];
    assert_in_both_orders(
        &routes,
        &[
            (
                Some("app.corp.example"),
                "/x",
                GET,
                Some("r-app.corp.example-/"),
            ),
            (
                Some("a.app.corp.example"),
                "/x",
                GET,
                Some("r-*.app.corp.example-/"),
            ),
            (
                Some("b.corp.example"),
                "/x",
                GET,
                Some("r-*.corp.example-/"),
            ),
            (Some("corp.example"), "/x", GET, Some("r-any-/")),
            (Some("other.example"), "/x", GET, Some("r-any-/")),
            (None, "/x", GET, Some("r-any-/")),
        ],
    );
}

#[test]
fn host_class_outranks_path_length() {
    let routes = [any("/api/v1/"), route(Some("app.corp.example"), "/", None)];
    assert_in_both_orders(
        &routes,
        &[
            (
                Some("app.corp.example"),
                "/api/v1/x",
                GET,
                Some("r-app.corp.example-/"),
            ),
            (
                Some("other.example"),
                "/api/v1/x",
                GET,
                Some("r-any-/api/v1/"),
            ),
        ],
    );
}

#[test]
fn longer_prefix_wins_regardless_of_file_order() {
    let routes = [any("/"), any("/api/"), any("/api/admin"), any("/apis")];
    assert_in_both_orders(
        &routes,
        &[
            (None, "/", GET, Some("r-any-/")),
            (None, "/index.html", GET, Some("r-any-/")),
            (None, "/api", GET, Some("r-any-/api/")),
            (None, "/api/", GET, Some("r-any-/api/")),
            (None, "/api/users", GET, Some("r-any-/api/")),
            (None, "/api/admin", GET, Some("r-any-/api/admin")),
            (None, "/api/admin/", GET, Some("r-any-/api/admin")),
            (None, "/api/admin/x", GET, Some("r-any-/api/admin")),
            (None, "/api/administrator", GET, Some("r-any-/api/")),
            (None, "/apis/x", GET, Some("r-any-/apis")),
            (None, "/apix", GET, Some("r-any-/")),
        ],
    );
}

#[test]
fn method_specific_route_comes_before_generic() {
    let writes = route(None, "/api/", Some(&[Method::POST, Method::PUT]));
    let routes = [any("/api/"), writes.clone()];
    let t = table(&routes);
    assert_eq!(t.find(None, "/api/x", &POST), Some(1));
    assert_eq!(t.find(None, "/api/x", &Method::PUT), Some(1));
    assert_eq!(t.find(None, "/api/x", &GET), Some(0));
    let t = table(&[writes, any("/api/")]);
    assert_eq!(t.find(None, "/api/x", &POST), Some(0));
    assert_eq!(t.find(None, "/api/x", &GET), Some(1));
}

#[test]
fn method_list_filters_requests() {
    let t = table(&[route(None, "/upload", Some(&[Method::POST]))]);
    assert_eq!(t.find(None, "/upload", &POST), Some(0));
    assert_eq!(t.find(None, "/upload", &GET), None);
    assert_eq!(t.find(None, "/upload", &Method::HEAD), None);
    // A route for GET takes HEAD too: otherwise HEAD would fall to a broader route (and its
    // policy) and still be answered by the upstream's GET handler.
    let t = table(&[route(None, "/admin/", Some(&[GET])), any("/")]);
    assert_eq!(t.find(None, "/admin/x", &Method::HEAD), Some(0));
}

#[test]
fn a_get_route_and_a_head_route_on_one_prefix_tie() {
    let get = route(None, "/api/", Some(&[GET]));
    let head = route(None, "/api/", Some(&[Method::HEAD]));
    let conflict = RouteConflict { index: 1, other: 0 };
    assert_eq!(
        RouteTable::new(&[get.clone(), head.clone()]).unwrap_err(),
        vec![conflict.clone()]
    );
    assert_eq!(RouteTable::new(&[head, get]).unwrap_err(), vec![conflict]);
}

#[test]
fn trailing_slash_prefix_covers_bare_path() {
    let t = table(&[any("/admin/")]);
    assert_eq!(t.find(None, "/admin", &GET), Some(0));
    assert_eq!(t.find(None, "/admin/", &GET), Some(0));
    assert_eq!(t.find(None, "/admin/users", &GET), Some(0));
    assert_eq!(t.find(None, "/administrator", &GET), None);
    assert_eq!(t.find(None, "/", &GET), None);
}

#[test]
fn prefix_matches_on_segment_boundaries_only() {
    let t = table(&[any("/api")]);
    assert_eq!(t.find(None, "/api", &GET), Some(0));
    assert_eq!(t.find(None, "/api/", &GET), Some(0));
    assert_eq!(t.find(None, "/api/x", &GET), Some(0));
    assert_eq!(t.find(None, "/apix", &GET), None);
    assert_eq!(t.find(None, "/ap", &GET), None);
    assert_eq!(t.find(None, "/", &GET), None);
}

#[test]
fn a_case_insensitive_route_matches_any_spelling_of_its_prefix() {
    let mut admin = any("/Admin/");
    admin.case_insensitive_paths = true;
    let t = table(&[admin.clone(), any("/")]);
    for path in ["/admin", "/ADMIN/x", "/aDmIn/", "/Admin/y"] {
        assert_eq!(t.find(None, path, &GET), Some(0), "{path:?}");
    }
    assert_eq!(t.find(None, "/administrator", &GET), Some(1));
    // Case-sensitive routes stay so.
    let t = table(&[any("/admin/"), any("/")]);
    assert_eq!(t.find(None, "/ADMIN/x", &GET), Some(1));
    // A case-sensitive route on the same prefix in other letters would tie with it for
    // `/admin`: refused, as any tie.
    assert!(RouteTable::new(&[admin, any("/admin")]).is_err());
}

#[test]
fn root_prefix_matches_everything() {
    let t = table(&[any("/")]);
    for path in ["/", "/a", "/a/b/", "/%E2%82%AC"] {
        assert_eq!(t.find(None, path, &GET), Some(0), "{path:?}");
    }
    assert_eq!(t.find(None, "", &GET), None);
}

#[test]
fn no_route_means_none() {
    assert_eq!(RouteTable::new(&[]).unwrap().find(None, "/", &GET), None);
    let t = table(&[route(Some("app.corp.example"), "/", None)]);
    assert_eq!(t.find(Some("other.example"), "/", &GET), None);
    assert_eq!(
        t.find(None, "/", &GET),
        None,
        "a host route never matches a hostless request"
    );
}

#[test]
fn route_paths_are_normalized_for_matching() {
    let t = table(&[any("/a/./b/../c//"), any("/%7euser")]);
    assert_eq!(t.find(None, "/a/c", &GET), Some(0));
    assert_eq!(t.find(None, "/a/c/d", &GET), Some(0));
    assert_eq!(t.find(None, "/~user/x", &GET), Some(1));
}

#[test]
fn invalid_route_paths_match_nothing() {
    let t = table(&[any("/a%2fb"), any("api"), any("/a b"), any("/x?y")]);
    assert!(t.is_empty());
    assert_eq!(t.find(None, "/a%2fb", &GET), None);
    assert_eq!(t.find(None, "/api", &GET), None);
}

#[test]
fn host_of_output_feeds_find() {
    let t = table(&[
        route(Some("app.corp.example"), "/", None),
        route(Some("*.corp.example"), "/", None),
    ]);
    let host = host_of("App.Corp.Example:8443").unwrap();
    assert_eq!(t.find(Some(&host), "/", &GET), Some(0));
    let host = host_of("x.corp.example:80").unwrap();
    assert_eq!(t.find(Some(&host), "/", &GET), Some(1));
}

#[test]
fn ties_are_reported_with_later_and_earlier_index() {
    let conflict = |index, other| RouteConflict { index, other };
    assert_eq!(
        RouteTable::new(&[any("/api/"), any("/api/")]).unwrap_err(),
        vec![conflict(1, 0)]
    );
    assert_eq!(
        RouteTable::new(&[any("/api"), any("/api/")]).unwrap_err(),
        vec![conflict(1, 0)]
    );
    assert_eq!(
        RouteTable::new(&[any("/api/"), any("/api")]).unwrap_err(),
        vec![conflict(1, 0)]
    );
    assert_eq!(
        RouteTable::new(&[any("/a/../api"), any("//api/")]).unwrap_err(),
        vec![conflict(1, 0)]
    );
    let host = Some("App.Corp.Example");
    assert_eq!(
        RouteTable::new(&[
            route(host, "/", None),
            route(Some("app.corp.example"), "/", None)
        ])
        .unwrap_err(),
        vec![conflict(1, 0)]
    );
    // Intersecting method lists.
    assert_eq!(
        RouteTable::new(&[
            route(None, "/x", Some(&[GET, POST])),
            route(None, "/x", Some(&[POST, Method::PUT]))
        ])
        .unwrap_err(),
        vec![conflict(1, 0)]
    );
}

#[test]
fn every_tying_pair_is_reported() {
    let routes = [any("/a"), any("/b"), any("/a/"), any("/a"), any("/b/")];
    let conflicts = RouteTable::new(&routes).unwrap_err();
    let conflict = |index, other| RouteConflict { index, other };
    assert_eq!(
        conflicts,
        vec![
            conflict(2, 0),
            conflict(3, 0),
            conflict(3, 2),
            conflict(4, 1)
        ]
    );
}

#[test]
fn non_ties_are_accepted() {
    // Disjoint methods on the same host and prefix.
    let t = table(&[
        route(None, "/api/", Some(&[GET, Method::HEAD])),
        route(None, "/api/", Some(&[POST])),
    ]);
    assert_eq!(t.find(None, "/api/x", &GET), Some(0));
    assert_eq!(t.find(None, "/api/x", &POST), Some(1));
    assert_eq!(t.find(None, "/api/x", &Method::DELETE), None);
    // One route names methods, the other takes any: the one naming methods is more specific.
    let t = table(&[route(None, "/x", Some(&[GET])), any("/x/")]);
    assert_eq!(t.find(None, "/x", &GET), Some(0));
    assert_eq!(t.find(None, "/x", &POST), Some(1));
    // Same prefix, different hosts or host classes.
    let t = table(&[
        route(Some("a.example"), "/", None),
        route(Some("b.example"), "/", None),
        route(Some("*.a.example"), "/", None),
        any("/"),
    ]);
    assert_eq!(t.len(), 4);
    assert_eq!(t.find(Some("b.example"), "/", &GET), Some(1));
    // Different prefixes.
    assert!(RouteTable::new(&[any("/api"), any("/api/v1"), any("/apix")]).is_ok());
}

#[test]
fn validate_route_path_normalizes_or_explains() {
    assert_eq!(validate_route_path("/api/"), Ok("/api/".to_string()));
    assert_eq!(validate_route_path("/a/./b//c/.."), Ok("/a/b/".to_string()));
    assert_eq!(validate_route_path("/%7Eme"), Ok("/~me".to_string()));
    for bad in [
        "",
        "api",
        "/a%2fb",
        "/a\\b",
        "/a;b",
        "/%zz",
        "/a?b",
        "/a#b",
        "/a b",
        "/caf\u{e9}",
        "/a\tb",
    ] {
        let err = validate_route_path(bad).unwrap_err();
        assert!(!err.is_empty(), "{bad:?}");
    }
    assert!(validate_route_path("/a?b").unwrap_err().contains("query"));
    assert!(
        validate_route_path("/a%2fb")
            .unwrap_err()
            .contains("encoded '/'")
    );
}

#[test]
fn find_scales_to_hundreds_of_routes() {
    let routes: Vec<RouteConfig> = (0..300).map(|i| any(&format!("/svc{i}/"))).collect();
    let t = table(&routes);
    assert_eq!(t.find(None, "/svc299/x", &GET), Some(299));
    assert_eq!(t.find(None, "/svc0", &GET), Some(0));
    assert_eq!(t.find(None, "/svc300", &GET), None);
}
