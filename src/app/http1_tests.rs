use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{Method, Response, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::app::listener::{ConnInfo, ConnLimits, shared};

thread_local! {
    /// How many times `parse` ran on this thread.
    pub(super) static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Hands out its bytes one per read, as a client trickling its head would.
struct Trickle(Vec<u8>, usize);

impl tokio::io::AsyncRead for Trickle {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let at = self.1;
        if let Some(&byte) = self.0.get(at) {
            buf.put_slice(&[byte]);
            self.1 += 1;
        }
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_trickled_head_is_parsed_once_per_line_not_once_per_byte() {
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    head.extend(std::iter::repeat_n(b'a', 4000));
    head.extend_from_slice(b"\r\nAccept: */*\r\n\r\n");
    let mut io = Trickle(head, 0);
    let mut buf = BytesMut::new();
    let limits = ConnLimits {
        max_header_bytes: 64 * 1024,
        ..limits()
    };
    let never = std::future::pending::<()>();
    tokio::pin!(never);
    PARSES.with(|n| n.set(0));
    let read = read_head(&mut io, &mut buf, &limits, never.as_mut()).await;
    assert!(matches!(read, HeadRead::Head(_)));
    // Five lines, and the first byte (a TLS hello is handed over at once): not ~4,000.
    let parses = PARSES.with(std::cell::Cell::get);
    assert!(parses <= 8, "{parses} parses");
}

fn limits() -> ConnLimits {
    ConnLimits {
        header_read_timeout: Duration::from_secs(5),
        send_timeout: Duration::from_secs(5),
        max_header_bytes: 1024,
        max_headers: 8,
        max_connections: 16,
        shutdown_grace: Duration::from_secs(1),
    }
}

fn parsed(text: &str) -> (Parsed, BytesMut) {
    let mut buf = BytesMut::from(text);
    let parsed = parse(&mut buf, &limits());
    (parsed, buf)
}

fn head(text: &str) -> (Head, BytesMut) {
    match parsed(text) {
        (Parsed::Head(head), rest) => (head, rest),
        (Parsed::Partial, _) => panic!("partial: {text:?}"),
        (Parsed::Handover, _) => panic!("handed over: {text:?}"),
    }
}

fn is_handover(text: &str) -> bool {
    matches!(parsed(text).0, Parsed::Handover)
}

#[test]
fn a_simple_head_becomes_a_request_and_leaves_what_follows() {
    let (head, rest) = head(
        "GET /a/b?x=1 HTTP/1.1\r\nHost: gate.test\r\nAccept: */*\r\nX-Two: 1\r\nx-two: 2\r\n\r\nGET /next",
    );
    let req = &head.request;
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.uri().path(), "/a/b");
    assert_eq!(req.uri().query(), Some("x=1"));
    assert_eq!(req.version(), Version::HTTP_11);
    assert_eq!(req.headers()["host"], "gate.test");
    let twos: Vec<_> = req.headers().get_all("x-two").iter().collect();
    assert_eq!(twos, ["1", "2"]);
    assert!(head.keep_alive);
    assert_eq!(&rest[..], b"GET /next");
}

#[test]
fn connection_persistence_follows_the_version() {
    let (h, _) = head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(!h.keep_alive);
    let (h, _) = head("GET / HTTP/1.0\r\n\r\n");
    assert!(!h.keep_alive);
    assert_eq!(h.version, Version::HTTP_10);
    let (h, _) = head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.keep_alive);
    let (h, _) = head("GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\n\r\n");
    assert!(!h.keep_alive);
}

#[test]
fn an_incomplete_head_waits_for_more_until_the_size_limit() {
    assert!(matches!(
        parsed("GET / HTTP/1.1\r\nHost: a").0,
        Parsed::Partial
    ));
    let long = format!("GET / HTTP/1.1\r\nX-Long: {}", "a".repeat(2000));
    assert!(
        is_handover(&long),
        "over max_header_bytes: hyper answers 431"
    );
    let complete_but_long = format!("GET / HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(2000));
    assert!(is_handover(&complete_but_long));
}

#[test]
fn anything_but_a_plain_bodiless_request_goes_to_hyper() {
    for text in [
        // Bodies, whatever their framing (hyper judges CL/TE conflicts).
        "POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        // Upgrades and expectations.
        "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nConnection: keep-alive, upgrade\r\n\r\n",
        "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        "CONNECT gate.test:443 HTTP/1.1\r\n\r\n",
        // HTTP/2 prior knowledge.
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        // Malformed heads: hyper's 400.
        "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        "GET /a b HTTP/1.1\r\n\r\n",
        "GET / HTTP/3.0\r\n\r\n",
        "\x16\x03\x01\x02\x00",
        // Too many fields (limit 8): hyper's 431.
        "GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\ni: 1\r\n\r\n",
    ] {
        assert!(is_handover(text), "{text:?} was not handed over");
    }
}

fn encoded(response: Response<Body>, version: Version, head: bool) -> (String, Framing, bool) {
    let mut out = Vec::new();
    let (parts, body) = response.into_parts();
    let (framing, keep) = encode_head(&mut out, &parts, &body, version, head, true);
    (String::from_utf8(out).unwrap(), framing, keep)
}

#[test]
fn heads_state_their_framing() {
    let (text, framing, keep) =
        encoded(Response::new(Body::from("hello")), Version::HTTP_11, false);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("content-length: 5\r\n") && text.contains("date: "),
        "{text}"
    );
    assert!(text.ends_with("\r\n\r\n"));
    assert_eq!((framing, keep), (Framing::Length(5), true));

    let stream = || {
        Body::from_stream(futures_util::stream::iter([Ok::<_, std::io::Error>(
            Bytes::from("x"),
        )]))
    };
    let (text, framing, keep) = encoded(Response::new(stream()), Version::HTTP_11, false);
    assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
    assert_eq!((framing, keep), (Framing::Chunked, true));

    let (text, framing, keep) = encoded(Response::new(stream()), Version::HTTP_10, false);
    assert!(
        text.contains("connection: close\r\n") && !text.contains("chunked"),
        "{text}"
    );
    assert_eq!((framing, keep), (Framing::Close, false));

    // An upstream's HEAD answer keeps its Content-Length and sends no body.
    let head = Response::builder()
        .header("content-length", "1234")
        .header("transfer-encoding", "chunked")
        .body(Body::empty())
        .unwrap();
    let (text, framing, _) = encoded(head, Version::HTTP_11, true);
    assert!(
        text.contains("content-length: 1234\r\n") && !text.contains("chunked"),
        "{text}"
    );
    assert_eq!(framing, Framing::None);

    // A HEAD answer built here (a page, not an upstream's) states its GET's length.
    let (text, framing, _) = encoded(Response::new(Body::from("hello")), Version::HTTP_11, true);
    assert!(text.contains("content-length: 5\r\n"), "{text}");
    assert_eq!(framing, Framing::None);

    let no_content = Response::builder().status(204).body(Body::empty()).unwrap();
    let (text, framing, _) = encoded(no_content, Version::HTTP_11, false);
    assert!(text.starts_with("HTTP/1.1 204 No Content\r\n") && !text.contains("content-length"));
    assert_eq!(framing, Framing::None);
    // Nor when an upstream sent one (RFC 9110 8.6), to GET or HEAD.
    for head in [false, true] {
        let no_content = Response::builder()
            .status(204)
            .header("content-length", "5")
            .body(Body::empty())
            .unwrap();
        let (text, framing, _) = encoded(no_content, Version::HTTP_11, head);
        assert!(!text.contains("content-length"), "{text}");
        assert_eq!(framing, Framing::None);
    }
    // A 304 keeps it: it states the length of the representation not sent.
    let not_modified = Response::builder()
        .status(304)
        .header("content-length", "5")
        .body(Body::empty())
        .unwrap();
    let (text, _, _) = encoded(not_modified, Version::HTTP_11, false);
    assert!(text.contains("content-length: 5\r\n"), "{text}");

    let closing = Response::builder()
        .header("connection", "close")
        .header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
        .body(Body::empty())
        .unwrap();
    let (text, _, keep) = encoded(closing, Version::HTTP_10, false);
    assert!(!keep);
    assert_eq!(text.matches("date: ").count(), 1, "{text}");
    assert_eq!(text.matches("connection: ").count(), 1, "{text}");

    let odd = Response::builder().status(599).body(Body::empty()).unwrap();
    assert!(
        encoded(odd, Version::HTTP_11, false)
            .0
            .starts_with("HTTP/1.1 599 \r\n")
    );
}

async fn body_bytes(body: Body, framing: Framing) -> (Vec<u8>, bool) {
    let mut body = body;
    let mut sink = Vec::new();
    let mut out = b"HEAD\r\n".to_vec();
    let clean = write_body(&mut sink, &mut out, &mut body, framing)
        .await
        .unwrap();
    (sink, clean)
}

#[tokio::test]
async fn bodies_are_framed_and_checked_against_their_length() {
    let chunks = || {
        Body::from_stream(futures_util::stream::iter(
            ["ab", "", "cde"].map(|s| Ok::<_, std::io::Error>(Bytes::from(s))),
        ))
    };
    let (wire, clean) = body_bytes(chunks(), Framing::Chunked).await;
    assert_eq!(
        String::from_utf8(wire).unwrap(),
        "HEAD\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
    );
    assert!(clean);
    let (wire, clean) = body_bytes(chunks(), Framing::Length(5)).await;
    assert_eq!(wire, b"HEAD\r\nabcde");
    assert!(clean);
    let (_, clean) = body_bytes(chunks(), Framing::Length(4)).await;
    assert!(!clean, "longer than declared");
    let (_, clean) = body_bytes(chunks(), Framing::Length(9)).await;
    assert!(!clean, "shorter than declared");
    let (wire, clean) = body_bytes(chunks(), Framing::Close).await;
    assert_eq!(wire, b"HEAD\r\nabcde");
    assert!(!clean, "a close-delimited body ends the connection");
    let failing = Body::from_stream(futures_util::stream::iter([
        Ok(Bytes::from("ab")),
        Err(std::io::Error::other("upstream reset")),
    ]));
    let (wire, clean) = body_bytes(failing, Framing::Chunked).await;
    assert!(!clean);
    assert!(
        !String::from_utf8(wire).unwrap().contains("0\r\n\r\n"),
        "no terminating chunk"
    );
    let big = Body::from(vec![b'x'; 3 * WRITE_CHUNK]);
    let (wire, clean) = body_bytes(big, Framing::Length(3 * WRITE_CHUNK as u64)).await;
    assert_eq!(wire.len(), 6 + 3 * WRITE_CHUNK);
    assert!(clean);
}

fn echo_router() -> SharedRouter {
    shared(
        Router::new().fallback(|req: http::Request<Body>| async move {
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            format!("{} {}", req.method(), req.uri())
        }),
    )
}

fn info() -> ConnInfo {
    ConnInfo {
        peer: "127.0.0.1:1".parse().unwrap(),
        tls: false,
    }
}

#[tokio::test]
async fn serves_pipelined_requests_in_order_then_hands_over_the_rest() {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let (_stop_tx, stop) = watch::channel(false);
    let router = echo_router();
    let serving = tokio::spawn(async move {
        match serve(server, info(), &router, &limits(), &stop).await {
            Ended::Handover(mut rest) => {
                let mut tail = vec![0u8; 64];
                let n = rest.read(&mut tail).await.unwrap();
                Some(tail[..n].to_vec())
            }
            Ended::Closed => None,
        }
    });
    client
        .write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nHEAD /two HTTP/1.1\r\nHost: a\r\n\r\nPOST /three HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
        .await
        .unwrap();
    let tail = serving.await.unwrap().expect("the POST is handed over");
    assert_eq!(tail, b"POST /three HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    let mut answers = vec![0u8; 4096];
    let n = client.read(&mut answers).await.unwrap();
    let answers = String::from_utf8_lossy(&answers[..n]).into_owned();
    let one = answers.find("GET /one").expect(&answers);
    let two = answers.rfind("HTTP/1.1 200 OK").unwrap();
    assert!(one < two, "{answers}");
    assert!(
        !answers.contains("HEAD /two"),
        "HEAD answered with a body: {answers}"
    );
}

#[tokio::test]
async fn a_client_that_leaves_cancels_its_request_and_shutdown_closes_idle_connections() {
    let router = echo_router();
    let (mut client, server) = tokio::io::duplex(4096);
    let (_stop_tx, stop) = watch::channel(false);
    let route = router.clone();
    let serving = tokio::spawn(async move {
        matches!(
            serve(server, info(), &route, &limits(), &stop).await,
            Ended::Closed
        )
    });
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(client);
    let closed = tokio::time::timeout(Duration::from_secs(5), serving).await;
    assert!(closed.expect("the slow request was not cancelled").unwrap());

    let (mut client, server) = tokio::io::duplex(4096);
    let (stop_tx, stop) = watch::channel(false);
    let serving = tokio::spawn(async move {
        matches!(
            serve(server, info(), &router, &limits(), &stop).await,
            Ended::Closed
        )
    });
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = client.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).ends_with("GET /a"));
    stop_tx.send(true).unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), serving).await;
    assert!(
        closed
            .expect("the idle connection stayed open on shutdown")
            .unwrap()
    );
}

