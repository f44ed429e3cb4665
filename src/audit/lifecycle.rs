//! Events about sessions and the process rather than one proxied request: browser login
//! (success or failure), logout (the user's own, or the provider's back-channel, with how
//! many sessions ended), a presented session found over, and config reload. The login and
//! logout handlers and the session identity source call these; they only build redacted
//! events and queue them. Recording is best effort here (a full queue is logged and
//! counted by the writer) except for config reload, which waits for the commit like config
//! load. Codes, tokens and session ids never reach these events.

use std::net::IpAddr;

use http::{HeaderMap, StatusCode, header};
use uuid::Uuid;

use super::event::{AuditEvent, kind};
use super::request::identity_fields;
use super::setup::Audit;
use super::writer::AuditError;
use crate::identity::Identity;
use crate::session::{EndReason, SessionData};

/// The browser request an event comes from.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The handler's request id (shown on its pages as well).
    pub request_id: Uuid,
    /// Method and path of the endpoint.
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub client_ip: Option<IpAddr>,
}

/// How sessions were ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogoutVia {
    /// The user's own `POST /.portcullis/logout` (RP-initiated logout follows at the
    /// provider).
    Rp,
    /// The provider's `logout_token` at `/.portcullis/backchannel-logout`.
    Backchannel,
}

impl LogoutVia {
    fn as_str(self) -> &'static str {
        match self {
            LogoutVia::Rp => "rp",
            LogoutVia::Backchannel => "backchannel",
        }
    }
}

impl Audit {
    /// A browser login created a session for `identity`.
    pub fn login_succeeded(&self, caller: &Caller<'_>, identity: &Identity) {
        let mut event = self.caller_event(kind::LOGIN, caller);
        identity_fields(&mut event, &self.redactor, identity);
        event.decision = Some("allow".into());
        event.status = Some(302);
        self.emit(event);
    }

    /// A browser login failed and created no session. `reason` is the public message the
    /// user saw (never the provider's own error text).
    pub fn login_failed(
        &self,
        caller: &Caller<'_>,
        provider: Option<&str>,
        status: StatusCode,
        reason: &str,
    ) {
        let mut event = self.caller_event(kind::LOGIN, caller);
        event.provider = provider.map(str::to_owned);
        event.decision = Some("error".into());
        event.status = Some(i64::from(status.as_u16()));
        event.detail = Some(serde_json::json!({ "reason": reason }).to_string());
        self.emit(event);
    }

    /// Sessions ended: the user's own (`identity` known, one session), or a provider's
    /// back-channel logout (`subject` from the logout token, when it names one).
    pub fn logout(
        &self,
        caller: &Caller<'_>,
        via: LogoutVia,
        provider: &str,
        who: LogoutWho<'_>,
        sessions: usize,
    ) {
        let mut event = self.caller_event(kind::LOGOUT, caller);
        match who {
            LogoutWho::Identity(identity) => {
                identity_fields(&mut event, &self.redactor, identity);
            }
            LogoutWho::Subject { issuer, subject } => {
                event.issuer = self.redactor.claim("iss", issuer);
                event.subject = subject.and_then(|s| self.redactor.claim("sub", s));
            }
        }
        event.provider = Some(provider.to_owned());
        event.decision = Some("allow".into());
        event.detail =
            Some(serde_json::json!({ "via": via.as_str(), "sessions": sessions }).to_string());
        self.emit(event);
    }

    /// A presented session was over on load (and is deleted now: reported once).
    pub fn session_expired(&self, data: &SessionData, reason: EndReason) {
        let mut event = AuditEvent::new(kind::SESSION_EXPIRED, jiff::Timestamp::now());
        identity_fields(&mut event, &self.redactor, &data.identity);
        event.provider = Some(data.provider.clone());
        event.detail = Some(
            serde_json::json!({
                "reason": reason.as_str(),
                "login_at": jiff::Timestamp::from_second(data.created_at)
                    .map(super::event::format_ts)
                    .ok(),
            })
            .to_string(),
        );
        self.emit(event);
    }

