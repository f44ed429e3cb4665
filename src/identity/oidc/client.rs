//! One configured OpenID provider at run time: discovery (retried with backoff in the
//! background, so a provider that is down at startup never stops `serve`), the authorization
//! URL, the code exchange (exactly once, never retried: a replayed code revokes tokens at
//! certified providers), refresh, userinfo and the RP-initiated logout URL. Client
//! authentication is `client_secret_basic`, or `client_secret_post` when that is all the
//! provider supports.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use url::Url;

use super::jwt::{Claims, allowed_algorithms};
use super::pkce::s256_challenge;
use crate::config::ProviderConfig;
use crate::identity::discovery;
use crate::identity::jwks::{Jwks, JwksOptions};

/// How long any call to a provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The discovery document fields a relying party uses: [`discovery::ProviderMetadata`]
/// with the endpoints a browser login cannot do without made mandatory.
#[derive(Clone, Debug)]
pub struct ProviderMetadata {
    /// The issuer as the document names it (matches the configured one; see
    /// [`discovery::issuer_matches`]). id_tokens must carry exactly this `iss`.
    pub issuer: String,
    /// Where browsers are sent to log in.
    pub authorization_endpoint: Url,
    /// Where codes and refresh tokens are exchanged.
    pub token_endpoint: Url,
    /// The signing keys.
    pub jwks_uri: Url,
    /// Userinfo, when offered.
    pub userinfo_endpoint: Option<Url>,
    /// RP-initiated logout, when offered.
    pub end_session_endpoint: Option<Url>,
    /// id_token signing algorithms (filtered to asymmetric ones before use).
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// Client authentication methods at the token endpoint.
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 9207: the provider always sends `iss` with the authorization response.
    pub authorization_response_iss_parameter_supported: bool,
}

impl ProviderMetadata {
    /// The login view of a discovered document; an error names a missing endpoint.
    pub fn for_login(found: discovery::ProviderMetadata) -> Result<Self, ProviderError> {
        let required = |endpoint: Option<Url>, name: &str| {
            endpoint.ok_or_else(|| {
                ProviderError::Transport(format!(
                    "discovery: the document has no `{name}`, which a browser login needs"
                ))
            })
        };
        Ok(ProviderMetadata {
            authorization_endpoint: required(
                found.authorization_endpoint,
                "authorization_endpoint",
            )?,
            token_endpoint: required(found.token_endpoint, "token_endpoint")?,
            issuer: found.issuer,
            jwks_uri: found.jwks_uri,
            userinfo_endpoint: found.userinfo_endpoint,
            end_session_endpoint: found.end_session_endpoint,
            id_token_signing_alg_values_supported: found
                .id_token_signing_alg_values_supported
                .unwrap_or_default(),
            token_endpoint_auth_methods_supported: found
                .token_endpoint_auth_methods_supported
                .unwrap_or_default(),
            authorization_response_iss_parameter_supported: found
                .authorization_response_iss_parameter_supported
                .unwrap_or(false),
        })
    }
}

/// A provider whose discovery succeeded.
pub struct Discovered {
    /// The discovery document.
    pub metadata: ProviderMetadata,
    /// Its signing keys.
    pub keys: Jwks,
    /// Acceptable id_token algorithms.
    pub algorithms: Vec<Algorithm>,
    secret: Option<String>,
}

/// The token endpoint's answer.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    /// The access token (opaque to us).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: Option<u64>,
    /// A refresh token, when granted.
    pub refresh_token: Option<String>,
    /// The id_token (always on a code exchange; optional on refresh).
    pub id_token: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Why a call to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Discovery has not succeeded yet.
    #[error("provider discovery has not succeeded yet")]
    NotReady,
    /// The token endpoint refused the grant (`invalid_grant`): the code or refresh token is
    /// spent, expired or revoked. Never retried.
    #[error("the provider refused the grant: {0}")]
    InvalidGrant(String),
    /// Any other OAuth error response.
    #[error("the provider answered {0}")]
    OAuth(String),
    /// Transport failure, bad status or unreadable answer.
    #[error("talking to the provider: {0}")]
    Transport(String),
}

/// One provider.
pub struct OidcProvider {
    /// Its validated config.
    pub config: ProviderConfig,
    /// `public_url` + `/.portcullis/callback`.
    pub redirect_uri: String,
    http: reqwest::Client,
    discovered: RwLock<Option<Arc<Discovered>>>,
}

