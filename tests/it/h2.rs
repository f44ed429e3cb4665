//! HTTP/2 from clients: h2c prior knowledge on the plain listener, ALPN `h2` over TLS.

use crate::support::*;

/// A client that speaks HTTP/2 without TLS from the first byte (h2c prior knowledge).
fn h2c_client() -> reqwest::Client {
    init();
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

#[tokio::test]
async fn h2c_prior_knowledge_is_proxied() {
    let up = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    let client = h2c_client();
    let response = client.get(proxy.url("/h2/path?q=1")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let echo = echo_json(response).await;
    assert_eq!(echo["path"], "/h2/path");
    assert_eq!(echo["query"], "q=1");
    assert_eq!(
        echo["version"], "HTTP/1.1",
        "the upstream side speaks HTTP/1.1"
    );
    assert!(echo["headers"]["host"].as_str().is_some());
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_h2_clients_cookie_fields_reach_an_http1_upstream_as_one() {
    // RFC 9113 8.2.3: HTTP/2 may carry each cookie in its own field; before HTTP/1.1 they
    // must be joined with "; ". HTTP/1.1 servers read one Cookie field (some only the first).
    let up =
        upstream(|req| async move { text(200, field_values(req.headers(), "cookie").join(" | ")) })
            .await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    let client = h2c_client();
    let response = client
        .get(proxy.url("/"))
        .header("cookie", "a=1")
        .header("cookie", "portcullis=not-for-the-upstream")
        .header("cookie", "b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.text().await.unwrap(), "a=1; b=2");
    let response = client
        .get(proxy.url("/"))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "a=1; b=2");
    proxy.shutdown().await;
}

#[tokio::test]
async fn tls_termination_negotiates_h2_and_http1() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["gate.test".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(
        dir.path().join("key.pem"),
        certified.signing_key.serialize_pem(),
    )
    .unwrap();
    let up = echo_upstream().await;
    let config = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\npublic_url = \"https://gate.test\"\n\
         tls = {{ cert = \"file:{cert}\", key = \"file:{key}\" }}\n{routes}",
        cert = dir.path().join("cert.pem").display(),
        key = dir.path().join("key.pem").display(),
        routes = public_route("app", "/", &[up], ""),
    );
    let proxy = start_proxy(&config).await;
    let root = reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap();
    let url = format!("https://gate.test:{}/secure", proxy.addr.port());

    let h2 = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root.clone())
        .resolve("gate.test", proxy.addr)
        .build()
        .unwrap();
    let response = h2.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    let echo = echo_json(response).await;
    assert_eq!(echo["headers"]["x-forwarded-proto"], "https");

    let h1 = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(root)
        .resolve("gate.test", proxy.addr)
        .http1_only()
        .build()
        .unwrap();
    let response = h1.get(&url).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert_eq!(response.status(), 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upstreams_204_with_a_length_reaches_an_h2_client() {
    // An upstream that states Content-Length on a 204 (RFC 9110 8.6: must not): passed on
    // over HTTP/2, the client resets the stream (content-length with no DATA) and the answer
    // is lost. Written by hand: hyper's own server never sends it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    let response = h2c_client()
        .delete(proxy.url("/item"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.headers().get("content-length").is_none());
    // Over HTTP/1.1 too, through either upstream client (a body goes through hyper's).
    for request in [
        client().delete(proxy.url("/item")),
        client().post(proxy.url("/item")).body("x"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 204);
        assert!(response.headers().get("content-length").is_none());
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_h2_client_that_grants_no_window_does_not_hold_the_upstream() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    let released = Arc::new(AtomicBool::new(false));
    let up = large_body_upstream(Some(released.clone())).await;
    let config = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\nsend_timeout = \"1s\"\nshutdown_grace = \"1s\"\n{}",
        public_route("app", "/", &[up], "")
    );
    let proxy = start_proxy(&config).await;
    // The smallest windows HTTP/2 allows, never released: the response head arrives, and
    // 64 KiB of body, then no window for the rest. The connection stays up (pings answered).
    let client = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .http2_adaptive_window(false)
        .http2_initial_stream_window_size(65_535)
        .http2_initial_connection_window_size(65_535)
        .build()
        .unwrap();
    let response = client.get(proxy.url("/big")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !released.load(Ordering::SeqCst) {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream response was still held 10 s after send_timeout (1 s)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(response);
    // A client that reads gets everything.
    let body = h2c_client()
        .get(proxy.url("/big"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), LARGE_CHUNK * LARGE_CHUNKS);
    proxy.shutdown().await;
}
