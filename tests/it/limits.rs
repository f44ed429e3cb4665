//! Limits on what clients may send: body size, header size and count, slow heads.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

#[tokio::test]
async fn body_over_the_limit_is_413_before_the_upstream_sees_it() {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let up = upstream(move |_| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async { text(200, "ok") }
    })
    .await;
    let proxy = start_proxy(&public_route("small", "/", &[up], "max_body = \"1KiB\"")).await;
    let response = client()
        .post(proxy.url("/"))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    let ok = client()
        .post(proxy.url("/"))
        .body(vec![b'x'; 512])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    proxy.shutdown().await;
}

#[tokio::test]
async fn chunked_body_over_the_limit_is_refused() {
    let up = body_reading_upstream().await;
    let proxy = start_proxy(&public_route("small", "/", &[up], "max_body = \"1KiB\"")).await;
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..8)
        .map(|_| Ok(bytes::Bytes::from(vec![b'x'; 1024])))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let response = client().post(proxy.url("/")).body(body).send().await;
    // An error means the connection was cut: also a refusal.
    if let Ok(response) = response {
        assert_ne!(response.status(), 200, "an 8 KiB body passed a 1 KiB limit");
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn huge_or_too_many_headers_are_refused() {
    let up = echo_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: gate.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let answer = raw_request(proxy.addr, huge.as_bytes(), Duration::from_secs(5)).await;
    let status = raw_status(&answer);
    assert!(status == 431 || status == 0, "huge head answered {status}");
    let mut many = String::from("GET / HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw_request(proxy.addr, many.as_bytes(), Duration::from_secs(5)).await;
    let status = raw_status(&answer);
    assert!(
        status == 431 || status == 0,
        "500 headers answered {status}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let up = echo_upstream().await;
    let config = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\nheader_read_timeout = \"1s\"\n{}",
        public_route("app", "/", &[up], "")
    );
    let proxy = start_proxy(&config).await;
    // Connects and never sends a byte.
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(read.is_ok(), "silent connection still open after 5s");
    assert!(started.elapsed() < Duration::from_secs(4));
    // Sends half a head and stalls.
    let started = Instant::now();
    let mut slow = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: gate")
        .await
        .unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "slow head still open after 5s");
    assert!(started.elapsed() < Duration::from_secs(4));
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_malformed_or_stalled_request_body_is_the_clients_error_not_the_upstreams() {
    let up = body_reading_upstream().await;
    let extra = "idle_timeout = \"1s\"\neject_after = 1\nretries = 0";
    let proxy = start_proxy(&public_route("app", "/", &[up], extra)).await;
    let head = "POST / HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n";
    // Pinned behaviour 8: bad input never yields a 5xx. These were 502s, and each counted
    // against the upstream: with `eject_after = 1`, any client could eject it.
    let cases = [
        (
            "a bad chunk size",
            "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            "an oversized chunk extension",
            &format!(
                "Transfer-Encoding: chunked\r\n\r\n1;{}\r\na\r\n0\r\n\r\n",
                "e".repeat(100_000)
            ),
            400,
        ),
        (
            "a stalled body",
            "Content-Length: 100\r\n\r\n0123456789",
            408,
        ),
    ];
    for (what, rest, expected) in cases {
        let request = format!("{head}{rest}");
        let answer = raw_request(proxy.addr, request.as_bytes(), Duration::from_secs(10)).await;
        assert_eq!(raw_status(&answer), expected, "{what}: {answer}");
        let ok = client()
            .post(proxy.url("/"))
            .body("fine")
            .send()
            .await
            .unwrap();
        assert_eq!(
            ok.status(),
            200,
            "after {what}, the upstream was not ejected"
        );
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off() {
    let up = large_body_upstream(None).await;
    let config = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\nsend_timeout = \"1s\"\n{}",
        public_route("app", "/", &[up], "")
    );
    let proxy = start_proxy(&config).await;
    // Asks for the large response, then reads nothing for well past send_timeout (a
    // slow-read attack); then reads what is left.
    let mut reader = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: gate.test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the connection was still open after 10s");
    assert!(
        out.len() < LARGE_CHUNK * LARGE_CHUNKS,
        "the whole response waited for a client that stopped reading"
    );
    // A client that reads gets everything, however long it takes overall.
    let mut steady = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    steady
        .write_all(b"GET /big HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    steady.read_to_end(&mut out).await.unwrap();
    assert!(out.len() > LARGE_CHUNK * LARGE_CHUNKS, "{}", out.len());
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_upstream_that_stops_reading_the_body_is_a_504_not_a_hang() {
    // Reads the request head, then nothing: the upload fills the socket buffers and stops.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head).await;
            held.push(stream);
        }
    });
    let extra =
        "idle_timeout = \"1s\"\nresponse_timeout = \"60s\"\nmax_body = \"1GiB\"\nretries = 0";
    // A short grace keeps the test's shutdown short should anything still hold on.
    let config = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\nshutdown_grace = \"1s\"\n{}",
        public_route("app", "/", &[up], extra)
    );
    let proxy = start_proxy(&config).await;
    let mut client = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let size: usize = 256 * 1024 * 1024;
    client
        .write_all(
            format!("POST /upload HTTP/1.1\r\nHost: gate.test\r\nContent-Length: {size}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let (mut reader, mut writer) = client.into_split();
    // The client keeps sending as long as anyone reads.
    let sender = tokio::spawn(async move {
        let chunk = vec![b'u'; 64 * 1024];
        for _ in 0..size / chunk.len() {
            if writer.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), reader.read(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer after 15s: the exchange hung");
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
    sender.abort();
    drop(reader);
    proxy.shutdown().await;
}
