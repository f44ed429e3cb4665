//! Verified claims -> [`Identity`]: the preset's claim mapping (groups from one or more dotted
//! claim paths, Keycloak's `/group` paths, Entra's groups overage), email only when the
//! provider says it is verified. It trusts its input: call it only with validated claims.

use serde_json::Value;

use super::jwt::Claims;
use crate::config::{Preset, ProviderConfig};
use crate::identity::{AuthMethod, Identity};

/// Why verified claims cannot become an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// Entra sent a groups overage marker instead of the groups and no groups endpoint is
    /// configured, so the user's groups are unknown; logging in without them would silently
    /// drop every group rule.
    #[error(
        "the provider left out this user's groups (too many to fit in a token); configure groups_endpoint or reduce the groups emitted"
    )]
    GroupsOverage,
    /// No usable `sub`.
    #[error("the token has no subject")]
    NoSubject,
}

/// Whether the claims carry an Entra groups overage marker (`_claim_names.groups`, or
/// `hasgroups` in implicit-flow tokens).
pub fn has_groups_overage(claims: &Claims) -> bool {
    let named = claims
        .get("_claim_names")
        .and_then(Value::as_object)
        .is_some_and(|names| names.contains_key("groups"));
    named || claims.get("hasgroups").and_then(Value::as_bool) == Some(true)
}

