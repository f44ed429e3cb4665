//! OpenID Provider discovery (OpenID Connect Discovery 1.0 section 4): fetch
//! `{issuer}/.well-known/openid-configuration` and check that the document names exactly the
//! issuer we asked about. Used by bearer validation (to find `jwks_uri`) and by the browser
//! login. It does not cache or refresh: callers keep the metadata they were given.

use serde::{Deserialize, Serialize};
use url::Url;

use super::fetch::{FetchError, get_json};

/// The provider metadata portcullis reads. Unknown fields are ignored; only `issuer` and
/// `jwks_uri` are required, since a bearer-only issuer need not offer a browser login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    /// The issuer identifier; equals the configured issuer (checked by [`discover`]).
    pub issuer: String,
    /// Where the signing keys are published.
    #[serde(with = "url_text")]
    pub jwks_uri: Url,
    /// Authorization endpoint (browser login).
    #[serde(default, with = "optional_url_text")]
    pub authorization_endpoint: Option<Url>,
    /// Token endpoint (code exchange, client credentials).
    #[serde(default, with = "optional_url_text")]
    pub token_endpoint: Option<Url>,
    /// Client authentication methods the token endpoint accepts.
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// UserInfo endpoint.
    #[serde(default, with = "optional_url_text")]
    pub userinfo_endpoint: Option<Url>,
    /// RP-initiated logout endpoint.
    #[serde(default, with = "optional_url_text")]
    pub end_session_endpoint: Option<Url>,
    /// Token revocation endpoint (RFC 7009).
    #[serde(default, with = "optional_url_text")]
    pub revocation_endpoint: Option<Url>,
    /// Token introspection endpoint (RFC 7662).
    #[serde(default, with = "optional_url_text")]
    pub introspection_endpoint: Option<Url>,
    /// Scopes the provider supports.
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    /// Response types the provider supports.
    #[serde(default)]
    pub response_types_supported: Option<Vec<String>>,
    /// PKCE methods (`S256`).
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// Algorithms the provider signs id_tokens with.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 9207: the provider sends `iss` in the authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// OIDC Back-Channel Logout support.
    #[serde(default)]
    pub backchannel_logout_supported: Option<bool>,
    /// Back-channel logout tokens carry `sid`.
    #[serde(default)]
    pub backchannel_logout_session_supported: Option<bool>,
}

/// `Url` as a JSON string (the `url` crate is built without its serde feature here).
mod url_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use url::Url;

    pub fn serialize<S: Serializer>(url: &Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(url.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
        let text = String::deserialize(d)?;
        Url::parse(&text).map_err(D::Error::custom)
    }
}

