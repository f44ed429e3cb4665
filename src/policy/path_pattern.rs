//! Matching a normalized request path against a `paths` entry: segment-boundary prefixes and
//! whole-path globs. It does not normalize paths (that is [`crate::routes`]' job, done before
//! the policy runs) and uses no regex: the glob matcher is a dynamic programme over positions,
//! so its cost is bounded by pattern length times path length whatever the input.

use super::rule::PathPattern;

impl PathPattern {
    /// Whether `path` (already normalized, no query) matches this pattern.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Prefix(prefix) => prefix_matches(prefix, path),
            PathPattern::Glob(glob) => glob_matches(glob, path),
        }
    }
}

/// A prefix matches on segment boundaries only, so `/admin` never covers `/administrator`.
/// A prefix ending in `/` also covers the same path without the slash (pinned behaviour 5).
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if let Some(rest) = path.strip_prefix(prefix) {
        return rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/');
    }
    match prefix.strip_suffix('/') {
        Some(bare) => !bare.is_empty() && path == bare,
        None => false,
    }
}

/// Whole-path glob: `*` matches any run of bytes except `/`, `**` (or any longer run of stars)
/// matches any run including `/`; every other byte matches itself.
///
/// `reach[j]` says whether the pattern read so far can match exactly the first `j` bytes of the
/// path; each pattern token updates it in place in one sweep, so the work is
/// O(pattern x path) with one allocation, where naive backtracking is exponential on patterns
/// like `*a*a*a*b`. Working on bytes is sound for UTF-8: `/` is ASCII, and a star's run ends
/// either at the end of the path or just before a literal byte that must itself match, so a
/// match never splits a character in a way that changes the answer.
fn glob_matches(glob: &str, path: &str) -> bool {
    let text = path.as_bytes();
    let pattern = glob.as_bytes();
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    let mut i = 0;
    while i < pattern.len() {
        if pattern[i] == b'*' {
            let run = pattern[i..].iter().take_while(|&&b| b == b'*').count();
            i += run;
            let crosses_segments = run >= 2;
            // Ascending sweep: a star extends every reachable position forward.
            for j in 1..=text.len() {
                if !reach[j] && reach[j - 1] && (crosses_segments || text[j - 1] != b'/') {
                    reach[j] = true;
                }
            }
        } else {
            let literal = pattern[i];
            i += 1;
            // Descending sweep so each position reads the previous token's value.
            for j in (1..=text.len()).rev() {
                reach[j] = reach[j - 1] && text[j - 1] == literal;
            }
            reach[0] = false;
            if !reach.contains(&true) {
                return false;
            }
        }
    }
    reach[text.len()]
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn prefix(p: &str, path: &str) -> bool {
        PathPattern::Prefix(p.to_owned()).matches(path)
    }

    fn glob(g: &str, path: &str) -> bool {
        PathPattern::Glob(g.to_owned()).matches(path)
    }

    #[test]
    fn prefix_matches_itself_and_below() {
        assert!(prefix("/admin", "/admin"));
        assert!(prefix("/admin", "/admin/"));
        assert!(prefix("/admin", "/admin/users/1"));
    }

    #[test]
    fn prefix_respects_segment_boundaries() {
        assert!(!prefix("/admin", "/administrator"));
        assert!(!prefix("/admin", "/admin-panel"));
        assert!(!prefix("/admin", "/adm"));
        assert!(!prefix("/admin", "/"));
        assert!(!prefix("/admin", "/x/admin"));
    }

    #[test]
    fn prefix_with_trailing_slash_covers_bare_path() {
        assert!(prefix("/admin/", "/admin"));
        assert!(prefix("/admin/", "/admin/"));
        assert!(prefix("/admin/", "/admin/x"));
        assert!(!prefix("/admin/", "/administrator"));
        assert!(!prefix("/admin/", "/admi"));
    }

    #[test]
    fn root_prefix_covers_everything() {
        assert!(prefix("/", "/"));
        assert!(prefix("/", "/anything/at/all"));
        // "/" without its slash is "", which is not a path.
        assert!(!prefix("/", ""));
    }

    #[test]
    fn prefix_is_case_sensitive() {
        assert!(!prefix("/admin", "/Admin"));
    }

    #[test]
    fn single_star_stays_in_one_segment() {
        assert!(glob("/api/*/users", "/api/v1/users"));
        assert!(glob("/api/*/users", "/api//users"));
        assert!(!glob("/api/*/users", "/api/v1/v2/users"));
        assert!(!glob("/api/*/users", "/api/v1/users/1"));
        assert!(!glob("/api/*/users", "/api/users"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(glob("/files/**", "/files/a"));
        assert!(glob("/files/**", "/files/a/b/c.txt"));
        assert!(glob("/files/**", "/files/"));
        assert!(!glob("/files/**", "/files"));
        assert!(!glob("/files/**", "/filesystem/x"));
    }

    #[test]
    fn double_star_suffix_patterns() {
        assert!(glob("**/*.pdf", "/a.pdf"));
        assert!(glob("**/*.pdf", "/docs/2024/report.pdf"));
        assert!(!glob("**/*.pdf", "/docs/report.pdf/x"));
        assert!(!glob("**/*.pdf", "/docs/report.pdfx"));
        assert!(glob("/docs/**/index.html", "/docs/a/b/index.html"));
        assert!(!glob("/docs/**/index.html", "/docs/index.html"));
    }

    #[test]
    fn glob_is_whole_path() {
        assert!(glob("/a*", "/abc"));
        assert!(!glob("/a*", "/abc/d"));
        assert!(!glob("/b*", "/abc"));
        assert!(glob("/exact", "/exact"));
        assert!(!glob("/exact", "/exact/"));
    }

    #[test]
    fn star_runs_longer_than_two_act_as_double_star() {
        assert!(glob("/x/***", "/x/a/b"));
    }

    #[test]
    fn stars_may_match_empty_runs() {
        assert!(glob("/a*b", "/ab"));
        assert!(glob("/a**b", "/ab"));
        assert!(glob("*", ""));
        assert!(!glob("/a", ""));
    }

    #[test]
    fn glob_handles_non_ascii() {
        assert!(glob("/caf*/menu", "/café/menu"));
        assert!(glob("/*é", "/café"));
        assert!(!glob("/*é", "/cafe"));
    }

    #[test]
    fn adversarial_glob_finishes_fast() {
        let pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let path = "a".repeat(20_000);
        let started = Instant::now();
        assert!(!glob(pattern, &path));
        let mut with_b = path.clone();
        with_b.push('b');
        assert!(glob(pattern, &with_b));
        let double = "**a**a**a**a**a**a**a**a**a**a**b";
        assert!(!glob(double, &path));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
