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
    /// More than one credential: several `Authorization` fields, a repeated query parameter,
    /// or a header and a query token that differ. Refused rather than picked: the upstream
    /// also receives them and may read another one than the one validated.
    Ambiguous,
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
    let mut fields = headers.get_all(header::AUTHORIZATION).iter();
    let first = fields.next();
    if fields.next().is_some() {
        return BearerPresented::Ambiguous;
    }
    let from_header = first.and_then(|value| header_token(value.as_bytes()));
    let from_query = query_token(uri, route);
    match (from_header, from_query) {
        (_, Some(QueryToken::Repeated)) => BearerPresented::Ambiguous,
        (Some(header), Some(QueryToken::One(query))) if header_value(&header) != query => {
            BearerPresented::Ambiguous
        }
        (Some(header), _) => header,
        (None, Some(QueryToken::One(query))) if query.is_empty() => BearerPresented::Empty,
        (None, Some(QueryToken::One(query))) => BearerPresented::Token(query),
        (None, None) => BearerPresented::Absent,
    }
}

/// The token text of a header reading, for comparing it with a query token.
fn header_value<'a>(presented: &'a BearerPresented<'_>) -> &'a str {
    match presented {
        BearerPresented::Token(token) => token,
        _ => "",
    }
}

/// `Bearer TOKEN` (scheme case-insensitive): the token, `Empty` for a bare `Bearer`, `None`
/// for another scheme (Basic) or a value that is not text.
fn header_token(value: &[u8]) -> Option<BearerPresented<'_>> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let Some((scheme, rest)) = value.split_once(' ') else {
        return value
            .eq_ignore_ascii_case("bearer")
            .then_some(BearerPresented::Empty);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    Some(if token.is_empty() {
        BearerPresented::Empty
    } else {
        BearerPresented::Token(Cow::Borrowed(token))
    })
}

/// What the route's opted-in query parameter holds.
enum QueryToken<'a> {
    One(Cow<'a, str>),
    Repeated,
}

fn query_token<'a>(uri: &'a Uri, route: &RouteConfig) -> Option<QueryToken<'a>> {
    let (Some(name), Some(query)) = (route.bearer_query_param.as_deref(), uri.query()) else {
        return None;
    };
    let mut values = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value);
    let first = values.next()?;
    if values.next().is_some() {
        return Some(QueryToken::Repeated);
    }
    Some(QueryToken::One(first))
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
        BearerPresented::Ambiguous => Presented::InvalidBearer {
            reason: "more than one bearer credential".into(),
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
        // Two fields: refused, whichever scheme each names. The upstream receives both and
        // may read the other one (a forged token behind a valid one).
        for pair in [["Basic x", "Bearer t"], ["Bearer valid", "Bearer forged"]] {
            let h = headers(&[("authorization", pair[0]), ("authorization", pair[1])]);
            assert_eq!(bearer_token(&h, &uri, &bearer), BearerPresented::Ambiguous);
        }
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
        // A header and a query token must agree; the query is forwarded as is, so the
        // upstream could read the one portcullis did not validate.
        let h = headers(&[("authorization", "Bearer head")]);
        assert_eq!(bearer_token(&h, &uri, &opted), BearerPresented::Ambiguous);
        let h = headers(&[("authorization", "Bearer tok+en")]);
        assert_eq!(
            token(bearer_token(&h, &uri, &opted)).as_deref(),
            Some("tok+en")
        );
        // A Basic header beside a query token leaves the query token.
        let h = headers(&[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(
            token(bearer_token(&h, &uri, &opted)).as_deref(),
            Some("tok+en")
        );
        let h = HeaderMap::new();
        let twice: Uri = "/x?access_token=a&access_token=b".parse().unwrap();
        assert_eq!(bearer_token(&h, &twice, &opted), BearerPresented::Ambiguous);
        let empty: Uri = "/x?access_token=".parse().unwrap();
        assert_eq!(bearer_token(&h, &empty, &opted), BearerPresented::Empty);
    }
}
