use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use url::Url;

use super::*;

const NOW: f64 = 1_800_000_000.0;

fn issuer() -> TokenIssuerConfig {
    TokenIssuerConfig {
        issuer: "https://idp.example".into(),
        issuer_url: Url::parse("https://idp.example").unwrap(),
        jwks_uri: None,
        audiences: vec!["api://a".into(), "api://b".into()],
        algorithms: vec![Algorithm::RS256],
        leeway: Duration::from_secs(30),
        max_lifetime: Duration::from_secs(900),
        required_claims: Vec::new(),
        groups_claim: "groups".into(),
    }
}

fn good() -> Map<String, Value> {
    json!({
        "iss": "https://idp.example",
        "aud": "api://a",
        "sub": "svc-1",
        "iat": NOW - 10.0,
        "exp": NOW + 290.0,
    })
    .as_object()
    .unwrap()
    .clone()
}

fn with(changes: Value) -> Map<String, Value> {
    let mut claims = good();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.remove(k);
        } else {
            claims.insert(k.clone(), v.clone());
        }
    }
    claims
}

#[track_caller]
fn refused(claims: Map<String, Value>, needle: &str) {
    match check(claims, &issuer(), NOW) {
        Ok(_) => panic!("accepted, expected refusal containing `{needle}`"),
        Err(e) => assert!(e.to_string().contains(needle), "`{e}` lacks `{needle}`"),
    }
}

#[test]
fn accepts_a_good_token_and_maps_it() {
    let checked = check(good(), &issuer(), NOW).unwrap();
    assert_eq!(checked.exp, (NOW + 290.0) as u64);
    let id = checked.identity;
    assert_eq!(id.subject, "svc-1");
    assert_eq!(id.issuer, "https://idp.example");
    assert_eq!(id.auth, AuthMethod::Bearer);
    assert!(id.email.is_none() && id.groups.is_empty() && id.scopes.is_empty());
    assert_eq!(id.claims.get("sub"), Some(&json!("svc-1")));
}

#[test]
fn time_rules() {
    refused(with(json!({"exp": null})), "`exp` is missing");
    refused(with(json!({"iat": null})), "`iat` is missing");
    refused(with(json!({"exp": "1900000000"})), "`exp` is not a number");
    refused(with(json!({"iat": "now"})), "`iat` is not a number");
    refused(with(json!({"nbf": true})), "`nbf` is not a number");
    refused(with(json!({"exp": -5})), "not a valid date");
    refused(with(json!({"exp": NOW - 31.0})), "expired");
    refused(
        with(json!({"iat": NOW + 31.0, "exp": NOW + 100.0})),
        "`iat` is in the future",
    );
    refused(with(json!({"nbf": NOW + 31.0})), "`nbf` is in the future");
    refused(
        with(json!({"iat": NOW - 10.0, "exp": NOW + 900.0})),
        "max_lifetime",
    );
    // Within the leeway.
    assert!(
        check(
            with(json!({"exp": NOW - 29.0, "iat": NOW - 100.0})),
            &issuer(),
            NOW
        )
        .is_ok()
    );
    assert!(check(with(json!({"iat": NOW + 29.0})), &issuer(), NOW).is_ok());
    assert!(check(with(json!({"nbf": NOW + 29.0})), &issuer(), NOW).is_ok());
    // Exactly max_lifetime, and fractional dates.
    assert!(
        check(
            with(json!({"iat": NOW - 10.0, "exp": NOW + 890.0})),
            &issuer(),
            NOW
        )
        .is_ok()
    );
    assert!(
        check(
            with(json!({"iat": NOW - 0.5, "exp": NOW + 60.25})),
            &issuer(),
            NOW
        )
        .is_ok()
    );
}

#[test]
fn issuer_and_audience_rules() {
    refused(with(json!({"iss": "https://idp.example/"})), "wrong `iss`");
    refused(with(json!({"iss": null})), "wrong `iss`");
    refused(with(json!({"aud": "api://c"})), "wrong `aud`");
    refused(with(json!({"aud": null})), "wrong `aud`");
    refused(with(json!({"aud": ["api://c", "api://d"]})), "wrong `aud`");
    refused(with(json!({"aud": 5})), "wrong `aud`");
    assert!(check(with(json!({"aud": ["api://c", "api://b"]})), &issuer(), NOW).is_ok());
}

#[test]
fn required_claims() {
    let mut config = issuer();
    config.required_claims = vec!["jti".into()];
    assert!(check(good(), &config, NOW).is_err());
    assert!(check(with(json!({"jti": Value::Null})), &config, NOW).is_err());
    assert!(check(with(json!({"jti": "x"})), &config, NOW).is_ok());
}

#[test]
fn scopes_client_groups_and_email() {
    let id = check(
        with(json!({
            "scope": "billing.read  billing.write",
            "scp": ["ignored"],
            "client_id": "svc",
            "azp": "other",
            "groups": ["ops", 7, "dev"],
            "email": "Bot@Corp.Example",
            "email_verified": true,
        })),
        &issuer(),
        NOW,
    )
    .unwrap()
    .identity;
    assert_eq!(id.scopes, vec!["billing.read", "billing.write"]);
    assert_eq!(id.client_id.as_deref(), Some("svc"));
    assert_eq!(id.groups, vec!["ops", "dev"]);
    assert_eq!(id.email.as_deref(), Some("bot@corp.example"));

    let id = check(
        with(json!({"scp": ["a", "b"], "azp": "web", "email": "x@y", "email_verified": "true"})),
        &issuer(),
        NOW,
    )
    .unwrap()
    .identity;
    assert_eq!(id.scopes, vec!["a", "b"]);
    assert_eq!(id.client_id.as_deref(), Some("web"));
    assert_eq!(id.email, None, "email_verified must be the boolean true");
    let id = check(with(json!({"scp": "a b"})), &issuer(), NOW)
        .unwrap()
        .identity;
    assert_eq!(id.scopes, vec!["a", "b"]);

    let mut config = issuer();
    config.groups_claim = "roles".into();
    let id = check(
        with(json!({"roles": "admin dev", "groups": ["x"]})),
        &config,
        NOW,
    )
    .unwrap()
    .identity;
    assert_eq!(id.groups, vec!["admin", "dev"]);
}

#[test]
fn subject_falls_back_to_the_client_id() {
    let id = check(
        with(json!({"sub": null, "client_id": "svc"})),
        &issuer(),
        NOW,
    )
    .unwrap()
    .identity;
    assert_eq!(id.subject, "svc");
    refused(with(json!({"sub": null})), "no `sub`");
    refused(with(json!({"sub": ""})), "no `sub`");
}
