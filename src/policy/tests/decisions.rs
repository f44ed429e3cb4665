//! Whole decisions: precedence of deny over allow, default deny, login versus deny, reasons,
//! permits, and agreement between `evaluate` and `evaluate_explained` (every `decide` call
//! checks it). The explanation's own shape is tested in `explain`.

use http::Method;

use super::{
    Request, admin_prefix, alice, decision_id, groups, not_met, policy, public_route, rule,
    strings, team_route,
};
use crate::identity::AuthMethod;
use crate::policy::{Criterion, CriterionKind, Outcome, Reason};

#[test]
fn public_allow_has_exactly_one_reason_and_a_permit() {
    let route = public_route();
    for request in [Request::anonymous(), Request::as_user(alice())] {
        let decision = request.decide(&route);
        assert_eq!(decision.outcome, Outcome::Allow);
        assert_eq!(decision.rule, Some("public"));
        assert_eq!(
            decision.reasons,
            vec![Reason::AllowRuleMatched { rule: "public" }]
        );
        assert_eq!(
            decision.reasons.capacity(),
            1,
            "the allow path allocates one reason"
        );
        assert_eq!(decision.id, decision_id());
        let permit = decision.permit().unwrap();
        assert_eq!(permit.decision_id(), decision_id());
    }
}

#[test]
fn allow_after_failing_rules_still_has_one_reason() {
    let route = policy(
        vec![
            rule("ops", vec![groups(&["ops-only"])]),
            rule("eng", vec![groups(&["eng"])]),
        ],
        Vec::new(),
        &[AuthMethod::Session],
    );
    let decision = Request::as_user(alice()).decide(&route);
    assert_eq!(decision.outcome, Outcome::Allow);
    assert_eq!(
        decision.reasons,
        vec![Reason::AllowRuleMatched { rule: "eng" }]
    );
}

#[test]
fn first_matching_allow_rule_decides() {
    let route = policy(
        vec![
            rule("by-group", vec![groups(&["eng"])]),
            rule("by-subject", vec![Criterion::Subjects(strings(&["alice"]))]),
        ],
        Vec::new(),
        &[AuthMethod::Session],
    );
    let decision = Request::as_user(alice()).decide(&route);
    assert_eq!(decision.rule, Some("by-group"));
}

#[test]
fn deny_overrides_allow() {
    let route = policy(
        vec![rule("public", vec![Criterion::Public])],
        vec![rule("no-admin", vec![admin_prefix()])],
        &[AuthMethod::Session],
    );
    let decision = Request::as_user(alice())
        .path("/admin/users")
        .decide(&route);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(decision.rule, Some("no-admin"));
    assert_eq!(
        decision.reasons,
        vec![Reason::DenyRuleMatched { rule: "no-admin" }]
    );
    assert!(decision.permit().is_none());
    // Outside the deny rule's reach the allow applies.
    let elsewhere = Request::as_user(alice())
        .path("/administrator")
        .decide(&route);
    assert_eq!(elsewhere.outcome, Outcome::Allow);
}

#[test]
fn matching_deny_beats_login_for_anonymous() {
    let route = team_route();
    let decision = Request::anonymous().path("/admin").decide(&route);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(decision.rule, Some("admin-ops-only"));
}

#[test]
fn first_matching_deny_rule_is_named() {
    let route = policy(
        vec![rule("public", vec![Criterion::Public])],
        vec![
            rule("posts", vec![Criterion::Methods(vec![Method::POST])]),
            rule("admin", vec![admin_prefix()]),
            rule("admin-again", vec![admin_prefix()]),
        ],
        &[],
    );
    let decision = Request::anonymous().path("/admin").decide(&route);
    assert_eq!(decision.rule, Some("admin"));
}

#[test]
fn default_deny_lists_each_allow_rules_first_failing_criterion() {
    let mut bob = alice();
    bob.groups = vec!["sales".to_owned()];
    let route = team_route();
    let decision = Request::as_user(bob)
        .method(Method::POST)
        .path("/status")
        .decide(&route);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(decision.rule, None);
    assert_eq!(
        decision.reasons,
        vec![
            Reason::NoAllowRuleMatched,
            not_met("eng", CriterionKind::Groups),
            not_met("status", CriterionKind::Methods),
        ]
    );
    assert!(decision.permit().is_none());
}

#[test]
fn no_rules_at_all_is_default_deny() {
    let route = policy(Vec::new(), Vec::new(), &[AuthMethod::None]);
    let decision = Request::anonymous().decide(&route);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(decision.reasons, vec![Reason::NoAllowRuleMatched]);
}

