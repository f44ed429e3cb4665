//! A route's upstreams: round robin over the healthy ones, with passive ejection (after
//! `eject.failures` consecutive failures an upstream is skipped for `eject.duration`). All
//! state is lock-free atomics; time is a parameter so tests need no clock. It does not talk to
//! the network and does not decide what counts as a failure (see [`super::forward`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderValue;
use http::uri::{Authority, Scheme};
use tokio::time::Instant;
use url::Url;

use crate::config::EjectPolicy;

/// One upstream base URL, parsed once, plus its health counters.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// `http` or `https`.
    pub(crate) scheme: Scheme,
    /// `host[:port]`, as the `Host` header and the request URI need it.
    pub(crate) authority: Authority,
    /// The `Host` header value (the authority), built once.
    pub(crate) host_header: HeaderValue,
    /// Base path without a trailing `/` (empty for none); request paths are appended to it.
    pub(crate) base_path: Box<str>,
    /// The configured URL, for error messages (it carries no request data).
    pub(crate) label: Arc<str>,
    failures: AtomicU32,
    /// Nanoseconds since [`UpstreamSet::epoch`] until which the upstream is skipped; 0 = never.
    ejected_until: AtomicU64,
}

impl Upstream {
    fn parse(url: &Url) -> Result<Self, String> {
        let scheme = match url.scheme() {
            "http" => Scheme::HTTP,
            "https" => Scheme::HTTPS,
            other => return Err(format!("upstream {url}: unsupported scheme {other}")),
        };
        // Host and port only: user info never goes upstream in the URI.
        let authority_str = &url[url::Position::BeforeHost..url::Position::AfterPort];
        let authority = Authority::try_from(authority_str)
            .map_err(|e| format!("upstream {url}: bad authority: {e}"))?;
        let host_header = HeaderValue::from_str(authority.as_str())
            .map_err(|e| format!("upstream {url}: bad host: {e}"))?;
        Ok(Upstream {
            scheme,
            authority,
            host_header,
            base_path: url.path().trim_end_matches('/').into(),
            label: url.as_str().into(),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
        })
    }
}

/// The upstreams of one route with round robin and passive ejection.
#[derive(Debug)]
pub(crate) struct UpstreamSet {
    upstreams: Box<[Upstream]>,
    next: AtomicUsize,
    eject: EjectPolicy,
    /// Reference point for `ejected_until`, so the deadline fits one atomic.
    epoch: Instant,
}

impl UpstreamSet {
    /// Parses the route's upstream URLs. Fails on an empty list or an unusable URL.
    pub(crate) fn new(urls: &[Url], eject: EjectPolicy, now: Instant) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("route has no upstream".into());
        }
        let upstreams = urls
            .iter()
            .map(Upstream::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UpstreamSet {
            upstreams: upstreams.into_boxed_slice(),
            next: AtomicUsize::new(0),
            eject,
            epoch: now,
        })
    }

    /// The upstream at `index` (as returned by [`Self::pick`]).
    pub(crate) fn get(&self, index: usize) -> &Upstream {
        &self.upstreams[index % self.upstreams.len()]
    }

    /// Number of upstreams.
    pub(crate) fn len(&self) -> usize {
        self.upstreams.len()
    }

    /// Whether any upstream is `https` (only then are TLS roots needed).
    pub(crate) fn any_https(&self) -> bool {
        self.upstreams.iter().any(|u| u.scheme == Scheme::HTTPS)
    }

    /// The next upstream in round robin order, skipping ejected ones; when every upstream is
    /// ejected, all of them are used (a panic threshold: better to try than to refuse all).
    /// `now` is only called when there is a choice to make.
    pub(crate) fn pick(&self, now: impl FnOnce() -> Instant) -> usize {
        if self.upstreams.len() == 1 {
            // Nothing to rotate: skip the shared counter, whose cache line every worker
            // would otherwise write on every request, and the clock.
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        self.first_available(start, now())
    }

    /// The upstream to retry on after `previous` failed: the next available one after it.
    pub(crate) fn pick_after(&self, previous: usize, now: Instant) -> usize {
        self.first_available(previous.wrapping_add(1), now)
    }

    fn first_available(&self, start: usize, now: Instant) -> usize {
        let n = self.upstreams.len();
        let now_nanos = self.nanos(now);
        (0..n)
            .map(|offset| start.wrapping_add(offset) % n)
            .find(|&i| self.upstreams[i].ejected_until.load(Ordering::Relaxed) <= now_nanos)
            .unwrap_or(start % n)
    }

    /// Counts a failure (connect error, response-head timeout, 502/503/504). The counter is
    /// not reset by an ejection: an upstream that fails again right after coming back is
    /// ejected again at once instead of getting `failures` more requests.
    pub(crate) fn record_failure(&self, index: usize, now: Instant) {
        if self.eject.failures == 0 {
            return;
        }
        let upstream = self.get(index);
        let failures = upstream
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        if failures >= self.eject.failures {
            let until = self
                .nanos(now)
                .saturating_add(nanos_of(self.eject.duration));
            upstream.ejected_until.store(until, Ordering::Relaxed);
        }
    }

    /// Counts a success: the failure streak and any ejection end.
    pub(crate) fn record_success(&self, index: usize) {
        let upstream = self.get(index);
        // Read first: a store on every success would bounce the cache line between cores.
        if upstream.failures.load(Ordering::Relaxed) != 0 {
            upstream.failures.store(0, Ordering::Relaxed);
        }
        if upstream.ejected_until.load(Ordering::Relaxed) != 0 {
            upstream.ejected_until.store(0, Ordering::Relaxed);
        }
    }

    /// Whether the upstream at `index` is currently ejected.
    #[cfg(test)]
    pub(crate) fn is_ejected(&self, index: usize, now: Instant) -> bool {
        self.get(index).ejected_until.load(Ordering::Relaxed) > self.nanos(now)
    }

    fn nanos(&self, now: Instant) -> u64 {
        // +1 so that 0 stays "never ejected" even at the epoch itself.
        nanos_of(now.saturating_duration_since(self.epoch)).saturating_add(1)
    }
}

