//! The pure decision function: rules and request facts in, a [`Decision`] out. No I/O, no
//! clock reads (the caller passes `now`), no randomness (the caller passes the decision id).
//! Judging single criteria lives in [`super::criteria`]; the full per-criterion report for
//! `policy explain` lives in [`super::explain`].

use std::net::IpAddr;

use http::Method;
use jiff::Timestamp;
use uuid::Uuid;

use super::criteria::criterion_holds;
use super::decision::{Decision, Outcome, Reason};
use super::rule::{CriterionKind, RoutePolicy, Rule};
use crate::identity::{AuthMethod, Identity};

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

/// Decides one request: deny rules first (any match denies), then allow rules (the first match
/// allows), then default deny, or `Login` when the caller is anonymous and the route accepts
/// a login. Pure: `now` is the clock.
///
/// A matched rule yields exactly one reason and no other allocation. Only when no rule
/// matched do the reasons also list, for each allow rule, the first criterion that failed;
/// deny rules that did not match are not listed, since not matching a deny rule is never why
/// a request was refused.
pub fn evaluate<'p>(
    policy: &'p RoutePolicy,
    facts: &RequestFacts<'_>,
    now: Timestamp,
) -> Decision<'p> {
    if let Some(rule) = policy
        .deny
        .iter()
        .find(|rule| rule_matches(rule, facts, now))
    {
        return Decision {
            id: facts.decision_id,
            outcome: Outcome::Deny,
            rule: Some(&rule.id),
            reasons: vec![Reason::DenyRuleMatched { rule: &rule.id }],
        };
    }
    if let Some(rule) = policy
        .allow
        .iter()
        .find(|rule| rule_matches(rule, facts, now))
    {
        return Decision {
            id: facts.decision_id,
            outcome: Outcome::Allow,
            rule: Some(&rule.id),
            reasons: vec![Reason::AllowRuleMatched { rule: &rule.id }],
        };
    }
    // The unmatched path walks the allow rules a second time to name their failing criteria,
    // so that the allow path never builds a list it would throw away.
    let unmet = policy.allow.iter().filter_map(|rule| {
        first_failing(rule, facts, now).map(|criterion| Reason::CriterionNotMet {
            rule: &rule.id,
            criterion,
        })
    });
    no_rule_matched(policy, facts, unmet)
}

/// The decision when no deny and no allow rule matched: `Login` for an anonymous caller on a
/// route that takes a login, default deny for everyone else. A caller who is logged in gets a
/// deny, never `Login`: sending them to log in again would loop.
pub(super) fn no_rule_matched<'p>(
    policy: &RoutePolicy,
    facts: &RequestFacts<'_>,
    unmet: impl Iterator<Item = Reason<'p>>,
) -> Decision<'p> {
    let login = facts.identity.is_none() && accepts_login(policy);
    let (outcome, headline) = if login {
        (Outcome::Login, Reason::AuthenticationRequired)
    } else {
        (Outcome::Deny, Reason::NoAllowRuleMatched)
    };
    let mut reasons = Vec::with_capacity(policy.allow.len() + 1);
    reasons.push(headline);
    reasons.extend(unmet);
    Decision {
        id: facts.decision_id,
        outcome,
        rule: None,
        reasons,
    }
}

/// Whether an anonymous caller could become allowed by logging in on this route.
fn accepts_login(policy: &RoutePolicy) -> bool {
    policy
        .accepts
        .iter()
        .any(|method| matches!(method, AuthMethod::Session | AuthMethod::Bearer))
}

/// Whether every criterion of `rule` holds. A rule without criteria (config rejects them)
/// matches nothing: a vacuous rule must not allow everyone.
pub(super) fn rule_matches(rule: &Rule, facts: &RequestFacts<'_>, now: Timestamp) -> bool {
    !rule.criteria.is_empty() && first_failing(rule, facts, now).is_none()
}

/// The first criterion of `rule` that does not hold, in rule order; `None` when all hold.
/// Stops at that criterion, so later (possibly costlier) criteria are not judged.
fn first_failing(rule: &Rule, facts: &RequestFacts<'_>, now: Timestamp) -> Option<CriterionKind> {
    rule.criteria
        .iter()
        .find(|criterion| !criterion_holds(criterion, facts, now))
        .map(|criterion| criterion.kind())
}
