//! The latest published Bitcoin view, cheap to clone and to read from any thread.

use crate::index::BtcIndex;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The latest published Bitcoin view, cheap to clone and to read from any thread.
#[derive(Clone)]
pub struct BtcView {
    pub(crate) rx: watch::Receiver<Arc<BtcIndex>>,
    pub(crate) up: watch::Receiver<bool>,
    /// Asks the watcher to fetch a Bitcoin block off the best chain by hash (and its ancestors
    /// down to the best chain), with the height a certified L2 block gives it.
    pub(crate) want: Option<std::sync::mpsc::SyncSender<(u64, bitcoin::BlockHash)>>,
}

impl BtcView {
    /// The view a watcher publishes through `rx` (and its connection state through `up`).
    pub fn from_channels(rx: watch::Receiver<Arc<BtcIndex>>, up: watch::Receiver<bool>) -> Self {
        Self { rx, up, want: None }
    }

    /// Where [`BtcView::want_stale`] requests go (the watcher drains them each round).
    pub fn with_requests(mut self, want: std::sync::mpsc::SyncSender<(u64, bitcoin::BlockHash)>) -> Self {
        self.want = Some(want);
        self
    }

    /// Asks the watcher for the block `hash` at `height` off the best chain (dropped when the
    /// watcher has many requests queued: the asker asks again).
    pub fn want_stale(&self, height: u64, hash: bitcoin::BlockHash) {
        if let Some(w) = &self.want {
            let _ = w.try_send((height, hash));
        }
    }

    /// Whether the last call to the Bitcoin node succeeded.
    pub fn connected(&self) -> bool {
        *self.up.borrow()
    }

    pub fn current(&self) -> Arc<BtcIndex> {
        self.rx.borrow().clone()
    }

    /// Waits for the next published view; false once the watcher is gone.
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }

    /// Waits (up to `timeout`) for the first successful round with the Bitcoin node.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut up = self.up.clone();
        let connected = tokio::time::timeout(timeout, up.wait_for(|u| *u)).await.is_ok_and(|r| r.is_ok());
        connected
    }

    /// Waits (up to `timeout`) until the view satisfies `ready`; returns the last view either way.
    pub async fn wait_for(&self, timeout: Duration, ready: impl Fn(&BtcIndex) -> bool) -> Arc<BtcIndex> {
        let mut rx = self.rx.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let view = rx.borrow_and_update().clone();
            if ready(&view) {
                return view;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return rx.borrow().clone(),
            }
        }
    }

    /// A view that never changes (tests, and nodes without Bitcoin).
    pub fn fixed(index: BtcIndex) -> (Self, watch::Sender<Arc<BtcIndex>>) {
        let (tx, rx) = watch::channel(Arc::new(index));
        let (_, up) = watch::channel(true);
        (Self { rx, up, want: None }, tx)
    }
}