fn nanos_of(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(urls: &[&str], failures: u32, secs: u64) -> UpstreamSet {
        let urls: Vec<Url> = urls.iter().map(|u| Url::parse(u).unwrap()).collect();
        let eject = EjectPolicy {
            failures,
            duration: Duration::from_secs(secs),
        };
        UpstreamSet::new(&urls, eject, Instant::now()).unwrap()
    }

    const THREE: [&str; 3] = ["http://a:1", "http://b:2", "http://c:3"];

    #[test]
    fn parses_scheme_authority_base_path_and_host() {
        let s = set(
            &["https://user:pw@api.example:8443/v1/", "http://[::1]:80/"],
            3,
            30,
        );
        let a = s.get(0);
        assert_eq!(a.scheme, Scheme::HTTPS);
        assert_eq!(a.authority.as_str(), "api.example:8443");
        assert_eq!(a.host_header, "api.example:8443");
        assert_eq!(&*a.base_path, "/v1");
        let b = s.get(1);
        // The default port disappears, as it does from a browser's Host header.
        assert_eq!(b.authority.as_str(), "[::1]");
        assert_eq!(&*b.base_path, "");
        assert!(s.any_https());
    }

    #[test]
    fn refuses_empty_and_unsupported_upstreams() {
        let eject = EjectPolicy {
            failures: 3,
            duration: Duration::from_secs(1),
        };
        assert!(UpstreamSet::new(&[], eject, Instant::now()).is_err());
        let ftp = [Url::parse("ftp://x/").unwrap()];
        assert!(UpstreamSet::new(&ftp, eject, Instant::now()).is_err());
    }

    #[test]
    fn round_robin_visits_each_upstream_in_order() {
        let s = set(&THREE, 3, 30);
        let now = Instant::now();
        let picks: Vec<usize> = (0..7).map(|_| s.pick(|| now)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2, 0]);
        assert!(!s.any_https());
    }

    #[test]
    fn ejects_after_n_consecutive_failures_only() {
        let s = set(&THREE, 3, 30);
        let now = Instant::now();
        s.record_failure(1, now);
        s.record_failure(1, now);
        assert!(!s.is_ejected(1, now));
        s.record_failure(1, now);
        assert!(s.is_ejected(1, now));
        let picks: Vec<usize> = (0..6).map(|_| s.pick(|| now)).collect();
        assert_eq!(picks, [0, 2, 2, 0, 2, 2]);
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let s = set(&THREE, 3, 30);
        let now = Instant::now();
        s.record_failure(0, now);
        s.record_failure(0, now);
        s.record_success(0);
        s.record_failure(0, now);
        s.record_failure(0, now);
        assert!(!s.is_ejected(0, now));
    }

    #[test]
    fn recovers_after_the_ejection_duration() {
        let s = set(&THREE, 2, 30);
        let now = Instant::now();
        s.record_failure(0, now);
        s.record_failure(0, now);
        assert!(s.is_ejected(0, now));
        assert!(s.is_ejected(0, now + Duration::from_secs(29)));
        let later = now + Duration::from_secs(30);
        assert!(!s.is_ejected(0, later));
        assert_eq!(s.pick(|| later), 0);
        // Still failing after coming back: ejected again at the first failure.
        s.record_failure(0, later);
        assert!(s.is_ejected(0, later));
    }

    #[test]
    fn all_ejected_falls_back_to_plain_round_robin() {
        let s = set(&THREE, 1, 30);
        let now = Instant::now();
        for i in 0..3 {
            s.record_failure(i, now);
        }
        let picks: Vec<usize> = (0..4).map(|_| s.pick(|| now)).collect();
        assert_eq!(picks, [0, 1, 2, 0]);
        // A success through the fallback brings that upstream back at once.
        s.record_success(1);
        let picks: Vec<usize> = (0..3).map(|_| s.pick(|| now)).collect();
        assert_eq!(picks, [1, 1, 1]);
    }

    #[test]
    fn retry_moves_to_the_next_available_upstream() {
        let s = set(&THREE, 1, 30);
        let now = Instant::now();
        assert_eq!(s.pick_after(0, now), 1);
        assert_eq!(s.pick_after(2, now), 0);
        s.record_failure(1, now);
        assert_eq!(s.pick_after(0, now), 2);
    }

    #[test]
    fn zero_failures_disables_ejection() {
        let s = set(&THREE, 0, 30);
        let now = Instant::now();
        for _ in 0..10 {
            s.record_failure(0, now);
        }
        assert!(!s.is_ejected(0, now));
    }
}
