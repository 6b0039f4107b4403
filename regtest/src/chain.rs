//! A Bitcoin block chain with regtest parameters, as a plain data structure: genesis, mining
//! with real PoW at the regtest target, consensus checks on every block (linkage, PoW, merkle
//! root, BIP34 height, a coinbase present), best chain by accumulated work, and
//! `invalidateblock` / `reconsiderblock` reorgs. Checks that need the UTXO set (spends, scripts,
//! coinbase value against fees) run when a block joins the active chain (`utxo.rs`): a block that
//! fails them is marked failed and the next-best chain is taken, as ConnectBlock does in Core.

use super::utxo::{SpendError, UtxoSet};
use bitcoin::block::{Header, Version};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::script::Builder;
use bitcoin::{
    absolute, transaction, Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Target,
    Transaction, TxIn, TxMerkleNode, TxOut, Witness,
};
use std::collections::{HashMap, HashSet};

/// Regtest halves the subsidy every 150 blocks.
pub const HALVING_INTERVAL: u64 = 150;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("duplicate")]
    Duplicate,
    #[error("bad-prevblk")]
    UnknownParent,
    #[error("high-hash")]
    BadPow,
    #[error("bad-diffbits")]
    BadBits,
    #[error("bad-txnmrklroot")]
    BadMerkleRoot,
    #[error("bad-cb-height")]
    BadCoinbaseHeight,
    #[error("bad-cb-missing")]
    NoCoinbase,
    #[error("time-too-old")]
    TimeTooOld,
    #[error("Block not found")]
    NotFound,
    #[error("{0}")]
    Spend(#[from] SpendError),
}

/// How the active chain moved: the blocks that left it (oldest first), and those that joined.
#[derive(Debug, Default)]
pub struct TipChange {
    pub disconnected: Vec<Block>,
    pub connected: Vec<BlockHash>,
}

pub fn subsidy(height: u64) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000) >> halvings)
}

