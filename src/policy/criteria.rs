//! Whether one [`Criterion`] holds for one request. Each criterion is judged alone; combining
//! them into rules and rules into a decision is [`super::evaluate`]'s job.
//!
//! Fail closed: an identity criterion never holds for an anonymous caller, and an empty list
//! never holds (config rejects empty lists; if one slipped through, "all of nothing" must not
//! grant access). Nothing here allocates or clones the identity.

use std::net::IpAddr;

use jiff::Timestamp;

use super::claims::all_claims_hold;
use super::evaluate::RequestFacts;
use super::rule::Criterion;
use crate::identity::{AuthMethod, Identity};

/// Whether `method` is one of `listed`, a listed `GET` covering `HEAD`: every common framework
/// answers HEAD with its GET handler, so a rule or route about GET that left HEAD out would
/// let HEAD reach that handler under other rules (a deny on GET, passed by HEAD). Shared with
/// route matching so the two never disagree.
pub fn method_listed(listed: &[http::Method], method: &http::Method) -> bool {
    listed.contains(method)
        || (*method == http::Method::HEAD && listed.contains(&http::Method::GET))
}

/// Whether `criterion` holds for the request described by `facts` at `now`.
pub(super) fn criterion_holds(
    criterion: &Criterion,
    facts: &RequestFacts<'_>,
    now: Timestamp,
) -> bool {
    match criterion {
        Criterion::Public => true,
        Criterion::Auth(methods) => {
            let presented = facts
                .identity
                .map_or(AuthMethod::None, |identity| identity.auth);
            methods.contains(&presented)
        }
        Criterion::Methods(methods) => method_listed(methods, facts.method),
        Criterion::Paths(patterns) => patterns.iter().any(|pattern| pattern.matches(facts.path)),
        Criterion::Ip(networks) => ip_in_networks(facts.client_ip, networks),
        Criterion::Time(windows) => windows.iter().any(|window| window.contains(now)),
        identity_criterion => facts
            .identity
            .is_some_and(|identity| identity_holds(identity_criterion, identity)),
    }
}

/// The criteria that read the identity. Only called with a real (non-anonymous) identity.
fn identity_holds(criterion: &Criterion, identity: &Identity) -> bool {
    match criterion {
        Criterion::Subjects(subjects) => subjects.contains(&identity.subject),
        Criterion::Emails(emails) => identity.email.as_deref().is_some_and(|email| {
            emails
                .iter()
                .any(|wanted| same_ignoring_case(wanted, email))
        }),
        Criterion::EmailDomains(domains) => identity
            .email
            .as_deref()
            .and_then(|email| email.rsplit_once('@'))
            .is_some_and(|(_, domain)| {
                domains
                    .iter()
                    .any(|wanted| same_ignoring_case(wanted, domain))
            }),
        Criterion::Groups(groups) => groups.iter().any(|group| identity.groups.contains(group)),
        Criterion::GroupsAll(groups) => {
            !groups.is_empty() && groups.iter().all(|group| identity.groups.contains(group))
        }
        Criterion::Claims(required) => all_claims_hold(required, &identity.claims),
        Criterion::Scopes(scopes) => {
            !scopes.is_empty() && scopes.iter().all(|scope| identity.scopes.contains(scope))
        }
        Criterion::Issuers(issuers) => issuers.contains(&identity.issuer),
        Criterion::Providers(providers) => identity
            .provider
            .as_ref()
            .is_some_and(|provider| providers.contains(provider)),
        // Request criteria are answered by `criterion_holds` before it gets here.
        Criterion::Public
        | Criterion::Auth(_)
        | Criterion::Methods(_)
        | Criterion::Paths(_)
        | Criterion::Ip(_)
        | Criterion::Time(_) => false,
    }
}

/// Unicode-aware case-insensitive equality without allocating. Config and identity sources
/// both lowercase emails already; this guards against one of them forgetting.
fn same_ignoring_case(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack socket reports for an
/// IPv4 client) is the IPv4 address, so IPv4 networks must catch it. It is checked in both
/// spellings so that an IPv6 network written for mapped addresses still matches too.
fn ip_in_networks(client: IpAddr, networks: &[ipnet::IpNet]) -> bool {
    let canonical = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        IpAddr::V4(_) => client,
    };
    networks
        .iter()
        .any(|network| network.contains(&canonical) || network.contains(&client))
}