impl OidcProvider {
    /// A provider not yet discovered.
    pub fn new(config: ProviderConfig, public_url: &Url) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(PROVIDER_TIMEOUT)
            .build()
            .map_err(|e| ProviderError::Transport(e.to_string()))?;
        let redirect_uri = format!(
            "{}/.portcullis/callback",
            public_url.as_str().trim_end_matches('/')
        );
        Ok(OidcProvider {
            config,
            redirect_uri,
            http,
            discovered: RwLock::new(None),
        })
    }

    /// The discovered state, or None while discovery has not succeeded.
    pub fn discovered(&self) -> Option<Arc<Discovered>> {
        self.discovered.read().ok().and_then(|d| d.clone())
    }

    /// Fetches the discovery document and the keys once.
    pub async fn discover(&self) -> Result<(), ProviderError> {
        // The same discovery as bearer validation: one set of rules for the well-known URL
        // and the issuer check (OpenID Discovery 4.3: a document for another issuer is an
        // impersonation attempt, never accepted).
        let issuer = Url::parse(&self.config.issuer)
            .map_err(|e| ProviderError::Transport(format!("issuer: {e}")))?;
        let found = discovery::discover(&self.http, &issuer)
            .await
            .map_err(|e| ProviderError::Transport(e.to_string()))?;
        let metadata = ProviderMetadata::for_login(found)?;
        let secret = match &self.config.client_secret {
            Some(reference) => {
                let secret = reference
                    .resolve()
                    .await
                    .map_err(|e| ProviderError::Transport(format!("client_secret: {e}")))?;
                Some(String::from_utf8_lossy(secret.expose()).trim().to_owned())
            }
            None => None,
        };
        let keys = Jwks::new(
            self.http.clone(),
            metadata.jwks_uri.clone(),
            JwksOptions::default(),
        );
        keys.refresh()
            .await
            .map_err(|e| ProviderError::Transport(e.to_string()))?;
        let algorithms = allowed_algorithms(&metadata.id_token_signing_alg_values_supported);
        let discovered = Arc::new(Discovered {
            metadata,
            keys,
            algorithms,
            secret,
        });
        if let Ok(mut slot) = self.discovered.write() {
            *slot = Some(discovered);
        }
        Ok(())
    }

    /// Retries discovery in the background with exponential backoff (1 s to 60 s) until it
    /// succeeds.
    pub fn spawn_discovery(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(1);
            loop {
                match self.discover().await {
                    Ok(()) => {
                        tracing::info!(provider = %self.config.id, "provider discovered");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(provider = %self.config.id, %error, retry_in = ?delay, "provider discovery failed");
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// Where to send the browser to log in.
    pub fn authorization_url(
        &self,
        discovered: &Discovered,
        state: &str,
        nonce: &str,
        verifier: &str,
    ) -> Url {
        let mut url = discovered.metadata.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &s256_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        url
    }

    /// Exchanges an authorization code. Called once per code; never retried.
    pub async fn exchange_code(
        &self,
        discovered: &Discovered,
        code: &str,
        verifier: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.token_request(
            discovered,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
            ],
        )
        .await
    }

    /// Uses a refresh token. `InvalidGrant` means the session must end.
    pub async fn refresh(
        &self,
        discovered: &Discovered,
        refresh_token: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.token_request(
            discovered,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn token_request(
        &self,
        discovered: &Discovered,
        params: &[(&str, &str)],
    ) -> Result<TokenResponse, ProviderError> {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        let mut request = self
            .http
            .post(discovered.metadata.token_endpoint.clone())
            .header(http::header::ACCEPT, "application/json");
        match &discovered.secret {
            Some(secret) if use_post_auth(&discovered.metadata) => {
                form.push(("client_id", &self.config.client_id));
                form.push(("client_secret", secret));
            }
            Some(secret) => {
                // RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                request = request.basic_auth(enc(&self.config.client_id), Some(enc(secret)));
            }
            None => form.push(("client_id", &self.config.client_id)),
        }
        let response = request
            .form(&form)
            .send()
            .await
            .map_err(|e| ProviderError::Transport(e.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Transport(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| ProviderError::Transport(format!("token response: {e}")));
        }
        #[derive(Deserialize)]
        struct OAuthError {
            error: String,
        }
        match serde_json::from_slice::<OAuthError>(&body) {
            Ok(e) if e.error == "invalid_grant" => Err(ProviderError::InvalidGrant(e.error)),
            Ok(e) => Err(ProviderError::OAuth(e.error)),
            Err(_) => Err(ProviderError::Transport(format!(
                "token endpoint answered {status}"
            ))),
        }
    }

    /// The userinfo claims for an access token.
    pub async fn userinfo(
        &self,
        discovered: &Discovered,
        access_token: &str,
    ) -> Result<Option<Claims>, ProviderError> {
        let Some(endpoint) = &discovered.metadata.userinfo_endpoint else {
            return Ok(None);
        };
        let response = self
            .http
            .get(endpoint.clone())
            .bearer_auth(access_token)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| ProviderError::Transport(format!("userinfo: {e}")))?;
        // A signed (JWT) userinfo answer is not parsed; JSON is what the presets' providers send.
        response
            .json()
            .await
            .map(Some)
            .map_err(|e| ProviderError::Transport(format!("userinfo: {e}")))
    }

    /// The groups an Entra-style groups endpoint lists for `access_token` (`value[].id`,
    /// following `@odata.nextLink` up to 20 pages).
    pub async fn fetch_groups(
        &self,
        endpoint: &Url,
        access_token: &str,
    ) -> Result<Vec<String>, ProviderError> {
        let mut groups = Vec::new();
        let mut next = Some(endpoint.clone());
        for _ in 0..20 {
            let Some(url) = next.take() else { break };
            let page: serde_json::Value = self
                .http
                .get(url)
                .bearer_auth(access_token)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| ProviderError::Transport(format!("groups endpoint: {e}")))?
                .json()
                .await
                .map_err(|e| ProviderError::Transport(format!("groups endpoint: {e}")))?;
            for item in page["value"].as_array().into_iter().flatten() {
                if let Some(id) = item["id"].as_str() {
                    groups.push(id.to_owned());
                }
            }
            next = page["@odata.nextLink"]
                .as_str()
                .and_then(|u| Url::parse(u).ok());
        }
        Ok(groups)
    }

    /// RP-initiated logout URL, when the provider offers one.
    pub fn end_session_url(
        &self,
        discovered: &Discovered,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
    ) -> Option<Url> {
        let mut url = discovered.metadata.end_session_endpoint.clone()?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                query.append_pair("id_token_hint", hint);
            }
            query
                .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                .append_pair("client_id", &self.config.client_id);
        }
        Some(url)
    }

    /// Acceptable id_token algorithms once discovered.
    pub fn algorithms(discovered: &Discovered) -> &[Algorithm] {
        &discovered.algorithms
    }
}

fn use_post_auth(metadata: &ProviderMetadata) -> bool {
    let methods = &metadata.token_endpoint_auth_methods_supported;
    !methods.is_empty()
        && !methods.iter().any(|m| m == "client_secret_basic")
        && methods.iter().any(|m| m == "client_secret_post")
}

/// All configured providers, in config order.
#[derive(Default)]
pub struct OidcProviders {
    list: Vec<Arc<OidcProvider>>,
}

impl OidcProviders {
    /// Builds (not yet discovers) every configured provider.
    pub fn new(configs: &[ProviderConfig], public_url: &Url) -> Result<Self, ProviderError> {
        let list = configs
            .iter()
            .map(|c| OidcProvider::new(c.clone(), public_url).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OidcProviders { list })
    }

    /// Starts background discovery of every provider.
    pub fn spawn_discovery(&self) {
        for provider in &self.list {
            provider.clone().spawn_discovery();
        }
    }

    /// The provider with `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<OidcProvider>> {
        self.list.iter().find(|p| p.config.id == id)
    }

    /// Every provider.
    pub fn all(&self) -> &[Arc<OidcProvider>] {
        &self.list
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(extra: serde_json::Value) -> discovery::ProviderMetadata {
        let mut doc = serde_json::json!({
            "issuer": "https://idp.example",
            "jwks_uri": "https://idp.example/keys",
        });
        for (key, value) in extra.as_object().unwrap() {
            doc[key] = value.clone();
        }
        serde_json::from_value(doc).unwrap()
    }

    #[test]
    fn a_login_needs_the_authorization_and_token_endpoints() {
        let bearer_only = document(serde_json::json!({}));
        let error = ProviderMetadata::for_login(bearer_only)
            .unwrap_err()
            .to_string();
        assert!(error.contains("authorization_endpoint"), "{error}");
        let no_token = document(serde_json::json!({
            "authorization_endpoint": "https://idp.example/authorize",
        }));
        let error = ProviderMetadata::for_login(no_token)
            .unwrap_err()
            .to_string();
        assert!(error.contains("token_endpoint"), "{error}");
        let full = document(serde_json::json!({
            "authorization_endpoint": "https://idp.example/authorize",
            "token_endpoint": "https://idp.example/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "authorization_response_iss_parameter_supported": true,
        }));
        let metadata = ProviderMetadata::for_login(full).unwrap();
        assert_eq!(
            metadata.token_endpoint.as_str(),
            "https://idp.example/token"
        );
        assert!(metadata.authorization_response_iss_parameter_supported);
        assert!(use_post_auth(&metadata));
        assert!(metadata.id_token_signing_alg_values_supported.is_empty());
    }
}