    /// The process replaced its config: `config_hash` of the new config (see
    /// [`super::setup::config_hash`]) and whether it took effect (`Err(why)`: the old one
    /// stays). Waits until the event is durably stored.
    pub async fn config_reload(
        &self,
        config_hash: &str,
        outcome: Result<(), &str>,
    ) -> Result<(), AuditError> {
        let mut event = AuditEvent::new(kind::CONFIG_RELOAD, jiff::Timestamp::now());
        event.decision = Some(if outcome.is_ok() { "allow" } else { "error" }.into());
        event.detail = Some(
            serde_json::json!({
                "config_hash": config_hash,
                "outcome": if outcome.is_ok() { "applied" } else { "rejected" },
                "error": outcome.err(),
            })
            .to_string(),
        );
        self.sink.record_committed(event).await
    }

    fn caller_event(&self, kind: &str, caller: &Caller<'_>) -> AuditEvent {
        let mut event = AuditEvent::new(kind, jiff::Timestamp::now());
        event.decision_id = Some(caller.request_id.to_string());
        event.method = Some(caller.method.to_owned());
        event.path = Some(caller.path.to_owned());
        event.client_ip = caller.client_ip.map(|ip| ip.to_string());
        event.user_agent = caller
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| self.redactor.header("user-agent", v.as_bytes()));
        event.auth_method = Some("session".into());
        event
    }

    fn emit(&self, event: AuditEvent) {
        let kind = event.kind.clone();
        if self.sink.record(event).is_err() {
            tracing::error!(kind, "audit queue full: event not recorded");
        }
    }
}

