//! `[[token_issuers]]` (who may sign the bearer tokens services present), `[assertion]` (the key
//! portcullis signs upstream assertions with) and the per-route bearer options, converted into
//! typed runtime values with every problem at its key path. Nothing here fetches a key or
//! contacts an issuer: discovery and JWKS happen when the proxy starts.

use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use super::convert::{Problems, positive_duration};
use super::file::{AssertionFile, FileConfig, RouteFile, TokenIssuerFile};
use crate::identity::AuthMethod;
use crate::secrets::SecretRef;

/// Algorithms a token issuer may be allowed: asymmetric only. `none` and shared-secret HMAC
/// are how JWT bypasses happen, so they cannot even be configured.
pub const ALLOWED_ALGORITHMS: [(&str, Algorithm); 9] = [
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// The longest assertion lifetime DESIGN.md allows.
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// One `[[token_issuers]]` entry, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenIssuerConfig {
    /// `issuer`, exactly as configured: tokens' `iss` must equal it byte for byte.
    pub issuer: String,
    /// The same, parsed (for discovery).
    pub issuer_url: Url,
    /// `jwks_uri`: where the keys are; None = from the issuer's discovery document.
    pub jwks_uri: Option<Url>,
    /// `audiences`: a token's `aud` must contain at least one.
    pub audiences: Vec<String>,
    /// `algorithms`: the allow-list. Default `["RS256", "ES256"]`.
    pub algorithms: Vec<Algorithm>,
    /// `leeway`: clock skew allowed on `exp`, `nbf` and `iat`. Default 30s.
    pub leeway: Duration,
    /// `max_lifetime`: refuse tokens whose `exp - iat` exceeds it. Default 1h.
    pub max_lifetime: Duration,
    /// `required_claims`: claims that must be present (besides exp, iat, iss, aud, sub).
    pub required_claims: Vec<String>,
    /// `groups_claim`: the claim groups are read from. Default `groups`.
    pub groups_claim: String,
}

/// `[assertion]`, validated.
#[derive(Clone, Debug, Default)]
pub struct AssertionConfig {
    /// `key`: PEM (PKCS#8) EC P-256 private key. None = generated on first start and kept
    /// in `server.data_dir`.
    pub key: Option<SecretRef>,
    /// `previous_keys`: keys no longer used for signing whose public halves are still
    /// published in `/.portcullis/jwks.json`, so assertions signed before a rotation verify.
    pub previous_keys: Vec<SecretRef>,
    /// `lifetime`: assertion `exp - iat`. Default 2m, at most 5m.
    pub lifetime: Duration,
}

/// Converts every `[[token_issuers]]` entry; refuses duplicates.
pub(crate) fn convert_token_issuers(file: &FileConfig, p: &mut Problems) -> Vec<TokenIssuerConfig> {
    let mut seen = HashSet::new();
    let mut issuers = Vec::new();
    for (i, entry) in file.token_issuers.iter().enumerate() {
        let at = format!("token_issuers[{i}]");
        if !seen.insert(entry.issuer.as_str()) {
            p.add(
                format!("{at}.issuer"),
                format!("duplicate issuer `{}`", entry.issuer),
            );
        }
        if let Some(issuer) = convert_token_issuer(&at, entry, p) {
            issuers.push(issuer);
        }
    }
    issuers
}

fn http_url(p: &mut Problems, at: &str, text: &str) -> Option<Url> {
    match Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => Some(url),
        Ok(_) => {
            p.add(at, format!("`{text}`: expected an https or http URL"));
            None
        }
        Err(e) => {
            p.add(at, format!("`{text}` is not a URL: {e}"));
            None
        }
    }
}

