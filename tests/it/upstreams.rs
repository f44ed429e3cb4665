//! Several upstreams: round robin, retries on connect failure, passive ejection, timeouts.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::support::*;

#[tokio::test]
async fn round_robin_spreads_requests() {
    let a = upstream(|_| async { text(200, "a") }).await;
    let b = upstream(|_| async { text(200, "b") }).await;
    let proxy = start_proxy(&public_route("rr", "/", &[a, b], "")).await;
    let client = client();
    let mut seen = Vec::new();
    for _ in 0..10 {
        seen.push(
            client
                .get(proxy.url("/"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    let a_count = seen.iter().filter(|s| *s == "a").count();
    assert_eq!(a_count, 5, "{seen:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn idempotent_request_is_retried_on_the_next_upstream() {
    let down = closed_port().await;
    let up = upstream(|_| async { text(200, "up") }).await;
    let proxy = start_proxy(&public_route("retry", "/", &[down, up], "retries = 1")).await;
    let client = client();
    for _ in 0..4 {
        let response = client.get(proxy.url("/")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "up");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn non_idempotent_request_is_not_retried() {
    let down = closed_port().await;
    let up = upstream(|_| async { text(200, "up") }).await;
    let proxy = start_proxy(&public_route(
        "noretry",
        "/",
        &[down, up],
        "retries = 3\neject_after = 100",
    ))
    .await;
    let client = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = client.post(proxy.url("/")).body("x").send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert!(
        statuses.contains(&502),
        "a POST to the dead upstream must fail: {statuses:?}"
    );
    assert!(statuses.contains(&200), "{statuses:?}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn failing_upstream_is_ejected() {
    let down = closed_port().await;
    let up = upstream(|_| async { text(200, "up") }).await;
    let proxy = start_proxy(&public_route(
        "eject",
        "/",
        &[down, up],
        "retries = 0\neject_after = 2\neject_for = \"60s\"",
    ))
    .await;
    let client = client();
    let mut failures = 0;
    for _ in 0..20 {
        if client.get(proxy.url("/")).send().await.unwrap().status() != 200 {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 2,
        "after 2 failures the dead upstream must be skipped"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn slow_upstream_times_out_with_504() {
    let slow = upstream(|_| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        text(200, "late")
    })
    .await;
    let proxy = start_proxy(&public_route(
        "slow",
        "/",
        &[slow],
        "response_timeout = \"300ms\"\nretries = 0",
    ))
    .await;
    let started = Instant::now();
    let response = client().get(proxy.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 504);
    assert!(started.elapsed() < Duration::from_secs(3));
    proxy.shutdown().await;
}

#[tokio::test]
async fn response_timeout_starts_after_the_upload() {
    let reader = body_reading_upstream().await;
    let proxy = start_proxy(&public_route(
        "upload",
        "/",
        &[reader],
        "response_timeout = \"300ms\"\nretries = 0",
    ))
    .await;
    // Ten chunks 100 ms apart: the upload alone takes three times the response timeout.
    let chunks = futures_util::stream::iter(0..10).then(|_| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"chunk"))
    });
    let response = client()
        .put(proxy.url("/"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "read all");
    proxy.shutdown().await;
}

/// Sockets to `port` in CLOSE_WAIT (the peer closed, we did not), from /proc/net/tcp.
fn close_wait_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let remote_port = fields
                .get(2)
                .and_then(|remote| remote.split(':').nth(1))
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            remote_port == Some(port) && fields.get(3) == Some(&"08")
        })
        .count()
}

#[tokio::test]
async fn idle_connections_the_upstream_closed_are_closed_without_a_new_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An upstream with a short keep-alive: it answers, then closes the idle connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                if stream.read(&mut buf).await.unwrap_or(0) > 0 {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            });
        }
    });
    let proxy = start_proxy(&public_route(
        "app",
        "/",
        &[format!("http://127.0.0.1:{port}")],
        "",
    ))
    .await;
    let response = client().get(proxy.url("/")).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        close_wait_to(port),
        1,
        "the pooled connection, closed by the upstream"
    );
    // The proxy stays idle; the periodic prune (every 5 s) must close it anyway.
    let started = Instant::now();
    while close_wait_to(port) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "CLOSE_WAIT socket kept by an idle proxy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.shutdown().await;
}