/// The BIP34 height at the start of a coinbase script, as Bitcoin Core writes it
/// (`CScript() << height`): OP_1..OP_16 for 1–16, otherwise a minimal little-endian number push.
pub fn coinbase_height(block: &Block) -> Option<u64> {
    let script = &block.txdata.first()?.input.first()?.script_sig;
    match script.instructions().next()?.ok()? {
        bitcoin::script::Instruction::Op(op) => {
            let n = op.to_u8();
            (0x51..=0x60).contains(&n).then(|| u64::from(n - 0x50))
        }
        bitcoin::script::Instruction::PushBytes(b) => {
            let bytes = b.as_bytes();
            if bytes.is_empty() || bytes.len() > 8 || bytes.last().is_some_and(|l| l & 0x80 != 0) {
                return None;
            }
            Some(bytes.iter().rev().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
        }
    }
}

fn regtest_bits() -> CompactTarget {
    genesis_block(Network::Regtest).header.bits
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub block: Block,
    pub height: u64,
    pub chain_work: Work,
}

/// Every block ever accepted, and the active (best valid) chain.
pub struct Chain {
    entries: HashMap<BlockHash, Entry>,
    invalid: HashSet<BlockHash>,
    /// Blocks that failed the UTXO-set checks when they were about to join the active chain.
    failed: HashMap<BlockHash, SpendError>,
    /// Active chain: index = height.
    active: Vec<BlockHash>,
    utxo: UtxoSet,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    pub fn new() -> Self {
        let genesis = genesis_block(Network::Regtest);
        let hash = genesis.block_hash();
        let work = genesis.header.work();
        let mut entries = HashMap::new();
        entries.insert(hash, Entry { block: genesis, height: 0, chain_work: work });
        Self { entries, invalid: HashSet::new(), failed: HashMap::new(), active: vec![hash], utxo: UtxoSet::default() }
    }

    /// The UTXO set (and transaction index) of the active chain.
    pub fn utxo(&self) -> &UtxoSet {
        &self.utxo
    }

    pub fn tip(&self) -> &Entry {
        // The active chain always holds at least genesis.
        &self.entries[self.active.last().unwrap_or(&self.active[0])]
    }

    pub fn height(&self) -> u64 {
        self.active.len() as u64 - 1
    }

    pub fn hash_at(&self, height: u64) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    pub fn get(&self, hash: &BlockHash) -> Option<&Entry> {
        self.entries.get(hash)
    }

    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.entries.get(hash).is_some_and(|e| self.hash_at(e.height) == Some(*hash))
    }

    pub fn confirmations(&self, hash: &BlockHash) -> i64 {
        match self.entries.get(hash) {
            Some(e) if self.is_active(hash) => (self.height() - e.height + 1) as i64,
            Some(_) => -1,
            None => 0,
        }
    }

    /// The coinbase of a block at `height` paying `subsidy + fees` to `script`; `extra_nonce`
    /// keeps blocks mined in the same second on the same parent distinct (as Core's extranonce).
    pub fn coinbase(height: u64, script: ScriptBuf, fees: Amount, extra_nonce: u64) -> Transaction {
        Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                // BIP34 height, plus a marker so coinbases of equal height differ across chains.
                script_sig: Builder::new()
                    .push_int(height as i64)
                    .push_slice(extra_nonce.to_le_bytes())
                    .push_slice(b"bss")
                    .into_script(),
                sequence: Sequence::MAX,
                witness: Witness::default(),
            }],
            output: vec![TxOut { value: subsidy(height) + fees, script_pubkey: script }],
        }
    }

    /// Builds and solves (real PoW at the regtest target) a block on the tip.
    pub fn mine(&self, script: ScriptBuf, txs: Vec<Transaction>, fees: Amount, time: u32, extra_nonce: u64) -> Block {
        let parent = self.tip();
        let height = parent.height + 1;
        let mut txdata = vec![Self::coinbase(height, script, fees, extra_nonce)];
        txdata.extend(txs);
        let mut block = Block {
            header: Header {
                version: Version::from_consensus(0x2000_0000),
                prev_blockhash: parent.block.block_hash(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: time.max(parent.block.header.time + 1),
                bits: regtest_bits(),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().unwrap_or_else(TxMerkleNode::all_zeros);
        let target = Target::from_compact(block.header.bits);
        while !target.is_met_by(block.header.block_hash()) {
            block.header.nonce = block.header.nonce.wrapping_add(1);
        }
        block
    }

    /// Checks a block against consensus rules (those that need no UTXO set) and adds it;
    /// switches the active chain if it now has the most work. Returns how the tip moved (`None`
    /// when it did not). A block that fails the UTXO-set checks on joining is refused.
    pub fn accept(&mut self, block: Block) -> Result<Option<TipChange>, ChainError> {
        let hash = block.block_hash();
        if self.entries.contains_key(&hash) {
            return Err(ChainError::Duplicate);
        }
        let parent = self.entries.get(&block.header.prev_blockhash).ok_or(ChainError::UnknownParent)?;
        if block.header.bits != regtest_bits() {
            return Err(ChainError::BadBits);
        }
        block.header.validate_pow(Target::from_compact(regtest_bits())).map_err(|_| ChainError::BadPow)?;
        if !block.check_merkle_root() {
            return Err(ChainError::BadMerkleRoot);
        }
        if block.header.time <= parent.block.header.time.saturating_sub(2 * 60 * 60) {
            return Err(ChainError::TimeTooOld);
        }
        let height = parent.height + 1;
        let coinbase = block.txdata.first().filter(|t| t.is_coinbase()).ok_or(ChainError::NoCoinbase)?;
        if coinbase_height(&block) != Some(height) {
            return Err(ChainError::BadCoinbaseHeight);
        }
        if !coinbase.input.iter().all(|i| i.previous_output.is_null()) || coinbase.input.len() != 1 {
            return Err(ChainError::NoCoinbase);
        }
        if block.txdata.iter().skip(1).any(|t| t.is_coinbase()) {
            return Err(ChainError::NoCoinbase);
        }
        let chain_work = parent.chain_work + block.header.work();
        self.entries.insert(hash, Entry { block, height, chain_work });
        let change = self.select_best();
        if let Some(e) = self.failed.get(&hash) {
            return Err(ChainError::Spend(e.clone()));
        }
        Ok(change)
    }

    fn valid_chain(&self, hash: &BlockHash) -> bool {
        let mut cursor = *hash;
        loop {
            if self.invalid.contains(&cursor) || self.failed.contains_key(&cursor) {
                return false;
            }
            let Some(e) = self.entries.get(&cursor) else { return false };
            if e.height == 0 {
                return true;
            }
            cursor = e.block.header.prev_blockhash;
        }
    }

    /// The valid leaf with the most work (the current tip wins ties: first seen).
    fn best_path(&self) -> Vec<BlockHash> {
        let current = *self.active.last().unwrap_or(&self.active[0]);
        let mut best = current;
        let mut best_work =
            if self.valid_chain(&current) { self.entries[&current].chain_work } else { Work::from_be_bytes([0; 32]) };
        for (h, e) in &self.entries {
            if e.chain_work > best_work && self.valid_chain(h) {
                best = *h;
                best_work = e.chain_work;
            }
        }
        if !self.valid_chain(&best) {
            // Everything above genesis is invalid: fall back to the longest valid prefix.
            best = self.active.iter().rev().find(|h| self.valid_chain(h)).copied().unwrap_or(self.active[0]);
        }
        let mut path = vec![];
        let mut cursor = best;
        loop {
            path.push(cursor);
            let e = &self.entries[&cursor];
            if e.height == 0 {
                break;
            }
            cursor = e.block.header.prev_blockhash;
        }
        path.reverse();
        path
    }

    /// Makes the best valid chain active, connecting its blocks to the UTXO set; a block that
    /// fails to connect is marked failed and the choice is made again.
    fn select_best(&mut self) -> Option<TipChange> {
        loop {
            let path = self.best_path();
            if path == self.active {
                return None;
            }
            let extends = path.len() == self.active.len() + 1 && path.starts_with(&self.active);
            let (mut utxo, from) = if extends {
                (std::mem::take(&mut self.utxo), self.active.len())
            } else {
                // A reorg: rebuild the set along the new chain (genesis's coinbase is unspendable).
                (UtxoSet::default(), 1)
            };
            let mut failure = None;
            for (height, hash) in path.iter().enumerate().skip(from) {
                if let Err(e) = utxo.connect(&self.entries[hash].block, height as u64) {
                    failure = Some((*hash, e));
                    break;
                }
            }
            match failure {
                Some((hash, e)) => {
                    tracing::warn!(target: "regtest", block = %hash, error = %e, "block failed to connect");
                    self.failed.insert(hash, e);
                    if extends {
                        // `connect` leaves the set untouched on error.
                        self.utxo = utxo;
                    }
                }
                None => {
                    let fork = self.active.iter().zip(&path).take_while(|(a, b)| a == b).count();
                    let disconnected = self.active[fork..].iter().map(|h| self.entries[h].block.clone()).collect();
                    let connected = path[fork..].to_vec();
                    self.utxo = utxo;
                    self.active = path;
                    return Some(TipChange { disconnected, connected });
                }
            }
        }
    }

    /// `invalidateblock`: the block and its descendants leave the active chain.
    pub fn invalidate(&mut self, hash: &BlockHash) -> Result<Option<TipChange>, ChainError> {
        let e = self.entries.get(hash).ok_or(ChainError::NotFound)?;
        if e.height == 0 {
            return Ok(None);
        }
        self.invalid.insert(*hash);
        Ok(self.select_best())
    }

    /// `reconsiderblock`: undoes `invalidate` for the block and its ancestors.
    pub fn reconsider(&mut self, hash: &BlockHash) -> Result<Option<TipChange>, ChainError> {
        let mut cursor = *hash;
        loop {
            let e = self.entries.get(&cursor).ok_or(ChainError::NotFound)?;
            self.invalid.remove(&cursor);
            if e.height == 0 {
                break;
            }
            cursor = e.block.header.prev_blockhash;
        }
        Ok(self.select_best())
    }

    pub fn invalid_set(&self) -> &HashSet<BlockHash> {
        &self.invalid
    }

    /// Restores invalidation marks after a reload.
    pub fn set_invalid(&mut self, invalid: HashSet<BlockHash>) {
        self.invalid = invalid;
        let _ = self.select_best();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script() -> ScriptBuf {
        ScriptBuf::new_op_return([1u8; 4])
    }

    #[test]
    fn mines_valid_blocks_with_bip34_and_halving() {
        let mut c = Chain::new();
        for i in 0..3 {
            let b = c.mine(script(), vec![], Amount::ZERO, 1_700_000_000 + i, u64::from(i));
            assert!(c.accept(b).expect("valid").is_some());
        }
        assert_eq!(c.height(), 3);
        assert_eq!(coinbase_height(&c.tip().block), Some(3));
        assert_eq!(subsidy(149), Amount::from_sat(5_000_000_000));
        assert_eq!(subsidy(150), Amount::from_sat(2_500_000_000));
    }

    #[test]
    fn bad_blocks_are_refused() {
        let mut c = Chain::new();
        let good = c.mine(script(), vec![], Amount::ZERO, 1_700_000_000, 0);
        let mut bad_pow = good.clone();
        // Find a nonce that fails the (easy) regtest target.
        while Target::from_compact(bad_pow.header.bits).is_met_by(bad_pow.header.block_hash()) {
            bad_pow.header.nonce = bad_pow.header.nonce.wrapping_add(1);
        }
        assert!(matches!(c.accept(bad_pow), Err(ChainError::BadPow)));
        let mut bad_root = good.clone();
        bad_root.header.merkle_root = TxMerkleNode::all_zeros();
        while !Target::from_compact(bad_root.header.bits).is_met_by(bad_root.header.block_hash()) {
            bad_root.header.nonce = bad_root.header.nonce.wrapping_add(1);
        }
        assert!(matches!(c.accept(bad_root), Err(ChainError::BadMerkleRoot)));
        let mut orphan = good.clone();
        orphan.header.prev_blockhash = BlockHash::all_zeros();
        assert!(matches!(c.accept(orphan), Err(ChainError::UnknownParent)));
        assert!(c.accept(good.clone()).expect("valid").is_some());
        assert!(matches!(c.accept(good), Err(ChainError::Duplicate)));
    }

    #[test]
    fn invalidate_and_reconsider_reorg() {
        let mut a = Chain::new();
        for i in 0..3 {
            let b = a.mine(script(), vec![], Amount::ZERO, 1_700_000_000 + i, u64::from(i));
            a.accept(b).expect("valid");
        }
        let h1 = a.hash_at(1).expect("h1");
        let old_tip = a.tip().block.block_hash();
        a.invalidate(&h1).expect("invalidate");
        assert_eq!(a.height(), 0);
        // A competing branch from genesis becomes the best chain.
        let b = a.mine(ScriptBuf::new_op_return([2u8; 4]), vec![], Amount::ZERO, 1_700_000_100, 9);
        a.accept(b).expect("valid");
        assert_eq!(a.height(), 1);
        assert_ne!(a.hash_at(1), Some(h1));
        a.reconsider(&old_tip).expect("reconsider");
        assert_eq!(a.height(), 3);
        assert_eq!(a.tip().block.block_hash(), old_tip);
        assert_eq!(a.confirmations(&h1), 3);
    }
}
