//! `portcullis demo`: everything on embedded defaults for a first look. It starts a built-in
//! echo upstream (it answers with what it received, so the headers portcullis adds are
//! visible), the built-in development OpenID provider, and the proxy with a few routes of
//! different policies, sessions and the audit trail in SQLite under a data folder; then it
//! prints the URLs and the users.
//! The echo upstream also backs `portcullis upstream`, the fast upstream the benchmark uses.
//! [`dev_provider`] is the built-in development OpenID provider the demo logs users in with
//! (alice, bob, carol; no passwords). Nothing here is reachable from `serve`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use url::Url;

use self::data::DataFolder;
use self::dev_provider::DevProvider;
use crate::config;

mod data;
pub mod dev_provider;
mod dev_tokens;

/// The embedded demo config; the `{PLACEHOLDERS}` are filled in at start.
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

/// The filled-in config, written to the data folder.
const CONFIG_FILE: &str = "demo.toml";

/// What `portcullis demo` is started with.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the proxy listens (`--listen`); a fixed port, because the provider must know
    /// the callback URL before the proxy starts.
    pub listen: SocketAddr,
    /// The data folder (`--data`): sessions, audit trail, the provider's client secret.
    pub data: PathBuf,
}

/// The origin a browser reaches the demo at: the listen address, with a wildcard address
/// replaced by loopback (a browser cannot visit `0.0.0.0`, and cookies are per host).
pub fn public_url(listen: SocketAddr) -> anyhow::Result<Url> {
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => IpAddr::from([127, 0, 0, 1]),
        ip if ip.is_unspecified() => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(Url::parse(&format!(
        "http://{}",
        SocketAddr::new(host, listen.port())
    ))?)
}

/// The embedded config filled in for this start.
struct Filled<'a> {
    listen: SocketAddr,
    public_url: &'a Url,
    upstream: SocketAddr,
    provider: &'a DevProvider,
    secret_file: &'a std::path::Path,
    data: &'a DataFolder,
}

fn demo_config_text(f: &Filled<'_>) -> String {
    let values = [
        ("{LISTEN}", f.listen.to_string()),
        ("{PUBLIC_URL}", origin(f.public_url)),
        ("{UPSTREAM}", format!("http://{}", f.upstream)),
        ("{ISSUER}", origin(&f.provider.issuer)),
        ("{CLIENT_ID}", f.provider.client_id.clone()),
        ("{SECRET_FILE}", f.secret_file.display().to_string()),
        ("{SESSIONS_URL}", f.data.sqlite_url("sessions.db")),
        ("{AUDIT_URL}", f.data.sqlite_url("audit.db")),
        (
            "{SPOOL_DIR}",
            f.data.path().join("audit-spool").display().to_string(),
        ),
    ];
    values
        .iter()
        .fold(DEMO_CONFIG.to_owned(), |text, (name, value)| {
            text.replace(name, &data::toml_escape(value))
        })
}

/// `http://host:port` without the trailing `/` `Url` adds: the issuer must match the
/// provider's `iss` byte for byte.
fn origin(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}

/// Runs the demo until Ctrl-C.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let mut signals = crate::app::ShutdownSignal::install();
    if options.listen.port() == 0 {
        anyhow::bail!(
            "demo needs a fixed port (e.g. --listen 127.0.0.1:8080): the login callback URL is registered before the proxy starts"
        );
    }
    let public_url = public_url(options.listen)?;
    let data = DataFolder::create(&options.data)?;

    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_addr = upstream.local_addr()?;
    tokio::spawn(echo_upstream(upstream, false));

    let provider = dev_provider::start_dev_provider(
        public_url.join("/.portcullis/callback")?,
        public_url.join("/.portcullis/logged-out")?,
    )
    .await?;
    let secret_file = data.write_secret("dev-provider-client-secret", &provider.client_secret)?;
    let text = demo_config_text(&Filled {
        listen: options.listen,
        public_url: &public_url,
        upstream: upstream_addr,
        provider: &provider,
        secret_file: &secret_file,
        data: &data,
    });
    let config = config::load_str(&text, std::env::vars())
        .map_err(|errors| anyhow::anyhow!("embedded demo config is invalid:\n{errors}"))?;
    // For `portcullis audit query --config`; it names the secret by reference only.
    let config_file = data.write_private(CONFIG_FILE, text.as_bytes())?;
    let running = crate::app::start(config).await?;
    print_banner(&public_url, &provider, &config_file, running.admin_addr);
    signals.wait().await;
    running.shutdown().await;
    drop(provider);
    Ok(())
}

