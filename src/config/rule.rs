//! Policy tables -> [`RoutePolicy`] / [`Rule`] / [`Criterion`]: one criterion per key present
//! in a rule table, lists checked entry by entry, emails and domains lowercased, time windows
//! resolved by [`super::time_window`]. It decides nothing: evaluation is [`crate::policy`]'s.

use std::collections::HashSet;
use std::sync::Arc;

use http::Method;

use super::convert::{Problems, network};
use super::file::{PolicyFile, RuleFile};
use super::route::auth_methods;
use super::time_window::time_window;
use crate::identity::AuthMethod;
use crate::policy::{ClaimValue, Criterion, PathPattern, RoutePolicy, Rule};

/// A route's `[routes.policy]`. A route must say who may pass: a missing policy or an empty
/// `allow` list would deny everyone, which is never what a new route is written for.
pub(crate) fn convert_policy(
    at: &str,
    file: Option<&PolicyFile>,
    accepts: &[AuthMethod],
    p: &mut Problems,
) -> RoutePolicy {
    let Some(file) = file else {
        p.add(
            at,
            "missing; every route needs [routes.policy] with at least one allow rule \
             (allow = [{ public = true }] for an open route)",
        );
        return RoutePolicy::default();
    };
    if file.allow.is_empty() {
        p.add(
            format!("{at}.allow"),
            "needs at least one rule; without one the route denies everyone",
        );
    }
    let (allow, deny) = convert_rules(at, file, p);
    RoutePolicy {
        allow,
        deny,
        accepts: accepts.to_vec(),
    }
}

/// Both rule lists of a policy table, with rule ids unique across them.
pub(crate) fn convert_rules(
    at: &str,
    file: &PolicyFile,
    p: &mut Problems,
) -> (Vec<Rule>, Vec<Rule>) {
    let mut ids = HashSet::new();
    let mut list = |kind: &str, rules: &[RuleFile], p: &mut Problems| -> Vec<Rule> {
        rules
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let rule_at = format!("{at}.{kind}[{i}]");
                let id = match &rule.id {
                    Some(id) if id.trim().is_empty() => {
                        p.add(format!("{rule_at}.id"), "must not be empty");
                        format!("{kind}[{i}]")
                    }
                    Some(id) => id.clone(),
                    None => format!("{kind}[{i}]"),
                };
                if !ids.insert(id.clone()) {
                    p.add(
                        format!("{rule_at}.id"),
                        format!("duplicate rule id `{id}` in this policy"),
                    );
                }
                Rule {
                    id: Arc::from(id),
                    criteria: convert_criteria(&rule_at, rule, p),
                }
            })
            .collect()
    };
    let allow = list("allow", &file.allow, p);
    let deny = list("deny", &file.deny, p);
    (allow, deny)
}

fn convert_criteria(at: &str, rule: &RuleFile, p: &mut Problems) -> Vec<Criterion> {
    let mut criteria = Vec::new();
    if rule.public == Some(true) {
        criteria.push(Criterion::Public);
    }
    let strings = |key: &str, values: &Option<Vec<String>>, p: &mut Problems| {
        non_empty_list(&format!("{at}.{key}"), values.as_ref()?, p)
    };
    if let Some(v) = strings("subjects", &rule.subjects, p) {
        criteria.push(Criterion::Subjects(v));
    }
    if let Some(v) = strings("emails", &rule.emails, p) {
        let v = each(&format!("{at}.emails"), &v, p, email);
        criteria.push(Criterion::Emails(v));
    }
    if let Some(v) = strings("email_domains", &rule.email_domains, p) {
        let v = each(&format!("{at}.email_domains"), &v, p, email_domain);
        criteria.push(Criterion::EmailDomains(v));
    }
    if let Some(v) = strings("groups", &rule.groups, p) {
        criteria.push(Criterion::Groups(v));
    }
    if let Some(v) = strings("groups_all", &rule.groups_all, p) {
        criteria.push(Criterion::GroupsAll(v));
    }
    if let Some(claims) = &rule.claims {
        criteria.push(Criterion::Claims(convert_claims(
            &format!("{at}.claims"),
            claims,
            p,
        )));
    }
    if let Some(v) = strings("scopes", &rule.scopes, p) {
        criteria.push(Criterion::Scopes(v));
    }
    if let Some(v) = strings("issuers", &rule.issuers, p) {
        criteria.push(Criterion::Issuers(v));
    }
    if let Some(v) = strings("providers", &rule.providers, p) {
        criteria.push(Criterion::Providers(v));
    }
    if let Some(v) = strings("auth", &rule.auth, p) {
        criteria.push(Criterion::Auth(auth_methods(&format!("{at}.auth"), &v, p)));
    }
    if let Some(v) = strings("methods", &rule.methods, p) {
        criteria.push(Criterion::Methods(each(
            &format!("{at}.methods"),
            &v,
            p,
            method,
        )));
    }
    if let Some(v) = strings("paths", &rule.paths, p) {
        criteria.push(Criterion::Paths(each(
            &format!("{at}.paths"),
            &v,
            p,
            path_pattern,
        )));
    }
    if let Some(v) = strings("ip", &rule.ip, p) {
        criteria.push(Criterion::Ip(each(&format!("{at}.ip"), &v, p, network)));
    }
    if let Some(windows) = &rule.time {
        if windows.is_empty() {
            p.add(
                format!("{at}.time"),
                "empty list; remove the key or add a window",
            );
        }
        let windows = windows
            .iter()
            .enumerate()
            .filter_map(|(i, w)| time_window(&format!("{at}.time[{i}]"), w, p))
            .collect();
        criteria.push(Criterion::Time(windows));
    }
    // Keys whose values were refused have their own errors; only a rule that names nothing
    // (or only `public = false`) needs this one.
    let other_keys = [
        rule.subjects.is_some(),
        rule.emails.is_some(),
        rule.email_domains.is_some(),
        rule.groups.is_some(),
        rule.groups_all.is_some(),
        rule.claims.is_some(),
        rule.scopes.is_some(),
        rule.issuers.is_some(),
        rule.providers.is_some(),
        rule.auth.is_some(),
        rule.methods.is_some(),
        rule.paths.is_some(),
        rule.ip.is_some(),
        rule.time.is_some(),
    ]
    .contains(&true);
    if !other_keys {
        match rule.public {
            None => p.add(
                at,
                "a rule needs at least one criterion (e.g. groups = [...] or public = true)",
            ),
            Some(false) => p.add(
                format!("{at}.public"),
                "`public = false` alone matches nothing; remove the rule or add criteria",
            ),
            Some(true) => {}
        }
    }
    criteria
}

