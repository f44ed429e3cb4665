//! Even connection counts across worker threads. `SO_REUSEPORT` spreads new connections by a
//! hash of their addresses, which leaves workers uneven (36 and 28 of 64 is common): the
//! fuller one queues more, and its clients see the slow tail. A worker that accepts a
//! connection while it holds more than the least loaded worker plus one hands the socket to
//! that worker instead; the move happens once per connection, never per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

/// A connection handed from one worker to another.
pub struct Handoff {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    /// Already counted against the receiving worker.
    pub load: Load,
}

/// One worker's view of the balance: everyone's load and everyone's inbox.
pub struct Balance {
    index: usize,
    loads: Arc<[AtomicUsize]>,
    inboxes: Arc<[mpsc::UnboundedSender<Handoff>]>,
}

/// Builds the views and inboxes for `count` workers.
pub fn for_workers(count: usize) -> Vec<(Balance, mpsc::UnboundedReceiver<Handoff>)> {
    let loads: Arc<[AtomicUsize]> = (0..count).map(|_| AtomicUsize::new(0)).collect();
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..count).map(|_| mpsc::unbounded_channel()).unzip();
    let inboxes: Arc<[_]> = senders.into();
    receivers
        .into_iter()
        .enumerate()
        .map(|(index, inbox)| {
            let balance = Balance {
                index,
                loads: loads.clone(),
                inboxes: inboxes.clone(),
            };
            (balance, inbox)
        })
        .collect()
}

/// Counts a connection against a worker while it lives.
pub struct Load {
    loads: Arc<[AtomicUsize]>,
    index: usize,
}

impl Drop for Load {
    fn drop(&mut self) {
        self.loads[self.index].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balance {
    /// Where a connection this worker just accepted should live: `Some` with its load token
    /// to serve it here, `None` when another worker took it (or the socket proved unusable).
    pub fn place(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Option<(tokio::net::TcpStream, Load)> {
        let own = self.loads[self.index].load(Ordering::Relaxed);
        let lightest = (0..self.loads.len())
            .min_by_key(|&i| self.loads[i].load(Ordering::Relaxed))
            .unwrap_or(self.index);
        if lightest == self.index || own <= self.loads[lightest].load(Ordering::Relaxed) + 1 {
            return Some((stream, self.count(self.index)));
        }
        // Deregistering failed: the socket is unusable; drop it.
        let std_stream = stream.into_std().ok()?;
        let handoff = Handoff {
            stream: std_stream,
            peer,
            load: self.count(lightest),
        };
        match self.inboxes[lightest].send(handoff) {
            Ok(()) => None,
            Err(mpsc::error::SendError(handoff)) => {
                // That worker has stopped: keep the connection here after all.
                drop(handoff.load);
                let stream = tokio::net::TcpStream::from_std(handoff.stream).ok()?;
                Some((stream, self.count(self.index)))
            }
        }
    }

    fn count(&self, index: usize) -> Load {
        self.loads[index].fetch_add(1, Ordering::Relaxed);
        Load {
            loads: self.loads.clone(),
            index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn connected_pair(
        listener: &tokio::net::TcpListener,
    ) -> (tokio::net::TcpStream, SocketAddr) {
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        std::mem::forget(_client);
        (stream, peer)
    }

    #[tokio::test]
    async fn a_fuller_worker_hands_connections_to_the_lightest() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut workers = for_workers(2);
        let (second, mut second_inbox) = workers.pop().unwrap();
        let (first, _first_inbox) = workers.pop().unwrap();
        let mut kept = Vec::new();
        // The first worker keeps two (it may run one ahead of an idle peer)...
        for _ in 0..2 {
            let (stream, peer) = connected_pair(&listener).await;
            kept.push(first.place(stream, peer).expect("kept"));
        }
        // ...then hands the next one over, and the peer's count includes it at once.
        let (stream, peer) = connected_pair(&listener).await;
        assert!(first.place(stream, peer).is_none());
        let handed = second_inbox.try_recv().unwrap();
        assert_eq!(handed.peer, peer);
        assert_eq!(second.loads[1].load(Ordering::Relaxed), 1);
        // Closing connections frees their count.
        drop(kept);
        drop(handed);
        assert_eq!(first.loads[0].load(Ordering::Relaxed), 0);
        assert_eq!(first.loads[1].load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_stopped_worker_gets_nothing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut workers = for_workers(2);
        drop(workers.pop());
        let (first, _inbox) = workers.pop().unwrap();
        let mut kept = Vec::new();
        for _ in 0..4 {
            let (stream, peer) = connected_pair(&listener).await;
            kept.push(
                first
                    .place(stream, peer)
                    .expect("kept when the peer is gone"),
            );
        }
    }
}
