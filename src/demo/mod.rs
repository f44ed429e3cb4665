//! `portcullis demo`: everything on embedded defaults for a first look. It starts a built-in
//! echo upstream (it answers with what it received, so the headers portcullis adds are
//! visible) and the proxy with a few routes of different policies, then prints the URLs.
//! The echo upstream also backs `portcullis upstream`, the fast upstream the benchmark uses.
//! [`dev_provider`] is the built-in development OpenID provider the demo logs users in with
//! (alice, bob, carol; no passwords). Nothing here is reachable from `serve`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;

use crate::config;

pub mod dev_provider;
mod dev_tokens;

/// The embedded demo config; `{UPSTREAM}`, `{LISTEN}` and `{ADMIN}` are filled in at start.
const DEMO_CONFIG: &str = include_str!("../../config/demo.toml");

/// Serves the echo upstream on `listener` forever. With `fixed`, every answer is `200 ok\n`
/// (a benchmark peer that costs almost nothing); otherwise the request is echoed as JSON.
pub async fn echo_upstream(listener: TcpListener, fixed: bool) {
    let builder = Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, Infallible>(if fixed { fixed_answer() } else { echo(req) })
            });
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn fixed_answer() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok\n")));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    response
}

fn echo(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                serde_json::Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            )
        })
        .collect();
    let body = serde_json::json!({
        "upstream": "portcullis demo echo",
        "method": req.method().as_str(),
        "path": req.uri().path(),
        "query": req.uri().query(),
        "version": format!("{:?}", req.version()),
        "headers": headers,
    });
    let text = serde_json::to_string_pretty(&body).unwrap_or_default() + "\n";
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// Runs the demo until Ctrl-C.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    tokio::spawn(echo_upstream(upstream, false));

    let text = DEMO_CONFIG
        .replace("{UPSTREAM}", &format!("http://{upstream_addr}"))
        .replace("{LISTEN}", &listen.to_string());
    let config = config::load_str(&text, std::env::vars())
        .map_err(|errors| anyhow::anyhow!("embedded demo config is invalid:\n{errors}"))?;
    let running = crate::app::start(config).await?;
    let base = format!("http://{}", running.addr);
    println!();
    println!("portcullis demo is running (development only: never expose it)");
    println!();
    println!("  {base}/              public: proxied to the echo upstream");
    println!(
        "  {base}/private/      needs a logged-in user in group eng (401 for now: login comes with OIDC)"
    );
    println!("  {base}/api/          needs a bearer token with scope demo.read (401 for now)");
    if let Some(admin) = running.admin_addr {
        println!("  http://{admin}/metrics   Prometheus metrics (admin listener)");
    }
    println!();
    println!("  try: curl -s {base}/hello?x=1");
    println!();
    println!("Ctrl-C stops it.");
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    Ok(())
}
