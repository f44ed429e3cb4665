//! Policy rules as data. Built by [`crate::config`] from the file; read by [`super::evaluate`].

use std::sync::Arc;

use http::Method;
use ipnet::IpNet;

use crate::identity::AuthMethod;

/// The policy of one route: allow rules (OR'd), deny rules (any match wins), default deny.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutePolicy {
    /// Rules of which any one allows.
    pub allow: Vec<Rule>,
    /// Rules of which any one denies, whatever the allow rules say.
    pub deny: Vec<Rule>,
    /// How the route accepts identities. When it accepts `session` or `bearer`, an anonymous
    /// caller who matches no allow rule gets [`Outcome::Login`](super::Outcome::Login)
    /// instead of a deny.
    pub accepts: Vec<AuthMethod>,
}

impl RoutePolicy {
    /// Lowercases every `paths` pattern (ASCII), for a route whose paths compare
    /// case-insensitively: the request path is lowercased in turn before evaluation.
    pub fn lowercase_paths(&mut self) {
        for rule in self.allow.iter_mut().chain(self.deny.iter_mut()) {
            for criterion in &mut rule.criteria {
                if let Criterion::Paths(patterns) = criterion {
                    for pattern in patterns {
                        let (PathPattern::Prefix(text) | PathPattern::Glob(text)) = pattern;
                        text.make_ascii_lowercase();
                    }
                }
            }
        }
    }
}

/// One rule: the AND of its criteria. Never empty (config rejects a rule without criteria).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Rule id from the config, or `allow[N]` / `deny[N]` when the file gave none.
    pub id: Arc<str>,
    /// Every criterion must hold for the rule to match.
    pub criteria: Vec<Criterion>,
}

/// One criterion of a rule. List-valued criteria match when ANY entry matches, except
/// `GroupsAll` and `Scopes`, which need ALL entries.
#[derive(Clone, Debug, PartialEq)]
pub enum Criterion {
    /// `public = true`: matches every caller, anonymous included.
    Public,
    /// `subjects`: the identity's `sub` is one of these (exact).
    Subjects(Vec<String>),
    /// `emails`: the identity's verified email is one of these (stored lowercased).
    Emails(Vec<String>),
    /// `email_domains`: the verified email's domain is one of these (stored lowercased).
    EmailDomains(Vec<String>),
    /// `groups`: the identity is in at least one of these groups.
    Groups(Vec<String>),
    /// `groups_all`: the identity is in every one of these groups.
    GroupsAll(Vec<String>),
    /// `claims`: for every (name, values) pair, the claim equals one of the values, or (when
    /// the claim is an array) contains one of them. A dotted name reads a nested claim.
    Claims(Vec<(String, Vec<ClaimValue>)>),
    /// `scopes`: the identity holds every one of these scopes.
    Scopes(Vec<String>),
    /// `issuers`: the identity's `iss` is one of these (exact).
    Issuers(Vec<String>),
    /// `providers`: the identity came from one of these configured provider ids.
    Providers(Vec<String>),
    /// `auth`: the identity was presented in one of these ways (`none` = anonymous).
    Auth(Vec<AuthMethod>),
    /// `methods`: the request method is one of these.
    Methods(Vec<Method>),
    /// `paths`: the normalized request path matches one of these patterns.
    Paths(Vec<PathPattern>),
    /// `ip`: the client address is inside one of these networks.
    Ip(Vec<IpNet>),
    /// `time`: now falls inside one of these windows.
    Time(Vec<TimeWindow>),
}

impl Criterion {
    /// Which criterion this is, for reasons and explanations.
    pub fn kind(&self) -> CriterionKind {
        match self {
            Criterion::Public => CriterionKind::Public,
            Criterion::Subjects(_) => CriterionKind::Subjects,
            Criterion::Emails(_) => CriterionKind::Emails,
            Criterion::EmailDomains(_) => CriterionKind::EmailDomains,
            Criterion::Groups(_) => CriterionKind::Groups,
            Criterion::GroupsAll(_) => CriterionKind::GroupsAll,
            Criterion::Claims(_) => CriterionKind::Claims,
            Criterion::Scopes(_) => CriterionKind::Scopes,
            Criterion::Issuers(_) => CriterionKind::Issuers,
            Criterion::Providers(_) => CriterionKind::Providers,
            Criterion::Auth(_) => CriterionKind::Auth,
            Criterion::Methods(_) => CriterionKind::Methods,
            Criterion::Paths(_) => CriterionKind::Paths,
            Criterion::Ip(_) => CriterionKind::Ip,
            Criterion::Time(_) => CriterionKind::Time,
        }
    }
}

/// The name of a criterion as written in the config, for reasons and explanations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CriterionKind {
    Public,
    Subjects,
    Emails,
    EmailDomains,
    Groups,
    GroupsAll,
    Claims,
    Scopes,
    Issuers,
    Providers,
    Auth,
    Methods,
    Paths,
    Ip,
    Time,
}

impl CriterionKind {
    /// The config spelling (`email_domains`, `groups_all`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CriterionKind::Public => "public",
            CriterionKind::Subjects => "subjects",
            CriterionKind::Emails => "emails",
            CriterionKind::EmailDomains => "email_domains",
            CriterionKind::Groups => "groups",
            CriterionKind::GroupsAll => "groups_all",
            CriterionKind::Claims => "claims",
            CriterionKind::Scopes => "scopes",
            CriterionKind::Issuers => "issuers",
            CriterionKind::Providers => "providers",
            CriterionKind::Auth => "auth",
            CriterionKind::Methods => "methods",
            CriterionKind::Paths => "paths",
            CriterionKind::Ip => "ip",
            CriterionKind::Time => "time",
        }
    }

    /// Whether the criterion reads the identity (and so never holds for an anonymous caller).
    /// `auth` is not one: `auth = ["none"]` is how a rule names anonymous callers.
    pub fn is_identity(self) -> bool {
        matches!(
            self,
            CriterionKind::Subjects
                | CriterionKind::Emails
                | CriterionKind::EmailDomains
                | CriterionKind::Groups
                | CriterionKind::GroupsAll
                | CriterionKind::Claims
                | CriterionKind::Scopes
                | CriterionKind::Issuers
                | CriterionKind::Providers
        )
    }
}

/// A value a claim is compared with.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimValue {
    String(String),
    Integer(i64),
    Bool(bool),
}

/// A `paths` entry. Without `*` it is a prefix on segment boundaries (`/admin` matches `/admin`
/// and `/admin/x`, not `/administrator`; `/admin/` also matches `/admin`). With `*` it is a glob
/// over the whole path: `*` matches within one segment, `**` across segments.
#[derive(Clone, Debug, PartialEq)]
pub enum PathPattern {
    Prefix(String),
    Glob(String),
}

/// A weekly time window in a time zone: on `days`, from `start` (inclusive) to `end`
/// (exclusive), local time. `end <= start` means the window runs past midnight.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeWindow {
    /// Days the window opens on (the day `start` falls on).
    pub days: Vec<jiff::civil::Weekday>,
    /// Local opening time.
    pub start: jiff::civil::Time,
    /// Local closing time.
    pub end: jiff::civil::Time,
    /// IANA time zone the window is read in.
    pub tz: jiff::tz::TimeZone,
}
