//! The one place that turns portcullis's own outcomes (bad path, no route, deny, login
//! required, upstream failure) into HTTP responses: a small HTML page for browsers, JSON for
//! everything else. Every page carries the request's decision id, so a user can quote it and
//! an operator can find the log line and audit event. Internal details never appear here.

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use uuid::Uuid;

const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

/// Whether the client prefers HTML (a browser navigation).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// A page for `status` with a short public `message` and the decision id.
// Off the proxied path: kept out of line so the hot code packs tighter.
#[cold]
pub fn error_page(status: StatusCode, message: &str, id: Uuid, html: bool) -> Response<Body> {
    let id_text = id.to_string();
    let (content_type, body) = if html {
        let title = status.canonical_reason().unwrap_or("Error");
        (
            "text/html; charset=utf-8",
            format!(
                "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {title}</title>\
                 <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}\
                 code{{background:#eee;padding:0 .3rem}}</style></head>\
                 <body><main><h1>{code} {title}</h1><p>{message}</p>\
                 <p>Request id: <code>{id_text}</code></p></main></body></html>\n",
                code = status.as_u16(),
                title = escape_html(title),
                message = escape_html(message),
            ),
        )
    } else {
        let json = serde_json::json!({
            "error": error_code(status),
            "message": message,
            "status": status.as_u16(),
            "request_id": id_text,
        });
        ("application/json", format!("{json}\n"))
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(&id_text) {
        headers.insert("x-request-id", value);
    }
    response
}

/// 401 for a caller who must authenticate: `WWW-Authenticate: Bearer` (pinned behaviour 3).
#[cold]
pub fn unauthorized(id: Uuid, html: bool) -> Response<Body> {
    let mut response = error_page(
        StatusCode::UNAUTHORIZED,
        "Authentication is required to reach this page.",
        id,
        html,
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"portcullis\""),
    );
    response
}

/// 503 when the audit trail cannot take the request's event: refused rather than served (or
/// answered) unrecorded.
#[cold]
pub fn audit_unavailable(id: Uuid, html: bool) -> Response<Body> {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is busy; please try again shortly.",
        id,
        html,
    )
}

/// 401 for a bearer token that failed validation (RFC 6750 `invalid_token`).
#[cold]
pub fn invalid_token(id: Uuid, html: bool) -> Response<Body> {
    let mut response = error_page(
        StatusCode::UNAUTHORIZED,
        "The access token is not valid.",
        id,
        html,
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"portcullis\", error=\"invalid_token\""),
    );
    response
}

fn error_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::BAD_GATEWAY => "bad_gateway",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        StatusCode::GATEWAY_TIMEOUT => "gateway_timeout",
        _ => "error",
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_page_escapes_and_carries_id() {
        let id = Uuid::now_v7();
        let page = error_page(StatusCode::FORBIDDEN, "<script>", id, true);
        assert_eq!(page.status(), StatusCode::FORBIDDEN);
        assert_eq!(page.headers()["x-request-id"], id.to_string().as_str());
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }

    #[test]
    fn unauthorized_has_bearer_challenge() {
        let page = unauthorized(Uuid::now_v7(), false);
        assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
        assert!(
            page.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }

    #[test]
    fn escape_html_escapes_all_specials() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