/// A list criterion: empty lists and empty entries are refused. None when the list is empty.
fn non_empty_list(at: &str, values: &[String], p: &mut Problems) -> Option<Vec<String>> {
    if values.is_empty() {
        p.add(
            at,
            "empty list matches nothing; remove the key or add entries",
        );
        return None;
    }
    for (i, v) in values.iter().enumerate() {
        if v.trim().is_empty() {
            p.add(format!("{at}[{i}]"), "must not be empty");
        }
    }
    Some(values.to_vec())
}

/// Parses each entry, recording failures at `at[i]`.
fn each<T>(
    at: &str,
    values: &[String],
    p: &mut Problems,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| p.parsed_opt(&format!("{at}[{i}]"), parse(v)))
        .collect()
}

fn email(text: &str) -> Result<String, String> {
    match text.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(text.to_lowercase()),
        _ => Err(format!("`{text}` is not an email address")),
    }
}

fn email_domain(text: &str) -> Result<String, String> {
    if text.starts_with('@') {
        return Err(format!(
            "`{text}`: write the domain without `@`, e.g. \"{}\"",
            text.trim_start_matches('@')
        ));
    }
    if text.is_empty() || text.contains('@') || text.contains(char::is_whitespace) {
        return Err(format!("`{text}` is not a domain like \"corp.example\""));
    }
    Ok(text.to_lowercase())
}

/// Methods are written uppercase, as they appear on the wire (methods are case-sensitive).
pub(crate) fn method(text: &str) -> Result<Method, String> {
    if text.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(format!(
            "`{text}`: methods are case-sensitive and written uppercase (\"{}\")",
            text.to_ascii_uppercase()
        ));
    }
    Method::from_bytes(text.as_bytes()).map_err(|_| format!("`{text}` is not an HTTP method"))
}

fn path_pattern(text: &str) -> Result<PathPattern, String> {
    if !text.starts_with('/') {
        return Err(format!("`{text}` must start with `/`"));
    }
    if text.contains('*') {
        Ok(PathPattern::Glob(text.to_owned()))
    } else {
        Ok(PathPattern::Prefix(text.to_owned()))
    }
}

fn convert_claims(
    at: &str,
    claims: &std::collections::BTreeMap<String, toml::Value>,
    p: &mut Problems,
) -> Vec<(String, Vec<ClaimValue>)> {
    if claims.is_empty() {
        p.add(
            at,
            "empty table matches nothing; remove the key or add claims",
        );
    }
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(ClaimValue::String(s.clone())),
        toml::Value::Integer(n) => Some(ClaimValue::Integer(*n)),
        toml::Value::Boolean(b) => Some(ClaimValue::Bool(*b)),
        _ => None,
    };
    let expected = "expected a string, integer or boolean";
    let mut out = Vec::new();
    for (name, value) in claims {
        let claim_at = format!("{at}.{name}");
        if name.trim().is_empty() {
            p.add(format!("{at}.\"{name}\""), "a claim name must not be empty");
        }
        let values = match value {
            toml::Value::Array(items) => {
                if items.is_empty() {
                    p.add(&claim_at, "empty list matches nothing");
                }
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| {
                        let v = scalar(item);
                        if v.is_none() {
                            p.add(format!("{claim_at}[{i}]"), expected);
                        }
                        v
                    })
                    .collect()
            }
            other => match scalar(other) {
                Some(v) => vec![v],
                None => {
                    p.add(&claim_at, format!("{expected}, or an array of those"));
                    Vec::new()
                }
            },
        };
        out.push((name.clone(), values));
    }
    out
}
