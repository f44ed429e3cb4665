//! Each criterion alone: holds, does not hold, and (for identity criteria) never holds for an
//! anonymous caller.

use http::Method;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde_json::json;

use super::{Request, alice, strings};
use crate::identity::{AuthMethod, Identity};
use crate::policy::{ClaimValue, Criterion, PathPattern, TimeWindow};

fn anon() -> Request {
    Request::anonymous()
}

fn user(identity: Identity) -> Request {
    Request::as_user(identity)
}

/// Every identity criterion, each written so that alice satisfies it.
fn identity_criteria_alice_meets() -> Vec<Criterion> {
    vec![
        Criterion::Subjects(strings(&["alice"])),
        Criterion::Emails(strings(&["alice@example.com"])),
        Criterion::EmailDomains(strings(&["example.com"])),
        Criterion::Groups(strings(&["eng"])),
        Criterion::GroupsAll(strings(&["eng", "ops"])),
        Criterion::Claims(vec![(
            "sub".to_owned(),
            vec![ClaimValue::String("alice".to_owned())],
        )]),
        Criterion::Scopes(strings(&["read"])),
        Criterion::Issuers(strings(&["https://idp.example"])),
        Criterion::Providers(strings(&["corp"])),
    ]
}

fn alice_with_claims() -> Identity {
    let mut identity = alice();
    identity.claims = match json!({"sub": "alice", "realm_access": {"roles": ["admin"]}}) {
        serde_json::Value::Object(map) => map,
        _ => unreachable!(),
    };
    identity
}

#[test]
fn identity_criteria_hold_for_a_matching_user() {
    for criterion in identity_criteria_alice_meets() {
        let kind = criterion.kind();
        assert!(user(alice_with_claims()).holds(criterion), "{kind:?}");
    }
}

#[test]
fn identity_criteria_never_hold_for_anonymous() {
    for criterion in identity_criteria_alice_meets() {
        let kind = criterion.kind();
        assert!(kind.is_identity());
        assert!(!anon().holds(criterion), "{kind:?} held for anonymous");
    }
}

#[test]
fn public_holds_for_everyone() {
    assert!(anon().holds(Criterion::Public));
    assert!(user(alice()).holds(Criterion::Public));
}

#[test]
fn subjects_are_exact() {
    assert!(user(alice()).holds(Criterion::Subjects(strings(&["bob", "alice"]))));
    assert!(!user(alice()).holds(Criterion::Subjects(strings(&["bob"]))));
    assert!(!user(alice()).holds(Criterion::Subjects(strings(&["Alice"]))));
}

#[test]
fn emails_compare_ignoring_case() {
    assert!(user(alice()).holds(Criterion::Emails(strings(&["ALICE@Example.COM"]))));
    let mut shouting = alice();
    shouting.email = Some("Alice@EXAMPLE.com".to_owned());
    assert!(user(shouting).holds(Criterion::Emails(strings(&["alice@example.com"]))));
    assert!(!user(alice()).holds(Criterion::Emails(strings(&["bob@example.com"]))));
    assert!(!user(alice()).holds(Criterion::Emails(strings(&["alice@example.co"]))));
}

#[test]
fn emails_need_an_email() {
    let mut no_email = alice();
    no_email.email = None;
    assert!(!user(no_email.clone()).holds(Criterion::Emails(strings(&["alice@example.com"]))));
    assert!(!user(no_email).holds(Criterion::EmailDomains(strings(&["example.com"]))));
}

#[test]
fn email_domains_are_exact_not_subdomains() {
    assert!(user(alice()).holds(Criterion::EmailDomains(strings(&["EXAMPLE.com"]))));
    assert!(!user(alice()).holds(Criterion::EmailDomains(strings(&["ample.com"]))));
    assert!(!user(alice()).holds(Criterion::EmailDomains(strings(&["mail.example.com"]))));
    let mut sub = alice();
    sub.email = Some("alice@mail.example.com".to_owned());
    assert!(!user(sub.clone()).holds(Criterion::EmailDomains(strings(&["example.com"]))));
    assert!(user(sub).holds(Criterion::EmailDomains(strings(&["mail.example.com"]))));
}

