//! The route table: most specific match wins.

use http::Method;

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
pub struct RouteTable {}

impl RouteTable {
    /// Builds the table; every pair of tying routes is reported.
    pub fn new(routes: &[RouteConfig]) -> Result<Self, Vec<RouteConflict>> {
        let _ = routes;
        Ok(RouteTable {})
    }

    /// The most specific route for this host (lowercase, no port; None when the request has
    /// none), normalized path and method.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Option<usize> {
        let _ = (host, path, method);
        None
    }
}
