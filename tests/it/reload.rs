//! Config reload on the real binary: a valid change is applied (file change and SIGHUP), an
//! invalid file is rejected while the old config keeps serving, and an open keep-alive
//! connection picks the new config up on its next request.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::*;

fn config_text(port: u16, routes: &str) -> String {
    format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\n{routes}"
    )
}

async fn status(url: &str) -> u16 {
    client().get(url).send().await.unwrap().status().as_u16()
}

/// Polls until `url` answers `want` (reload is asynchronous), for at most 10 s.
async fn eventually(url: &str, want: u16) {
    let started = Instant::now();
    loop {
        let got = status(url).await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}: still {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real binary serving a config file with route `a`; `two` adds route `b`.
struct Reloadable {
    binary: Binary,
    port: u16,
    path: std::path::PathBuf,
    one: String,
    two: String,
    _dir: tempfile::TempDir,
}

impl Reloadable {
    async fn start() -> Reloadable {
        let upstream = echo_upstream().await;
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portcullis.toml");
        let one = public_route("a", "/a/", std::slice::from_ref(&upstream), "");
        let two = one.clone() + &public_route("b", "/b/", std::slice::from_ref(&upstream), "");
        std::fs::write(&path, config_text(port, &one)).unwrap();
        let binary = Binary::spawn(&["serve", "--config", path.to_str().unwrap()], port).await;
        Reloadable {
            binary,
            port,
            path,
            one,
            two,
            _dir: dir,
        }
    }

    /// Replaces the config file's routes.
    fn write(&self, routes: &str) {
        std::fs::write(&self.path, config_text(self.port, routes)).unwrap();
    }

    /// Asks the binary to reload now, without waiting for its poll.
    fn sighup(&self) {
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &self.binary.0.id().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
    }
}

#[tokio::test]
async fn valid_changes_apply_and_invalid_ones_are_rejected() {
    let gate = Reloadable::start().await;
    let base = format!("http://127.0.0.1:{}", gate.port);
    assert_eq!(status(&format!("{base}/a/x")).await, 200);
    assert_eq!(status(&format!("{base}/b/x")).await, 404);

    // A file change adds a route.
    gate.write(&gate.two);
    eventually(&format!("{base}/b/x"), 200).await;

    // An invalid file is rejected: the running config keeps serving both routes.
    gate.write(&(gate.two.clone() + "[[routes]]\nid = \"BAD\"\n"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status(&format!("{base}/a/x")).await, 200);
    assert_eq!(status(&format!("{base}/b/x")).await, 200);

    // SIGHUP applies a valid file (route b removed) without waiting for the poll.
    gate.write(&gate.one);
    gate.sighup();
    eventually(&format!("{base}/b/x"), 404).await;
    assert_eq!(status(&format!("{base}/a/x")).await, 200);
}

/// One GET on an open keep-alive connection; the answer's status. The body is read to its
/// Content-Length, so the connection is ready for the next request.
async fn status_on(conn: &mut BufReader<TcpStream>, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).await.unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = None;
    loop {
        let mut field = String::new();
        conn.read_line(&mut field).await.unwrap();
        if field == "\r\n" {
            break;
        }
        if let Some((name, value)) = field.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse().unwrap());
        }
    }
    let mut body = vec![0; length.expect("a Content-Length on every answer")];
    conn.read_exact(&mut body).await.unwrap();
    status
}

#[tokio::test]
async fn a_keep_alive_connection_sees_a_reload_on_its_next_request() {
    // The HTTP/1 loop caches the router per connection: a reload must still reach an open
    // connection's next request, not only new connections.
    let gate = Reloadable::start().await;
    let mut conn = BufReader::new(TcpStream::connect(("127.0.0.1", gate.port)).await.unwrap());
    assert_eq!(status_on(&mut conn, "/a/x").await, 200);
    assert_eq!(status_on(&mut conn, "/b/x").await, 404);

    gate.write(&gate.two);
    gate.sighup();
    let started = Instant::now();
    while status_on(&mut conn, "/b/x").await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the open connection still misses the reloaded route"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status_on(&mut conn, "/a/x").await, 200);
}
