//! The chain service as the hotstuff-rs engine calls it: blocking calls from its threads (they
//! wait with `futures::executor::block_on`, which needs no runtime of their own).

use super::ChainHandle;
use bss_consensus::{Block, BlockHeader, Certificate};
use bss_storage::StoreReader;
use futures::executor::block_on;

pub struct HsChain {
    pub chain: ChainHandle,
    pub reader: StoreReader,
}

impl bss_hotstuff_rs::Chain for HsChain {
    fn propose(&self, view: u64, parent: BlockHeader, ancestors: Vec<Block>) -> Result<Block, String> {
        block_on(self.chain.propose(view, parent, ancestors, vec![])).map_err(|e| e.to_string())
    }

    fn validate(&self, block: Block, ancestors: Vec<Block>, proposal: bool) -> Result<(), String> {
        block_on(self.chain.validate(block, ancestors, proposal)).map_err(|e| e.to_string())
    }

    fn commit(&self, block: Block, certificate: Certificate) {
        self.chain.commit_later(block, certificate);
    }

    fn committed_height(&self) -> u64 {
        match self.reader.head_number() {
            Ok(n) => n.unwrap_or(0),
            Err(e) => crate::fatal::stop("storage", format!("reading the head: {e}")),
        }
    }
}