/// `Option<Url>` as an optional JSON string.
mod optional_url_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};
    use url::Url;

    pub fn serialize<S: Serializer>(url: &Option<Url>, s: S) -> Result<S::Ok, S::Error> {
        match url {
            Some(url) => s.serialize_some(url.as_str()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => Url::parse(&text).map(Some).map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The document could not be fetched or parsed.
    #[error("discovery: {0}")]
    Fetch(#[from] FetchError),
    /// The document names another issuer: a mix-up or a misconfiguration, never accepted.
    #[error("discovery: the document's issuer `{found}` is not the configured `{expected}`")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// What the document said.
        found: String,
    },
}

/// Where the discovery document of `issuer` lives: the well-known suffix appended to the
/// issuer's path (a trailing `/` on the issuer is not doubled), query and fragment dropped.
pub fn discovery_url(issuer: &Url) -> Url {
    let mut url = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    url.set_path(&format!("{path}/.well-known/openid-configuration"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// Whether the document's `issuer` is the configured one. Exact string comparison, with one
/// allowance: `Url` writes a bare origin with a `/` path, so `https://idp.example` configured
/// matches a document saying `https://idp.example` (and `https://idp.example/`).
pub fn issuer_matches(configured: &Url, found: &str) -> bool {
    let configured_text = configured.as_str();
    if found == configured_text {
        return true;
    }
    configured.path() == "/"
        && configured.query().is_none()
        && configured.fragment().is_none()
        && configured_text.strip_suffix('/') == Some(found)
}

/// Fetches and checks the provider metadata of `issuer`.
pub async fn discover(
    http: &reqwest::Client,
    issuer: &Url,
) -> Result<ProviderMetadata, DiscoveryError> {
    let metadata: ProviderMetadata = get_json(http, &discovery_url(issuer)).await?;
    if !issuer_matches(issuer, &metadata.issuer) {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_string(),
            found: metadata.issuer,
        });
    }
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::routing::get;

    use super::*;
    use crate::identity::fetch::control_plane_client;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn discovery_url_appends_to_the_issuer_path() {
        let cases = [
            (
                "https://idp.example",
                "https://idp.example/.well-known/openid-configuration",
            ),
            (
                "https://idp.example/",
                "https://idp.example/.well-known/openid-configuration",
            ),
            (
                "https://idp.example/oauth2/default",
                "https://idp.example/oauth2/default/.well-known/openid-configuration",
            ),
            (
                "https://idp.example/realms/x/",
                "https://idp.example/realms/x/.well-known/openid-configuration",
            ),
        ];
        for (issuer, expected) in cases {
            assert_eq!(discovery_url(&url(issuer)).as_str(), expected, "{issuer}");
        }
    }

    #[test]
    fn issuer_comparison_is_exact_except_for_the_bare_origin_slash() {
        assert!(issuer_matches(
            &url("https://idp.example"),
            "https://idp.example"
        ));
        assert!(issuer_matches(
            &url("https://idp.example/"),
            "https://idp.example/"
        ));
        assert!(issuer_matches(
            &url("https://idp.example/t"),
            "https://idp.example/t"
        ));
        assert!(!issuer_matches(
            &url("https://idp.example/t"),
            "https://idp.example/t/"
        ));
        assert!(!issuer_matches(
            &url("https://idp.example/t/"),
            "https://idp.example/t"
        ));
        assert!(!issuer_matches(
            &url("https://idp.example"),
            "https://evil.example"
        ));
        assert!(!issuer_matches(
            &url("https://idp.example"),
            "http://idp.example"
        ));
        assert!(!issuer_matches(
            &url("https://idp.example"),
            "https://IDP.example"
        ));
    }

    /// Serves `document` at the well-known path under `prefix`; `{base}` in the document is
    /// replaced by the server's origin.
    async fn provider(prefix: &str, document: &'static str) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let body = document.replace("{base}", &base);
        let counter = hits.clone();
        let app = Router::new().route(
            &format!("{prefix}/.well-known/openid-configuration"),
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        (base, hits)
    }

    #[tokio::test]
    async fn fetches_and_checks_the_issuer() {
        let (base, hits) = provider(
            "/tenant",
            r#"{"issuer":"{base}/tenant","jwks_uri":"{base}/jwks",
               "authorization_endpoint":"{base}/auth","token_endpoint":"{base}/token",
               "code_challenge_methods_supported":["S256"],
               "authorization_response_iss_parameter_supported":true,
               "some_future_field":{"x":1}}"#,
        )
        .await;
        let http = control_plane_client();
        for issuer in [format!("{base}/tenant"), format!("{base}/tenant/")] {
            let result = discover(&http, &url(&issuer)).await;
            if issuer.ends_with('/') {
                // The document says `/tenant`; `/tenant/` is another issuer.
                assert!(matches!(result, Err(DiscoveryError::IssuerMismatch { .. })));
                continue;
            }
            let metadata = result.unwrap();
            assert_eq!(metadata.issuer, format!("{base}/tenant"));
            assert_eq!(metadata.jwks_uri.as_str(), format!("{base}/jwks"));
            assert_eq!(
                metadata.code_challenge_methods_supported,
                Some(vec!["S256".to_owned()])
            );
            assert_eq!(
                metadata.authorization_response_iss_parameter_supported,
                Some(true)
            );
            assert_eq!(metadata.end_session_endpoint, None);
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refuses_a_document_for_another_issuer() {
        let (base, _) = provider(
            "",
            r#"{"issuer":"https://evil.example","jwks_uri":"{base}/jwks"}"#,
        )
        .await;
        let error = discover(&control_plane_client(), &url(&base))
            .await
            .unwrap_err();
        assert!(
            matches!(error, DiscoveryError::IssuerMismatch { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn bare_origin_issuer_matches_without_slash() {
        let (base, _) = provider("", r#"{"issuer":"{base}","jwks_uri":"{base}/jwks"}"#).await;
        let metadata = discover(&control_plane_client(), &url(&base))
            .await
            .unwrap();
        assert_eq!(metadata.issuer, base);
    }

    #[tokio::test]
    async fn missing_jwks_uri_is_an_error() {
        let (base, _) = provider("", r#"{"issuer":"{base}"}"#).await;
        let error = discover(&control_plane_client(), &url(&base))
            .await
            .unwrap_err();
        assert!(
            matches!(error, DiscoveryError::Fetch(FetchError::Json { .. })),
            "{error}"
        );
    }

    #[tokio::test]
    async fn not_found_and_oversized_documents_are_errors() {
        let (base, _) = provider("/other", r#"{"issuer":"{base}","jwks_uri":"{base}/j"}"#).await;
        let error = discover(&control_plane_client(), &url(&base))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                DiscoveryError::Fetch(FetchError::Status { status: 404, .. })
            ),
            "{error}"
        );

        let huge: &'static str = Box::leak(
            format!(
                r#"{{"issuer":"{{base}}","jwks_uri":"{{base}}/j","pad":"{}"}}"#,
                "x".repeat(crate::identity::fetch::MAX_DOCUMENT_BYTES)
            )
            .into_boxed_str(),
        );
        let (base, _) = provider("", huge).await;
        let error = discover(&control_plane_client(), &url(&base))
            .await
            .unwrap_err();
        assert!(
            matches!(error, DiscoveryError::Fetch(FetchError::TooLarge { .. })),
            "{error}"
        );
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().route(
            "/.well-known/openid-configuration",
            get(|| async {
                (
                    http::StatusCode::FOUND,
                    [("location", "http://169.254.169.254/")],
                )
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let error = discover(&control_plane_client(), &url(&base))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                DiscoveryError::Fetch(FetchError::Status { status: 302, .. })
            ),
            "{error}"
        );
    }
}
