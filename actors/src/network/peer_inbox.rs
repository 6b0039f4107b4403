//! Bounded queues, one per operator, from the network to a service thread (payout signatures,
//! keystone signatures): an operator that floods fills only its own queue, so the others'
//! messages still get in. Overflow is dropped and counted; senders re-send.

use tokio::sync::mpsc;

/// Where the network delivers: `from` is the authenticated sender.
pub struct PeerInbox<T> {
    queues: Vec<mpsc::Sender<T>>,
    dropped: ::metrics::Counter,
}

impl<T> Clone for PeerInbox<T> {
    fn clone(&self) -> Self {
        Self { queues: self.queues.clone(), dropped: self.dropped.clone() }
    }
}

impl<T> PeerInbox<T> {
    pub fn deliver(&self, from: u16, m: T) {
        let full = self.queues.get(usize::from(from)).is_none_or(|q| q.try_send(m).is_err());
        if full {
            self.dropped.increment(1);
        }
    }
}

/// The receiving half: one queue per operator, read in turn.
pub struct PeerMailbox<T>(pub(crate) Vec<mpsc::Receiver<T>>);

impl<T> PeerMailbox<T> {
    /// Hands `f` at most one message from each operator's queue; false when all were empty.
    pub fn round(&mut self, mut f: impl FnMut(T)) -> bool {
        let mut got = false;
        for q in self.0.iter_mut() {
            if let Ok(m) = q.try_recv() {
                got = true;
                f(m);
            }
        }
        got
    }
}

/// `operators` queues of `per_peer` messages each; drops count on `dropped`.
pub fn peer_channel<T>(
    operators: usize,
    per_peer: usize,
    dropped: ::metrics::Counter,
) -> (PeerInbox<T>, PeerMailbox<T>) {
    let (tx, rx): (Vec<_>, Vec<_>) = (0..operators).map(|_| mpsc::channel(per_peer)).unzip();
    (PeerInbox { queues: tx, dropped }, PeerMailbox(rx))
}
