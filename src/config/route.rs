//! `[[routes]]` -> [`RouteConfig`]: id, host, path, methods, upstreams, auth, claim headers,
//! timeouts, limits and the policy (rules via [`super::rule`]). Also refuses duplicate ids and
//! routes that tie in the route table. It does not normalize paths or decide matching: that is
//! [`crate::routes`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use url::Url;

use super::convert::{Problems, positive_duration};
use super::duration::parse_size;
use super::file::{RouteFile, SizeText};
use super::rule::{convert_policy, method};
use super::{ClaimHeader, EjectPolicy, RouteConfig, RouteTimeouts};
use crate::identity::AuthMethod;
use crate::routes::{HostPattern, RouteConflict, RouteTable};
use crate::secrets::SecretRef;

/// Default `max_body`: 10 MiB.
const DEFAULT_MAX_BODY: u64 = 10 * 1024 * 1024;

/// Converts every route, then checks ids are unique and no two routes tie.
pub(crate) fn convert_routes(files: &[RouteFile], p: &mut Problems) -> Vec<RouteConfig> {
    let mut routes = Vec::with_capacity(files.len());
    let mut seen_ids = HashSet::new();
    let mut all_converted = true;
    for (i, file) in files.iter().enumerate() {
        let at = format!("routes[{i}]");
        if !seen_ids.insert(file.id.as_str()) {
            p.add(
                format!("{at}.id"),
                format!("duplicate route id `{}`", file.id),
            );
        }
        match convert_route(&at, file, p) {
            Some(route) => routes.push(route),
            None => all_converted = false,
        }
    }
    // Ties are only meaningful when indexes line up with the file, i.e. every route converted.
    if all_converted && let Err(conflicts) = RouteTable::new(&routes) {
        report_ties(&conflicts, p);
    }
    routes
}

fn report_ties(conflicts: &[RouteConflict], p: &mut Problems) {
    for conflict in conflicts {
        p.add(
            format!("routes[{}]", conflict.index),
            format!(
                "ties with routes[{}] (same host, path and methods); make one more specific",
                conflict.other
            ),
        );
    }
}

/// One route; None when a problem left no usable value (the problem is recorded).
fn convert_route(at: &str, file: &RouteFile, p: &mut Problems) -> Option<RouteConfig> {
    let id_ok = route_id(&file.id);
    if let Err(message) = &id_ok {
        p.add(format!("{at}.id"), message.clone());
    }
    let host = file.host.as_deref().and_then(|text| {
        p.parsed_opt(
            &format!("{at}.host"),
            HostPattern::parse(text).map_err(|e| format!("`{text}`: {e}")),
        )
    });
    let path = file.path.clone().unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') {
        p.add(
            format!("{at}.path"),
            format!("`{path}` must start with `/`"),
        );
    }
    let methods = file.methods.as_ref().map(|list| {
        if list.is_empty() {
            p.add(
                format!("{at}.methods"),
                "empty list; leave the key out to allow any method",
            );
        }
        list.iter()
            .enumerate()
            .filter_map(|(i, m)| p.parsed_opt(&format!("{at}.methods[{i}]"), method(m)))
            .collect::<Vec<Method>>()
    });
    let upstreams = convert_upstreams(at, &file.upstream.0, p);
    let auth = match &file.auth {
        Some(list) => auth_methods(&format!("{at}.auth"), list, p),
        None => vec![AuthMethod::Session, AuthMethod::Bearer],
    };
    let headers = file
        .headers
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, h)| p.parsed_opt(&format!("{at}.headers[{i}]"), claim_header(h)))
        .collect();
    let audience = match &file.audience {
        Some(a) if a.trim().is_empty() => {
            p.add(
                format!("{at}.audience"),
                "must not be empty; leave it out to use the route id",
            );
            String::new()
        }
        Some(a) => a.clone(),
        None => file.id.clone(),
    };
    let timeouts = RouteTimeouts {
        connect: positive_duration(
            p,
            &format!("{at}.connect_timeout"),
            file.connect_timeout.as_deref(),
            Duration::from_secs(5),
        ),
        response_header: positive_duration(
            p,
            &format!("{at}.response_timeout"),
            file.response_timeout.as_deref(),
            Duration::from_secs(30),
        ),
        idle: positive_duration(
            p,
            &format!("{at}.idle_timeout"),
            file.idle_timeout.as_deref(),
            Duration::from_secs(60),
        ),
    };
    let max_body = p
        .parsed_opt(&format!("{at}.max_body"), max_body(file.max_body.as_ref()))
        .unwrap_or(Some(DEFAULT_MAX_BODY));
    let retries = match file.retries {
        None => 1,
        Some(n) => p
            .parsed_opt(
                &format!("{at}.retries"),
                u32::try_from(n).map_err(|_| format!("must be 0 or more (got {n})")),
            )
            .unwrap_or(1),
    };
    let failures = match file.eject_after {
        None => 3,
        Some(n) if n >= 1 => u32::try_from(n).unwrap_or(u32::MAX),
        Some(n) => {
            p.add(
                format!("{at}.eject_after"),
                format!("must be at least 1 (got {n})"),
            );
            3
        }
    };
    let eject = EjectPolicy {
        failures,
        duration: positive_duration(
            p,
            &format!("{at}.eject_for"),
            file.eject_for.as_deref(),
            Duration::from_secs(30),
        ),
    };
    let upstream_ca = file
        .upstream_ca
        .as_deref()
        .and_then(|text| p.parsed_opt(&format!("{at}.upstream_ca"), SecretRef::parse(text)));
    let mut policy = convert_policy(&format!("{at}.policy"), file.policy.as_ref(), &auth, p);
    if file.case_insensitive_paths {
        policy.lowercase_paths();
    }
    let bearer_query_param = super::token_issuer::bearer_query_param(at, file, &auth, p);
    id_ok.ok()?;
    Some(RouteConfig {
        id: Arc::from(file.id.as_str()),
        host,
        path,
        methods,
        upstreams,
        auth,
        headers,
        audience,
        policy,
        preserve_host: file.preserve_host,
        strip_prefix: file.strip_prefix,
        rewrite_redirects: file.rewrite_redirects.unwrap_or(true),
        case_insensitive_paths: file.case_insensitive_paths,
        pass_authorization: file.pass_authorization,
        bearer_query_param,
        pass_access_token: file.pass_access_token,
        timeouts,
        max_body,
        retries,
        eject,
        upstream_ca,
        providers: file.providers.clone().unwrap_or_default(),
    })
}

