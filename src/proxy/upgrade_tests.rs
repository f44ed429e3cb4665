//! Upgrade passthrough end to end: a raw client, a front listener running `forward`, and an
//! upstream that switches to a byte echo.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::proxy::{RouteProxy, forward};

use crate::proxy::test_support::*;

/// An upstream that switches to a byte echo after a 101.
async fn echo_upgrade_upstream() -> SocketAddr {
    serve(|mut req: Request<Incoming>| async move {
        let asked = req.headers().get("upgrade").cloned();
        let connection = req.headers().get("connection").cloned();
        if asked.as_ref().is_none_or(|v| v != "websocket")
            || connection.is_none_or(|v| v != "upgrade")
        {
            return Response::builder().status(400).body(Body::empty()).unwrap();
        }
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let mut io = TokioIo::new(on_upgrade.await.unwrap());
            let mut buf = [0u8; 1024];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => io.write_all(&buf[..n]).await.unwrap(),
                }
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Body::empty())
            .unwrap()
    })
    .await
}

/// A front listener that runs [`forward`] the way the app's gateway will.
async fn front(proxy: Arc<RouteProxy>) -> SocketAddr {
    serve(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
        async move {
            let path = req.uri().path().to_owned();
            match forward(permit(), &proxy, ctx(&path, None), req.map(Body::new)).await {
                Ok(resp) => resp,
                Err(e) => Response::builder()
                    .status(e.status())
                    .body(Body::empty())
                    .unwrap(),
            }
        }
    })
    .await
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).await.unwrap(),
            1,
            "connection closed mid-head"
        );
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn an_upgrade_is_tunnelled_both_ways() {
    let upstream = echo_upgrade_upstream().await;
    let front = front(Arc::new(proxy(route(&[format!("http://{upstream}")])))).await;
    let mut stream = TcpStream::connect(front).await.unwrap();
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    for message in [&b"ping"[..], b"a longer second message"] {
        stream.write_all(message).await.unwrap();
        let mut back = vec![0u8; message.len()];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, message);
    }
}

#[tokio::test]
async fn a_plain_request_to_an_upgrade_upstream_is_not_switched() {
    let upstream = echo_upgrade_upstream().await;
    let front = front(Arc::new(proxy(route(&[format!("http://{upstream}")])))).await;
    let mut stream = TcpStream::connect(front).await.unwrap();
    // Upgrade without `Connection: upgrade` is hop-by-hop noise and is dropped.
    stream
        .write_all(b"GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}
