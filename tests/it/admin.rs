//! The admin listener: health, readiness, Prometheus metrics.

use crate::support::*;

#[tokio::test]
async fn health_ready_and_metrics() {
    let up = echo_upstream().await;
    let proxy = start_proxy(&public_route("metered", "/", &[up], "")).await;
    let admin = proxy.admin.expect("admin listener");
    let client = client();
    assert_eq!(
        client.get(proxy.url("/x")).send().await.unwrap().status(),
        200
    );
    let health = client
        .get(format!("http://{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = client
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("portcullis_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"metered\""), "{metrics}");
    assert!(
        metrics
            .contains("portcullis_request_duration_seconds_bucket{route=\"metered\",le=\"+Inf\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_request_duration_seconds_count{route=\"metered\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("portcullis_open_connections"), "{metrics}");
    // The admin listener never proxies.
    let not_proxied = client
        .get(format!("http://{admin}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(not_proxied.status(), 404);
    proxy.shutdown().await;
}
