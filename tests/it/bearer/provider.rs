//! Against the real provider (npm `oidc-provider`): a service gets a client_credentials
//! `at+jwt` access token, calls a route through portcullis, and is allowed or denied by scope;
//! a key rotation at the provider is picked up (unknown `kid` -> one JWKS refetch).

use crate::oidc_provider::{
    BILLING_RESOURCE, LEDGER_RESOURCE, OidcProvider, OidcProviderOptions, jwt_parts,
};
use crate::support;

#[tokio::test]
async fn client_credentials_tokens_decide_by_scope_and_survive_rotation() {
    let Some(provider) = OidcProvider::start(OidcProviderOptions::default()).await else {
        return;
    };
    let (upstream, hits) = super::counting_upstream().await;
    // No jwks_uri: found through the provider's discovery document.
    let config = format!(
        r#"[[token_issuers]]
issuer = "{issuer}"
audiences = ["{BILLING_RESOURCE}"]
algorithms = ["ES256", "RS256"]
max_lifetime = "15m"
[[routes]]
id = "billing-api"
path = "/api/"
upstream = "{upstream}"
auth = ["bearer"]
[routes.policy]
allow = [{{ id = "billing-bot", auth = ["bearer"], scopes = ["billing.read"] }}]
"#,
        issuer = provider.issuer()
    );
    let proxy = support::start_proxy(&config).await;
    let client = support::client();
    let call = |token: String| {
        let request = client.get(proxy.url("/api/invoices")).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };

    let read = provider
        .client_credentials_token("billing.read", BILLING_RESOURCE)
        .await;
    assert_eq!(jwt_parts(&read).0["typ"], "at+jwt");
    assert_eq!(call(read).await, 200, "{}", provider.stderr());
    let write = provider
        .client_credentials_token("billing.write", BILLING_RESOURCE)
        .await;
    assert_eq!(call(write).await, 403, "valid token, missing scope");
    // A token for another resource (audience) is not for us.
    let ledger = provider
        .client_credentials_token("ledger.read", LEDGER_RESOURCE)
        .await;
    assert_eq!(call(ledger).await, 401);
    assert_eq!(call("garbage".into()).await, 401);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);

    let kids = provider.rotate_keys().await;
    let rotated = provider
        .client_credentials_token("billing.read", BILLING_RESOURCE)
        .await;
    let kid = jwt_parts(&rotated).0["kid"].as_str().unwrap().to_owned();
    assert!(kids.contains(&kid));
    assert_eq!(call(rotated).await, 200, "rotated key picked up");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
}
