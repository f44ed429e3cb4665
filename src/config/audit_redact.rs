//! `[audit.redact]` -> [`RedactConfig`]: both forms of `headers` and `query` (a list of
//! names, each meaning `drop`, or a table of name -> action), claims, and the check that no
//! name on the never-store list ([`crate::audit::redact`]) is given anything but `drop`.
//! It records problems with their key paths and redacts nothing itself.

use std::collections::BTreeMap;

use super::super::convert::Problems;
use super::super::file::{AuditFile, NameActions};
use super::{RedactAction, RedactConfig};
use crate::audit::redact::{never_stored_header, never_stored_query, normalize_query_name};
use crate::secrets::SecretRef;

const ACTIONS: &str = "expected one of keep, drop, hmac, mask";

/// Converts `[audit.redact]` and `audit.hmac_key`.
pub(super) fn convert_redact(file: &AuditFile, p: &mut Problems) -> RedactConfig {
    let hmac_key = file
        .hmac_key
        .as_deref()
        .and_then(|text| p.parsed_opt("audit.hmac_key", SecretRef::parse(text)));
    let Some(redact) = &file.redact else {
        return RedactConfig {
            hmac_key,
            ..RedactConfig::default()
        };
    };
    let headers = names(p, "audit.redact.headers", redact.headers.as_ref(), &HEADERS);
    let query = names(p, "audit.redact.query", redact.query.as_ref(), &QUERY);
    let mut claims = BTreeMap::new();
    for (name, action) in redact.claims.iter().flatten() {
        match RedactAction::parse(action) {
            Some(action) => {
                claims.insert(name.clone(), action);
            }
            None => p.add(
                format!("audit.redact.claims.{name}"),
                format!("`{action}`: {ACTIONS}"),
            ),
        }
    }
    RedactConfig {
        headers,
        query,
        claims,
        hmac_key,
    }
}

/// How one kind of name (header or parameter) is checked and keyed.
struct NameKind {
    /// The name as the redactor compares it, or why it is not a name.
    normalize: fn(&str) -> Result<String, String>,
    /// On the never-store list.
    never_stored: fn(&str) -> bool,
}

const HEADERS: NameKind = NameKind {
    normalize: |name| match http::HeaderName::from_bytes(name.as_bytes()) {
        Ok(_) => Ok(name.to_ascii_lowercase()),
        Err(_) => Err(format!("`{name}` is not a header name")),
    },
    never_stored: never_stored_header,
};

const QUERY: NameKind = NameKind {
    normalize: |name| match normalize_query_name(name) {
        normalized if normalized.is_empty() => Err("must not be empty".to_owned()),
        normalized => Ok(normalized),
    },
    never_stored: never_stored_query,
};

fn names(
    p: &mut Problems,
    path: &str,
    written: Option<&NameActions>,
    kind: &NameKind,
) -> BTreeMap<String, RedactAction> {
    let mut out = BTreeMap::new();
    // The list form is the short way to say `drop` for each name.
    let entries: Vec<(String, String, Result<RedactAction, String>)> = match written {
        None => Vec::new(),
        Some(NameActions::List(list)) => list
            .iter()
            .enumerate()
            .map(|(i, name)| (format!("{path}[{i}]"), name.clone(), Ok(RedactAction::Drop)))
            .collect(),
        Some(NameActions::Table(table)) => table
            .iter()
            .map(|(name, action)| {
                let parsed = RedactAction::parse(action).ok_or(format!("`{action}`: {ACTIONS}"));
                (format!("{path}.{name}"), name.clone(), parsed)
            })
            .collect(),
    };
    for (key, name, action) in entries {
        let normalized = match (kind.normalize)(&name) {
            Ok(normalized) => normalized,
            Err(message) => {
                p.add(key, message);
                continue;
            }
        };
        let action = match action {
            Ok(action) => action,
            Err(message) => {
                p.add(key, message);
                continue;
            }
        };
        if (kind.never_stored)(&normalized) && action != RedactAction::Drop {
            p.add(
                key,
                format!(
                    "`{name}` carries credentials and is never recorded; only `drop` is \
                     allowed here (or leave it out)"
                ),
            );
            continue;
        }
        match out.insert(normalized.clone(), action) {
            Some(earlier) if earlier != action => p.add(
                key,
                format!("`{name}` is the same name as an earlier entry (`{normalized}`) with another action"),
            ),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
#[path = "audit_redact_tests.rs"]
mod tests;
