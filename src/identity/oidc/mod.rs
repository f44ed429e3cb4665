//! The OpenID Connect relying party: provider discovery, the authorization request (code flow
//! with PKCE S256, `state`, `nonce`), the code exchange, id_token and logout_token validation,
//! refresh, and the mapping from verified claims to an [`crate::identity::Identity`]. It speaks
//! HTTP only as a client to providers; the browser-facing endpoints live in `crate::app`, and
//! session storage in `crate::session`.

pub mod client;
pub mod id_token;
pub mod jwt;
pub mod logout_token;
pub mod mapping;
pub mod pkce;
pub mod redirect;
#[cfg(test)]
pub(crate) mod test_keys;

pub use client::{
    Discovered, OidcProvider, OidcProviders, ProviderError, ProviderMetadata, TokenResponse,
};
pub use id_token::{IdTokenCheck, verify_id_token};
pub use jwt::{Claims, KeySource, TokenError, allowed_algorithms};
pub use logout_token::{LogoutCheck, LogoutTarget, verify_logout_token};
pub use mapping::{MappingError, identity_from_claims};
pub use redirect::return_to;
