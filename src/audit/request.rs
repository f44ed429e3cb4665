//! The gateway's record of one request that reached a route. [`Audit::begin`] reserves a
//! queue place first (a full queue refuses the request with 503 before anything happens),
//! the gateway adds what it learns (identity, decision), and [`RequestAudit::finish`] queues
//! the event. In strict mode an allow is committed before the upstream is contacted and its
//! outcome follows as a second (`outcome`) event; any other decision is committed before the
//! answer leaves. A record dropped unfinished (the client went away mid-request) is still
//! queued, marked `cancelled`. Every value passes through the [`Redactor`](super::Redactor).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method, Request, StatusCode, header};
use uuid::Uuid;

use super::event::{AuditEvent, kind};
use super::setup::Audit;
use super::writer::{AuditError, AuditFull, AuditSlot};
use crate::config::Durability;
use crate::identity::{Identity, Presented};
use crate::policy::{Decision, Outcome};

/// One request's audit record in the making.
#[derive(Debug)]
pub struct RequestAudit {
    audit: Arc<Audit>,
    slot: Option<AuditSlot>,
    event: Option<AuditEvent>,
    started: Instant,
    committed: bool,
}

/// What the gateway knows about a request when it has picked the route.
#[derive(Clone, Copy, Debug)]
pub struct RequestStart<'a> {
    pub decision_id: Uuid,
    pub route_index: usize,
    pub route_id: &'a str,
    pub host: Option<&'a str>,
    /// Normalized path.
    pub path: &'a str,
    pub client_ip: IpAddr,
    /// When the request was accepted.
    pub started: Instant,
}

impl Audit {
    /// Starts the record; [`AuditFull`] means answer 503 now.
    pub fn begin<B>(
        self: &Arc<Self>,
        req: &Request<B>,
        start: RequestStart<'_>,
    ) -> Result<RequestAudit, AuditFull> {
        let asked = Asked {
            method: req.method(),
            query: req.uri().query(),
            headers: req.headers(),
        };
        self.begin_asked(asked, start)
    }

    /// [`Audit::begin`] for a request described rather than received: forward-auth's
    /// original request, which the ingress names in headers.
    pub fn begin_asked(
        self: &Arc<Self>,
        asked: Asked<'_>,
        start: RequestStart<'_>,
    ) -> Result<RequestAudit, AuditFull> {
        let slot = self.sink.reserve()?;
        let mut event = AuditEvent::new(kind::REQUEST, jiff::Timestamp::now());
        event.decision_id = Some(start.decision_id.to_string());
        event.route_id = Some(start.route_id.to_owned());
        event.method = Some(asked.method.as_str().to_owned());
        event.host = start.host.map(str::to_owned);
        event.path = Some(start.path.to_owned());
        event.query = asked.query.map(|q| self.redactor.query(q));
        event.client_ip = Some(start.client_ip.to_string());
        event.user_agent = asked
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| self.redactor.header("user-agent", v.as_bytes()));
        event.policy_version = self
            .policy_versions
            .get(start.route_index)
            .map(|v| v.to_string());
        event.auth_method = Some("none".into());
        Ok(RequestAudit {
            audit: self.clone(),
            slot: Some(slot),
            event: Some(event),
            started: start.started,
            committed: false,
        })
    }
}

/// The request a decision is about, when it is not the one that arrived.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    pub method: &'a Method,
    /// The raw query string (redacted here).
    pub query: Option<&'a str>,
    /// Headers the event reads (`User-Agent`).
    pub headers: &'a HeaderMap,
}

impl RequestAudit {
    /// Records who the caller is (redacted per `audit.redact.claims`).
    pub fn presented(&mut self, presented: &Presented) {
        let Some(event) = self.event.as_mut() else {
            return;
        };
        let r = &self.audit.redactor;
        match presented {
            Presented::Anonymous => {}
            Presented::InvalidBearer { reason } => {
                event.auth_method = Some("bearer".into());
                event.detail = Some(serde_json::json!({ "invalid_token": reason }).to_string());
            }
            Presented::Verified(identity) => identity_fields(event, r, identity),
        }
    }

