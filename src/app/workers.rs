//! Thread-per-core serving: `server.workers` threads, each with its own single-threaded tokio
//! runtime and its own `SO_REUSEPORT` listener on the same address. A request, its upstream
//! exchange and its body streaming all stay on one thread, so a proxied request costs no
//! cross-thread wake-ups (the dominant cost on a work-stealing runtime: futex and context
//! switches showed up as ~20% of proxy CPU). The kernel spreads new connections across the
//! listeners.

use std::net::SocketAddr;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::{oneshot, watch};
use tokio_rustls::TlsAcceptor;

use super::listener::{self, ConnLimits, SharedRouter};

/// Binds `count` listeners on `addr` with `SO_REUSEPORT`. When `addr` has port 0, the first
/// bind picks the port and the rest join it.
pub fn bind(addr: SocketAddr, count: usize) -> anyhow::Result<Vec<std::net::TcpListener>> {
    let mut listeners = Vec::with_capacity(count);
    let mut at = addr;
    for _ in 0..count.max(1) {
        let socket = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket
            .bind(&at.into())
            .with_context(|| format!("server.listen: cannot bind {addr}"))?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        at = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Starts one worker thread per listener. Each returned receiver completes when its worker
/// has drained and stopped.
pub fn spawn(
    listeners: Vec<std::net::TcpListener>,
    router: SharedRouter,
    tls: Option<TlsAcceptor>,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<oneshot::Receiver<()>>> {
    let mut done = Vec::with_capacity(listeners.len());
    let balances = super::balance::for_workers(listeners.len());
    for ((index, std_listener), balance) in listeners.into_iter().enumerate().zip(balances) {
        let (finished, finished_rx) = oneshot::channel();
        let router = router.clone();
        let tls = tls.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("portcullis-worker-{index}"))
            .spawn(move || {
                crate::proxy::enter_worker(index);
                crate::timer::enter(&crate::timer::CoarseTimer::new());
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, worker = index, "cannot start worker runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(listener) => {
                            listener::serve(listener, router, tls, limits, stop, Some(balance))
                                .await
                        }
                        Err(error) => tracing::error!(%error, worker = index, "listener failed"),
                    }
                });
                // Connections still open after the grace period end with the runtime.
                drop(runtime);
                let _ = finished.send(());
            })
            .context("cannot spawn worker thread")?;
        done.push(finished_rx);
    }
    Ok(done)
}

/// The default worker count: one per available core.
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
