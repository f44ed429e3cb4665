//! The outcome of evaluating a route's policy, and the [`Permit`] that proves an allow.

use uuid::Uuid;

use super::rule::CriterionKind;

/// What happens to the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Forward to the upstream.
    Allow,
    /// Authenticated (or anonymous on a route that takes no login) but not allowed: 403.
    Deny,
    /// Anonymous on a route that accepts a login: 302 to login (browser) or 401 (API).
    Login,
}

impl Outcome {
    /// The audit and metrics spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Login => "login",
        }
    }
}

/// Why the decision came out as it did. Typed so audit and `policy explain` can use them.
/// Rule ids are borrowed from the policy that decided (`'p`): a request's decision takes no
/// reference count on ids that every worker thread shares (each count is a cache line
/// bouncing between cores).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason<'p> {
    /// This deny rule matched; it overrides every allow rule.
    DenyRuleMatched { rule: &'p str },
    /// This allow rule matched.
    AllowRuleMatched { rule: &'p str },
    /// No allow rule matched (default deny).
    NoAllowRuleMatched,
    /// The caller is anonymous and the route accepts a login.
    AuthenticationRequired,
    /// A rule did not match because this criterion did not hold (first failing one).
    CriterionNotMet {
        rule: &'p str,
        criterion: CriterionKind,
    },
}

/// The decision for one request, borrowing rule ids from the policy that made it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Decision<'p> {
    /// UUIDv7, the id the audit event and `X-Portcullis-Decision-Id` carry.
    pub id: Uuid,
    /// Allow, deny or login.
    pub outcome: Outcome,
    /// The deciding rule, when one decided (none for default deny and login).
    pub rule: Option<&'p str>,
    /// Why.
    pub reasons: Vec<Reason<'p>>,
}

impl Decision<'_> {
    /// The permit for an allow decision; `None` for anything else. The only way to get one.
    pub fn permit(&self) -> Option<Permit> {
        match self.outcome {
            Outcome::Allow => Some(Permit {
                decision_id: self.id,
            }),
            Outcome::Deny | Outcome::Login => None,
        }
    }
}

/// Proof that the policy allowed one request. Its fields are private to this module, so
/// nothing outside [`crate::policy`] can make one; [`crate::proxy`] requires it to forward.
#[derive(Debug)]
pub struct Permit {
    decision_id: Uuid,
}

impl Permit {
    /// The allow decision's id (sent upstream as `X-Portcullis-Decision-Id`).
    pub fn decision_id(&self) -> Uuid {
        self.decision_id
    }
}
