//! The real, independent OpenID provider for integration tests: spawns `node
//! tests/oidc/server.mjs` (npm `oidc-provider`, see that file for what it serves) on an
//! ephemeral 127.0.0.1 port, waits for its `READY <issuer>` line and kills it on drop. It only
//! drives the provider (tokens, client registration, key rotation; the browser-side login and
//! logout flows are in [`crate::oidc_login`]); it never calls portcullis.
//!
//! Without `node` or `tests/oidc/node_modules`, [`OidcProvider::start`] prints a skip reason and
//! returns `None`, except under `CI=true`, where a missing provider is a failure.

// Helpers for the login tests of other modules too; not every one is used by every branch.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The confidential web client (authorization code + refresh, client_secret_basic).
pub const WEB_CLIENT_ID: &str = "portcullis";
pub const WEB_CLIENT_SECRET: &str = "portcullis-test-secret";
/// The service client for client_credentials (scopes billing.read billing.write ledger.read).
pub const SERVICE_CLIENT_ID: &str = "billing-bot";
pub const SERVICE_CLIENT_SECRET: &str = "billing-bot-test-secret";
/// Resource indicators the provider knows: access tokens for them are `at+jwt` JWTs.
/// `api://billing` (scopes billing.read billing.write) is signed ES256, `api://ledger`
/// (ledger.read) RS256.
pub const BILLING_RESOURCE: &str = "api://billing";
pub const LEDGER_RESOURCE: &str = "api://ledger";

/// How to configure the provider's web client and tokens.
#[derive(Debug, Clone)]
pub struct OidcProviderOptions {
    /// The relying party's callback URL(s), e.g. `http://127.0.0.1:PORT/.portcullis/callback`.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Where the provider POSTs back-channel `logout_token`s (`sid` always included).
    pub backchannel_logout_uri: Option<String>,
    /// Access token lifetime (user and client_credentials tokens alike).
    pub access_ttl: Duration,
    pub id_token_ttl: Duration,
    /// Extra client metadata objects, merged by `client_id` into the defaults.
    pub extra_clients: Vec<Value>,
    /// Extra resource servers: `{"api://x": {"scope": "x.read", "alg": "RS256"}}`.
    pub resources: Value,
    /// Keys file to reuse across restarts; None: a fresh file in the provider's temp dir.
    pub keys_file: Option<PathBuf>,
}

impl Default for OidcProviderOptions {
    fn default() -> Self {
        OidcProviderOptions {
            redirect_uris: vec!["http://127.0.0.1/.portcullis/callback".to_owned()],
            post_logout_redirect_uris: vec!["http://127.0.0.1/".to_owned()],
            backchannel_logout_uri: None,
            access_ttl: Duration::from_secs(300),
            id_token_ttl: Duration::from_secs(3600),
            extra_clients: Vec::new(),
            resources: json!({}),
            keys_file: None,
        }
    }
}

/// A running `oidc-provider`, killed when dropped.
pub struct OidcProvider {
    issuer: Url,
    http: reqwest::Client,
    child: Child,
    keys_file: PathBuf,
    stderr_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn project_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// None (with a printed reason) when the provider cannot run here; a panic under CI=true.
fn unavailable(reason: &str) -> Option<OidcProvider> {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but the OpenID provider cannot run: {reason}");
    }
    eprintln!("skipping: {reason}");
    None
}

fn web_client(options: &OidcProviderOptions) -> Value {
    let mut client = json!({
        "client_id": WEB_CLIENT_ID,
        "redirect_uris": options.redirect_uris,
        "post_logout_redirect_uris": options.post_logout_redirect_uris,
    });
    if let Some(uri) = &options.backchannel_logout_uri {
        client["backchannel_logout_uri"] = json!(uri);
    }
    client
}

