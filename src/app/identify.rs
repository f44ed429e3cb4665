//! Who is calling, for the gateway and for forward-auth alike (one function, so the two can
//! never disagree): a bearer token when the route takes them and one was sent, else the
//! browser session when the route takes sessions and the session's provider is accepted.

use http::{HeaderMap, HeaderValue, Uri};

use super::AppState;
use crate::config::RouteConfig;
use crate::identity::{AuthMethod, Identity, Presented, bearer_request};

/// Who is calling, and what to send upstream on their behalf.
pub(crate) struct Caller {
    /// The identity presented.
    pub presented: Presented,
    /// `Authorization: Bearer <provider access token>` for a session user on a route with
    /// `pass_access_token`.
    pub access_token: Option<HeaderValue>,
}

/// The identity `headers` (and, when the route opts in, the query of `uri`) present for `route`.
/// The lookups are boxed: their futures (session stores, JWKS refresh) are kilobytes, and
/// inline they would make every request's future that large, public routes' too.
pub(crate) async fn identify(
    state: &AppState,
    route: &RouteConfig,
    headers: &HeaderMap,
    uri: &Uri,
) -> Caller {
    if route.auth.contains(&AuthMethod::Bearer) {
        let presented = Box::pin(bearer_request::presented(
            &state.bearer,
            headers,
            uri,
            route,
        ))
        .await;
        if presented != Presented::Anonymous {
            return Caller {
                presented,
                access_token: None,
            };
        }
    }
    if route.auth.contains(&AuthMethod::Session)
        && let Some(data) = Box::pin(super::browser::session_data(state, headers)).await
        && provider_accepted(route, &data.identity)
    {
        let access_token = match (&data.access_token, route.pass_access_token) {
            (Some(token), true) => {
                HeaderValue::try_from(format!("Bearer {token}"))
                    .ok()
                    .map(|mut value| {
                        value.set_sensitive(true);
                        value
                    })
            }
            _ => None,
        };
        return Caller {
            presented: Presented::Verified(data.identity),
            access_token,
        };
    }
    Caller {
        presented: Presented::Anonymous,
        access_token: None,
    }
}

/// A route may take logins from some providers only (`providers = [..]`).
fn provider_accepted(route: &RouteConfig, identity: &Identity) -> bool {
    route.providers.is_empty()
        || identity
            .provider
            .as_ref()
            .is_some_and(|p| route.providers.contains(p))
}
