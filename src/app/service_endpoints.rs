//! Small reserved endpoints for services (not browsers): `/.portcullis/jwks.json`, the public
//! keys that verify `X-Portcullis-Jwt-Assertion`. Reads state only; decides nothing.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use http::{HeaderValue, Response, header};

use super::AppState;

/// `GET /.portcullis/jwks.json`: the assertion keys (current and previous), cacheable briefly
/// so upstreams pick up a rotation within minutes.
pub async fn jwks(State(state): State<Arc<AppState>>) -> Response<Body> {
    let mut response = Response::new(Body::from(state.assertion.jwks_json()));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
