//! Control-plane HTTP GETs of JSON documents (provider discovery, JWKS): bounded in size and
//! time, never following redirects. It fetches only URLs that come from configuration or from a
//! discovery document whose issuer was checked; it must never fetch a URL found in a token.

use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

/// Largest JSON document accepted from a provider (discovery, JWKS). Real documents are a few
/// KiB; the bound keeps a hostile or broken endpoint from filling memory.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// Time allowed for one control-plane fetch, connect to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a control-plane fetch failed. Messages never contain response bodies.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Connect, TLS or read failure.
    #[error("request to {url} failed: {message}")]
    Transport {
        /// What was fetched.
        url: String,
        /// The transport error.
        message: String,
    },
    /// The whole fetch took longer than [`FETCH_TIMEOUT`].
    #[error("request to {url} timed out")]
    Timeout {
        /// What was fetched.
        url: String,
    },
    /// A status other than 200 (redirects are not followed, so 3xx lands here too).
    #[error("{url} answered {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// The status received.
        status: u16,
    },
    /// The body exceeded [`MAX_DOCUMENT_BYTES`].
    #[error("{url} answered more than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge {
        /// What was fetched.
        url: String,
    },
    /// The body was not the expected JSON.
    #[error("{url} answered invalid JSON: {message}")]
    Json {
        /// What was fetched.
        url: String,
        /// The parse error (position and expectation, not the body).
        message: String,
    },
}

/// A reqwest client fit for the control plane: no redirects (SSRF), no proxy environment
/// variables, bounded connect time.
pub fn control_plane_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// GETs `url` and parses the body as `T`, refusing bodies over [`MAX_DOCUMENT_BYTES`].
pub async fn get_json<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
) -> Result<T, FetchError> {
    match tokio::time::timeout(FETCH_TIMEOUT, get_bytes(http, url)).await {
        Ok(Ok(body)) => serde_json::from_slice(&body).map_err(|e| FetchError::Json {
            url: url.to_string(),
            message: e.to_string(),
        }),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(FetchError::Timeout {
            url: url.to_string(),
        }),
    }
}

async fn get_bytes(http: &reqwest::Client, url: &Url) -> Result<Vec<u8>, FetchError> {
    let transport = |e: reqwest::Error| FetchError::Transport {
        url: url.to_string(),
        message: e.to_string(),
    };
    let mut response = http
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(transport)?;
    if response.status() != http::StatusCode::OK {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: response.status().as_u16(),
        });
    }
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
    };
    if response
        .content_length()
        .is_some_and(|len| len > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
