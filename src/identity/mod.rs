//! Who the caller is. Owns the [`Identity`] value that every policy criterion reads, whatever
//! the source (browser session or bearer token; both arrive in later work). It does not decide
//! anything: deciding is [`crate::policy`]'s job.

pub mod assertion;
pub mod bearer;
mod bearer_claims;
pub mod bearer_request;
pub mod discovery;
pub mod fetch;
pub mod jwks;
pub mod oidc;
#[cfg(test)]
pub(crate) mod test_keys;
pub mod token_cache;

use std::fmt;

/// How a caller presented its identity.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A browser session (OIDC login, cookie holds the session id).
    #[default]
    Session,
    /// A bearer JWT access token in the `Authorization` header.
    Bearer,
    /// No identity at all (anonymous).
    None,
}

impl AuthMethod {
    /// The config and audit spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Session => "session",
            AuthMethod::Bearer => "bearer",
            AuthMethod::None => "none",
        }
    }

    /// Parses the config spelling (`session`, `bearer`, `none`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "session" => Some(AuthMethod::Session),
            "bearer" => Some(AuthMethod::Bearer),
            "none" => Some(AuthMethod::None),
            _ => None,
        }
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified caller. Built only by identity sources after verification (session lookup,
/// token validation), never from request headers.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Identity {
    /// `sub` claim.
    pub subject: String,
    /// `iss` claim.
    pub issuer: String,
    /// Email, lowercased; only set when the source considers it verified.
    pub email: Option<String>,
    /// Group names, as mapped from the provider's groups claim.
    pub groups: Vec<String>,
    /// OAuth scopes (bearer tokens: `scope` or `scp`).
    pub scopes: Vec<String>,
    /// The configured provider id that logged this user in (sessions).
    pub provider: Option<String>,
    /// Client id (`client_id` or `azp`) for bearer callers.
    pub client_id: Option<String>,
    /// How the identity was presented. Never [`AuthMethod::None`] for a real identity.
    pub auth: AuthMethod,
    /// Every claim as received, for `claims` criteria.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// What a request presented, after verification. Identity sources (browser sessions, bearer
/// tokens) each produce one; the gateway turns it into policy facts.
#[derive(Clone, Debug, PartialEq)]
pub enum Presented {
    /// Nothing presented (or nothing the route accepts).
    Anonymous,
    /// A verified identity.
    Verified(Identity),
    /// A bearer token was sent but is not valid: 401 with `error="invalid_token"`, never 403,
    /// and the request reaches no upstream. `reason` is for logs and audit, never the client.
    InvalidBearer {
        /// Why validation failed.
        reason: String,
    },
}

impl Presented {
    /// The verified identity, if any.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Presented::Verified(identity) => Some(identity),
            Presented::Anonymous | Presented::InvalidBearer { .. } => None,
        }
    }
}
