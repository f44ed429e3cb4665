//! Where a request goes. Owns path normalization ([`normalize_path`]), host patterns and the
//! request host ([`HostPattern`], [`host_of`]) and the route table ([`RouteTable`]), which
//! picks the most specific route for a host, path and method: exact host over wildcard over
//! any host, then longer path prefix, then routes that name methods. File order never
//! matters; two routes that tie are refused when the table is built.
//! It does not decide who may pass (that is [`crate::policy`]).

mod host;
mod normalize;
mod table;

pub use host::{HostPattern, host_of, is_host_field};
pub use normalize::{PathError, normalize_path};
pub use table::{RouteConflict, RouteTable, validate_route_path};
