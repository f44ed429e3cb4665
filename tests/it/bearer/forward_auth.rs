//! `/.portcullis/auth` for an existing ingress: direct questions (Traefik headers), the
//! untrusted-peer refusal, and real nginx with `auth_request`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{claims, keys};
use crate::support;

/// A bearer route and a public route, with loopback as the trusted ingress.
async fn proxy(trusted: &str) -> (support::Proxy, keys::JwksServer) {
    let jwks = keys::JwksServer::start(vec![keys::rsa().jwk("r1")]).await;
    let config = format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\ntrusted_proxies = [\"{trusted}\"]\n{}\n[[routes]]\nid = \"open\"\npath = \"/public/\"\nupstream = \"http://127.0.0.1:9\"\nauth = [\"none\"]\n[routes.policy]\nallow = [{{ public = true }}]\n[[routes]]\nid = \"office\"\npath = \"/office/\"\nupstream = \"http://127.0.0.1:9\"\nauth = [\"none\"]\n[routes.policy]\nallow = [{{ ip = [\"10.0.0.0/8\"] }}]\n",
        super::bearer_config(&jwks.url, "http://127.0.0.1:9", "")
    );
    (support::start_proxy(&config).await, jwks)
}

#[tokio::test]
async fn answers_traefik_style_questions() {
    let (proxy, _jwks) = proxy("127.0.0.1/32").await;
    let client = support::client();
    let ask = |uri: &str, token: Option<&str>| {
        let mut req = client
            .get(proxy.url("/.portcullis/auth"))
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-uri", uri)
            .header("x-forwarded-host", "billing.corp.example");
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
    };
    let good = keys::rsa().sign("r1", &claims("billing.read"));
    let response = ask("/api/invoices", Some(&good)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-portcullis-user"], "billing-bot");
    assert!(response.headers().contains_key("x-portcullis-decision-id"));
    assert!(
        response
            .headers()
            .contains_key("x-portcullis-jwt-assertion")
    );

    let weak = keys::rsa().sign("r1", &claims("other"));
    assert_eq!(
        ask("/api/invoices", Some(&weak)).await.unwrap().status(),
        403
    );
    let response = ask("/api/invoices", None).await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(
        ask("/api/invoices", Some("junk")).await.unwrap().status(),
        401
    );
    let response = ask("/public/page", None).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        !response
            .headers()
            .contains_key("x-portcullis-jwt-assertion")
    );
    assert_eq!(ask("/nowhere", None).await.unwrap().status(), 403);
    assert_eq!(ask("/api/%2e%2e%2fx%5c", None).await.unwrap().status(), 400);
    // The method is not guessed, and is held to the gateway's rules.
    let with_method = |method: &'static str| {
        client
            .get(proxy.url("/.portcullis/auth"))
            .header("x-forwarded-method", method)
            .header("x-forwarded-uri", "/public/page")
    };
    assert_eq!(with_method("GET").send().await.unwrap().status(), 200);
    assert_eq!(with_method("delete").send().await.unwrap().status(), 400);
    assert_eq!(with_method("TRACE").send().await.unwrap().status(), 403);
    let response = client
        .get(proxy.url("/.portcullis/auth"))
        .header("x-forwarded-uri", "/public/page")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "no method");
    // A trusted peer that does not say what it is asking about.
    let response = client
        .get(proxy.url("/.portcullis/auth"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn untrusted_peers_get_403() {
    let (proxy, _jwks) = proxy("10.0.0.0/8").await;
    let good = keys::rsa().sign("r1", &claims("billing.read"));
    let response = support::client()
        .get(proxy.url("/.portcullis/auth"))
        .header("x-forwarded-uri", "/api/invoices")
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(!response.headers().contains_key("x-portcullis-user"));
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The README's nginx snippet, with test ports. One process (`master_process off`): killing
/// a master would leave its worker running after the test.
fn nginx_conf(
    dir: &std::path::Path,
    listen: u16,
    portcullis: std::net::SocketAddr,
    upstream: &str,
) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{listen};
    location = /_portcullis_auth {{
      internal;
      proxy_pass http://{portcullis}/.portcullis/auth;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
    location / {{
      auth_request /_portcullis_auth;
      auth_request_set $portcullis_user $upstream_http_x_portcullis_user;
      auth_request_set $portcullis_email $upstream_http_x_portcullis_email;
      auth_request_set $portcullis_groups $upstream_http_x_portcullis_groups;
      auth_request_set $portcullis_assertion $upstream_http_x_portcullis_jwt_assertion;
      auth_request_set $portcullis_decision $upstream_http_x_portcullis_decision_id;
      proxy_set_header X-Portcullis-User $portcullis_user;
      proxy_set_header X-Portcullis-Email $portcullis_email;
      proxy_set_header X-Portcullis-Groups $portcullis_groups;
      proxy_set_header X-Portcullis-Jwt-Assertion $portcullis_assertion;
      proxy_set_header X-Portcullis-Decision-Id $portcullis_decision;
      proxy_set_header Authorization "";
      proxy_pass {upstream};
    }}
  }}
}}
"#
    )
}

