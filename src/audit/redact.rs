//! Redaction, applied to every value before it reaches an audit event (and so the database,
//! the spool and the logs). `[audit.redact]` gives headers, query parameters and identity
//! fields/claims an action each: `keep`, `drop`, `mask` or `hmac`. A hard-coded never-store
//! list (credentials: tokens, cookies, codes, passwords, secrets, keys, signatures) is always
//! hidden, whatever the config says, and any value shaped like a JWT is hidden too.
//! Parameter names are compared after percent-decoding (repeatedly), `+` to space,
//! lowercasing and dropping a `[...]` suffix, because that is how the upstream will read them.

use std::collections::{BTreeMap, HashMap};

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

/// True for a header that is never recorded, whatever `audit.redact.headers` says.
pub fn never_stored_header(name: &str) -> bool {
    ALWAYS_HEADERS.contains(&name.to_ascii_lowercase().as_str())
}

/// True for a query parameter (as written or already normalized) that is never recorded,
/// whatever `audit.redact.query` says.
pub fn never_stored_query(name: &str) -> bool {
    is_credential_name(&normalize_query_name(name))
}

/// Applies `[audit.redact]` plus the never-store list.
#[derive(Clone)]
pub struct Redactor {
    /// Lowercased header name -> action; an unnamed header is kept.
    headers: HashMap<String, RedactAction>,
    /// Normalized parameter name -> action; an unnamed parameter is kept.
    query: HashMap<String, RedactAction>,
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
                .map(|(name, action)| (name.to_ascii_lowercase(), *action))
                .collect(),
            query: config
                .query
                .iter()
                .map(|(name, action)| (normalize_query_name(name), *action))
                .collect(),
            claims: config.claims.clone(),
            key: hmac_key,
        }
    }

    /// A header value as it may be recorded (after its `audit.redact.headers` action);
    /// None when it must not be. Never-store headers are None whatever the action, and a
    /// JWT-shaped value is [`REDACTED`] unless the action drops it.
    pub fn header(&self, name: &str, value: &[u8]) -> Option<String> {
        let name = name.to_ascii_lowercase();
        if ALWAYS_HEADERS.contains(&name.as_str()) {
            return None;
        }
        let action = self
            .headers
            .get(&name)
            .copied()
            .unwrap_or(RedactAction::Keep);
        if action == RedactAction::Drop {
            return None;
        }
        let text = String::from_utf8_lossy(value);
        if looks_like_jwt(&text) {
            return Some(REDACTED.to_owned());
        }
        self.apply(action, &text)
    }

    /// The query string with each parameter's `audit.redact.query` action applied:
    /// `drop` (and every never-store name or JWT-shaped value) replaces the value with
    /// [`REDACTED`], `mask` and `hmac` replace it with the masked or pseudonymized decoded
    /// value (percent-encoded again). Separators, parameter order, names and the raw (still
    /// encoded) text of kept values are kept as sent; an empty value stays empty.
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
        if value.is_empty() {
            return;
        }
        let normalized = normalize_query_name(name);
        let decoded = decode_repeatedly(value);
        if is_credential_name(&normalized) || looks_like_jwt(&decoded) {
            out.push_str(REDACTED);
            return;
        }
        let action = self
            .query
            .get(&normalized)
            .copied()
            .unwrap_or(RedactAction::Keep);
        match action {
            RedactAction::Keep => out.push_str(value),
            RedactAction::Drop => out.push_str(REDACTED),
            RedactAction::Mask => push_encoded(&mask(&decoded), out),
            RedactAction::Hmac => push_encoded(&self.pseudonym(&decoded), out),
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

/// Percent-encodes a replacement value for a query string: unreserved characters plus the
/// `*`, `@` and `:` that masks and pseudonyms are made of stay readable.
fn push_encoded(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'*' | b'@' | b':')
        {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// How an upstream will read a parameter name: decoded (a double-encoded name is decoded
/// again), `+` as space, trimmed, lowercased, without a `[...]` array suffix. Config names
/// are normalized the same way, so `Sig`, `%73ig` and `sig[]` are one name.
pub fn normalize_query_name(raw: &str) -> String {
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