#[test]
fn anonymous_on_a_login_route_gets_login() {
    for accepts in [
        vec![AuthMethod::Session],
        vec![AuthMethod::Bearer],
        vec![AuthMethod::None, AuthMethod::Session],
    ] {
        let mut route = team_route();
        route.accepts = accepts;
        let decision = Request::anonymous().path("/app").decide(&route);
        assert_eq!(decision.outcome, Outcome::Login);
        assert_eq!(decision.rule, None);
        assert_eq!(
            decision.reasons,
            vec![
                Reason::AuthenticationRequired,
                not_met("eng", CriterionKind::Groups),
                not_met("status", CriterionKind::Paths),
            ]
        );
        assert!(decision.permit().is_none());
    }
}

#[test]
fn anonymous_on_a_route_without_login_gets_deny() {
    for accepts in [vec![AuthMethod::None], Vec::new()] {
        let mut route = team_route();
        route.accepts = accepts;
        let decision = Request::anonymous().decide(&route);
        assert_eq!(decision.outcome, Outcome::Deny);
        assert_eq!(decision.reasons[0], Reason::NoAllowRuleMatched);
    }
}

#[test]
fn logged_in_but_not_allowed_is_deny_never_login() {
    let mut bob = alice();
    bob.groups.clear();
    for auth in [AuthMethod::Session, AuthMethod::Bearer] {
        bob.auth = auth;
        for accepts in [
            vec![AuthMethod::Session],
            vec![AuthMethod::Bearer],
            vec![AuthMethod::Session, AuthMethod::Bearer],
        ] {
            let mut route = team_route();
            route.accepts = accepts;
            let decision = Request::as_user(bob.clone()).decide(&route);
            assert_eq!(decision.outcome, Outcome::Deny, "{auth:?}");
            assert!(!decision.reasons.contains(&Reason::AuthenticationRequired));
        }
    }
}

#[test]
fn anonymous_allowed_by_public_or_auth_none() {
    let anon_rule = policy(
        vec![rule("anon", vec![Criterion::Auth(vec![AuthMethod::None])])],
        Vec::new(),
        &[AuthMethod::Session, AuthMethod::None],
    );
    assert_eq!(
        Request::anonymous().decide(&anon_rule).outcome,
        Outcome::Allow
    );
    // The same rule does not let a logged-in user through: auth = ["none"] means anonymous.
    assert_eq!(
        Request::as_user(alice()).decide(&anon_rule).outcome,
        Outcome::Deny
    );
    let route = team_route();
    let decision = Request::anonymous().path("/status/health").decide(&route);
    assert_eq!(decision.outcome, Outcome::Allow);
    assert_eq!(decision.rule, Some("status"));
}

#[test]
fn rule_is_the_and_of_its_criteria() {
    let criteria = vec![
        groups(&["eng"]),
        Criterion::Methods(vec![Method::GET]),
        Criterion::Ip(vec!["192.0.2.0/24".parse().unwrap()]),
    ];
    let route = policy(
        vec![rule("all", criteria)],
        Vec::new(),
        &[AuthMethod::Session],
    );
    assert_eq!(
        Request::as_user(alice()).decide(&route).outcome,
        Outcome::Allow
    );
    let wrong_method = Request::as_user(alice())
        .method(Method::DELETE)
        .decide(&route);
    assert_eq!(
        wrong_method.reasons[1],
        not_met("all", CriterionKind::Methods)
    );
    let wrong_ip = Request::as_user(alice()).ip("198.51.100.1").decide(&route);
    assert_eq!(wrong_ip.reasons[1], not_met("all", CriterionKind::Ip));
    // Several failing: the first in rule order is named.
    let everything_wrong = Request::anonymous()
        .method(Method::DELETE)
        .ip("198.51.100.1")
        .decide(&route);
    assert_eq!(
        everything_wrong.reasons[1],
        not_met("all", CriterionKind::Groups)
    );
}

#[test]
fn order_is_irrelevant_when_only_one_rule_matches() {
    let rules = [
        rule("sales", vec![groups(&["sales"])]),
        rule("eng", vec![groups(&["eng"])]),
        rule("finance", vec![groups(&["finance"])]),
    ];
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let allow = order.iter().map(|&i| rules[i].clone()).collect();
        let route = policy(allow, Vec::new(), &[AuthMethod::Session]);
        let decision = Request::as_user(alice()).decide(&route);
        assert_eq!(decision.outcome, Outcome::Allow);
        assert_eq!(decision.rule, Some("eng"));
        // The same holds for deny rules.
        let deny = order.iter().map(|&i| rules[i].clone()).collect();
        let route = policy(vec![rule("public", vec![Criterion::Public])], deny, &[]);
        let decision = Request::as_user(alice()).decide(&route);
        assert_eq!(decision.outcome, Outcome::Deny);
        assert_eq!(decision.rule, Some("eng"));
    }
}

#[test]
fn a_rule_without_criteria_matches_nothing() {
    let route = policy(
        vec![rule("empty", Vec::new())],
        vec![rule("empty-deny", Vec::new())],
        &[],
    );
    let decision = Request::as_user(alice()).decide(&route);
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(decision.rule, None);
    assert_eq!(decision.reasons, vec![Reason::NoAllowRuleMatched]);
}
