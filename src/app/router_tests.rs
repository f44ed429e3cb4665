//! Router tests: the main router driven with `oneshot`, no sockets. Upstreams are never
//! reached here (every case is answered by portcullis itself).

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use tower::ServiceExt;

use super::{AppState, router};

fn app(routes: &str) -> axum::Router {
    let text = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\n{routes}"
    );
    let config = crate::config::load_str(&text, Vec::new()).unwrap();
    router(Arc::new(AppState::new(config).unwrap()))
}

const ROUTES: &str = r#"
[[routes]]
id = "public"
path = "/pub/"
upstream = ["http://127.0.0.1:9"]
auth = ["none"]
[routes.policy]
allow = [{ public = true }]
deny = [{ id = "no-admin", paths = ["/pub/admin"] }]

[[routes]]
id = "staff"
path = "/staff/"
upstream = ["http://127.0.0.1:9"]
[routes.policy]
allow = [{ groups = ["staff"] }]

[[routes]]
id = "closed"
path = "/closed/"
upstream = ["http://127.0.0.1:9"]
auth = ["none"]
[routes.policy]
allow = [{ ip = ["10.0.0.0/8"] }]
"#;

async fn status(uri: &str, accept: Option<&str>) -> (StatusCode, http::HeaderMap) {
    let mut req = Request::get(uri);
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let response = app(ROUTES)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    (response.status(), response.headers().clone())
}

#[tokio::test]
async fn no_route_is_404() {
    assert_eq!(status("/nowhere", None).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn encoded_slash_and_traversal_tricks_are_400() {
    for uri in ["/pub/%2F", "/pub/a%5Cb", "/pub/a;b", "/pub/%00"] {
        assert_eq!(status(uri, None).await.0, StatusCode::BAD_REQUEST, "{uri}");
    }
}

#[tokio::test]
async fn deny_rule_wins_over_public_allow() {
    let (code, headers) = status("/pub/admin", Some("text/html")).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(headers.contains_key("x-request-id"));
    // Traversal that normalizes onto the denied path is denied too.
    assert_eq!(
        status("/pub/x/%2e%2e/admin", None).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn anonymous_on_a_login_route_is_401_not_403() {
    let (code, headers) = status("/staff/page", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn anonymous_on_a_route_without_login_is_403() {
    assert_eq!(status("/closed/x", None).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn allowed_request_to_a_dead_upstream_is_502_json() {
    let (code, headers) = status("/pub/ok", None).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn the_reserved_prefix_is_never_forwarded() {
    // A public catch-all route would forward anything; these normalize onto the reserved
    // prefix or name an endpoint that does not exist.
    for uri in [
        "/.portcullis/nope",
        "/.portcullis",
        "/x/../.portcullis/login",
        "/x/%2e%2e/.portcullis/whoami",
        "//.portcullis/login",
    ] {
        let everything = r#"
[[routes]]
id = "everything"
path = "/"
upstream = ["http://127.0.0.1:9"]
auth = ["none"]
[routes.policy]
allow = [{ public = true }]
"#;
        let response = app(everything)
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        // 502 would mean it was forwarded (to the dead upstream).
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
    }
}
