//! Protocol upgrades (WebSocket and any other `Upgrade`): once the upstream has answered
//! `101 Switching Protocols` and the client has been sent that 101, both connections are
//! taken over from hyper and bytes are copied both ways until either side closes.
//!
//! No idle timeout applies after the switch: WebSocket connections are long-lived and often
//! quiet, and both ends run their own pings. A tunnel ends when either side closes or errors.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Spawns the tunnel between the client's and the upstream's upgraded connections. Each
/// upgrade future resolves once hyper has handed over its connection (for the client: after
/// the 101 has been written).
pub(crate) fn spawn_tunnel(client: OnUpgrade, upstream: OnUpgrade, route_id: std::sync::Arc<str>) {
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(route = %route_id, error = %e, "upgrade failed");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            Ok((up, down)) => {
                tracing::debug!(route = %route_id, up, down, "upgraded connection closed");
            }
            Err(e) => tracing::debug!(route = %route_id, error = %e, "upgraded connection failed"),
        }
    });
}

#[cfg(test)]
#[path = "upgrade_tests.rs"]
mod tests;