impl OidcProvider {
    /// Starts the provider; None when node or the npm packages are missing (outside CI).
    pub async fn start(options: OidcProviderOptions) -> Option<OidcProvider> {
        crate::support::init();
        let dir = project_dir().join("tests/oidc");
        if !dir.join("node_modules/oidc-provider").is_dir() {
            return unavailable("tests/oidc/node_modules missing (run `npm ci` in tests/oidc)");
        }
        let node_ok = std::process::Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !node_ok {
            return unavailable("`node` is not installed");
        }
        let temp = tempfile::tempdir().unwrap();
        let keys_file = options
            .keys_file
            .clone()
            .unwrap_or_else(|| temp.path().join("keys.json"));
        let stderr_file = temp.path().join("stderr.log");
        let mut clients = vec![web_client(&options)];
        clients.extend(options.extra_clients.iter().cloned());
        let config = json!({ "clients": clients, "resources": options.resources });
        let mut child = Command::new("node")
            .arg(dir.join("server.mjs"))
            .arg(config.to_string())
            .current_dir(&dir)
            .env("PORT", "0")
            .env("KEYS_FILE", &keys_file)
            .env(
                "ACCESS_TTL",
                options.access_ttl.as_secs().max(1).to_string(),
            )
            .env(
                "ID_TOKEN_TTL",
                options.id_token_ttl.as_secs().max(1).to_string(),
            )
            .env_remove("ISSUER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn node");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(issuer) = line.strip_prefix("READY ") {
                    return Some(issuer.trim().to_owned());
                }
            }
            None
        })
        .await;
        let issuer = match ready {
            Ok(Some(issuer)) => issuer,
            _ => panic!(
                "oidc-provider did not print READY; stderr:\n{}",
                std::fs::read_to_string(&stderr_file).unwrap_or_default()
            ),
        };
        // Keep draining stdout so a late write never meets a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Some(OidcProvider {
            issuer: Url::parse(&issuer).unwrap(),
            http: crate::support::client(),
            child,
            keys_file,
            stderr_file,
            _dir: temp,
        })
    }

    /// The issuer, e.g. `http://127.0.0.1:41393` (no trailing slash).
    pub fn issuer(&self) -> &str {
        self.issuer.as_str().trim_end_matches('/')
    }

    /// An absolute URL on the provider.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer(), path)
    }

    pub fn client_id(&self) -> &'static str {
        WEB_CLIENT_ID
    }

    pub fn client_secret(&self) -> &'static str {
        WEB_CLIENT_SECRET
    }

    /// Where this provider persists its signing keys (pass it as `keys_file` to a restart).
    pub fn keys_file(&self) -> &Path {
        &self.keys_file
    }

    /// What the provider logged on stderr so far (for assertion messages).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_file).unwrap_or_default()
    }

    /// The process id (to kill it from a test that checks the relying party's behaviour when
    /// the provider is down; dropping the value kills it too).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The discovery document.
    pub async fn discovery(&self) -> Value {
        self.get_json("/.well-known/openid-configuration").await
    }

    /// The `kid`s currently published in the JWKS, in order.
    pub async fn jwks_kids(&self) -> Vec<String> {
        let jwks = self.get_json("/jwks").await;
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| key["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert!(response.status().is_success(), "GET {path}: {response:?}");
        response.json().await.unwrap()
    }

    /// A client_credentials JWT access token (`typ: at+jwt`, `aud` = `resource`) for the
    /// service client `billing-bot`.
    pub async fn client_credentials_token(&self, scope: &str, resource: &str) -> String {
        let response = self
            .client_credentials(SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET, scope, resource)
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "client_credentials failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The raw token endpoint answer for a client_credentials request (for error cases).
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        scope: &str,
        resource: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(client_id, Some(secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", resource),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Token endpoint call as the web client; returns (status, JSON body).
    pub async fn token_request(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/token"))
            .basic_auth(WEB_CLIENT_ID, Some(WEB_CLIENT_SECRET))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Adds new signing keys (ES256 and RS256, new kids) first in the JWKS; old keys stay
    /// published. Returns the kids after rotation, newest first.
    pub async fn rotate_keys(&self) -> Vec<String> {
        let response = self.test_post("/__test/rotate-keys").await;
        let body: Value = response.json().await.unwrap();
        serde_json::from_value(body["kids"].clone()).unwrap()
    }

    /// Makes the provider forget every session, grant and token: the next refresh is
    /// answered `invalid_grant`.
    pub async fn forget_grants(&self) {
        self.test_post("/__test/forget-grants").await;
    }

    /// POSTs to a body-less test endpoint, which must answer 200.
    async fn test_post(&self, path: &str) -> reqwest::Response {
        let response = self.http.post(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        response
    }

    /// Re-registers the web client with new URIs (when the relying party's port is known only
    /// after the provider started, since portcullis needs the issuer in its config).
    pub async fn set_web_client(&self, options: &OidcProviderOptions) {
        self.update_clients(&[web_client(options)]).await;
    }

    /// Merges client metadata (by `client_id`) into the provider's clients, in place.
    pub async fn update_clients(&self, clients: &[Value]) {
        let response = self
            .http
            .post(self.url("/__test/clients"))
            .json(clients)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "client update refused: {body}");
    }
}

/// The decoded (unverified) header and claims of a JWT, for assertions.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = || -> Value {
        let part = parts.next().expect("JWT part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let header = decode();
    let claims = decode();
    (header, claims)
}