    /// Marks the event as answered to an ingress's forward-auth question (`detail.via` =
    /// `forward_auth`): nothing was proxied, the ingress forwards on a 200.
    pub fn via_forward_auth(&mut self) {
        let Some(event) = self.event.as_mut() else {
            return;
        };
        let mut detail = event
            .detail
            .as_deref()
            .and_then(|d| {
                serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(d).ok()
            })
            .unwrap_or_default();
        detail.insert("via".into(), "forward_auth".into());
        event.detail = Some(serde_json::Value::Object(detail).to_string());
    }

    /// Records the policy decision.
    pub fn decided(&mut self, decision: &Decision<'_>) {
        if let Some(event) = self.event.as_mut() {
            event.decision = Some(decision.outcome.as_str().to_owned());
            event.rule = decision.rule.map(str::to_owned);
            event.reasons = serde_json::to_string(&decision.reasons).ok();
        }
    }

    /// Strict mode, allow: commits the decision before the upstream is contacted. A no-op
    /// in async mode.
    pub async fn commit_decision(&mut self) -> Result<(), AuditError> {
        if self.audit.durability != Durability::Strict {
            return Ok(());
        }
        let Some(event) = self.event.clone() else {
            return Ok(());
        };
        // Boxed, here and in `finish`: only strict mode waits, and inline the wait would
        // enlarge every request's future.
        Box::pin(self.audit.sink.record_committed(event)).await?;
        self.committed = true;
        Ok(())
    }

    /// Queues the event with the answer. Strict mode: an uncommitted decision is committed
    /// now (the caller must not answer on error); a committed one gets its `outcome` event.
    pub async fn finish(
        mut self,
        status: StatusCode,
        upstream: Option<&str>,
    ) -> Result<(), AuditError> {
        let Some(mut event) = self.event.take() else {
            return Ok(());
        };
        event.status = Some(i64::from(status.as_u16()));
        event.latency_us =
            Some(i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX));
        event.upstream = upstream.map(str::to_owned);
        if event.decision.as_deref() == Some(Outcome::Allow.as_str())
            && upstream.is_none()
            && status.is_server_error()
        {
            event.decision = Some("error".into());
        }
        if self.committed {
            let mut outcome = AuditEvent::new(kind::OUTCOME, jiff::Timestamp::now());
            outcome.decision_id = event.decision_id;
            outcome.route_id = event.route_id;
            outcome.decision = event.decision;
            outcome.status = event.status;
            outcome.latency_us = event.latency_us;
            outcome.upstream = event.upstream;
            event = outcome;
        } else if self.audit.durability == Durability::Strict {
            return Box::pin(self.audit.sink.record_committed(event)).await;
        }
        if let Some(slot) = self.slot.take() {
            slot.record(event);
        }
        Ok(())
    }
}

/// Fills the identity columns of `event` from a verified identity, redacted per
/// `audit.redact.claims`.
pub(crate) fn identity_fields(event: &mut AuditEvent, r: &super::Redactor, identity: &Identity) {
    event.auth_method = Some(identity.auth.as_str().to_owned());
    event.subject = r.claim("sub", &identity.subject);
    event.issuer = r.claim("iss", &identity.issuer);
    event.email = identity.email.as_deref().and_then(|e| r.claim("email", e));
    event.provider = identity.provider.clone();
    let groups = serde_json::to_string(&identity.groups).unwrap_or_default();
    event.groups = r.claim("groups", &groups);
}

impl Drop for RequestAudit {
    fn drop(&mut self) {
        if let (Some(mut event), Some(slot)) = (self.event.take(), self.slot.take()) {
            if self.committed {
                event.kind = kind::OUTCOME.into();
                event.id = crate::ids::uuid_v7().to_string();
            }
            event.latency_us =
                Some(i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX));
            event.detail = Some(serde_json::json!({ "cancelled": true }).to_string());
            slot.record(event);
        }
    }
}
