//! Proof-of-Proof: keystones of committed L2 blocks written into Bitcoin by each operator's
//! PopSubmitter, the anchors the chain records, and superfinality with its fork guard. The
//! keystone format, which keystones count and the keystone tx are pure code in `bss-btc`.

pub mod attest;
pub mod guard;
pub mod submitter;

pub use bss_btc::finality;
pub use bss_btc::keystone::{self, Keystone};
pub use bss_btc::pop_tx as tx;
pub use guard::ForkGuard;
