//! Why forwarding failed, and how client errors become [`ProxyError`]s. Messages name the
//! upstream (its configured URL) and the cause, never the request path, query or headers:
//! they are logged and must not leak request data (tokens ride in queries).

use std::error::Error as StdError;
use std::fmt::Write as _;

use http::StatusCode;

use super::body;

/// Why forwarding failed. Mapped to a status by [`ProxyError::status`]; details are logged,
/// never sent to the client.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Could not connect to any upstream (after retries).
    #[error("upstream connect failed: {0}")]
    Connect(String),
    /// The upstream did not send a response head in time.
    #[error("upstream response timed out")]
    Timeout,
    /// The request body is over the route's `max_body`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The client's request body could not be read (malformed chunked coding, a connection
    /// cut mid-body): the client's fault, answered 400, and never counted against the
    /// upstream.
    #[error("request body unreadable: {0}")]
    BadRequestBody(String),
    /// The client paused its request body longer than the route's `idle_timeout`: 408.
    #[error("request body stalled")]
    RequestBodyTimeout,
    /// Any other upstream failure (reset, protocol error). Also used by
    /// [`super::RouteProxy::new`] for a route whose upstream side cannot be built.
    #[error("upstream error: {0}")]
    Upstream(String),
}

impl ProxyError {
    /// 502 for connect and upstream errors, 504 for timeouts; the request body's own
    /// failures are the client's: 413 for size, 400 unreadable, 408 stalled.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Connect(_) | ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequestBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Maps a client error for the upstream labelled `upstream`. A failure of the request
    /// body (the guard around what the client sends) is the client's, whatever the upstream
    /// exchange made of it.
    pub(crate) fn from_client(err: &hyper_util::client::legacy::Error, upstream: &str) -> Self {
        match body::request_body_error(err) {
            Some(body::BodyError::TooLarge) => return ProxyError::BodyTooLarge,
            Some(body::BodyError::Idle) => return ProxyError::RequestBodyTimeout,
            Some(inner @ body::BodyError::Inner(_)) => {
                return ProxyError::BadRequestBody(chain(inner));
            }
            None => {}
        }
        let detail = format!("{upstream}: {}", chain(err));
        if err.is_connect() {
            ProxyError::Connect(detail)
        } else if timed_out(err) {
            // The connection's send timeout: the upstream stopped reading the request.
            ProxyError::Timeout
        } else {
            ProxyError::Upstream(detail)
        }
    }
}

/// Whether an I/O timeout is among the causes.
fn timed_out(err: &(dyn StdError + 'static)) -> bool {
    body::causes(err).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// `outer: cause: root cause`, as one line.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    for (i, e) in body::causes(err).enumerate() {
        let _ = write!(out, "{}{e}", if i == 0 { "" } else { ": " });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            ProxyError::Connect("x".into()).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(
            ProxyError::Upstream("x".into()).status(),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(ProxyError::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            ProxyError::BodyTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn chain_joins_every_cause() {
        let inner = std::io::Error::other("refused");
        let outer = body::BodyError::Inner(Box::new(inner));
        assert_eq!(chain(&outer), "body error: refused");
    }
}