#[test]
fn email_domain_is_after_the_last_at() {
    let mut tricky = alice();
    tricky.email = Some("\"evil@example.com\"@attacker.test".to_owned());
    assert!(!user(tricky.clone()).holds(Criterion::EmailDomains(strings(&["example.com"]))));
    assert!(user(tricky).holds(Criterion::EmailDomains(strings(&["attacker.test"]))));
    let mut no_at = alice();
    no_at.email = Some("example.com".to_owned());
    assert!(!user(no_at).holds(Criterion::EmailDomains(strings(&["example.com"]))));
}

#[test]
fn groups_need_any() {
    assert!(user(alice()).holds(Criterion::Groups(strings(&["finance", "ops"]))));
    assert!(!user(alice()).holds(Criterion::Groups(strings(&["finance"]))));
    assert!(
        !user(alice()).holds(Criterion::Groups(strings(&["ENG"]))),
        "case-sensitive"
    );
}

#[test]
fn groups_all_need_every_one() {
    assert!(user(alice()).holds(Criterion::GroupsAll(strings(&["ops", "eng"]))));
    assert!(!user(alice()).holds(Criterion::GroupsAll(strings(&["eng", "finance"]))));
}

#[test]
fn scopes_need_every_one() {
    assert!(user(alice()).holds(Criterion::Scopes(strings(&["read", "write"]))));
    assert!(!user(alice()).holds(Criterion::Scopes(strings(&["read", "admin"]))));
    assert!(!user(alice()).holds(Criterion::Scopes(strings(&["READ"]))));
}

#[test]
fn empty_lists_never_hold() {
    for criterion in [
        Criterion::Groups(Vec::new()),
        Criterion::GroupsAll(Vec::new()),
        Criterion::Scopes(Vec::new()),
        Criterion::Claims(Vec::new()),
        Criterion::Subjects(Vec::new()),
        Criterion::Methods(Vec::new()),
        Criterion::Paths(Vec::new()),
        Criterion::Ip(Vec::new()),
        Criterion::Time(Vec::new()),
        Criterion::Auth(Vec::new()),
    ] {
        let kind = criterion.kind();
        assert!(!user(alice()).holds(criterion), "{kind:?}");
    }
}

#[test]
fn issuers_and_providers() {
    assert!(!user(alice()).holds(Criterion::Issuers(strings(&["https://other.example"]))));
    assert!(!user(alice()).holds(Criterion::Providers(strings(&["github"]))));
    let mut bearer = alice();
    bearer.provider = None;
    assert!(!user(bearer).holds(Criterion::Providers(strings(&["corp"]))));
}

#[test]
fn claims_read_nested_values_from_the_identity() {
    let roles = |role: &str| {
        Criterion::Claims(vec![(
            "realm_access.roles".to_owned(),
            vec![ClaimValue::String(role.to_owned())],
        )])
    };
    assert!(user(alice_with_claims()).holds(roles("admin")));
    assert!(!user(alice_with_claims()).holds(roles("root")));
    assert!(!user(alice()).holds(roles("admin")), "no claims at all");
}

#[test]
fn auth_compares_how_the_identity_came() {
    let auth = |methods: &[AuthMethod]| Criterion::Auth(methods.to_vec());
    assert!(user(alice()).holds(auth(&[AuthMethod::Session])));
    assert!(!user(alice()).holds(auth(&[AuthMethod::Bearer])));
    assert!(!user(alice()).holds(auth(&[AuthMethod::None])));
    let mut bearer = alice();
    bearer.auth = AuthMethod::Bearer;
    assert!(user(bearer).holds(auth(&[AuthMethod::Session, AuthMethod::Bearer])));
}

#[test]
fn auth_none_is_how_rules_name_anonymous() {
    assert!(anon().holds(Criterion::Auth(vec![AuthMethod::None])));
    assert!(anon().holds(Criterion::Auth(vec![AuthMethod::Session, AuthMethod::None])));
    assert!(!anon().holds(Criterion::Auth(vec![
        AuthMethod::Session,
        AuthMethod::Bearer
    ])));
}

