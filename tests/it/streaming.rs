//! Bodies stream both ways with flat memory: a large upload and download pass through the
//! real binary while its peak RSS stays small. Size: `PORTCULLIS_TEST_STREAM_MB` (default
//! 1024, i.e. 1 GiB each way).

use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::support::*;

const CHUNK: usize = 64 * 1024;

fn stream_bytes() -> u64 {
    std::env::var("PORTCULLIS_TEST_STREAM_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1024)
        * 1024
        * 1024
}

/// Counts an uploaded body without keeping it; serves `/download` as a generated stream.
async fn byte_upstream() -> String {
    upstream(|req| async move {
        if req.uri().path() == "/download" {
            let total = stream_bytes();
            let chunk = Bytes::from(vec![b'd'; CHUNK]);
            let chunks = total / CHUNK as u64;
            let stream = futures_util::stream::iter(0..chunks)
                .map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone())));
            let mut response = hyper::Response::new(BodyExt::boxed(StreamBody::new(stream)));
            response
                .headers_mut()
                .insert("content-length", (chunks * CHUNK as u64).into());
            return response;
        }
        let mut body = req.into_body();
        let mut seen: u64 = 0;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => seen += frame.data_ref().map_or(0, |d| d.len() as u64),
                Err(_) => return text(400, "broken upload"),
            }
        }
        let answer = http_body_util::Full::new(Bytes::from(seen.to_string()))
            .map_err(|never| match never {})
            .boxed();
        hyper::Response::new(answer)
    })
    .await
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_with_flat_memory() {
    let upstream = byte_upstream().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("portcullis.toml");
    let mut file = std::fs::File::create(&config_path).unwrap();
    write!(
        file,
        "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\n{}",
        public_route("bytes", "/", &[upstream], "max_body = \"unlimited\"")
    )
    .unwrap();
    let binary = Binary::spawn(&["serve", "--config", config_path.to_str().unwrap()], port).await;
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();

    let total = stream_bytes();
    let chunk = Bytes::from(vec![b'u'; CHUNK]);
    let chunks = total / CHUNK as u64;
    let upload =
        futures_util::stream::iter(0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let response = client()
        .post(format!("{base}/upload"))
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        (chunks * CHUNK as u64).to_string()
    );

    let response = client()
        .get(format!("{base}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut received: u64 = 0;
    while let Some(piece) = stream.next().await {
        received += piece.unwrap().len() as u64;
    }
    assert_eq!(received, chunks * CHUNK as u64);

    let peak = peak_rss_kib(binary.0.id());
    println!(
        "streamed {} MiB each way in {:.1}s; portcullis peak RSS {} KiB",
        total / (1024 * 1024),
        started.elapsed().as_secs_f64(),
        peak
    );
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB is over 64 MiB");
}
