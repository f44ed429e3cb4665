//! Host patterns: exact (`app.corp.example`) or wildcard (`*.corp.example`).

/// A route's host: exact or `*.domain`. Stored lowercased, without a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Matches this host only.
    Exact(String),
    /// `*.corp.example` is stored as `corp.example`; matches any host ending in
    /// `.corp.example` (one or more labels in front), never `corp.example` itself.
    Wildcard(String),
}

impl HostPattern {
    /// Parses `app.corp.example` or `*.corp.example`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let _ = s;
        Err("not implemented".into())
    }

    /// Whether `host` (lowercase, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        let _ = host;
        false
    }
}
