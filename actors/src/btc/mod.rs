//! The node's view of Bitcoin: the BtcWatcher (a thread following a bitcoind over RPC), the index
//! it builds, and the BTC attributes that carry that view into L2 block headers.

pub mod attributes;
pub mod index;
pub mod index_writer;
mod records;
pub mod source;
pub mod watcher;

#[cfg(test)]
pub(crate) mod testkit;

pub use attributes::{check_attributes, next_attributes, view_ready, AttributeError, BtcRules};
pub use index::BtcIndex;
pub use index_writer::{IndexError, IndexSink, IndexWriter};
pub use source::{BitcoinSource, CoreRpc, Credentials};
pub use watcher::{BtcView, WatcherConfig, WatcherHandle};

/// What a node component needs to use Bitcoin: the watcher's latest view and the rules.
#[derive(Clone)]
pub struct BtcLink {
    pub view: BtcView,
    pub rules: BtcRules,
    /// Which keystones in that view count (chain id, operators' keystone keys).
    pub keystones: crate::pop::finality::KeystoneRules,
}

impl std::fmt::Debug for BtcLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtcLink").field("best", &self.view.current().best_height()).field("rules", &self.rules).finish()
    }
}
