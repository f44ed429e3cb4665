//! `evaluate_explained`: every criterion judged, rules listed deny first, JSON for the CLI,
//! and agreement with `evaluate` over a grid of routes and callers.

use http::Method;

use super::{Request, alice, groups, not_met, policy, public_route, rule, team_route};
use crate::identity::AuthMethod;
use crate::policy::{Criterion, CriterionKind, Outcome, RuleEffect, evaluate_explained};

/// (rule id, effect, matched, [(criterion, held)]) for compact comparisons.
type RuleSummary<'a> = (&'a str, RuleEffect, bool, Vec<(CriterionKind, bool)>);

#[test]
fn explanation_judges_every_criterion() {
    let request = Request::anonymous().path("/admin/x");
    let route = team_route();
    let explanation = evaluate_explained(&route, &request.facts(), request.now);
    let summary: Vec<RuleSummary<'_>> = explanation
        .rules
        .iter()
        .map(|r| {
            let criteria = r.criteria.iter().map(|c| (c.criterion, c.held)).collect();
            (r.rule, r.effect, r.matched, criteria)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "admin-ops-only",
                RuleEffect::Deny,
                true,
                vec![(CriterionKind::Paths, true), (CriterionKind::Auth, true)]
            ),
            (
                "eng",
                RuleEffect::Allow,
                false,
                vec![(CriterionKind::Groups, false)]
            ),
            (
                "status",
                RuleEffect::Allow,
                false,
                // A matched deny rule does not stop the allow rules being judged.
                vec![
                    (CriterionKind::Methods, true),
                    (CriterionKind::Paths, false)
                ]
            ),
        ]
    );
    assert_eq!(explanation.decision.outcome, Outcome::Deny);
}

#[test]
fn explanation_does_not_short_circuit_after_a_failure() {
    let route = policy(
        vec![rule(
            "r",
            vec![
                groups(&["nope"]),
                Criterion::Methods(vec![Method::GET]),
                groups(&["eng"]),
            ],
        )],
        Vec::new(),
        &[AuthMethod::Session],
    );
    let request = Request::as_user(alice());
    let explanation = evaluate_explained(&route, &request.facts(), request.now);
    let held: Vec<bool> = explanation.rules[0]
        .criteria
        .iter()
        .map(|c| c.held)
        .collect();
    assert_eq!(held, vec![false, true, true]);
    assert_eq!(
        explanation.decision.reasons[1],
        not_met("r", CriterionKind::Groups)
    );
}

#[test]
fn explanation_serializes_for_the_cli() {
    let request = Request::anonymous();
    let route = team_route();
    let explanation = evaluate_explained(&route, &request.facts(), request.now);
    let json = serde_json::to_value(&explanation).unwrap();
    assert_eq!(json["decision"]["outcome"], "login");
    assert_eq!(json["rules"][0]["effect"], "deny");
    assert_eq!(json["rules"][1]["criteria"][0]["criterion"], "groups");
    assert_eq!(
        json["decision"]["reasons"][0]["reason"],
        "authentication_required"
    );
}

/// Every route here against every caller: `decide` asserts that the explanation agrees.
#[test]
fn evaluate_and_explain_agree_across_a_grid() {
    let routes = [
        public_route(),
        team_route(),
        policy(Vec::new(), Vec::new(), &[AuthMethod::Bearer]),
    ];
    let mut bearer = alice();
    bearer.auth = AuthMethod::Bearer;
    bearer.groups.clear();
    let callers = [None, Some(alice()), Some(bearer)];
    let paths = [
        "/",
        "/admin",
        "/admin/",
        "/administrator",
        "/status",
        "/app/x",
    ];
    let methods = [Method::GET, Method::POST];
    let ips = ["192.0.2.1", "::ffff:10.0.0.1", "2001:db8::1"];
    let mut seen = std::collections::HashSet::new();
    for route in &routes {
        for caller in &callers {
            for path in paths {
                for method in &methods {
                    for ip in ips {
                        let mut request = match caller {
                            Some(identity) => Request::as_user(identity.clone()),
                            None => Request::anonymous(),
                        };
                        request = request.path(path).method(method.clone()).ip(ip);
                        let decision = request.decide(route);
                        if caller.is_some() {
                            assert_ne!(decision.outcome, Outcome::Login);
                        }
                        assert_eq!(
                            decision.permit().is_some(),
                            decision.outcome == Outcome::Allow
                        );
                        seen.insert(decision.outcome);
                    }
                }
            }
        }
    }
    assert_eq!(seen.len(), 3, "the grid exercises allow, deny and login");
}