/// Whose sessions a logout ended.
#[derive(Clone, Copy, Debug)]
pub enum LogoutWho<'a> {
    /// The signed-in user who asked.
    Identity(&'a Identity),
    /// What a back-channel logout token names (`sub` is optional there: `sid` may be all).
    Subject {
        issuer: &'a str,
        subject: Option<&'a str>,
    },
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::audit::writer::{self, WriterOptions};
    use crate::audit::{AuditStore, Redactor, Store, StoredEvent};
    use crate::config::{Durability, RedactAction, RedactConfig};
    use crate::identity::AuthMethod;

    async fn audit(dir: &std::path::Path) -> (Audit, writer::WriterHandle) {
        let url = format!("sqlite://{}/audit.db", dir.display());
        let store = Store::Sqlite(crate::audit::sqlite::SqliteStore::open(&url).await.unwrap());
        let options = WriterOptions {
            capacity: 64,
            batch_size: 16,
            retry: Duration::from_secs(1),
        };
        let (sink, handle) = writer::start(store.clone(), "t", &dir.join("spool"), options)
            .await
            .unwrap();
        let redact = RedactConfig {
            claims: BTreeMap::from([("email".to_owned(), RedactAction::Mask)]),
            ..RedactConfig::default()
        };
        let audit = Audit {
            sink,
            redactor: Redactor::new(&redact, vec![7; 32]),
            store,
            durability: Durability::Async,
            access: Default::default(),
            policy_versions: Vec::new(),
            instance: "t".into(),
        };
        (audit, handle)
    }

    fn alice() -> Identity {
        Identity {
            subject: "alice-sub".into(),
            issuer: "https://idp.example".into(),
            email: Some("alice@corp.example".into()),
            groups: vec!["security".into()],
            provider: Some("corp".into()),
            auth: AuthMethod::Session,
            ..Identity::default()
        }
    }

    async fn stored(audit: &Audit) -> Vec<StoredEvent> {
        audit.sink.flush().await;
        audit.store.verify_page(None, 100).await.unwrap()
    }

    #[tokio::test]
    async fn login_logout_and_expiry_events_carry_redacted_identity() {
        let dir = tempfile::tempdir().unwrap();
        let (audit, handle) = audit(dir.path()).await;
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, "ua/1".parse().unwrap());
        headers.insert(header::COOKIE, "portcullis=SESSIONSECRET".parse().unwrap());
        let caller = Caller {
            request_id: Uuid::now_v7(),
            method: "GET",
            path: "/.portcullis/callback",
            headers: &headers,
            client_ip: Some(IpAddr::from([10, 0, 0, 1])),
        };
        audit.login_succeeded(&caller, &alice());
        audit.login_failed(
            &caller,
            Some("corp"),
            StatusCode::BAD_REQUEST,
            "The sign-in could not be verified.",
        );
        audit.logout(
            &caller,
            LogoutVia::Rp,
            "corp",
            LogoutWho::Identity(&alice()),
            1,
        );
        audit.logout(
            &caller,
            LogoutVia::Backchannel,
            "corp",
            LogoutWho::Subject {
                issuer: "https://idp.example",
                subject: None,
            },
            3,
        );
        let data = SessionData {
            identity: alice(),
            provider: "corp".into(),
            id_token: Some("IDTOKENSECRET".into()),
            access_token: Some("ACCESSSECRET".into()),
            refresh_token: None,
            access_expires_at: None,
            access_lifetime: None,
            sid: Some("SIDVALUE".into()),
            created_at: 1_800_000_000,
        };
        audit.session_expired(&data, EndReason::Idle);
        let events = stored(&audit).await;
        let kinds: Vec<&str> = events.iter().map(|e| e.event.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["login", "login", "logout", "logout", "session_expired"]
        );
        let ok = &events[0].event;
        assert_eq!(ok.decision.as_deref(), Some("allow"));
        assert_eq!(ok.subject.as_deref(), Some("alice-sub"));
        assert_eq!(ok.email.as_deref(), Some("a***@corp.example"), "masked");
        assert_eq!(ok.provider.as_deref(), Some("corp"));
        assert_eq!(ok.client_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(ok.user_agent.as_deref(), Some("ua/1"));
        let failed = &events[1].event;
        assert_eq!(
            (failed.decision.as_deref(), failed.status),
            (Some("error"), Some(400))
        );
        assert!(
            failed
                .detail
                .as_deref()
                .unwrap()
                .contains("could not be verified")
        );
        assert!(
            events[2]
                .event
                .detail
                .as_deref()
                .unwrap()
                .contains("\"via\":\"rp\"")
        );
        let back = &events[3].event;
        assert!(back.detail.as_deref().unwrap().contains("\"sessions\":3"));
        assert_eq!(back.subject, None);
        assert_eq!(back.issuer.as_deref(), Some("https://idp.example"));
        let expired = events[4].event.detail.as_deref().unwrap();
        assert!(expired.contains("\"reason\":\"idle\""), "{expired}");
        let all = serde_json::to_string(&events).unwrap();
        for secret in ["SESSIONSECRET", "IDTOKENSECRET", "ACCESSSECRET", "SIDVALUE"] {
            assert!(!all.contains(secret), "{secret} recorded");
        }
        drop(audit);
        handle.shutdown(Duration::from_secs(2)).await;
    }

    #[tokio::test]
    async fn config_reload_is_committed_with_hash_and_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let (audit, handle) = audit(dir.path()).await;
        audit.config_reload("abc123", Ok(())).await.unwrap();
        audit
            .config_reload("def456", Err("routes tie: /a"))
            .await
            .unwrap();
        // Committed: visible without a flush.
        let events = audit.store.verify_page(None, 10).await.unwrap();
        assert_eq!(events.len(), 2);
        let applied: serde_json::Value =
            serde_json::from_str(events[0].event.detail.as_deref().unwrap()).unwrap();
        assert_eq!(applied["config_hash"], "abc123");
        assert_eq!(applied["outcome"], "applied");
        assert_eq!(events[0].event.kind, kind::CONFIG_RELOAD);
        let rejected: serde_json::Value =
            serde_json::from_str(events[1].event.detail.as_deref().unwrap()).unwrap();
        assert_eq!(rejected["outcome"], "rejected");
        assert_eq!(rejected["error"], "routes tie: /a");
        assert_eq!(events[1].event.decision.as_deref(), Some("error"));
        drop(audit);
        handle.shutdown(Duration::from_secs(2)).await;
    }
}
