use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::config::{Config, ConfigError, ConfigErrors, load_str};

fn load(text: &str) -> Result<Config, Vec<ConfigError>> {
    load_str(text, Vec::new()).map_err(|ConfigErrors(e)| e)
}

#[track_caller]
fn assert_error(errors: &[ConfigError], path: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.path == path && e.message.contains(needle)),
        "no error at `{path}` containing `{needle}` in: {errors:?}"
    );
}

const ROUTE: &str = r#"
[[routes]]
id = "api"
upstream = "http://127.0.0.1:9001"
[routes.policy]
allow = [{ public = true }]
"#;

#[test]
fn token_issuer_defaults() {
    let config = load(&format!(
        "version = 1\n[[token_issuers]]\nissuer = \"https://idp.example\"\naudiences = [\"api://x\"]\n{ROUTE}"
    ))
    .unwrap();
    let issuer = &config.token_issuers[0];
    // The configured text is kept verbatim (no trailing slash added): `iss` must match it.
    assert_eq!(issuer.issuer, "https://idp.example");
    assert_eq!(issuer.jwks_uri, None);
    assert_eq!(issuer.audiences, vec!["api://x".to_owned()]);
    assert_eq!(issuer.algorithms, vec![Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(issuer.leeway, Duration::from_secs(30));
    assert_eq!(issuer.max_lifetime, Duration::from_secs(3600));
    assert!(issuer.required_claims.is_empty());
    assert_eq!(issuer.groups_claim, "groups");
    assert_eq!(config.assertion.lifetime, Duration::from_secs(120));
    assert!(config.assertion.key.is_none());
    assert_eq!(config.server.data_dir, std::path::PathBuf::from("data"));
    assert_eq!(config.routes[0].bearer_query_param, None);
    assert!(!config.routes[0].pass_access_token);
}

#[test]
fn token_issuer_every_key() {
    let config = load(
        r#"version = 1
[server]
data_dir = "/var/lib/portcullis"
[[token_issuers]]
issuer = "https://idp.example/oauth2/default"
jwks_uri = "https://idp.example/keys"
audiences = ["a", "b"]
algorithms = ["PS256", "EdDSA", "ES384"]
leeway = "0s"
max_lifetime = "15m"
required_claims = ["client_id", "jti"]
groups_claim = "roles"
[assertion]
key = "file:/etc/portcullis/assertion.pem"
previous_keys = ["file:/etc/portcullis/old.pem"]
lifetime = "5m"
[[routes]]
id = "ws"
upstream = "http://127.0.0.1:9001"
auth = ["bearer"]
bearer_query_param = "access_token"
pass_access_token = true
[routes.policy]
allow = [{ public = true }]
"#,
    )
    .unwrap();
    let issuer = &config.token_issuers[0];
    assert_eq!(
        issuer.jwks_uri.as_ref().unwrap().as_str(),
        "https://idp.example/keys"
    );
    assert_eq!(
        issuer.algorithms,
        vec![Algorithm::PS256, Algorithm::EdDSA, Algorithm::ES384]
    );
    assert_eq!(issuer.leeway, Duration::ZERO);
    assert_eq!(issuer.max_lifetime, Duration::from_secs(900));
    assert_eq!(issuer.required_claims, vec!["client_id", "jti"]);
    assert_eq!(issuer.groups_claim, "roles");
    assert_eq!(config.assertion.lifetime, Duration::from_secs(300));
    assert!(config.assertion.key.is_some());
    assert_eq!(config.assertion.previous_keys.len(), 1);
    assert_eq!(
        config.server.data_dir,
        std::path::PathBuf::from("/var/lib/portcullis")
    );
    assert_eq!(
        config.routes[0].bearer_query_param.as_deref(),
        Some("access_token")
    );
    assert!(config.routes[0].pass_access_token);
}

#[test]
fn token_issuer_problems_have_key_paths() {
    let errors = load(
        r#"version = 1
[[token_issuers]]
issuer = "not a url"
jwks_uri = "ftp://idp.example/keys"
audiences = []
algorithms = ["RS256", "HS256", "none", "None"]
leeway = "1h"
max_lifetime = "0s"
groups_claim = ""
[[token_issuers]]
issuer = "https://a.example"
audiences = ["x"]
algorithms = []
[[token_issuers]]
issuer = "https://a.example"
audiences = [""]
[assertion]
key = "plain text key"
lifetime = "10m"
[[routes]]
id = "s"
upstream = "http://127.0.0.1:9001"
auth = ["session"]
bearer_query_param = "a b"
[routes.policy]
allow = [{ public = true }]
"#,
    )
    .unwrap_err();
    assert_error(&errors, "token_issuers[0].issuer", "not a URL");
    assert_error(&errors, "token_issuers[0].jwks_uri", "https or http");
    assert_error(&errors, "token_issuers[0].audiences", "at least one");
    assert_error(&errors, "token_issuers[0].algorithms[1]", "`HS256`");
    assert_error(&errors, "token_issuers[0].algorithms[2]", "`none`");
    assert_error(&errors, "token_issuers[0].algorithms[3]", "`None`");
    assert_error(&errors, "token_issuers[0].leeway", "at most 5m");
    assert_error(&errors, "token_issuers[0].max_lifetime", "more than zero");
    assert_error(
        &errors,
        "token_issuers[0].groups_claim",
        "must not be empty",
    );
    assert_error(&errors, "token_issuers[1].algorithms", "at least one");
    assert_error(&errors, "token_issuers[2].issuer", "duplicate issuer");
    assert_error(
        &errors,
        "token_issuers[2].audiences[0]",
        "must not be empty",
    );
    assert_error(&errors, "assertion.key", "secret reference");
    assert_error(&errors, "assertion.lifetime", "at most 5m");
    assert_error(&errors, "routes[0].bearer_query_param", "letters, digits");
    assert_error(
        &errors,
        "routes[0].bearer_query_param",
        "does not include \"bearer\"",
    );
}