fn convert_token_issuer(
    at: &str,
    file: &TokenIssuerFile,
    p: &mut Problems,
) -> Option<TokenIssuerConfig> {
    let issuer_url = http_url(p, &format!("{at}.issuer"), &file.issuer);
    let jwks_uri = file
        .jwks_uri
        .as_deref()
        .and_then(|text| http_url(p, &format!("{at}.jwks_uri"), text));
    if file.audiences.is_empty() {
        p.add(format!("{at}.audiences"), "needs at least one audience");
    }
    for (i, aud) in file.audiences.iter().enumerate() {
        if aud.trim().is_empty() {
            p.add(format!("{at}.audiences[{i}]"), "must not be empty");
        }
    }
    let algorithms = match &file.algorithms {
        None => vec![Algorithm::RS256, Algorithm::ES256],
        Some(list) if list.is_empty() => {
            p.add(format!("{at}.algorithms"), "needs at least one algorithm");
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let found = ALLOWED_ALGORITHMS.iter().find(|(n, _)| n == name);
                if found.is_none() {
                    let names: Vec<&str> = ALLOWED_ALGORITHMS.iter().map(|(n, _)| *n).collect();
                    p.add(
                        format!("{at}.algorithms[{i}]"),
                        format!("`{name}`: expected one of {}", names.join(", ")),
                    );
                }
                found.map(|(_, alg)| *alg)
            })
            .collect(),
    };
    let max_lifetime = positive_duration(
        p,
        &format!("{at}.max_lifetime"),
        file.max_lifetime.as_deref(),
        Duration::from_secs(3600),
    );
    // A zero leeway is a legitimate choice, so only the syntax and a sane bound are checked.
    let leeway = match file.leeway.as_deref() {
        None => Duration::from_secs(30),
        Some(text) => match super::duration::parse_duration(text) {
            Ok(d) if d <= Duration::from_secs(300) => d,
            Ok(_) => {
                p.add(format!("{at}.leeway"), "at most 5m");
                Duration::ZERO
            }
            Err(message) => {
                p.add(format!("{at}.leeway"), message);
                Duration::ZERO
            }
        },
    };
    let required_claims = file.required_claims.clone().unwrap_or_default();
    for (i, claim) in required_claims.iter().enumerate() {
        if claim.is_empty() {
            p.add(format!("{at}.required_claims[{i}]"), "must not be empty");
        }
    }
    let groups_claim = match file.groups_claim.as_deref() {
        Some("") => {
            p.add(format!("{at}.groups_claim"), "must not be empty");
            String::new()
        }
        Some(name) => name.to_owned(),
        None => "groups".to_owned(),
    };
    Some(TokenIssuerConfig {
        issuer: file.issuer.clone(),
        issuer_url: issuer_url?,
        jwks_uri,
        audiences: file.audiences.clone(),
        algorithms,
        leeway,
        max_lifetime,
        required_claims,
        groups_claim,
    })
}

/// `[assertion]`, with defaults when the section is absent.
pub(crate) fn convert_assertion(file: Option<&AssertionFile>, p: &mut Problems) -> AssertionConfig {
    let Some(file) = file else {
        return AssertionConfig {
            lifetime: Duration::from_secs(120),
            ..AssertionConfig::default()
        };
    };
    let key = file
        .key
        .as_deref()
        .and_then(|text| p.parsed_opt("assertion.key", SecretRef::parse(text)));
    let previous_keys = file
        .previous_keys
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| {
            p.parsed_opt(
                &format!("assertion.previous_keys[{i}]"),
                SecretRef::parse(text),
            )
        })
        .collect();
    let mut lifetime = positive_duration(
        p,
        "assertion.lifetime",
        file.lifetime.as_deref(),
        Duration::from_secs(120),
    );
    if lifetime > MAX_ASSERTION_LIFETIME {
        p.add("assertion.lifetime", "at most 5m");
        lifetime = MAX_ASSERTION_LIFETIME;
    }
    AssertionConfig {
        key,
        previous_keys,
        lifetime,
    }
}

/// A route's `bearer_query_param`: a plain parameter name, only on routes that accept bearer.
pub(crate) fn bearer_query_param(
    at: &str,
    file: &RouteFile,
    auth: &[AuthMethod],
    p: &mut Problems,
) -> Option<String> {
    let name = file.bearer_query_param.as_deref()?;
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !plain {
        p.add(
            format!("{at}.bearer_query_param"),
            format!("`{name}`: use letters, digits, `-`, `_` and `.`"),
        );
    }
    if !auth.contains(&AuthMethod::Bearer) {
        p.add(
            format!("{at}.bearer_query_param"),
            "the route's auth does not include \"bearer\"",
        );
    }
    Some(name.to_owned())
}

#[cfg(test)]
#[path = "token_issuer_tests.rs"]
mod tests;
