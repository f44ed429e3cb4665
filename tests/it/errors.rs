//! portcullis's own answers: bad paths, no route, login required, upstream down.

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn refused_paths_get_400_and_reach_no_upstream() {
    let upstream = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[upstream], "")).await;
    for path in [
        "/%2F",
        "/a%2fb",
        "/a%5cb",
        "/a\\b",
        "/a%00",
        "/a;jsessionid=1",
        "/%zz",
        "/app/%C0%AE%C0%AE/admin",
        "/%E0%80%AF",
    ] {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n");
        let answer = raw_request(proxy.addr, request.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw_status(&answer), 400, "{path}: {answer}");
        assert!(
            !answer.contains("portcullis demo echo"),
            "{path} reached the upstream"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn no_route_is_404() {
    let upstream = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/only/", &[upstream], "")).await;
    let response = client().get(proxy.url("/elsewhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert!(body["request_id"].as_str().is_some());
    proxy.shutdown().await;
}

#[tokio::test]
async fn route_needing_identity_answers_401_with_bearer_challenge() {
    let upstream = echo_upstream().await;
    let routes = format!(
        "[[routes]]\nid = \"private\"\npath = \"/\"\nupstream = [\"{upstream}\"]\nauth = [\"session\", \"bearer\"]\n[routes.policy]\nallow = [{{ groups = [\"eng\"] }}]\n"
    );
    let proxy = start_proxy(&routes).await;
    let response = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn upstream_down_is_a_fast_502_with_request_id() {
    let down = closed_port().await;
    let proxy = start_proxy(&public_route("down", "/", &[down], "retries = 0")).await;
    let started = Instant::now();
    let response = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(response.status(), 502);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], id.as_str());
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "details leaked: {body}"
    );
    let html = client()
        .get(proxy.url("/x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 502);
    assert!(html.text().await.unwrap().contains("<html"));
    assert!(started.elapsed() < Duration::from_secs(5), "must not hang");
    proxy.shutdown().await;
}