fn print_banner(
    public_url: &Url,
    provider: &DevProvider,
    config_file: &std::path::Path,
    admin: Option<SocketAddr>,
) {
    let base = origin(public_url);
    println!();
    println!("portcullis demo is running (development only: never expose it)");
    println!();
    println!(
        "  {base}/              public: proxied to the echo upstream (shows your identity headers once logged in)"
    );
    println!("  {base}/private/      group eng: alice may pass, bob and carol get 403");
    println!("  {base}/sales/        group sales: bob may pass");
    println!(
        "  {base}/api/          bearer token with scope demo.read (no token issuer in the demo: 401)"
    );
    println!("  {base}/.portcullis/whoami               who you are logged in as");
    println!("  {base}/.portcullis/logout               log out (here and at the provider)");
    if let Some(admin) = admin {
        println!("  http://{admin}/metrics   Prometheus metrics (admin listener)");
    }
    println!();
    println!(
        "  development OpenID provider: {} (no passwords: pick a user)",
        origin(&provider.issuer)
    );
    for user in dev_provider::DEV_USERS {
        let groups = if user.groups.is_empty() {
            "no groups".to_owned()
        } else {
            format!("groups {}", user.groups.join(", "))
        };
        println!("    {:<6} {:<22} {groups}", user.username, user.email);
    }
    println!();
    let data = config_file.parent().unwrap_or(config_file);
    println!("  sessions and audit trail (SQLite) in {}", data.display());
    println!(
        "  read the trail: portcullis audit query --config {}",
        config_file.display()
    );
    println!();
    println!("  log in at {base}/private/ as alice");
    println!("  try: curl -s {base}/hello?x=1");
    println!();
    println!("Ctrl-C or SIGTERM stops it.");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuditUrl, SessionStoreKind};

    #[test]
    fn public_url_is_the_listen_address_with_loopback_for_wildcards() {
        let url = |text: &str| public_url(text.parse().unwrap()).unwrap().to_string();
        assert_eq!(url("127.0.0.1:8080"), "http://127.0.0.1:8080/");
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3/");
    }

    #[tokio::test]
    async fn the_filled_config_wires_provider_sessions_audit_and_routes() {
        let temp = tempfile::tempdir().unwrap();
        let data = DataFolder::create(&temp.path().join("d\"q")).unwrap();
        let public = public_url("127.0.0.1:8080".parse().unwrap()).unwrap();
        let provider = dev_provider::start_dev_provider(
            public.join("/.portcullis/callback").unwrap(),
            public.join("/.portcullis/logged-out").unwrap(),
        )
        .await
        .unwrap();
        let secret_file = data
            .write_secret("secret", &provider.client_secret)
            .unwrap();
        let text = demo_config_text(&Filled {
            listen: "127.0.0.1:8080".parse().unwrap(),
            public_url: &public,
            upstream: "127.0.0.1:9".parse().unwrap(),
            provider: &provider,
            secret_file: &secret_file,
            data: &data,
        });
        let config = config::load_str(&text, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.server.public_url.as_str(), "http://127.0.0.1:8080/");
        let [demo] = &config.providers[..] else {
            panic!("one provider expected")
        };
        assert_eq!(demo.issuer, origin(&provider.issuer));
        assert_eq!(demo.client_id, provider.client_id);
        let secret = demo
            .client_secret
            .as_ref()
            .unwrap()
            .resolve()
            .await
            .unwrap();
        assert_eq!(secret, provider.client_secret);
        let sessions = format!("sqlite://{}", data.path().join("sessions.db").display());
        assert_eq!(config.session.store, SessionStoreKind::Sqlite(sessions));
        let audit = config.audit.as_ref().unwrap();
        let audit_url = format!("sqlite://{}", data.path().join("audit.db").display());
        assert_eq!(audit.url, AuditUrl::Sqlite(audit_url));
        assert_eq!(audit.spool_dir, data.path().join("audit-spool"));
        let routes: Vec<String> = config.routes.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(routes, ["public", "private", "sales", "api"]);
        let left = text
            .match_indices('{')
            .any(|(i, _)| text[i + 1..].starts_with(|c: char| c.is_ascii_uppercase()));
        assert!(!left, "a placeholder was left: {text}");
    }

    #[tokio::test]
    async fn port_zero_is_refused_before_anything_starts() {
        let temp = tempfile::tempdir().unwrap();
        let options = DemoOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            data: temp.path().join("never"),
        };
        let error = run(options).await.unwrap_err();
        assert!(error.to_string().contains("fixed port"), "{error}");
        assert!(!temp.path().join("never").exists());
    }
}
