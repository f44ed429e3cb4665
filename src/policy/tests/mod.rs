//! Tests of the policy as a whole: each criterion through [`super::criteria`], and whole
//! decisions through [`super::evaluate`], always cross-checked against
//! [`super::evaluate_explained`]. Per-file unit tests cover paths, time windows and claims.

mod criteria;
mod decisions;
mod explain;

use std::net::IpAddr;

use http::Method;
use jiff::Timestamp;
use uuid::Uuid;

use super::{
    Criterion, CriterionKind, Decision, PathPattern, Reason, RequestFacts, RoutePolicy, Rule,
    evaluate, evaluate_explained,
};
use crate::identity::{AuthMethod, Identity};

/// A fixed instant: Monday 2024-01-15 12:00 UTC.
fn noon() -> Timestamp {
    "2024-01-15T12:00:00Z".parse().unwrap()
}

fn decision_id() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

/// A request: GET /app from 192.0.2.10 unless changed.
struct Request {
    method: Method,
    path: String,
    ip: IpAddr,
    identity: Option<Identity>,
    now: Timestamp,
}

impl Request {
    fn anonymous() -> Self {
        Request {
            method: Method::GET,
            path: "/app".to_owned(),
            ip: "192.0.2.10".parse().unwrap(),
            identity: None,
            now: noon(),
        }
    }

    fn as_user(identity: Identity) -> Self {
        Request {
            identity: Some(identity),
            ..Request::anonymous()
        }
    }

    fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    fn path(mut self, path: &str) -> Self {
        self.path = path.to_owned();
        self
    }

    fn ip(mut self, ip: &str) -> Self {
        self.ip = ip.parse().unwrap();
        self
    }

    fn at(mut self, instant: &str) -> Self {
        self.now = instant.parse().unwrap();
        self
    }

    fn facts(&self) -> RequestFacts<'_> {
        RequestFacts {
            decision_id: decision_id(),
            method: &self.method,
            path: &self.path,
            client_ip: self.ip,
            identity: self.identity.as_ref(),
        }
    }

    /// Evaluates, and checks that the explanation reaches the very same decision.
    fn decide<'p>(&self, policy: &'p RoutePolicy) -> Decision<'p> {
        let decision = evaluate(policy, &self.facts(), self.now);
        let explained = evaluate_explained(policy, &self.facts(), self.now);
        assert_eq!(
            decision, explained.decision,
            "evaluate and evaluate_explained disagree"
        );
        decision
    }

    /// Whether a single criterion holds, checked both directly and through a one-rule policy.
    fn holds(&self, criterion: Criterion) -> bool {
        let direct = super::criteria::criterion_holds(&criterion, &self.facts(), self.now);
        let policy = RoutePolicy {
            allow: vec![rule("only", vec![criterion])],
            deny: Vec::new(),
            accepts: vec![AuthMethod::Session],
        };
        let allowed = self.decide(&policy).outcome == super::Outcome::Allow;
        assert_eq!(direct, allowed, "criterion and one-rule policy disagree");
        direct
    }
}

/// A session user `alice` of `https://idp.example`, email alice@example.com, groups eng+ops.
fn alice() -> Identity {
    Identity {
        subject: "alice".to_owned(),
        issuer: "https://idp.example".to_owned(),
        email: Some("alice@example.com".to_owned()),
        groups: vec!["eng".to_owned(), "ops".to_owned()],
        scopes: vec!["read".to_owned(), "write".to_owned()],
        provider: Some("corp".to_owned()),
        client_id: None,
        auth: AuthMethod::Session,
        claims: serde_json::Map::new(),
    }
}

fn rule(id: &str, criteria: Vec<Criterion>) -> Rule {
    Rule {
        id: id.into(),
        criteria,
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

fn policy(allow: Vec<Rule>, deny: Vec<Rule>, accepts: &[AuthMethod]) -> RoutePolicy {
    RoutePolicy {
        allow,
        deny,
        accepts: accepts.to_vec(),
    }
}

fn public_route() -> RoutePolicy {
    policy(
        vec![rule("public", vec![Criterion::Public])],
        Vec::new(),
        &[AuthMethod::None],
    )
}

fn groups(list: &[&str]) -> Criterion {
    Criterion::Groups(strings(list))
}

fn admin_prefix() -> Criterion {
    Criterion::Paths(vec![PathPattern::Prefix("/admin".to_owned())])
}

/// Login-capable route: eng may do anything, anyone may GET /status; /admin is denied to
/// everyone outside ops.
fn team_route() -> RoutePolicy {
    policy(
        vec![
            rule("eng", vec![groups(&["eng"])]),
            rule(
                "status",
                vec![
                    Criterion::Methods(vec![Method::GET]),
                    Criterion::Paths(vec![PathPattern::Prefix("/status".to_owned())]),
                ],
            ),
        ],
        vec![rule(
            "admin-ops-only",
            vec![admin_prefix(), Criterion::Auth(vec![AuthMethod::None])],
        )],
        &[AuthMethod::Session],
    )
}

fn not_met(rule: &str, criterion: CriterionKind) -> Reason<'_> {
    Reason::CriterionNotMet { rule, criterion }
}
