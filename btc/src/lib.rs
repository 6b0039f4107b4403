//! bss's Bitcoin side as pure code (no actors): the index of the Bitcoin chain a node follows
//! (persisted in the node's database), the BTC attributes that carry that view into L2 headers,
//! the keystone format and which keystones count, the keystone tx a PoP wallet builds, and the
//! bitcoind source trait. The node's watcher service (in `bss-actors`) drives the index.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod attributes;
pub mod deposit;
pub mod finality;
pub mod forced_tx;
mod fork;
pub mod inbox;
pub mod index;
pub mod index_writer;
pub mod keystone;
pub mod pop_tx;
mod records;
pub mod source;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod vault;
pub mod view;
pub mod withdrawal;

pub use attributes::{
    check_attributes, next_attributes, stale_by, view_ready, AttributeError, BtcRules, DEFAULT_STALE_SLACK,
};
pub use fork::MAX_FORK_DEPTH;
pub use index::BtcIndex;
pub use index_writer::{IndexError, IndexSink, IndexWriter};
pub use source::{BitcoinSource, CoreRpc, Credentials};
pub use view::BtcView;

/// What a node component needs to use Bitcoin: the watcher's latest view and the rules.
#[derive(Clone)]
pub struct BtcLink {
    pub view: BtcView,
    pub rules: BtcRules,
    /// Which keystones in that view count (chain id, operators' keystone keys).
    pub keystones: finality::KeystoneRules,
    /// The tunnel (vault, deposit rules), when the genesis sets one up.
    pub tunnel: Option<deposit::TunnelRules>,
}

impl std::fmt::Debug for BtcLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BtcLink").field("best", &self.view.current().best_height()).field("rules", &self.rules).finish()
    }
}
