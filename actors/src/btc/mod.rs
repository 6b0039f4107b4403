//! The node's view of Bitcoin: the BtcWatcher service (a thread following a bitcoind over RPC)
//! here, and everything it builds on from the pure `bss-btc` crate, re-exported so the node
//! reads `crate::btc::…` whichever side a piece lives on.

mod metrics;
pub mod watcher;

pub use bss_btc::*;
pub use watcher::{WatcherConfig, WatcherHandle};
