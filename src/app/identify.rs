//! Who is calling, for the gateway and for forward-auth alike (one function, so the two can
//! never disagree): a bearer token when the route takes them and one was sent, else the
//! browser session when the route takes sessions and the session's provider is accepted.

use http::{HeaderMap, Uri};

use super::AppState;
use crate::config::RouteConfig;
use crate::identity::{AuthMethod, Identity, Presented, bearer_request};

/// The identity `headers` (and, when the route opts in, the query of `uri`) present for `route`.
pub(crate) async fn identify(
    state: &AppState,
    route: &RouteConfig,
    headers: &HeaderMap,
    uri: &Uri,
) -> Presented {
    if route.auth.contains(&AuthMethod::Bearer) {
        let presented = bearer_request::presented(&state.bearer, headers, uri, route).await;
        if presented != Presented::Anonymous {
            return presented;
        }
    }
    if route.auth.contains(&AuthMethod::Session)
        && let Some(identity) = super::browser::session_identity(state, headers).await
        && provider_accepted(route, &identity)
    {
        return Presented::Verified(identity);
    }
    Presented::Anonymous
}

/// A route may take logins from some providers only (`providers = [..]`).
fn provider_accepted(route: &RouteConfig, identity: &Identity) -> bool {
    route.providers.is_empty()
        || identity
            .provider
            .as_ref()
            .is_some_and(|p| route.providers.contains(p))
}
