//! The login-related HTML pages (chooser, errors, deny, logout confirmation, logged out),
//! rendered from `templates/` (embedded at build time, minijinja with HTML auto-escaping) and
//! sent with strict security headers: no scripts, no external assets, no framing, no caching.
//! Pages never show internal error details.

use std::sync::LazyLock;

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use minijinja::Environment;
use serde::Serialize;
use uuid::Uuid;

const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

static PAGES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    let sources = [
        ("layout.html", include_str!("../../templates/layout.html")),
        ("chooser.html", include_str!("../../templates/chooser.html")),
        ("error.html", include_str!("../../templates/error.html")),
        ("deny.html", include_str!("../../templates/deny.html")),
        ("logout.html", include_str!("../../templates/logout.html")),
        (
            "logged_out.html",
            include_str!("../../templates/logged_out.html"),
        ),
        ("audit.html", include_str!("../../templates/audit.html")),
    ];
    for (name, source) in sources {
        // The sources are compiled in and covered by tests; a broken one renders the
        // fallback page below instead of panicking.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(template = name, %error, "template does not compile");
        }
    }
    env
});

/// One entry of the login chooser.
#[derive(Serialize)]
pub struct ChooserEntry {
    /// Display name.
    pub name: String,
    /// The login URL for this provider.
    pub href: String,
}

/// Renders `name` with `ctx` inside the layout and answers with `status`.
pub fn page(status: StatusCode, title: &str, name: &str, ctx: minijinja::Value) -> Response<Body> {
    let body = PAGES
        .get_template(name)
        .and_then(|t| t.render(&ctx))
        .and_then(|main| {
            PAGES
                .get_template("layout.html")?
                .render(minijinja::context! { title => title, main => main })
        })
        .unwrap_or_else(|error| {
            tracing::error!(template = name, %error, "page rendering failed");
            "<!doctype html><title>portcullis</title><p>Something went wrong.</p>".to_owned()
        });
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// An error page: `status`, a short public message, the request id, optionally a retry link.
pub fn error(status: StatusCode, message: &str, id: Uuid, retry: Option<&str>) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("Error");
    let mut response = page(
        status,
        &format!("{} {title}", status.as_u16()),
        "error.html",
        minijinja::context! {
            status => status.as_u16(), title => title, message => message,
            request_id => id.to_string(), retry => retry,
        },
    );
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The 403 page for a signed-in caller the policy denies (never a login redirect: that loops).
// Off the proxied path: kept out of line so the hot code packs tighter.
#[cold]
pub fn deny(decision_id: Uuid, who: Option<&str>) -> Response<Body> {
    let mut response = page(
        StatusCode::FORBIDDEN,
        "403 Access denied",
        "deny.html",
        minijinja::context! { decision_id => decision_id.to_string(), who => who },
    );
    if let Ok(value) = HeaderValue::from_str(&decision_id.to_string()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A 302 (or 303 after a POST) to `location` with the security headers and extra cookies.
pub fn redirect(status: StatusCode, location: &str, cookies: &[HeaderValue]) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(header::LOCATION, value);
        }
        Err(_) => {
            headers.insert(header::LOCATION, HeaderValue::from_static("/"));
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn every_template_renders_and_escapes() {
        let id = Uuid::now_v7();
        let first = error(
            StatusCode::BAD_REQUEST,
            "<script>x</script>",
            id,
            Some("/.portcullis/login?rd=%2F"),
        );
        assert_eq!(first.headers()["x-frame-options"], "DENY");
        assert_eq!(first.headers()["cache-control"], "no-store");
        let text = body(first).await;
        assert!(text.contains("&lt;script&gt;"), "{text}");
        assert!(text.contains(&id.to_string()));
        assert!(text.contains("<main>"));

        let text = body(deny(id, Some("alice@corp.example"))).await;
        assert!(text.contains("alice@corp.example") && text.contains(&id.to_string()));

        let entries = vec![ChooserEntry {
            name: "Okta <corp>".into(),
            href: "/.portcullis/login?provider=okta&rd=%2F".into(),
        }];
        let text = body(page(
            StatusCode::OK,
            "Sign in",
            "chooser.html",
            minijinja::context! { providers => entries },
        ))
        .await;
        assert!(
            text.contains("Okta &lt;corp&gt;") && text.contains("provider=okta&amp;rd=%2F"),
            "{text}"
        );

        let text = body(page(
            StatusCode::OK,
            "Sign out",
            "logout.html",
            minijinja::context! { provider => "Okta" },
        ))
        .await;
        assert!(text.contains("method=\"post\""));
        let text = body(page(
            StatusCode::OK,
            "Signed out",
            "logged_out.html",
            minijinja::context! {},
        ))
        .await;
        assert!(text.contains("signed out"));
        assert!(!text.contains("Something went wrong"));
    }

    #[test]
    fn redirect_carries_cookies() {
        let r = redirect(
            StatusCode::FOUND,
            "/x",
            &[
                HeaderValue::from_static("a=1"),
                HeaderValue::from_static("b=2"),
            ],
        );
        assert_eq!(r.headers()[header::LOCATION], "/x");
        assert_eq!(r.headers().get_all(header::SET_COOKIE).iter().count(), 2);
    }
}