/// Route ids appear in audit rows, metrics labels and audiences: keep them plain.
pub(crate) fn route_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{id}`: use lowercase letters, digits, `-` and `_` only (e.g. \"billing-api\")"
        ))
    }
}

fn convert_upstreams(at: &str, list: &[String], p: &mut Problems) -> Vec<Url> {
    if list.is_empty() {
        p.add(format!("{at}.upstream"), "needs at least one upstream URL");
    }
    list.iter()
        .enumerate()
        .filter_map(|(i, text)| p.parsed_opt(&format!("{at}.upstream[{i}]"), upstream_url(text)))
        .collect()
}

/// `http(s)://host[:port][/base]`, nothing else.
fn upstream_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("`{text}` is not an http(s) URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{text}` has no host"));
    }
    // `http:///x` parses as host `x`: almost certainly not what was meant.
    if text
        .split_once("://")
        .is_none_or(|(_, rest)| rest.starts_with('/'))
    {
        return Err(format!("`{text}` has no host after `://`"));
    }
    if url.port() == Some(0) {
        return Err(format!("`{text}`: port 0 cannot be connected to"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{text}`: an upstream URL takes no query or fragment"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{text}`: credentials in an upstream URL are not supported (they would be logged)"
        ));
    }
    Ok(url)
}

/// `auth` lists: session, bearer, none; `none` stands alone.
pub(crate) fn auth_methods(at: &str, list: &[String], p: &mut Problems) -> Vec<AuthMethod> {
    if list.is_empty() {
        p.add(
            at,
            "empty list; use [\"session\", \"bearer\"], [\"bearer\"] or [\"none\"]",
        );
    }
    let methods: Vec<AuthMethod> = list
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            p.parsed_opt(
                &format!("{at}[{i}]"),
                AuthMethod::parse(text)
                    .ok_or_else(|| format!("`{text}`: expected session, bearer or none")),
            )
        })
        .collect();
    if methods.contains(&AuthMethod::None) && list.len() > 1 {
        p.add(at, "`none` cannot be combined with session or bearer");
    }
    methods
}

fn claim_header(text: &str) -> Result<ClaimHeader, String> {
    match text {
        "user" => Ok(ClaimHeader::User),
        "email" => Ok(ClaimHeader::Email),
        "groups" => Ok(ClaimHeader::Groups),
        _ => Err(format!("`{text}`: expected user, email or groups")),
    }
}

/// None = unlimited. Zero is refused: elsewhere it often means "no limit", here it would
/// refuse every body, and neither reading is worth guessing.
fn max_body(text: Option<&SizeText>) -> Result<Option<u64>, String> {
    match text.map(|t| t.0.as_str()) {
        None => Ok(Some(DEFAULT_MAX_BODY)),
        Some("unlimited") => Ok(None),
        Some(text) => match parse_size(text)? {
            0 => Err("0 is ambiguous; write a positive size, or \"unlimited\" for no limit".into()),
            n => Ok(Some(n)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The real table lives in `crate::routes`; this checks how its conflicts are reported.
    #[test]
    fn ties_are_reported_at_the_later_route() {
        let mut p = Problems::default();
        report_ties(&[RouteConflict { index: 3, other: 1 }], &mut p);
        assert_eq!(p.0.len(), 1);
        assert_eq!(p.0[0].path, "routes[3]");
        assert_eq!(
            p.0[0].message,
            "ties with routes[1] (same host, path and methods); make one more specific"
        );
    }

    #[test]
    fn route_ids() {
        assert!(route_id("billing-api_2").is_ok());
        for bad in ["", "Billing", "a b", "a.b", "ä"] {
            assert!(route_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_body_spellings() {
        let size = |s: &str| max_body(Some(&SizeText(s.into())));
        assert_eq!(max_body(None), Ok(Some(DEFAULT_MAX_BODY)));
        assert_eq!(size("unlimited"), Ok(None));
        assert_eq!(size("512KiB"), Ok(Some(512 * 1024)));
        assert_eq!(size("1000"), Ok(Some(1000)));
        assert!(size("0").is_err());
        assert!(size("-1").is_err());
    }
}
