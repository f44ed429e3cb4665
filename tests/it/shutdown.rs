//! Graceful shutdown: in-flight requests finish, new connections are refused.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let slow = upstream(|_| async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        text(200, "finished")
    })
    .await;
    let proxy = start_proxy(&public_route("slow", "/", &[slow], "")).await;
    let url = proxy.url("/");
    let addr = proxy.addr;
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = tokio::spawn(proxy.shutdown());
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "finished");
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown finished")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener still accepting after shutdown"
    );
}
