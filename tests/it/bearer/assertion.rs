//! The assertion an upstream receives, verified the way an upstream would: fetch
//! `/.portcullis/jwks.json`, pick the key by `kid`, check signature, iss, aud and exp.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{claims, keys};
use crate::support;

#[tokio::test]
async fn upstream_verifies_the_assertion_with_the_jwks() {
    let jwks = keys::JwksServer::start(vec![keys::rsa().jwk("r1")]).await;
    let upstream = support::echo_upstream().await;
    let config = super::bearer_config(
        &jwks.url,
        &upstream,
        "headers = [\"user\"]\naudience = \"billing\"",
    );
    let proxy = support::start_proxy(&format!(
        "version = 1\n[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"off\"\npublic_url = \"https://gate.test\"\n{config}"
    ))
    .await;
    let client = support::client();

    let token = keys::rsa().sign("r1", &claims("billing.read"));
    let response = client
        .get(proxy.url("/api/x"))
        .bearer_auth(&token)
        .header("x-portcullis-jwt-assertion", "forged")
        .send()
        .await
        .unwrap();
    let echo = support::echo_json(response).await;
    let headers = &echo["headers"];
    assert_eq!(headers["x-portcullis-user"], "billing-bot");
    assert!(
        headers.get("authorization").is_none(),
        "caller's token is not forwarded"
    );
    let assertion = headers["x-portcullis-jwt-assertion"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(assertion, "forged");

    let set: JwkSet = client
        .get(proxy.url("/.portcullis/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(&assertion)
        .unwrap()
        .kid
        .unwrap();
    let key = DecodingKey::from_jwk(set.find(&kid).unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["billing"]);
    validation.set_issuer(&["https://gate.test"]);
    let verified =
        jsonwebtoken::decode::<serde_json::Value>(&assertion, &key, &validation).unwrap();
    assert_eq!(verified.claims["sub"], "billing-bot");
    let (iat, exp) = (
        verified.claims["iat"].as_u64().unwrap(),
        verified.claims["exp"].as_u64().unwrap(),
    );
    assert!(exp - iat <= 300);

    // The same caller on the same route gets the same assertion (no new signature).
    let response = client
        .get(proxy.url("/api/y"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let echo = support::echo_json(response).await;
    assert_eq!(
        echo["headers"]["x-portcullis-jwt-assertion"],
        assertion.as_str()
    );
}