#[tokio::test]
async fn real_nginx_auth_request() {
    let nginx_bin = "/usr/sbin/nginx";
    if !std::path::Path::new(nginx_bin).exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("nginx is required in CI");
        }
        eprintln!("skipping: nginx not installed");
        return;
    }
    let (proxy, _jwks) = proxy("127.0.0.1/32").await;
    let upstream = support::echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir.path(), port, proxy.addr, &upstream)).unwrap();
    let child = Command::new(nginx_bin)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _nginx = Nginx(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = support::client();
    let mut ready = false;
    for _ in 0..50 {
        if client.get(format!("{base}/public/x")).send().await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    assert!(ready, "nginx did not start: {}", log());

    let good = keys::rsa().sign("r1", &claims("billing.read"));
    let response = client
        .get(format!("{base}/api/invoices"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", log());
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["headers"]["x-portcullis-user"], "billing-bot");
    assert!(
        echo["headers"]["x-portcullis-jwt-assertion"]
            .as_str()
            .unwrap()
            .len()
            > 100
    );
    assert!(echo["headers"].get("authorization").is_none());

    let weak = keys::rsa().sign("r1", &claims("other"));
    let response = client
        .get(format!("{base}/api/invoices"))
        .bearer_auth(&weak)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "denied");
    let response = client
        .get(format!("{base}/api/invoices"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "anonymous");
    let response = client
        .get(format!("{base}/public/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "public");
    // A client cannot smuggle identity past nginx: the header is overwritten.
    let response = client
        .get(format!("{base}/public/page"))
        .header("x-portcullis-user", "admin")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_ne!(echo["headers"]["x-portcullis-user"], "admin");
    // Nor any other identity header portcullis answers with: each is overwritten (an empty
    // value sends none).
    let response = client
        .get(format!("{base}/public/page"))
        .header("x-portcullis-email", "ceo@corp.example")
        .header("x-portcullis-groups", "admins")
        .header("x-portcullis-decision-id", "forged")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = response.json().await.unwrap();
    assert!(
        echo["headers"].get("x-portcullis-email").is_none(),
        "{echo}"
    );
    assert!(
        echo["headers"].get("x-portcullis-groups").is_none(),
        "{echo}"
    );
    assert_ne!(echo["headers"]["x-portcullis-decision-id"], "forged");

    // An ip rule sees the client nginx saw, not an address the client wrote: without
    // `X-Forwarded-For $proxy_add_x_forwarded_for` the auth request carried the client's own
    // header, which portcullis believes from a trusted peer. The client comes from
    // 127.0.0.2, outside trusted_proxies (127.0.0.1/32).
    let outside = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let response = outside
        .get(format!("{base}/office/page"))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "spoofed X-Forwarded-For");
}