/// Builds the session identity. `extra_groups` come from a groups endpoint after an overage.
pub fn identity_from_claims(
    provider: &ProviderConfig,
    issuer: &str,
    claims: Claims,
    extra_groups: Option<Vec<String>>,
) -> Result<Identity, MappingError> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(MappingError::NoSubject)?
        .to_owned();
    if provider.preset == Preset::Entra && has_groups_overage(&claims) && extra_groups.is_none() {
        return Err(MappingError::GroupsOverage);
    }
    let mut groups = Vec::new();
    for path in &provider.groups_claims {
        for group in claim_strings(&claims, path) {
            // Keycloak's "full group path" mapper sends `/eng`; policies say `eng`.
            let group = match provider.preset {
                Preset::Keycloak => group.trim_start_matches('/').to_owned(),
                _ => group,
            };
            if !group.is_empty() && !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    for group in extra_groups.into_iter().flatten() {
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    Ok(Identity {
        subject,
        issuer: issuer.to_owned(),
        email: verified_email(&claims),
        groups,
        scopes: Vec::new(),
        provider: Some(provider.id.clone()),
        client_id: None,
        auth: AuthMethod::Session,
        claims,
    })
}

/// The email, lowercased, only when `email_verified` is true (a boolean, or the string
/// `"true"` that some providers send): an unverified address is whatever the user typed.
fn verified_email(claims: &Claims) -> Option<String> {
    let verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    let email = claims.get("email").and_then(Value::as_str)?;
    (verified && email.contains('@')).then(|| email.to_ascii_lowercase())
}

/// The strings at `path`: a claim named exactly `path` first (names like `cognito:groups` or
/// URLs may contain dots), else a walk through nested objects. A string value is one group; an
/// array contributes its string members.
fn claim_strings(claims: &Claims, path: &str) -> Vec<String> {
    let value = claims.get(path).or_else(|| {
        let mut parts = path.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |value, part| value.as_object()?.get(part))
    });
    match value {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn provider(preset: Preset) -> ProviderConfig {
        ProviderConfig {
            id: "corp".into(),
            preset,
            issuer: "https://id.example".into(),
            client_id: "c".into(),
            client_secret: None,
            scopes: preset.default_scopes(),
            groups_claims: preset.default_groups_claims(),
            display_name: "Corp".into(),
            userinfo: false,
            groups_endpoint: None,
        }
    }

    fn map(preset: Preset, claims: serde_json::Value) -> Result<Identity, MappingError> {
        let Value::Object(claims) = claims else {
            panic!()
        };
        identity_from_claims(&provider(preset), "https://id.example", claims, None)
    }

    #[test]
    fn generic_groups_and_verified_email() {
        let id = map(
            Preset::Generic,
            json!({"sub": "alice", "email": "Alice@Corp.Example", "email_verified": true, "groups": ["eng", "security", "eng"]}),
        )
        .unwrap();
        assert_eq!(id.subject, "alice");
        assert_eq!(id.email.as_deref(), Some("alice@corp.example"));
        assert_eq!(id.groups, ["eng", "security"]);
        assert_eq!(id.provider.as_deref(), Some("corp"));
        assert_eq!(id.auth, AuthMethod::Session);
        assert_eq!(id.claims["sub"], "alice");
    }

    #[test]
    fn unverified_email_is_dropped() {
        for verified in [json!(false), json!("false"), json!(null)] {
            let id = map(
                Preset::Generic,
                json!({"sub": "a", "email": "a@x", "email_verified": verified}),
            )
            .unwrap();
            assert_eq!(id.email, None);
        }
        let id = map(Preset::Generic, json!({"sub": "a", "email": "a@x"})).unwrap();
        assert_eq!(id.email, None);
        let id = map(
            Preset::Cognito,
            json!({"sub": "a", "email": "a@x", "email_verified": "true"}),
        )
        .unwrap();
        assert_eq!(id.email.as_deref(), Some("a@x"));
    }

    #[test]
    fn keycloak_groups_and_realm_roles() {
        let id = map(
            Preset::Keycloak,
            json!({"sub": "a", "groups": ["/eng", "/ops/oncall"], "realm_access": {"roles": ["admin", "offline_access"]}}),
        )
        .unwrap();
        assert_eq!(id.groups, ["eng", "ops/oncall", "admin", "offline_access"]);
    }

    #[test]
    fn cognito_groups_claim_with_colon() {
        let id = map(
            Preset::Cognito,
            json!({"sub": "a", "cognito:groups": ["billing"]}),
        )
        .unwrap();
        assert_eq!(id.groups, ["billing"]);
    }

    #[test]
    fn google_keeps_hd_as_a_claim() {
        let id = map(
            Preset::Google,
            json!({"sub": "a", "hd": "corp.example", "groups": ["x"]}),
        )
        .unwrap();
        assert!(id.groups.is_empty());
        assert_eq!(id.claims["hd"], "corp.example");
    }

    #[test]
    fn entra_overage_fails_clearly_without_an_endpoint() {
        let overage = json!({"sub": "a", "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph"}}});
        assert_eq!(
            map(Preset::Entra, overage.clone()),
            Err(MappingError::GroupsOverage)
        );
        assert_eq!(
            map(Preset::Entra, json!({"sub": "a", "hasgroups": true})),
            Err(MappingError::GroupsOverage)
        );
        // With groups fetched elsewhere it succeeds.
        let Value::Object(claims) = overage else {
            panic!()
        };
        let id = identity_from_claims(
            &provider(Preset::Entra),
            "i",
            claims,
            Some(vec!["g1".into()]),
        )
        .unwrap();
        assert_eq!(id.groups, ["g1"]);
        assert_eq!(
            map(Preset::Entra, json!({"sub": "a", "groups": ["g2"]}))
                .unwrap()
                .groups,
            ["g2"]
        );
    }

    #[test]
    fn single_string_and_nested_paths() {
        let mut p = provider(Preset::Generic);
        p.groups_claims = vec!["resource_access.app.roles".into(), "team".into()];
        let Value::Object(claims) =
            json!({"sub": "a", "team": "red", "resource_access": {"app": {"roles": ["r1", 5]}}})
        else {
            panic!()
        };
        let id = identity_from_claims(&p, "i", claims, None).unwrap();
        assert_eq!(id.groups, ["r1", "red"]);
    }

    #[test]
    fn no_subject() {
        assert_eq!(
            map(Preset::Generic, json!({"sub": ""})),
            Err(MappingError::NoSubject)
        );
    }
}
