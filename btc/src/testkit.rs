//! Real regtest blocks (coinbase-only, PoW solved) for unit tests.

use bitcoin::block::{Header, Version};
use bitcoin::blockdata::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::script::Builder;
use bitcoin::{
    absolute, transaction, Amount, Block, Network, OutPoint, ScriptBuf, Sequence, Target, Transaction, TxIn,
    TxMerkleNode, TxOut, Witness,
};

/// `n` blocks extending `parent` (regtest genesis when `None`); `salt` makes branches differ.
pub fn mine_chain(parent: Option<&Block>, n: usize, salt: u8) -> Vec<Block> {
    let mut out: Vec<Block> = vec![];
    let genesis = genesis_block(Network::Regtest);
    let mut prev = parent.cloned();
    for i in 0..n {
        let block = match (&prev, parent, i) {
            (None, None, 0) => genesis.clone(),
            (Some(p), _, _) => mine_on(p, vec![], salt),
            _ => unreachable!("a chain without a parent starts at genesis"),
        };
        prev = Some(block.clone());
        out.push(block);
    }
    out
}

pub fn mine_on(parent: &Block, txs: Vec<Transaction>, salt: u8) -> Block {
    let coinbase = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: Builder::new()
                .push_slice([salt; 4])
                .push_slice(parent.block_hash().to_byte_array())
                .into_script(),
            sequence: Sequence::MAX,
            witness: Witness::default(),
        }],
        output: vec![TxOut { value: Amount::from_sat(5_000_000_000), script_pubkey: ScriptBuf::new_op_return([salt]) }],
    };
    let mut txdata = vec![coinbase];
    txdata.extend(txs);
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(0x2000_0000),
            prev_blockhash: parent.block_hash(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: parent.header.time + 1,
            bits: parent.header.bits,
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap_or_else(TxMerkleNode::all_zeros);
    while !Target::from_compact(block.header.bits).is_met_by(block.header.block_hash()) {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    block
}

/// A Bitcoin index in a fresh temporary store (what the watcher builds in the node's database).
pub struct TestIndex {
    _dir: tempfile::TempDir,
    store: bss_storage::Store,
    start_height: u64,
    pub writer: super::IndexWriter,
}

impl TestIndex {
    pub fn new(start_height: u64) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let store = bss_storage::Store::open(dir.path().join("db"), false).expect("store");
        let reader = store.reader();
        let writer =
            super::IndexWriter::open(super::IndexSink::Direct(store.clone()), reader, start_height).expect("index");
        Self { _dir: dir, store, start_height, writer }
    }

    /// Opens the index again from its store, as a restarted node does.
    pub fn reopen(&mut self) {
        let sink = super::IndexSink::Direct(self.store.clone());
        self.writer = super::IndexWriter::open(sink, self.store.reader(), self.start_height).expect("reopen");
    }

    /// An index of `blocks` from height 0.
    pub fn of(blocks: &[Block]) -> Self {
        let mut t = Self::new(0);
        for b in blocks {
            t.connect(b);
        }
        t
    }

    pub fn connect(&mut self, block: &Block) -> u64 {
        self.writer.connect(block).expect("connect")
    }

    pub fn disconnect_tip(&mut self) {
        self.writer.disconnect_tip().expect("disconnect");
    }

    pub fn view(&self) -> super::BtcIndex {
        self.writer.view()
    }
}
