//! Browser-side flows against the test OpenID provider ([`crate::oidc_provider`]): building
//! authorization and end-session URLs, logging a user in through the provider's login form and
//! confirming a logout, with a [`Browser`] that keeps the cookies. These stop at the provider's
//! edge: the URL the provider redirects OUT to is returned, never requested.

// Helpers for the login tests of other modules too; not every one is used by every branch.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;
use sha2::{Digest, Sha256};

use crate::browser::{Browser, location, parse_form};
use crate::oidc_provider::{OidcProvider, WEB_CLIENT_ID};

/// A PKCE pair (RFC 7636, S256).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

fn issuer_origin(provider: &OidcProvider) -> url::Origin {
    Url::parse(provider.issuer()).unwrap().origin()
}

impl OidcProvider {
    /// An authorization request URL for the web client (PKCE S256, the given scope).
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        scope: &str,
        state: &str,
        nonce: &str,
        pkce: &Pkce,
    ) -> String {
        let mut url = Url::parse(&self.url("/auth")).unwrap();
        url.query_pairs_mut()
            .append_pair("client_id", WEB_CLIENT_ID)
            .append_pair("response_type", "code")
            .append_pair("scope", scope)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        url.into()
    }

    /// Logs `username` in through the provider's form, starting from `authorize_url` (the
    /// provider's authorization endpoint with its query, e.g. the `Location` portcullis
    /// answered), and returns the URL the provider finally redirects OUT to (the relying
    /// party's callback with `code`, `state` and `iss`, or with `error`) WITHOUT requesting it.
    pub async fn login(&self, browser: &Browser, authorize_url: &str, username: &str) -> Url {
        let mut current = Url::parse(authorize_url).unwrap();
        let mut pending = None;
        let mut logged_in = false;
        for _ in 0..20 {
            let response = match pending.take() {
                Some(form) => browser.submit(&form).await,
                None => browser.get(current.as_str()).await,
            };
            if response.status().is_redirection() {
                let next = location(&response, &current).expect("redirect without Location");
                if next.origin() != issuer_origin(self) {
                    return next;
                }
                current = next;
                continue;
            }
            let status = response.status();
            let body = response.text().await.unwrap();
            let page_url = current.clone();
            match parse_form(&body, &page_url) {
                Some(mut form) if status == 200 && body.contains("name=\"login\"") => {
                    assert!(!logged_in, "provider refused login {username:?}:\n{body}");
                    form.set("login", username);
                    logged_in = true;
                    pending = Some(form);
                }
                _ => panic!("unexpected provider answer at {current}: {status}\n{body}"),
            }
        }
        panic!("login as {username} did not leave the provider within 20 steps");
    }

    /// The end-session URL for RP-initiated logout.
    pub fn end_session_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> String {
        let mut url = Url::parse(&self.url("/session/end")).unwrap();
        {
            let mut query = url.query_pairs_mut();
            if let Some(hint) = id_token_hint {
                query.append_pair("id_token_hint", hint);
            }
            if let Some(uri) = post_logout_redirect_uri {
                query.append_pair("post_logout_redirect_uri", uri);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
        }
        url.into()
    }

    /// Drives the provider's logout confirmation from `end_session_url` (e.g. the `Location`
    /// portcullis answered its logout with): submits the confirmation form and returns where
    /// the provider redirects OUT to (`post_logout_redirect_uri?state=..`), or None when it
    /// ends on its own "signed out" page. The provider sends back-channel logout tokens before
    /// answering the confirmation.
    pub async fn logout_confirm(&self, browser: &Browser, end_session_url: &str) -> Option<Url> {
        let mut current = Url::parse(end_session_url).unwrap();
        let mut pending = None;
        for _ in 0..10 {
            let response = match pending.take() {
                Some(form) => browser.submit(&form).await,
                None => browser.get(current.as_str()).await,
            };
            if response.status().is_redirection() {
                let next = location(&response, &current).expect("redirect without Location");
                if next.origin() != issuer_origin(self) {
                    return Some(next);
                }
                current = next;
                continue;
            }
            let status = response.status();
            let body = response.text().await.unwrap();
            if status == 200 && body.contains("xsrf") {
                let mut form = parse_form(&body, &current).unwrap();
                form.set("logout", "yes");
                pending = Some(form);
                continue;
            }
            assert_eq!(status, 200, "logout failed at {current}:\n{body}");
            return None;
        }
        panic!("logout did not finish within 10 steps");
    }
}