#[tokio::test]
async fn trailers_go_only_to_clients_that_asked_and_never_framing_ones() {
    let (h, _) = head("GET / HTTP/1.1\r\nHost: a\r\nTE: gzip, Trailers\r\n\r\n");
    assert!(h.trailers);
    let (h, _) = head("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(!h.trailers);
    let with_trailers = || {
        let mut fields = http::HeaderMap::new();
        fields.insert("grpc-status", "0".parse().unwrap());
        fields.insert("content-length", "999".parse().unwrap());
        let frames = [
            Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from("ab"))),
            Ok(http_body::Frame::trailers(fields)),
        ];
        Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    };
    let (wire, clean) = body_bytes(with_trailers(), Framing::ChunkedWithTrailers).await;
    assert!(clean);
    assert_eq!(
        String::from_utf8(wire).unwrap(),
        "HEAD\r\n2\r\nab\r\n0\r\ngrpc-status: 0\r\n\r\n"
    );
    let (wire, _) = body_bytes(with_trailers(), Framing::Chunked).await;
    assert_eq!(
        String::from_utf8(wire).unwrap(),
        "HEAD\r\n2\r\nab\r\n0\r\n\r\n"
    );
}

#[test]
fn heads_with_more_fields_than_the_stack_table_parse_on_the_heap() {
    let limits = ConnLimits {
        max_headers: 200,
        max_header_bytes: 64 * 1024,
        ..limits()
    };
    let mut text = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..150 {
        text.push_str(&format!("X-F{i}: {i}\r\n"));
    }
    text.push_str("\r\n");
    let mut buf = BytesMut::from(text.as_str());
    match parse(&mut buf, &limits) {
        Parsed::Head(head) => {
            assert_eq!(head.request.headers().len(), 151);
            assert_eq!(head.request.headers()["x-f149"], "149");
        }
        _ => panic!("150 fields under a limit of 200 were not parsed"),
    }
    // One over the limit: hyper answers 431.
    let mut over = String::from("GET / HTTP/1.1\r\n");
    for i in 0..201 {
        over.push_str(&format!("X-F{i}: {i}\r\n"));
    }
    over.push_str("\r\n");
    let mut buf = BytesMut::from(over.as_str());
    assert!(matches!(parse(&mut buf, &limits), Parsed::Handover));
}
