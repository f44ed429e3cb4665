//! One forwarded exchange: pick an upstream, rewrite the request, send it with a response-head
//! timeout, retry a connect failure on the next upstream (idempotent method, empty body only),
//! record each outcome for passive ejection, and hand back the response (or the 101 of an
//! upgrade, with the tunnel spawned). Bodies stream through [`GuardedBody`]; nothing is
//! collected.

use std::net::IpAddr;

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::client::legacy::Error as ClientError;
use tokio::time::Instant;

use super::body::{GuardedBody, Upload};
use super::headers::{self, Added, RequestRewrite};
use super::upstream::Upstream;
use super::{ForwardContext, ProxyError, RouteProxy, ServedBy, h1, hop, redirect, target, upgrade};
use crate::policy::Permit;

/// Forwards a permitted request to one of the route's upstreams and streams the response back.
/// The response carries the upstream that answered as a [`ServedBy`] extension.
pub async fn forward(
    permit: Permit,
    route: &RouteProxy,
    ctx: ForwardContext<'_>,
    req: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let (mut response, label) = forward_served(permit, route, ctx, Box::new(req)).await?;
    response.extensions_mut().insert(ServedBy(label.into()));
    Ok(response)
}

/// [`forward`], returning the label of the upstream that answered beside the response instead
/// of in an extension (whose map costs allocations on every request). The label is borrowed
/// from the route: a shared reference count taken per request would bounce between cores.
/// The request comes boxed, as the listener's HTTP/1 loop makes it: moving it here costs a
/// pointer, not 240 bytes.
pub async fn forward_served<'r>(
    permit: Permit,
    route: &'r RouteProxy,
    ctx: ForwardContext<'_>,
    mut req: Box<Request<Body>>,
) -> Result<(Response<Body>, &'r str), ProxyError> {
    let cfg = &*route.route;
    let (declared, declares_body) = content_length_fields(req.headers());
    if let Some(max) = cfg.max_body
        && declared.max(req.body().size_hint().lower()) > max
    {
        return Err(ProxyError::BodyTooLarge);
    }

    // Taken before hop-by-hop removal: a `Connection: host` must not hide it.
    let client_host = req.headers().get(header::HOST).cloned();
    let upgrade_protocol = hop::strip_request(req.headers_mut());
    // Must happen before the request is taken apart (pitfall 5).
    let client_upgrade = upgrade_protocol
        .as_ref()
        .map(|_| hyper::upgrade::on(&mut *req));
    let (mut parts, body) = req.into_parts();

    let host_preserved =
        cfg.preserve_host && (client_host.is_some() || parts.uri.authority().is_some());
    let mut index = route.upstreams.pick(Instant::now);
    let rewrite = RequestRewrite {
        peer: canonical(ctx.peer.ip()),
        tls: ctx.tls,
        trusted_peer: ctx.trusted_peer,
        client_ip: ctx.client_ip,
        pass_authorization: cfg.pass_authorization,
        preserve_host: cfg.preserve_host,
        uri_authority: parts.uri.authority(),
        upstream_host: &route.upstreams.get(index).host_header,
        decision_id: permit.decision_id(),
        identity: ctx.identity,
        assertion: ctx.assertion,
        access_token: ctx.access_token,
        claim_headers: &cfg.headers,
    };
    // The headers stay in `parts`, rewritten in place: each move would copy the map.
    let mut added = headers::rewrite_request(&mut parts.headers, client_host, &rewrite);
    if let Some(protocol) = upgrade_protocol {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol);
    }

    let path = target::route_relative_path(
        &cfg.path,
        cfg.strip_prefix,
        cfg.case_insensitive_paths,
        ctx.path,
    );
    let query = parts.uri.query();
    let body_empty = is_empty(&body) && !declares_body;
    // The common exchange (no body, no upgrade, plain http) takes portcullis's own client.
    let own_client = body_empty && client_upgrade.is_none() && parts.method != Method::CONNECT;
    let mut client_upgrade = client_upgrade;
    let retryable = cfg.retries > 0 && h1::is_idempotent(&parts.method) && body_empty;
    let mut retries_left = if retryable { cfg.retries } else { 0 };
    let mut guarded = GuardedBody::new(body, cfg.timeouts.idle, cfg.max_body);
    // Retries only happen for empty bodies, so only a first attempt ever uploads.
    let mut body_sent = (!body_empty).then(|| guarded.upload());
    let mut body = Some(guarded);
    let mut retried = false;

    loop {
        let upstream = route.upstreams.get(index);
        // The first attempt's Host was set by the rewrite; a retry goes to another upstream.
        if retried && !host_preserved {
            added.host = Some(upstream.host_header.clone());
        }
        let limit = cfg.timeouts.response_header;
        let attempt = match route.h1_pool(index).filter(|_| own_client) {
            Some(pool) => {
                let outgoing = h1::Outgoing {
                    method: &parts.method,
                    target: target::Target::new(upstream, path, query),
                    // Borrowed, so a retry needs no copy.
                    headers: &parts.headers,
                    added: &added,
                };
                let sent = crate::timer::timeout(limit, pool.send(super::worker(), outgoing)).await;
                match sent {
                    Ok(Ok(response)) => Ok(own_response(route, response)),
                    Ok(Err(e)) => Err(h1_failure(&upstream.label, e)),
                    Err(_elapsed) => Err(Failure::Timeout),
                }
            }
            None => {
                // Only a request that may be retried keeps a copy of its headers; one that
                // may not makes no further attempt, so nothing reads the emptied map.
                let attempt_headers = match retries_left {
                    0 => std::mem::take(&mut parts.headers),
                    _ => parts.headers.clone(),
                };
                let out = hyper_request(HyperRequest {
                    upstream,
                    path,
                    query,
                    method: &parts.method,
                    // Retries only happen for empty bodies, so a fresh empty one is the same
                    // body.
                    body: body.take().unwrap_or_else(|| {
                        GuardedBody::new(Body::empty(), cfg.timeouts.idle, cfg.max_body)
                    }),
                    body_empty,
                    headers: attempt_headers,
                    added: &added,
                })?;
                // Boxed: hyper's future is large and this path is the rarer one; inline it
                // would enlarge every request's future, own-client ones too.
                let sent = Box::pin(response_within(
                    limit,
                    route.client().request(out),
                    body_sent.take(),
                ))
                .await;
                hyper_outcome(route, sent, client_upgrade.take(), &upstream.label)
            }
        };
        let response = match attempt {
            Err(Failure::Timeout) => {
                route.upstreams.record_failure(index, Instant::now());
                return Err(ProxyError::Timeout);
            }
            Err(Failure::Connect(error)) => {
                route.upstreams.record_failure(index, Instant::now());
                if retries_left == 0 {
                    return Err(error);
                }
                retries_left -= 1;
                retried = true;
                index = route.upstreams.pick_after(index, Instant::now());
                continue;
            }
            Err(Failure::Other(error)) => return Err(error),
            Ok(response) => response,
        };
        if matches!(
            response.status(),
            StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) {
            route.upstreams.record_failure(index, Instant::now());
        } else {
            route.upstreams.record_success(index);
        }
        return Ok((response, &upstream.label));
    }
}

