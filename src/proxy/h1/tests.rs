//! The own client against scripted upstreams on raw TCP: what it writes, how it frames what
//! comes back, and when it reuses, retries or refuses a connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;
use crate::proxy::target::Target;

/// One scripted upstream connection: reads request heads and answers each with the next
/// reply; after the last reply it closes (or, with `linger`, waits for the client to close).
struct Script {
    replies: Vec<&'static [u8]>,
    linger: bool,
}

/// Serves scripts, one per accepted connection, in order. Returns the port, the number of
/// connections accepted, and the request heads seen.
async fn upstream(scripts: Vec<Script>) -> (u16, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (accepted.clone(), heads.clone());
    tokio::spawn(async move {
        for script in scripts {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for reply in script.replies {
                    let head = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            break String::from_utf8(head).unwrap();
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    seen.lock().unwrap().push(head);
                    if stream.write_all(reply).await.is_err() {
                        return;
                    }
                }
                if script.linger {
                    let mut rest = Vec::new();
                    let _ = stream.read_to_end(&mut rest).await;
                }
            });
        }
    });
    (port, accepted, heads)
}

fn pool(port: u16) -> Pool {
    Pool::new("127.0.0.1", port, Duration::from_secs(2), 1)
}

fn headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("up.example"));
    h.insert("x-portcullis-user", HeaderValue::from_static("alice"));
    h
}

async fn get(
    pool: &Pool,
    method: Method,
    target: &str,
) -> Result<(StatusCode, HeaderMap, Vec<u8>), String> {
    let h = headers();
    let response = pool
        .send(
            0,
            Outgoing {
                method: &method,
                target: Target::whole(target),
                headers: &h,
                added: &Added::default(),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.map_err(|e| e.to_string())?;
    let mut headers = parts.headers;
    if let Some(trailers) = collected.trailers() {
        for (name, value) in trailers {
            headers.append(name, value.clone());
        }
    }
    Ok((status, headers, collected.to_bytes().to_vec()))
}

fn keep(replies: Vec<&'static [u8]>) -> Script {
    Script {
        replies,
        linger: true,
    }
}

#[tokio::test]
async fn writes_the_request_head_and_reuses_the_connection() {
    let (port, accepted, heads) = upstream(vec![keep(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ])])
    .await;
    let pool = pool(port);
    let (status, _, body) = get(&pool, Method::GET, "/a?b=c").await.unwrap();
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"hello"[..]));
    let (_, trailers, body) = get(&pool, Method::GET, "/two").await.unwrap();
    assert_eq!(body, b"abc");
    assert_eq!(trailers["x-t"], "1");
    let (status, _, body) = get(&pool, Method::DELETE, "/three").await.unwrap();
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for all three"
    );
    let heads = heads.lock().unwrap().clone();
    assert_eq!(
        heads[0],
        "GET /a?b=c HTTP/1.1\r\nhost: up.example\r\nx-portcullis-user: alice\r\n\r\n"
    );
    assert!(heads[2].starts_with("DELETE /three HTTP/1.1\r\n"));
}

#[tokio::test]
async fn a_close_delimited_body_is_read_to_the_end_and_not_reused() {
    let (port, accepted, _) = upstream(vec![
        Script {
            replies: vec![b"HTTP/1.1 200 OK\r\n\r\nuntil the end"],
            linger: false,
        },
        keep(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ]),
        keep(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
    ])
    .await;
    let pool = pool(port);
    assert_eq!(
        get(&pool, Method::GET, "/").await.unwrap().2,
        b"until the end"
    );
    assert_eq!(get(&pool, Method::GET, "/").await.unwrap().2, b"ok");
    assert_eq!(get(&pool, Method::GET, "/").await.unwrap().2, b"ok");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "close framing and Connection: close end reuse"
    );
}

