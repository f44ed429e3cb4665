//! Bearer tokens through the whole proxy: the attack corpus (every token 401, no upstream
//! hit), scopes deciding access, the opt-in query parameter.

mod assertion;
mod attacks;
mod forward_auth;
pub mod keys;
mod provider;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{self, Proxy};

pub const ISS: &str = "https://idp.example";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn claims(scope: &str) -> Value {
    let now = now();
    json!({
        "iss": ISS, "aud": "api://billing", "sub": "billing-bot", "client_id": "billing-bot",
        "scope": scope, "iat": now, "exp": now + 300,
    })
}

/// An upstream that counts requests and answers 200.
pub async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let url = support::upstream(move |_req| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            support::text(200, "upstream")
        }
    })
    .await;
    (url, hits)
}

/// The issuer block and a bearer route (`/api/`, scope `billing.read` required) plus `extra`
/// route keys.
pub fn bearer_config(jwks_url: &str, upstream: &str, extra: &str) -> String {
    format!(
        r#"[[token_issuers]]
issuer = "{ISS}"
jwks_uri = "{jwks_url}"
audiences = ["api://billing"]
algorithms = ["RS256", "ES256"]
max_lifetime = "15m"
[[routes]]
id = "billing-api"
path = "/api/"
upstream = "{upstream}"
auth = ["bearer"]
{extra}
[routes.policy]
allow = [{{ id = "billing-bot", auth = ["bearer"], scopes = ["billing.read"] }}]
[[routes]]
id = "session-only"
path = "/app/"
upstream = "{upstream}"
auth = ["session"]
[routes.policy]
allow = [{{ auth = ["bearer"] }}]
"#
    )
}

pub struct Setup {
    pub proxy: Proxy,
    pub jwks: keys::JwksServer,
    pub hits: Arc<AtomicUsize>,
}

pub async fn setup(extra: &str) -> Setup {
    let jwks = keys::JwksServer::start(vec![keys::rsa().jwk("r1"), keys::p256().jwk("e1")]).await;
    let (upstream, hits) = counting_upstream().await;
    let proxy = support::start_proxy(&bearer_config(&jwks.url, &upstream, extra)).await;
    Setup { proxy, jwks, hits }
}

impl Setup {
    pub fn upstream_hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn scope_decides_allow_or_deny() {
    let s = setup("").await;
    let client = support::client();
    let good = keys::rsa().sign("r1", &claims("billing.read other"));
    let response = client
        .get(s.proxy.url("/api/invoices"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let es = keys::p256().sign("e1", &claims("billing.read"));
    let response = client
        .get(s.proxy.url("/api/x"))
        .bearer_auth(&es)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(s.upstream_hits(), 2);

    // Valid token, wrong scope: authenticated but not allowed -> 403.
    let weak = keys::rsa().sign("r1", &claims("billing.write"));
    let response = client
        .get(s.proxy.url("/api/x"))
        .bearer_auth(&weak)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // No token at all: 401 with a Bearer challenge, no invalid_token error.
    let response = client.get(s.proxy.url("/api/x")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(!challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(s.upstream_hits(), 2);
}

#[tokio::test]
async fn token_on_a_route_without_bearer_is_ignored() {
    let s = setup("").await;
    // Startup fetches the issuer's keys once in the background; wait for it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let baseline = s.jwks.hits();
    let good = keys::rsa().sign("r1", &claims("billing.read"));
    let response = support::client()
        .get(s.proxy.url("/app/"))
        .bearer_auth(&good)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    // Anonymous on a session route: 401 without invalid_token, and no JWKS fetch at all.
    assert_eq!(response.status(), 401);
    assert_eq!(s.upstream_hits(), 0);
    assert_eq!(s.jwks.hits(), baseline);
}

#[tokio::test]
async fn query_parameter_only_when_the_route_opts_in() {
    let good = keys::rsa().sign("r1", &claims("billing.read"));
    let s = setup("").await;
    let url = format!("{}?access_token={good}", s.proxy.url("/api/x"));
    let response = support::client().get(&url).send().await.unwrap();
    assert_eq!(
        response.status(),
        401,
        "not read from the query string by default"
    );
    assert_eq!(s.upstream_hits(), 0);

    let s = setup("bearer_query_param = \"access_token\"").await;
    let url = format!("{}?access_token={good}", s.proxy.url("/api/x"));
    let response = support::client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200, "opted in");
}

#[tokio::test]
async fn a_second_credential_beside_a_valid_token_is_401() {
    // The upstream receives every credential the client sent (pass_authorization, or the
    // query string forwarded as is) and may read another one than portcullis validated.
    let good = keys::rsa().sign("r1", &claims("billing.read"));
    let s = setup("pass_authorization = true\nbearer_query_param = \"access_token\"").await;
    let client = support::client();
    let url = s.proxy.url("/api/x");
    let response = client
        .get(&url)
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", "Bearer forged.admin.token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let twice = format!("{url}?access_token={good}&access_token=forged");
    assert_eq!(client.get(&twice).send().await.unwrap().status(), 401);
    let mixed = format!("{url}?access_token=forged");
    let response = client.get(&mixed).bearer_auth(&good).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(s.upstream_hits(), 0);
    // One credential, said once or the same both ways: served.
    let same = format!("{url}?access_token={good}");
    let response = client.get(&same).bearer_auth(&good).send().await.unwrap();
    assert_eq!(response.status(), 200);
}