/// How one attempt failed.
enum Failure {
    /// No response head within the response timeout.
    Timeout,
    /// No connection: the next upstream may be tried.
    Connect(ProxyError),
    Other(ProxyError),
}

/// What failed in an exchange of portcullis's own client, for the attempt loop.
#[cold]
fn h1_failure(label: &str, error: h1::H1Error) -> Failure {
    match error {
        h1::H1Error::Connect(e) => Failure::Connect(ProxyError::Connect(format!("{label}: {e}"))),
        e => Failure::Other(ProxyError::Upstream(format!("{label}: {e}"))),
    }
}

/// One attempt's request through hyper's pooled client.
struct HyperRequest<'a> {
    upstream: &'a Upstream,
    path: &'a str,
    query: Option<&'a str>,
    method: &'a Method,
    body: GuardedBody<Body>,
    body_empty: bool,
    /// The client's fields after rewriting; `added` joins them here.
    headers: HeaderMap,
    added: &'a Added,
}

/// Builds the request hyper's client sends: the rarer path (a body, an upgrade, a TLS
/// upstream), kept out of line so that the own client's code in [`forward_served`] packs
/// tighter.
#[inline(never)]
fn hyper_request(req: HyperRequest<'_>) -> Result<Request<GuardedBody<Body>>, ProxyError> {
    let HyperRequest {
        upstream,
        path,
        query,
        method,
        body,
        body_empty,
        mut headers,
        added,
    } = req;
    let uri = target::upstream_uri(upstream, path, query)
        .map_err(|e| ProxyError::Upstream(format!("{}: bad upstream uri: {e}", upstream.label)))?;
    added.apply(&mut headers);
    // hyper sends a GET or HEAD body of unknown length (a chunked one, or HTTP/2 DATA without
    // Content-Length) as no body at all unless the framing is set: the upstream would get the
    // request without what the client sent (an Elasticsearch query becomes match-all).
    if !body_empty
        && body.size_hint().exact().is_none()
        && !headers.contains_key(header::CONTENT_LENGTH)
    {
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let mut out = Request::new(body);
    *out.method_mut() = method.clone();
    *out.uri_mut() = uri;
    // Pitfall 1: the pooled HTTP/1 client refuses HTTP/2 requests.
    *out.version_mut() = Version::HTTP_11;
    *out.headers_mut() = headers;
    Ok(out)
}

/// What one attempt through hyper's client came to; out of line like [`hyper_request`].
#[inline(never)]
fn hyper_outcome(
    route: &RouteProxy,
    sent: Result<Result<Response<Incoming>, ClientError>, crate::timer::Elapsed>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    label: &str,
) -> Result<Response<Body>, Failure> {
    match sent {
        Err(_elapsed) => Err(Failure::Timeout),
        Ok(Err(e)) if e.is_connect() => Err(Failure::Connect(ProxyError::from_client(&e, label))),
        Ok(Err(e)) => Err(Failure::Other(ProxyError::from_client(&e, label))),
        Ok(Ok(response)) => {
            finish_response(route, response, client_upgrade, label).map_err(Failure::Other)
        }
    }
}

/// A response from portcullis's own client, headers stripped and body guarded as for any.
fn own_response(route: &RouteProxy, response: Response<h1::ResponseBody>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    response_head(route, &mut parts, false);
    let body = Body::new(GuardedBody::new(body, route.route.timeouts.idle, None));
    Response::from_parts(parts, body)
}

/// What every upstream response head goes through, from either client: hop-by-hop headers
/// out (`switching`: a 101 keeps its `Connection` and `Upgrade`), no length on a bodiless
/// status, and the route's `rewrite_redirects`.
fn response_head(route: &RouteProxy, parts: &mut http::response::Parts, switching: bool) {
    // One pass over the few names of a response costs less than a lookup per question.
    let (mut hop_by_hop, mut refresh) = (false, false);
    for name in parts.headers.keys() {
        hop_by_hop |= hop::is_hop_by_hop(name);
        refresh |= name == header::REFRESH;
    }
    if hop_by_hop {
        hop::strip_response(&mut parts.headers, switching);
    }
    hop::strip_bodiless_framing(parts.status, &mut parts.headers);
    let cfg = &*route.route;
    if cfg.rewrite_redirects {
        redirect::rewrite_location(
            parts.status,
            &mut parts.headers,
            &route.upstreams,
            &cfg.path,
            cfg.strip_prefix,
        );
        if refresh {
            redirect::rewrite_refresh(
                &mut parts.headers,
                &route.upstreams,
                &cfg.path,
                cfg.strip_prefix,
            );
        }
    }
}

/// Awaits the response head. The timeout runs from the moment the request body has been
/// sent (at once for an empty body): an upload may take longer than `response_timeout`. A
/// body the client stalls fails on its own idle timeout (408); one the upstream stops
/// reading ends the wait after the same idle time (504).
async fn response_within<F: std::future::Future>(
    limit: std::time::Duration,
    response: F,
    upload: Option<Upload>,
) -> Result<F::Output, crate::timer::Elapsed> {
    let Some(upload) = upload else {
        return crate::timer::timeout(limit, response).await;
    };
    tokio::pin!(response);
    tokio::select! {
        out = &mut response => Ok(out),
        () = upload.ended() => crate::timer::timeout(limit, response).await,
        // The upstream stopped reading the body: without this the exchange waited forever.
        () = upload.stalled() => Err(crate::timer::Elapsed),
    }
}

/// Strips hop-by-hop headers, wraps the body in the idle timeout, and for a 101 to an upgrade
/// request spawns the tunnel.
fn finish_response(
    route: &RouteProxy,
    mut response: Response<hyper::body::Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    label: &str,
) -> Result<Response<Body>, ProxyError> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        let Some(client_upgrade) = client_upgrade else {
            return Err(ProxyError::Upstream(format!(
                "{label}: 101 to a request that asked for no upgrade"
            )));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        upgrade::spawn_tunnel(client_upgrade, upstream_upgrade, route.route.id.clone());
    }
    let (mut parts, incoming) = response.into_parts();
    response_head(route, &mut parts, switching);
    let body = if switching {
        Body::empty()
    } else {
        Body::new(GuardedBody::new(incoming, route.route.timeouts.idle, None))
    };
    Ok(Response::from_parts(parts, body))
}

/// What the request's `Content-Length` fields say, in one lookup: the largest length among
/// them (0 when none parses; HTTP/2 bodies know their length without the header), and
/// whether any announces a body (anything but `0`). A request announcing a body never takes
/// the bodiless path, whatever its body reports.
fn content_length_fields(headers: &http::HeaderMap) -> (u64, bool) {
    let mut largest = 0;
    let mut announces = false;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.as_bytes().trim_ascii();
        announces |= text != b"0";
        if let Some(n) = std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
        {
            largest = largest.max(n);
        }
    }
    (largest, announces)
}

fn is_empty(body: &Body) -> bool {
    body.is_end_stream() || body.size_hint().exact() == Some(0)
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
#[path = "forward_tests.rs"]
mod tests;
