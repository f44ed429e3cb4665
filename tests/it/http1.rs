//! The client side's own HTTP/1 loop through the real listener, on raw sockets: pipelining,
//! the handover to hyper in the middle of a connection, HTTP/1.0 and HEAD framing, and
//! request shapes that must never be served by the fast loop.

use std::time::Duration;

use http_body_util::BodyExt;

use crate::support::*;

/// An upstream answering `METHOD PATH BODY` (chunk-framed or sized, as hyper decides).
async fn telling_upstream() -> String {
    upstream(|req| async move {
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let told = format!("{method} {path} {}", String::from_utf8_lossy(&body));
        let mut response = text(200, told);
        response
            .headers_mut()
            .insert("x-upstream", http::HeaderValue::from_static("yes"));
        response
    })
    .await
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_across_the_handover() {
    let up = telling_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    // Two bodiless requests for the own loop, then one with a body (hyper takes the
    // connection with the bytes already read), then one more bodiless one (hyper's now).
    let pipelined = b"GET /one HTTP/1.1\r\nHost: gate.test\r\n\r\n\
        DELETE /two HTTP/1.1\r\nHost: gate.test\r\n\r\n\
        POST /three HTTP/1.1\r\nHost: gate.test\r\nContent-Length: 5\r\n\r\nhello\
        GET /four HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n";
    let answer = raw_request(proxy.addr, pipelined, Duration::from_secs(5)).await;
    assert_eq!(answer.matches("HTTP/1.1 200 OK").count(), 4, "{answer}");
    let order: Vec<usize> = [
        "GET /one ",
        "DELETE /two ",
        "POST /three hello",
        "GET /four ",
    ]
    .iter()
    .map(|needle| {
        answer
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}: {answer}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{answer}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn http10_and_head_are_framed_as_they_must_be() {
    let up = telling_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    // HTTP/1.0 without keep-alive: one answer, then the connection closes (read_to_end ends).
    let answer = raw_request(
        proxy.addr,
        b"GET /old HTTP/1.0\r\nHost: gate.test\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert!(answer.contains("connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("GET /old "), "{answer}");

    // HEAD: the upstream's length, no body; the next answer on the connection follows it.
    let answer = raw_request(
        proxy.addr,
        b"HEAD /h HTTP/1.1\r\nHost: gate.test\r\n\r\nGET /after HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let (head_answer, rest) = answer.split_once("\r\n\r\n").expect(&answer);
    assert!(head_answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(head_answer.contains("date: "), "{answer}");
    assert!(
        rest.starts_with("HTTP/1.1 200 OK"),
        "HEAD answered with a body: {answer}"
    );
    assert!(rest.ends_with("GET /after "), "{answer}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn smuggling_shaped_heads_are_never_served_by_the_fast_loop() {
    let up = telling_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    for head in [
        // Both framings: hyper decides (and never lets the second request ride in the body).
        &b"POST /x HTTP/1.1\r\nHost: gate.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n"[..],
        // A space before the colon, an obs-folded line, a bare LF inside a value.
        b"GET /x HTTP/1.1\r\nHost: gate.test\r\nContent-Length : 5\r\nConnection: close\r\n\r\nhello",
        b"GET /x HTTP/1.1\r\nHost: gate.test\r\nX-A: 1\r\n folded\r\nConnection: close\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: gate.test\r\nX-A: a\nb\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw_request(proxy.addr, head, Duration::from_secs(5)).await;
        let status = raw_status(&answer);
        assert!(
            status == 400 || status == 200 || status == 0,
            "{status}: {answer}"
        );
        // Whatever hyper answers, no request ever reached the upstream as `/smuggled`.
        assert!(!answer.contains("/smuggled"), "{answer}");
        if status == 200 {
            // Served as one request by hyper's strict parsing, never split by ours.
            assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer}");
        }
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_chunked_get_body_reaches_the_upstream() {
    // hyper's client drops a GET body of unknown length unless the framing is stated; a
    // search API that takes its query in a GET body would answer a different question.
    let up = telling_upstream().await;
    let proxy = start_proxy(&public_route("app", "/", &[up], "")).await;
    let request = b"GET /search HTTP/1.1\r\nHost: gate.test\r\nTransfer-Encoding: chunked\r\n\r\n\
        5\r\nquery\r\n0\r\n\r\n\
        GET /after HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\n\r\n";
    let answer = raw_request(proxy.addr, request, Duration::from_secs(5)).await;
    assert!(answer.contains("GET /search query"), "{answer}");
    assert!(answer.contains("GET /after "), "{answer}");
    // A sized one always did.
    let request = b"GET /search HTTP/1.1\r\nHost: gate.test\r\nContent-Length: 5\r\n\
        Connection: close\r\n\r\nquery";
    let answer = raw_request(proxy.addr, request, Duration::from_secs(5)).await;
    assert!(answer.contains("GET /search query"), "{answer}");
    proxy.shutdown().await;
}
