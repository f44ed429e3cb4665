//! Who may pass a route. Rules are plain data ([`RoutePolicy`], [`Rule`], [`Criterion`]) and
//! [`evaluate`] is a pure function of the policy, the request facts and the clock: no I/O, no
//! globals. This module is the only place that can construct a [`Permit`], and
//! [`crate::proxy`] forwards nothing without one. It imports neither axum nor any database.

mod claims;
mod criteria;
mod decision;
mod evaluate;
mod explain;
mod path_pattern;
mod rule;
mod time_window;

#[cfg(test)]
mod tests;

pub use criteria::method_listed;
pub use decision::{Decision, Outcome, Permit, Reason};
pub use evaluate::{RequestFacts, evaluate};
pub use explain::{CriterionCheck, Explanation, RuleCheck, RuleEffect, evaluate_explained};
pub use rule::{ClaimValue, Criterion, CriterionKind, PathPattern, RoutePolicy, Rule, TimeWindow};
