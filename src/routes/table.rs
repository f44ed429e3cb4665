//! The route table: most specific match wins. Owns route selection (host class, then path
//! prefix length, then whether the route names methods) and the refusal of routes that tie.
//! Everything is worked out once in [`RouteTable::new`]; [`RouteTable::find`] runs per request
//! and never allocates. It does not normalize request paths (callers pass the output of
//! [`super::normalize_path`]) and does not decide who may pass.

use std::borrow::Cow;
use std::cmp::Ordering;

use http::Method;

use super::{HostPattern, normalize_path};
use crate::config::RouteConfig;

/// Two routes that would tie for the same requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConflict {
    /// Index of the later route in the config.
    pub index: usize,
    /// Index of the earlier route it ties with.
    pub other: usize,
}

/// Routes sorted by specificity. `find` returns an index into the config's `routes`.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    /// Most specific first, so the first match is the answer.
    entries: Vec<Entry>,
}

/// What `find` needs of one route, precomputed.
#[derive(Clone, Debug)]
struct Entry {
    /// Index into the config's routes.
    index: usize,
    host: Option<HostPattern>,
    /// The normalized prefix without its trailing slash (`/api/` and `/api` are both `/api`,
    /// pinned behaviour 5); empty for `/`, which matches every path.
    base: Box<str>,
    methods: Option<Box<[Method]>>,
    /// `case_insensitive_paths`: `base` is lowercase and compared ASCII case-insensitively.
    case_insensitive: bool,
}

impl RouteTable {
    /// Builds the table; every pair of tying routes is reported. Two routes tie when they have
    /// the same host pattern, the same path prefix (ignoring a trailing slash) and either both
    /// name no methods or both name a common one. A route naming methods next to one naming
    /// none is not a tie: the one naming methods is more specific and wins for its methods. A route whose path is not a
    /// valid route path (see [`validate_route_path`]) matches nothing; config refuses it.
    pub fn new(routes: &[RouteConfig]) -> Result<Self, Vec<RouteConflict>> {
        let entries: Vec<Entry> = routes
            .iter()
            .enumerate()
            .filter_map(|(index, route)| Entry::new(index, route))
            .collect();

        let mut conflicts = Vec::new();
        for (later_pos, later) in entries.iter().enumerate() {
            for earlier in &entries[..later_pos] {
                if later.ties_with(earlier) {
                    conflicts.push(RouteConflict {
                        index: later.index,
                        other: earlier.index,
                    });
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(conflicts);
        }

        let mut entries = entries;
        entries.sort_by(Entry::specificity);
        Ok(RouteTable { entries })
    }

    /// The most specific route for this host (lowercase, no port; None when the request has
    /// none), normalized path and method.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Option<usize> {
        self.entries
            .iter()
            .find(|entry| entry.matches(host, path, method))
            .map(|entry| entry.index)
    }

    /// How many routes can match anything (routes with invalid paths are left out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no route can match.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Checks a route's `path` as written in the config and returns its normalized form (what
/// the table matches against), or a message saying what is wrong. Beyond what
/// [`normalize_path`] refuses, a route path must be plain URI path characters: no query
/// (`?`), fragment (`#`), spaces or non-ASCII (percent-encode them), since a request path
/// never contains them raw and such a route could never match.
pub fn validate_route_path(p: &str) -> Result<String, String> {
    if let Some(bad) = p.chars().find(|&c| !is_route_path_char(c)) {
        return Err(match bad {
            '?' => "route path must not contain a query (`?`)".to_string(),
            '#' => "route path must not contain a fragment (`#`)".to_string(),
            c => format!("route path must not contain {c:?} (percent-encode it)"),
        });
    }
    normalize_path(p)
        .map(Cow::into_owned)
        .map_err(|e| format!("invalid route path: {e}"))
}

/// RFC 3986 `pchar` plus `/` (and `%`, whose escapes `normalize_path` checks), excluding
/// `\` and control characters, which `normalize_path` names precisely.
fn is_route_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/%\\".contains(c) || c.is_ascii_control()
}

impl Entry {
    fn new(index: usize, route: &RouteConfig) -> Option<Self> {
        let normalized = validate_route_path(&route.path).ok()?;
        let base = normalized.strip_suffix('/').unwrap_or(&normalized);
        let case_insensitive = route.case_insensitive_paths;
        Some(Entry {
            index,
            host: route.host.clone(),
            base: if case_insensitive {
                base.to_ascii_lowercase().into()
            } else {
                base.into()
            },
            methods: route.methods.as_deref().map(Box::from),
            case_insensitive,
        })
    }

    fn matches(&self, host: Option<&str>, path: &str, method: &Method) -> bool {
        let host_ok = match (&self.host, host) {
            (None, _) => true,
            (Some(pattern), Some(host)) => pattern.matches(host),
            (Some(_), None) => false,
        };
        host_ok
            && prefix_matches(&self.base, path, self.case_insensitive)
            && self
                .methods
                .as_ref()
                .is_none_or(|m| crate::policy::method_listed(m, method))
    }

    fn ties_with(&self, other: &Entry) -> bool {
        // A case-insensitive route overlaps any route whose prefix differs only in case.
        let same_base = if self.case_insensitive || other.case_insensitive {
            self.base.eq_ignore_ascii_case(&other.base)
        } else {
            self.base == other.base
        };
        self.host == other.host
            && same_base
            && match (&self.methods, &other.methods) {
                // A common method, counting a GET's HEAD (`policy::method_listed`).
                (Some(mine), Some(theirs)) => {
                    mine.iter().any(|m| crate::policy::method_listed(theirs, m))
                        || theirs.iter().any(|m| crate::policy::method_listed(mine, m))
                }
                (None, None) => true,
                // The route naming methods is the more specific one: not a tie.
                _ => false,
            }
    }

    /// `Less` means more specific: exact host, then wildcard (longer domain first), then any
    /// host; then longer prefix; then routes naming methods. Config order breaks the
    /// remaining ties, which are only routes that can never match the same request.
    fn specificity(a: &Entry, b: &Entry) -> Ordering {
        host_rank(&a.host)
            .cmp(&host_rank(&b.host))
            .then_with(|| b.base.len().cmp(&a.base.len()))
            .then_with(|| b.methods.is_some().cmp(&a.methods.is_some()))
            .then_with(|| a.index.cmp(&b.index))
    }
}

/// Lower is more specific; a longer wildcard domain is more specific than a shorter one.
fn host_rank(host: &Option<HostPattern>) -> (u8, std::cmp::Reverse<usize>) {
    match host {
        Some(HostPattern::Exact(_)) => (0, std::cmp::Reverse(0)),
        Some(HostPattern::Wildcard(domain)) => (1, std::cmp::Reverse(domain.len())),
        None => (2, std::cmp::Reverse(0)),
    }
}

/// `base` (no trailing slash) covers `path` when they are equal or `path` continues with a
/// new segment: `/api` covers `/api`, `/api/` and `/api/x`, never `/apix`. With
/// `case_insensitive`, `/API/x` too (compared in place: no allocation per request).
fn prefix_matches(base: &str, path: &str, case_insensitive: bool) -> bool {
    let (base, path) = (base.as_bytes(), path.as_bytes());
    let Some(head) = path.get(..base.len()) else {
        return false;
    };
    let same = if case_insensitive {
        head.eq_ignore_ascii_case(base)
    } else {
        head == base
    };
    match &path[base.len()..] {
        _ if !same => false,
        [] => !base.is_empty(),
        rest => rest.starts_with(b"/"),
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
