//! Redaction, applied to every value before it reaches an audit event (and so the database,
//! the spool and the logs). `[audit.redact]` names headers and query parameters whose values
//! are hidden, and identity fields/claims to `keep`, `drop`, `mask` or `hmac`. A hard-coded
//! deny list (credentials: tokens, cookies, codes, passwords, secrets, keys, signatures) is
//! always hidden, whatever the config says, and any value shaped like a JWT is hidden too.
//! Names are compared after percent-decoding (repeatedly), `+` to space, lowercasing and
//! dropping a `[...]` suffix, because that is how the upstream will read them.

use std::collections::{BTreeMap, HashSet};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{RedactAction, RedactConfig};

/// What a hidden value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Headers never recorded.
const ALWAYS_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-csrf-token",
    "x-amz-security-token",
];

/// Query parameter names never recorded (exact, after normalization).
const ALWAYS_QUERY: &[&str] = &[
    "code",
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "logout_token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "client_assertion",
    "assertion",
    "api_key",
    "apikey",
    "key",
    "jwt",
    "session",
    "sessionid",
    "sig",
];

/// Query parameter names containing any of these are never recorded either
/// (`csrf_token`, `X-Amz-Signature`, `X-Amz-Credential`, `db_password`...).
const ALWAYS_QUERY_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "signature",
    "credential",
    "api_key",
    "apikey",
];

/// Applies `[audit.redact]` plus the deny list.
#[derive(Clone)]
pub struct Redactor {
    headers: HashSet<String>,
    query: HashSet<String>,
    claims: BTreeMap<String, RedactAction>,
    key: Vec<u8>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("headers", &self.headers)
            .field("query", &self.query)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// Builds from config; `hmac_key` keys the `hmac` pseudonyms.
    pub fn new(config: &RedactConfig, hmac_key: Vec<u8>) -> Self {
        Redactor {
            headers: config
                .headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            query: config.query.iter().map(|q| normalize_name(q)).collect(),
            claims: config.claims.clone(),
            key: hmac_key,
        }
    }

    /// A header value as it may be recorded; None when it must not be.
    pub fn header(&self, name: &str, value: &[u8]) -> Option<String> {
        let name = name.to_ascii_lowercase();
        if ALWAYS_HEADERS.contains(&name.as_str()) || self.headers.contains(&name) {
            return None;
        }
        let text = String::from_utf8_lossy(value);
        if looks_like_jwt(&text) {
            return Some(REDACTED.to_owned());
        }
        Some(text.into_owned())
    }

    /// The query string with every hidden value replaced by [`REDACTED`]. Separators,
    /// parameter order and the raw (still encoded) text of everything else are kept.
    pub fn query(&self, raw: &str) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        loop {
            let end = rest.find(['&', ';']).unwrap_or(rest.len());
            let (pair, tail) = rest.split_at(end);
            self.push_pair(pair, &mut out);
            let mut chars = tail.chars();
            match chars.next() {
                Some(separator) => {
                    out.push(separator);
                    rest = chars.as_str();
                }
                None => return out,
            }
        }
    }

    fn push_pair(&self, pair: &str, out: &mut String) {
        let (name, value) = match pair.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (pair, None),
        };
        // A bare "name" that is really a token (`?eyJhbGci...`) is still a credential.
        if looks_like_jwt(&decode_repeatedly(name)) {
            out.push_str(REDACTED);
            return;
        }
        out.push_str(name);
        let Some(value) = value else { return };
        out.push('=');
        let normalized = normalize_name(name);
        let hidden = is_credential_name(&normalized)
            || self.query.contains(&normalized)
            || looks_like_jwt(&decode_repeatedly(value));
        if hidden && !value.is_empty() {
            out.push_str(REDACTED);
        } else {
            out.push_str(value);
        }
    }

    /// An identity field or claim (`sub`, `email`, `iss`, `groups`, ...) as it may be
    /// recorded. `subject` and `issuer` are accepted as spellings of `sub` and `iss`.
    pub fn claim(&self, name: &str, value: &str) -> Option<String> {
        let alias = match name {
            "sub" => "subject",
            "subject" => "sub",
            "iss" => "issuer",
            "issuer" => "iss",
            other => other,
        };
        let action = self
            .claims
            .get(name)
            .or_else(|| self.claims.get(alias))
            .copied()
            .unwrap_or(RedactAction::Keep);
        self.apply(action, value)
    }

    /// Applies one action to one value.
    pub fn apply(&self, action: RedactAction, value: &str) -> Option<String> {
        match action {
            RedactAction::Keep => Some(value.to_owned()),
            RedactAction::Drop => None,
            RedactAction::Mask => Some(mask(value)),
            RedactAction::Hmac => Some(self.pseudonym(value)),
        }
    }

    /// `hmac:` + the first 128 bits of HMAC-SHA256(key, value), hex: stable for one key, so
    /// rows join on it, and not reversible without the key.
    pub fn pseudonym(&self, value: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return REDACTED.to_owned();
        };
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!("hmac:{}", hex::encode(&digest[..16]))
    }
}

/// `j***@corp.example` for an email, `a***` for anything longer than 3 characters, `***`
/// otherwise. Lengths are not revealed.
pub fn mask(value: &str) -> String {
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    match value.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => format!("{}***@{domain}", first(local)),
        _ if value.chars().count() > 3 => format!("{}***", first(value)),
        _ => "***".to_owned(),
    }
}

fn is_credential_name(normalized: &str) -> bool {
    ALWAYS_QUERY.contains(&normalized)
        || ALWAYS_QUERY_PARTS
            .iter()
            .any(|part| normalized.contains(part))
}

/// How an upstream will read a parameter name: decoded (a double-encoded name is decoded
/// again), `+` as space, trimmed, lowercased, without a `[...]` array suffix.
fn normalize_name(raw: &str) -> String {
    let decoded = decode_repeatedly(raw).to_lowercase();
    let trimmed = decoded.trim();
    let base = match trimmed.find('[') {
        Some(at) if at > 0 => &trimmed[..at],
        _ => trimmed,
    };
    base.trim().to_owned()
}

/// Percent-decodes (and `+` -> space) until the text stops changing, at most 4 rounds.
/// Invalid UTF-8 becomes U+FFFD; an invalid escape is kept as is.
fn decode_repeatedly(raw: &str) -> String {
    let mut text = raw.replace('+', " ");
    for _ in 0..4 {
        let next = percent_decode(&text);
        if next == text {
            break;
        }
        text = next;
    }
    text
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Three base64url segments starting with `eyJ` (`{"` encoded): a JWT, whatever its name.
fn looks_like_jwt(text: &str) -> bool {
    let text = text.trim();
    let text = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .unwrap_or(text);
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].len() >= 2
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
        })
}

#[cfg(test)]
#[path = "redact_tests.rs"]
mod tests;
