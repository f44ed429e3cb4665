//! `policy explain`: the same decision as [`evaluate`](fn@super::evaluate), plus how every
//! criterion of every rule fared. Unlike `evaluate` it does not stop at the first failing
//! criterion, so it costs more; it is for operators and tests, never for the request path.

use jiff::Timestamp;

use super::criteria::criterion_holds;
use super::decision::{Decision, Outcome, Reason};
use super::evaluate::{RequestFacts, no_rule_matched};
use super::rule::{CriterionKind, RoutePolicy, Rule};

/// Whether a rule allows or denies when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleEffect {
    Allow,
    Deny,
}

/// How one criterion fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CriterionCheck {
    /// Which criterion.
    pub criterion: CriterionKind,
    /// Whether it held for the request.
    pub held: bool,
}

/// How one rule fared: every criterion, judged without short-circuit.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RuleCheck<'p> {
    /// The rule id.
    pub rule: &'p str,
    /// Allow or deny rule.
    pub effect: RuleEffect,
    /// Whether every criterion held (and there was at least one).
    pub matched: bool,
    /// Each criterion in rule order.
    pub criteria: Vec<CriterionCheck>,
}

/// The full account of one evaluation: deny rules first, then allow rules, each in config
/// order, and the decision [`evaluate`](fn@super::evaluate) gives for the same input.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Explanation<'p> {
    /// Every rule, deny rules then allow rules.
    pub rules: Vec<RuleCheck<'p>>,
    /// The decision.
    pub decision: Decision<'p>,
}

/// Explains the decision for one request: every criterion of every rule, then the decision.
/// The decision is derived from those per-criterion results by the same precedence as
/// [`evaluate`](fn@super::evaluate) (deny, then allow, then login or default deny), so the
/// two always agree.
pub fn evaluate_explained<'p>(
    policy: &'p RoutePolicy,
    facts: &RequestFacts<'_>,
    now: Timestamp,
) -> Explanation<'p> {
    let check = |rule: &'p Rule, effect| {
        let criteria: Vec<CriterionCheck> = rule
            .criteria
            .iter()
            .map(|criterion| CriterionCheck {
                criterion: criterion.kind(),
                held: criterion_holds(criterion, facts, now),
            })
            .collect();
        RuleCheck {
            rule: &rule.id,
            effect,
            matched: !criteria.is_empty() && criteria.iter().all(|c| c.held),
            criteria,
        }
    };
    let rules: Vec<RuleCheck> = policy
        .deny
        .iter()
        .map(|rule| check(rule, RuleEffect::Deny))
        .chain(
            policy
                .allow
                .iter()
                .map(|rule| check(rule, RuleEffect::Allow)),
        )
        .collect();
    let decision = decide(&rules, policy, facts);
    Explanation { rules, decision }
}

fn decide<'p>(
    rules: &[RuleCheck<'p>],
    policy: &RoutePolicy,
    facts: &RequestFacts<'_>,
) -> Decision<'p> {
    let first_match = |effect| rules.iter().find(|r| r.effect == effect && r.matched);
    let matched = |outcome, rule: &RuleCheck<'p>, reason| Decision {
        id: facts.decision_id,
        outcome,
        rule: Some(rule.rule),
        reasons: vec![reason],
    };
    if let Some(rule) = first_match(RuleEffect::Deny) {
        let reason = Reason::DenyRuleMatched { rule: rule.rule };
        return matched(Outcome::Deny, rule, reason);
    }
    if let Some(rule) = first_match(RuleEffect::Allow) {
        let reason = Reason::AllowRuleMatched { rule: rule.rule };
        return matched(Outcome::Allow, rule, reason);
    }
    let unmet = rules
        .iter()
        .filter(|r| r.effect == RuleEffect::Allow)
        .filter_map(|r| {
            let failed = r.criteria.iter().find(|c| !c.held)?;
            Some(Reason::CriterionNotMet {
                rule: r.rule,
                criterion: failed.criterion,
            })
        });
    no_rule_matched(policy, facts, unmet)
}
