//! The `hotstuff-rs` engine: the hotstuff_rs crate (parallelchain-io, 0.4) behind bss's consensus
//! boundary, beside the native engine in `bss-consensus`. The node plugs in two things:
//!
//! * a [`Chain`] — the node's chain service, which builds, validates and commits L2 blocks
//!   exactly as it does for the native engine;
//! * a [`Transport`] — the node's authenticated operator links; frames from peers come back in
//!   through a [`FrameSender`].
//!
//! Here live hotstuff-rs's `App` (over the `Chain`), its `Network` (over the `Transport`), its
//! `KVStore` (over fjall), and the mapping of its quorum certificates into bss's stored
//! [`Certificate`]s, so `bss verify` checks a hotstuff-rs chain's signatures too. Each known 0.4
//! defect is worked around where it lives (see each file).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod app;
mod certificate;
mod driver;
mod kv;
mod net;

use bss_consensus::{Block, BlockHeader, Certificate};

pub use certificate::certificate_for;
pub use driver::{start, view_time, HsConfig, HsReplica, StartError};
pub use kv::FjallKv;
pub use net::{frame_channel, FrameReceiver, FrameSender, Transport};

/// The node's chain service, as hotstuff-rs's threads call it (blocking calls).
pub trait Chain: Send + Sync + 'static {
    /// Builds the L2 block for `view` on `parent`; `ancestors` are the uncommitted L2 blocks
    /// from the committed head to `parent`, oldest first.
    fn propose(&self, view: u64, parent: BlockHeader, ancestors: Vec<Block>) -> Result<Block, String>;

    /// Re-executes and checks `block`: as a proposal up for a vote (`proposal`), or as a block
    /// that arrived by block sync.
    fn validate(&self, block: Block, ancestors: Vec<Block>, proposal: bool) -> Result<(), String>;

    /// `block` is committed under `certificate`: queue it (in order; must not block).
    fn commit(&self, block: Block, certificate: Certificate);

    /// The height of the last L2 block committed to storage.
    fn committed_height(&self) -> u64;
}
