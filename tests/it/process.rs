//! The real binary as users run it: `demo`, and `serve` stopping on SIGTERM.

use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn demo_serves_the_public_route_and_guards_the_others() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let demo = Binary::spawn(&["demo", "--listen", &listen], port).await;
    let client = client();
    let echo = echo_json(
        client
            .get(format!("http://{listen}/hello?x=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(echo["upstream"], "portcullis demo echo");
    assert_eq!(echo["path"], "/hello");
    let private = client
        .get(format!("http://{listen}/private/"))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 401);
    drop(demo);
}

#[tokio::test]
async fn serve_stops_promptly_on_sigterm() {
    let upstream = echo_upstream().await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\n{}",
            public_route("app", "/", &[upstream], "")
        ),
    )
    .unwrap();
    let mut binary = Binary::spawn(&["serve", "--config", config.to_str().unwrap()], port).await;
    // An idle keep-alive connection must not hold the shutdown up.
    let idle = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &binary.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(exit) = binary.0.try_wait().unwrap() {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(
            // Well under the 8 s grace: nothing was in flight, so nothing should be waited for.
            started.elapsed() < Duration::from_secs(3),
            "still running 3s after SIGTERM with only an idle connection open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(idle);
}
