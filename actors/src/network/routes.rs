//! Where the network delivers what authenticated operators send. Drawn once when the node
//! starts: the network is transport only and knows nothing of what it delivers to.

use crate::consensus::ConsensusHandle;
use crate::mempool::GossipAdmission;
use crate::sync_server::SyncServerHandle;
use bss_hotstuff_rs::FrameSender;

/// The running engine's inbox.
pub enum EngineRoute {
    /// The native engine's driver: consensus messages and sync answers.
    Native(ConsensusHandle),
    /// hotstuff-rs: opaque frames (it syncs by itself).
    HotstuffRs(FrameSender),
}

pub struct Routes {
    pub engine: EngineRoute,
    /// Peers' block sync requests.
    pub sync: SyncServerHandle,
    /// Gossiped transactions.
    pub gossip: GossipAdmission,
    /// Payout signatures (None: no tunnel).
    pub tunnel: Option<crate::tunnel::TunnelInbox>,
    /// Keystone signatures (None: no Proof-of-Proof).
    pub keystones: Option<crate::pop::attest::AttestInbox>,
}
