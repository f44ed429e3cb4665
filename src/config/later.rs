//! Sections whose runtime form lives elsewhere but whose cheap shared checks run here
//! (`[session]`, `[[providers]]`): enums, durations, URLs, secret references, rule tables. They run
//! now so a config written today keeps loading tomorrow, but nothing is converted into the
//! runtime [`super::Config`] yet. Nothing here fetches a secret or contacts a provider.

use std::collections::HashSet;

use url::Url;

use super::convert::{Problems, positive_duration};
use super::file::{FileConfig, ProviderFile, SessionFile};
use super::route::route_id;
use crate::secrets::SecretRef;

/// Checks every later section present in the file.
pub(crate) fn check_later_sections(file: &FileConfig, p: &mut Problems) {
    if let Some(session) = &file.session {
        check_session(session, p);
    }
    let mut provider_ids = HashSet::new();
    for (i, provider) in file.providers.iter().enumerate() {
        let at = format!("providers[{i}]");
        if !provider_ids.insert(provider.id.as_str()) {
            p.add(
                format!("{at}.id"),
                format!("duplicate provider id `{}`", provider.id),
            );
        }
        check_provider(&at, provider, p);
    }
}

fn one_of(p: &mut Problems, at: &str, value: Option<&str>, allowed: &[&str]) {
    if let Some(value) = value
        && !allowed.contains(&value)
    {
        p.add(
            at,
            format!("`{value}`: expected one of {}", allowed.join(", ")),
        );
    }
}

fn url(p: &mut Problems, at: &str, text: &str, schemes: &[&str]) {
    match Url::parse(text) {
        Ok(url) if schemes.contains(&url.scheme()) => {}
        Ok(_) => p.add(
            at,
            format!("`{text}`: expected a {} URL", schemes.join(" or ")),
        ),
        Err(e) => p.add(at, format!("`{text}` is not a URL: {e}")),
    }
}

fn check_session(s: &SessionFile, p: &mut Problems) {
    let stores = ["memory", "sqlite", "postgres", "redis"];
    one_of(p, "session.store", s.store.as_deref(), &stores);
    let store = s.store.as_deref().unwrap_or("memory");
    match (&s.url, store) {
        (Some(text), "sqlite") => url(p, "session.url", text, &["sqlite"]),
        (Some(text), "postgres") => url(p, "session.url", text, &["postgres", "postgresql"]),
        (Some(text), "redis") => url(p, "session.url", text, &["redis", "rediss"]),
        (Some(_), "memory") => p.add("session.url", "the memory store takes no url"),
        (None, "sqlite" | "postgres" | "redis") => {
            p.add("session.url", format!("required for store = \"{store}\""));
        }
        _ => {}
    }
    if let Some(name) = &s.cookie_name {
        let token = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !token {
            p.add(
                "session.cookie_name",
                format!("`{name}`: use letters, digits, `-` and `_`"),
            );
        }
    }
    positive_duration(
        p,
        "session.idle_timeout",
        s.idle_timeout.as_deref(),
        Default::default(),
    );
    positive_duration(
        p,
        "session.absolute_timeout",
        s.absolute_timeout.as_deref(),
        Default::default(),
    );
}

fn check_provider(at: &str, provider: &ProviderFile, p: &mut Problems) {
    if let Err(message) = route_id(&provider.id) {
        p.add(format!("{at}.id"), message);
    }
    let presets = ["generic", "okta", "entra", "google", "keycloak", "cognito"];
    one_of(
        p,
        &format!("{at}.preset"),
        provider.preset.as_deref(),
        &presets,
    );
    match &provider.issuer {
        Some(issuer) => url(p, &format!("{at}.issuer"), issuer, &["https", "http"]),
        // Google's issuer is fixed; every other provider must be told where it lives.
        None if provider.preset.as_deref() != Some("google") => {
            p.add(
                format!("{at}.issuer"),
                "required (the provider's OpenID issuer URL)",
            );
        }
        None => {}
    }
    if provider.client_id.trim().is_empty() {
        p.add(format!("{at}.client_id"), "must not be empty");
    }
    if let Some(secret) = &provider.client_secret
        && let Err(message) = SecretRef::parse(secret)
    {
        p.add(format!("{at}.client_secret"), message);
    }
    if let Some(scopes) = &provider.scopes
        && !scopes.iter().any(|s| s == "openid")
    {
        p.add(format!("{at}.scopes"), "must include \"openid\"");
    }
}
