//! Where a request's bearer token is read from, and the gateway's one call to turn it into a
//! [`Presented`]. The `Authorization: Bearer` header only; a query parameter only when the
//! route names one (`bearer_query_param`); nothing at all when the route's `auth` lacks
//! `bearer` (the token is then ignored, not refused).

use std::borrow::Cow;

use http::{HeaderMap, Uri, header};

use super::bearer::BearerValidator;
use super::{AuthMethod, Identity, Presented};
use crate::config::RouteConfig;

/// What the request carries for bearer authentication.
#[derive(Debug, PartialEq, Eq)]
pub enum BearerPresented<'a> {
    /// No bearer token (no `Authorization`, or another scheme such as Basic).
    Absent,
    /// A token to validate.
    Token(Cow<'a, str>),
    /// `Authorization: Bearer` with nothing usable after it.
    Empty,
}

/// Reads the token from the headers, or from the route's opted-in query parameter.
pub fn bearer_token<'a>(
    headers: &'a HeaderMap,
    uri: &'a Uri,
    route: &RouteConfig,
) -> BearerPresented<'a> {
    if !route.auth.contains(&AuthMethod::Bearer) {
        return BearerPresented::Absent;
    }
    for value in headers.get_all(header::AUTHORIZATION) {
        let Ok(value) = value.to_str() else { continue };
        let value = value.trim();
        let Some((scheme, rest)) = value.split_once(' ') else {
            if value.eq_ignore_ascii_case("bearer") {
                return BearerPresented::Empty;
            }
            continue;
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim();
            return if token.is_empty() {
                BearerPresented::Empty
            } else {
                BearerPresented::Token(Cow::Borrowed(token))
            };
        }
    }
    let (Some(name), Some(query)) = (route.bearer_query_param.as_deref(), uri.query()) else {
        return BearerPresented::Absent;
    };
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == name {
            return if value.is_empty() {
                BearerPresented::Empty
            } else {
                BearerPresented::Token(Cow::Owned(value.into_owned()))
            };
        }
    }
    BearerPresented::Absent
}

/// The gateway's bearer step: anonymous when no token is presented, otherwise the verified
/// identity or why the token was refused.
pub async fn presented(
    validator: &BearerValidator,
    headers: &HeaderMap,
    uri: &Uri,
    route: &RouteConfig,
) -> Presented {
    match bearer_token(headers, uri, route) {
        BearerPresented::Absent => Presented::Anonymous,
        BearerPresented::Empty => Presented::InvalidBearer {
            reason: "empty bearer token".into(),
        },
        BearerPresented::Token(token) => match validator.validate(&token).await {
            Ok(identity) => Presented::Verified(Identity::clone(&identity)),
            Err(error) => Presented::InvalidBearer {
                reason: error.to_string(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(auth: &[AuthMethod], query: Option<&str>) -> RouteConfig {
        let mut route = crate::proxy::test_support::route(&["http://127.0.0.1:1".to_owned()]);
        route.auth = auth.to_vec();
        route.bearer_query_param = query.map(str::to_owned);
        route
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn token(b: BearerPresented<'_>) -> Option<String> {
        match b {
            BearerPresented::Token(t) => Some(t.into_owned()),
            _ => None,
        }
    }

    #[test]
    fn reads_the_authorization_header_case_insensitively() {
        let uri: Uri = "/x".parse().unwrap();
        let bearer = route(&[AuthMethod::Bearer], None);
        for value in ["Bearer abc", "bearer abc", "BEARER   abc  "] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(
                token(bearer_token(&h, &uri, &bearer)).as_deref(),
                Some("abc"),
                "{value}"
            );
        }
        let h = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(bearer_token(&h, &uri, &bearer), BearerPresented::Absent);
        let h = headers(&[("authorization", "Basic x"), ("authorization", "Bearer t")]);
        assert_eq!(token(bearer_token(&h, &uri, &bearer)).as_deref(), Some("t"));
        for value in ["Bearer", "Bearer   "] {
            let h = headers(&[("authorization", value)]);
            assert_eq!(
                bearer_token(&h, &uri, &bearer),
                BearerPresented::Empty,
                "{value}"
            );
        }
    }

    #[test]
    fn ignored_when_the_route_does_not_accept_bearer() {
        let uri: Uri = "/x?access_token=abc".parse().unwrap();
        let h = headers(&[("authorization", "Bearer abc")]);
        let session_only = route(&[AuthMethod::Session], Some("access_token"));
        assert_eq!(
            bearer_token(&h, &uri, &session_only),
            BearerPresented::Absent
        );
    }

    #[test]
    fn query_string_only_when_the_route_opts_in() {
        let h = HeaderMap::new();
        let uri: Uri = "/x?a=1&access_token=tok%2Ben&b=2".parse().unwrap();
        let plain = route(&[AuthMethod::Bearer], None);
        assert_eq!(bearer_token(&h, &uri, &plain), BearerPresented::Absent);
        let opted = route(&[AuthMethod::Bearer], Some("access_token"));
        assert_eq!(
            token(bearer_token(&h, &uri, &opted)).as_deref(),
            Some("tok+en")
        );
        let other = route(&[AuthMethod::Bearer], Some("token"));
        assert_eq!(bearer_token(&h, &uri, &other), BearerPresented::Absent);
        // The header wins over the query parameter.
        let h = headers(&[("authorization", "Bearer head")]);
        assert_eq!(
            token(bearer_token(&h, &uri, &opted)).as_deref(),
            Some("head")
        );
    }
}