#[tokio::test]
async fn bytes_after_the_body_end_reuse() {
    let (port, accepted, _) = upstream(vec![
        keep(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"]),
        keep(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
    ])
    .await;
    let pool = pool(port);
    assert_eq!(get(&pool, Method::GET, "/").await.unwrap().2, b"ok");
    assert_eq!(get(&pool, Method::GET, "/").await.unwrap().2, b"ok");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a connection with stray bytes is dropped"
    );
}

#[tokio::test]
async fn head_responses_have_no_body_whatever_they_say() {
    let (port, accepted, _) = upstream(vec![keep(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ])])
    .await;
    let pool = pool(port);
    let (_, headers, body) = get(&pool, Method::HEAD, "/").await.unwrap();
    assert!(body.is_empty());
    assert_eq!(headers["content-length"], "100");
    assert_eq!(get(&pool, Method::GET, "/").await.unwrap().2, b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_truncated_body_is_an_error_not_a_short_success() {
    let (port, _, _) = upstream(vec![
        Script {
            replies: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
            linger: false,
        },
        Script {
            replies: vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"],
            linger: false,
        },
    ])
    .await;
    let pool = pool(port);
    assert!(get(&pool, Method::GET, "/").await.is_err());
    assert!(get(&pool, Method::GET, "/").await.is_err());
}

#[tokio::test]
async fn ambiguous_framing_is_refused() {
    let (port, _, _) = upstream(vec![
        keep(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk",
        ]),
        keep(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ]),
        keep(vec![
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        ]),
        keep(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokEVIL\r\n0\r\n\r\n",
        ]),
    ])
    .await;
    let pool = pool(port);
    let first = get(&pool, Method::GET, "/").await.unwrap_err();
    assert!(first.contains("Content-Length"), "{first}");
    let second = get(&pool, Method::GET, "/").await.unwrap_err();
    assert!(second.contains("Transfer-Encoding"), "{second}");
    let third = get(&pool, Method::GET, "/").await.unwrap_err();
    assert!(third.contains("101"), "{third}");
    assert!(get(&pool, Method::GET, "/").await.is_err());
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let (port, _, _) = upstream(vec![keep(vec![
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ])])
    .await;
    let (status, headers, body) = get(&pool(port), Method::GET, "/").await.unwrap();
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"ok"[..]));
    assert!(!headers.contains_key("link"));
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_is_not_used() {
    // The first connection answers once and closes: the pool must notice before reuse.
    let (port, accepted, _) = upstream(vec![
        Script {
            replies: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
            linger: false,
        },
        keep(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
    ])
    .await;
    let pool = pool(port);
    assert_eq!(get(&pool, Method::POST, "/").await.unwrap().2, b"ok");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A POST is not resent, so this only passes if the dead connection was never tried.
    assert_eq!(get(&pool, Method::POST, "/").await.unwrap().2, b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn pruning_closes_idle_connections_the_upstream_closed() {
    let (port, _, _) = upstream(vec![
        Script {
            replies: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
            linger: false,
        },
        keep(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
    ])
    .await;
    // The first connection's upstream closes after answering, the second's stays open.
    let closing = pool(port);
    assert_eq!(get(&closing, Method::GET, "/").await.unwrap().2, b"ok");
    let live = pool(port);
    assert_eq!(get(&live, Method::GET, "/").await.unwrap().2, b"ok");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(closing.slots[0].idle_count(), 1);
    assert_eq!(closing.prune(), 1, "the upstream closed it: pruned");
    assert_eq!(closing.slots[0].idle_count(), 0);
    assert_eq!(live.prune(), 0, "a live idle connection stays");
    assert_eq!(live.slots[0].idle_count(), 1);
}

#[tokio::test]
async fn a_request_that_meets_a_closing_connection_is_resent_only_if_idempotent() {
    // Each connection takes one request, then reads the next head and closes without an
    // answer: the race a keep-alive timeout on the upstream produces.
    let answer_once: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (port, accepted, _) = upstream(vec![
        Script {
            replies: vec![answer_once, b""],
            linger: false,
        },
        Script {
            replies: vec![answer_once, b""],
            linger: false,
        },
        keep(vec![answer_once]),
    ])
    .await;
    let pool = pool(port);
    assert_eq!(get(&pool, Method::GET, "/").await.unwrap().2, b"ok");
    // The GET meets the closing connection and goes again on the second one.
    assert_eq!(get(&pool, Method::GET, "/").await.unwrap().2, b"ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    // The POST meets the second one closing and fails rather than risk a double submit.
    let error = get(&pool, Method::POST, "/").await.unwrap_err();
    assert!(error.contains("closed"), "{error}");
}

#[tokio::test]
async fn connect_failures_are_told_apart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let h = headers();
    let error = pool(port)
        .send(
            0,
            Outgoing {
                method: &Method::GET,
                target: Target::whole("/"),
                headers: &h,
                added: &Added::default(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(error, H1Error::Connect(_)), "{error}");
}

#[tokio::test]
async fn a_target_that_could_break_the_request_line_is_refused() {
    let h = headers();
    for target in ["/a b", "/a\r\nX: y", "a", "/\x7f", "/a#frag"] {
        let error = pool(1)
            .send(
                0,
                Outgoing {
                    method: &Method::GET,
                    target: Target::whole(target),
                    headers: &h,
                    added: &Added::default(),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(error, H1Error::BadTarget), "{target:?}");
    }
}

#[tokio::test]
async fn a_large_body_streams_through() {
    static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let big = BIG.get_or_init(|| {
        let mut reply = b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n".to_vec();
        reply.extend((0..3_000_000u32).map(|i| (i % 251) as u8));
        reply
    });
    let (port, _, _) = upstream(vec![keep(vec![big.as_slice()])]).await;
    let (_, _, body) = get(&pool(port), Method::GET, "/").await.unwrap();
    assert_eq!(body.len(), 3_000_000);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[tokio::test]
async fn a_trickled_response_head_is_parsed_once_per_line() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request).await;
        let mut reply = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        reply.extend(std::iter::repeat_n(b'a', 3000));
        reply.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
        for piece in reply.chunks(50) {
            if stream.write_all(piece).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    });
    head::PARSES.with(|n| n.set(0));
    let (status, _, body) = get(&pool(port), Method::GET, "/").await.unwrap();
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"ok".as_slice())
    );
    // Three lines; not one parse per segment (about 60 of them).
    let parses = head::PARSES.with(std::cell::Cell::get);
    assert!(parses <= 6, "{parses} parses");
}