#[test]
fn methods() {
    let reads = || Criterion::Methods(vec![Method::GET, Method::HEAD]);
    assert!(anon().holds(reads()));
    assert!(anon().method(Method::HEAD).holds(reads()));
    assert!(!anon().method(Method::POST).holds(reads()));
    assert!(user(alice()).method(Method::GET).holds(reads()));
    // A listed GET covers HEAD (frameworks answer HEAD with the GET handler); not the reverse.
    let get = || Criterion::Methods(vec![Method::GET]);
    assert!(anon().method(Method::HEAD).holds(get()));
    let head = || Criterion::Methods(vec![Method::HEAD]);
    assert!(!anon().method(Method::GET).holds(head()));
    let custom = Method::from_bytes(b"PROPFIND").unwrap();
    assert!(
        anon()
            .method(custom.clone())
            .holds(Criterion::Methods(vec![custom]))
    );
}

#[test]
fn paths_hold_for_anonymous_too() {
    let paths = || {
        Criterion::Paths(vec![
            PathPattern::Prefix("/admin/".to_owned()),
            PathPattern::Glob("/api/*/users".to_owned()),
        ])
    };
    assert!(anon().path("/admin").holds(paths()));
    assert!(anon().path("/admin/x").holds(paths()));
    assert!(anon().path("/api/v2/users").holds(paths()));
    assert!(!anon().path("/administrator").holds(paths()));
    assert!(!anon().path("/api/v2/users/7").holds(paths()));
    assert!(user(alice()).path("/admin/x").holds(paths()));
}

fn nets(list: &[&str]) -> Criterion {
    Criterion::Ip(list.iter().map(|n| n.parse().unwrap()).collect())
}

#[test]
fn ip_v4() {
    let office = || nets(&["10.0.0.0/8", "192.0.2.0/24"]);
    assert!(anon().ip("10.1.2.3").holds(office()));
    assert!(anon().ip("192.0.2.200").holds(office()));
    assert!(!anon().ip("192.0.3.1").holds(office()));
    assert!(!anon().ip("2001:db8::1").holds(office()));
    assert!(user(alice()).ip("10.0.0.1").holds(office()));
}

#[test]
fn ip_v6() {
    let lab = || nets(&["2001:db8:1::/48"]);
    assert!(anon().ip("2001:db8:1:ffff::1").holds(lab()));
    assert!(!anon().ip("2001:db8:2::1").holds(lab()));
    assert!(!anon().ip("10.0.0.1").holds(lab()));
}

#[test]
fn ip_mapped_v4_is_the_v4_address() {
    assert!(anon().ip("::ffff:10.1.2.3").holds(nets(&["10.0.0.0/8"])));
    assert!(!anon().ip("::ffff:11.1.2.3").holds(nets(&["10.0.0.0/8"])));
    assert!(
        anon()
            .ip("::ffff:10.1.2.3")
            .holds(nets(&["::ffff:10.0.0.0/104"]))
    );
    assert!(anon().ip("10.1.2.3").holds(nets(&["10.1.2.3/32"])));
    // IPv4-compatible (deprecated, `::a.b.c.d`) addresses are not IPv4 clients.
    assert!(!anon().ip("::10.1.2.3").holds(nets(&["10.0.0.0/8"])));
}

#[test]
fn time_holds_for_anonymous_too() {
    let berlin_office = || {
        Criterion::Time(vec![TimeWindow {
            days: vec![Weekday::Monday, Weekday::Tuesday],
            start: Time::constant(9, 0, 0, 0),
            end: Time::constant(17, 0, 0, 0),
            tz: TimeZone::get("Europe/Berlin").unwrap(),
        }])
    };
    // noon() is Monday 13:00 in Berlin.
    assert!(anon().holds(berlin_office()));
    assert!(user(alice()).holds(berlin_office()));
    assert!(!anon().at("2024-01-15T17:00:00Z").holds(berlin_office()));
    assert!(
        !anon().at("2024-01-17T12:00:00Z").holds(berlin_office()),
        "Wednesday"
    );
}

#[test]
fn time_holds_when_any_window_is_open() {
    let utc = TimeZone::UTC;
    let window = |start: i8, end: i8| TimeWindow {
        days: vec![Weekday::Monday],
        start: Time::constant(start, 0, 0, 0),
        end: Time::constant(end, 0, 0, 0),
        tz: utc.clone(),
    };
    assert!(anon().holds(Criterion::Time(vec![window(1, 2), window(11, 13)])));
    assert!(!anon().holds(Criterion::Time(vec![window(1, 2), window(13, 14)])));
}
