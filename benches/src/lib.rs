//! Shared set-up for the benchmarks: a real store with funded senders, pre-signed blocks of
//! transfers, and the same transactions replayed on raw revm in memory.
#![allow(clippy::unwrap_used)]

use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use bss_consensus::{BlockHeader, BtcAttributes, Certificate};
use bss_hvm::accounts::DevKey;
use bss_hvm::execute::{tx_env, ProposalFields};
use bss_hvm::lthash::LtHash;
use bss_hvm::{BlockBuilder, ChainSpec, ExecutedBlock, Genesis, LayeredState, SignedTx};
use bss_storage::{StorageHandle, StorageService, Store, StoreReader, Written};
use revm::database::{CacheDB, EmptyDB};
use revm::state::AccountInfo;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};
use std::sync::Arc;

pub const CHAIN_ID: u64 = 7357;

/// What each transaction does.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A plain ETH transfer.
    Eth,
    /// A token transfer with ERC-20's storage profile: 2 SLOAD, 2 SSTORE, LOG3.
    Erc20,
}

pub use bss_hvm::bytecode::{token_runtime, transfer_topic};

pub struct Workload {
    pub senders: Vec<DevKey>,
    pub kind: Kind,
    pub token: Address,
}

impl Workload {
    /// One block's worth: every sender sends one transaction with nonce `nonce`.
    pub fn block(&self, nonce: u64) -> Vec<Arc<SignedTx>> {
        self.senders
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let to = Address::with_last_byte((i % 200) as u8 + 1);
                let (target, input, value) = match self.kind {
                    Kind::Eth => (to, Bytes::new(), U256::from(1)),
                    Kind::Erc20 => (self.token, bss_hvm::bytecode::token_transfer(to, 5), U256::ZERO),
                };
                let raw = k.sign_raw(TxEip1559 {
                    chain_id: CHAIN_ID,
                    nonce,
                    gas_limit: 100_000,
                    max_fee_per_gas: 2_000_000_000,
                    max_priority_fee_per_gas: 1,
                    to: TxKind::Call(target),
                    value,
                    input,
                    ..Default::default()
                });
                Arc::new(SignedTx::decode(&raw).unwrap())
            })
            .collect()
    }
}

/// A real node's execution path: fjall store, storage thread, block builder.
pub struct Chain {
    _dir: tempfile::TempDir,
    pub spec: ChainSpec,
    pub reader: StoreReader,
    pub storage: StorageHandle,
    pub head: BlockHeader,
    pub acc: LtHash,
    /// The changes of the last two blocks, the state layers of the next one: the one before
    /// the head is written (the node's executor keeps a written head's changes the same way),
    /// the head may still be being written (as the node's chain service goes on meanwhile).
    pub layers: std::collections::VecDeque<Arc<bss_hvm::execute::BlockDiff>>,
    /// The head's write, if storage has not confirmed it yet.
    pub writing: Option<Written>,
    pub workload: Workload,
    pub next_nonce: u64,
    /// The state leaves' remembered expansions, as the node's executor keeps them.
    pub leaf_cache: bss_hvm::leaf_cache::LeafCache,
}

fn spec() -> ChainSpec {
    ChainSpec {
        chain_id: CHAIN_ID,
        gas_limit: 1_000_000_000,
        min_base_fee: 1_000_000_000,
        fee_recipient: Address::repeat_byte(0xfe),
        max_tx_size: 128 * 1024,
    }
}

pub fn senders(n: usize) -> Vec<DevKey> {
    (0..n as u64).map(|i| DevKey::from_seed(1_000 + i)).collect()
}

impl Chain {
    pub fn new(n_senders: usize, kind: Kind, fsync: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), fsync).unwrap();
        let keys = senders(n_senders);
        let genesis = Genesis {
            spec: spec(),
            base_fee: 1_000_000_000,
            timestamp_ms: 0,
            alloc: keys.iter().map(|k| (k.address, U256::from(10u128.pow(24)))).collect(),
            predeploys: vec![],
            rules_hash: Default::default(),
        };
        let (batch, acc) = genesis.build();
        store.init_genesis(CHAIN_ID, &batch).unwrap();
        let reader = store.reader();
        let storage = StorageService::spawn(store, 16).unwrap();
        let workload = Workload { senders: keys, kind, token: Address::ZERO };
        let mut chain = Self {
            _dir: dir,
            spec: genesis.spec,
            reader,
            storage,
            head: batch.block.header,
            acc,
            layers: Default::default(),
            writing: None,
            workload,
            next_nonce: 0,
            leaf_cache: Default::default(),
        };
        if let Kind::Erc20 = kind {
            // The first sender deploys the token; everyone else's nonces stay aligned by a
            // transfer of their own in the same block.
            let deployer = chain.workload.senders[0].clone();
            let raw = deployer.sign_raw(TxEip1559 {
                chain_id: CHAIN_ID,
                nonce: 0,
                gas_limit: 500_000,
                max_fee_per_gas: 2_000_000_000,
                max_priority_fee_per_gas: 1,
                to: TxKind::Create,
                input: bss_hvm::bytecode::deploy_initcode(&token_runtime()),
                ..Default::default()
            });
            let deploy = Arc::new(SignedTx::decode(&raw).unwrap());
            chain.workload.token = deployer.address.create(0);
            let mut first = vec![deploy];
            first.extend(
                Workload { kind: Kind::Eth, senders: chain.workload.senders[1..].to_vec(), token: Address::ZERO }
                    .block(0),
            );
            chain.execute_and_commit(first);
            chain.next_nonce = 1;
        }
        chain
    }

    pub fn next_block(&mut self) -> Vec<Arc<SignedTx>> {
        let txs = self.workload.block(self.next_nonce);
        self.next_nonce += 1;
        txs
    }

    /// Builds and executes one block on the head through the node's own block builder.
    pub fn build(&self, txs: Vec<Arc<SignedTx>>) -> ExecutedBlock {
        let state = LayeredState { base: self.reader.clone(), layers: self.layers.iter().cloned().collect() };
        let fields = ProposalFields {
            round: self.head.round + 1,
            proposer: 0,
            timestamp_ms: self.head.timestamp_ms + 1_000,
            btc: BtcAttributes::default(),
            anchors: vec![],
            inclusion: vec![],
            forced: vec![],
            mints: vec![],
            skip_mints: false,
            omit_senders: Default::default(),
        };
        let executed = BlockBuilder::new(&self.spec, &state, &self.head, &self.acc)
            .with_leaf_cache(&self.leaf_cache)
            .build(&fields, txs)
            .unwrap();
        assert!(executed.rejected.is_empty(), "rejected: {:?}", executed.rejected);
        executed
    }

    /// Hands an executed block to the storage service and makes it the head, once the block
    /// before it is written (so at most one write is in flight, as in the node).
    pub fn queue(&mut self, executed: &ExecutedBlock) {
        self.wait_written();
        let h = &executed.block.header;
        let certificate = Certificate {
            chain_id: CHAIN_ID,
            round: h.round,
            block_hash: h.hash(),
            signatures: vec![],
            hotstuff_rs: None,
        };
        self.writing =
            Some(self.storage.queue_commit_blocking(vec![executed.commit_batch(certificate, None)]).unwrap());
        self.head = executed.block.header.clone();
        self.acc = executed.accumulator.clone();
        if self.layers.len() == 2 {
            self.layers.pop_front();
        }
        self.layers.push_back(executed.diff.clone());
    }

    /// Waits until storage has written the head.
    pub fn wait_written(&mut self) {
        if let Some(w) = self.writing.take() {
            w.wait().unwrap();
        }
    }

    /// Commits an executed block and waits until it is written.
    pub fn commit(&mut self, executed: &ExecutedBlock) {
        self.queue(executed);
        self.wait_written();
    }

    /// Builds and executes one block and queues its commit; returns its transaction count.
    pub fn execute_and_commit(&mut self, txs: Vec<Arc<SignedTx>>) -> usize {
        let executed = self.build(txs);
        self.queue(&executed);
        executed.block.transactions.len()
    }
}

/// The same transactions on raw revm over an in-memory database, no storage, no state root.
pub struct RawRevm {
    db: CacheDB<EmptyDB>,
}

impl RawRevm {
    pub fn new(senders: &[DevKey], token: Option<Address>) -> Self {
        let mut db = CacheDB::new(EmptyDB::default());
        for k in senders {
            db.insert_account_info(
                k.address,
                AccountInfo { balance: U256::from(10u128.pow(24)), ..Default::default() },
            );
        }
        if let Some(t) = token {
            let code = revm::bytecode::Bytecode::new_raw(Bytes::from(token_runtime()));
            db.insert_account_info(
                t,
                AccountInfo { code_hash: code.hash_slow(), code: Some(code), ..Default::default() },
            );
        }
        Self { db }
    }

    pub fn execute(&mut self, txs: &[Arc<SignedTx>], number: u64) -> usize {
        let mut cfg = revm::context::CfgEnv::new_with_spec(revm::primitives::hardfork::SpecId::CANCUN);
        cfg.chain_id = CHAIN_ID;
        let block = revm::context::BlockEnv {
            number: U256::from(number),
            basefee: 1_000_000_000,
            gas_limit: 1_000_000_000,
            ..Default::default()
        };
        let mut evm = Context::mainnet().with_db(&mut self.db).with_block(block).with_cfg(cfg).build_mainnet();
        for tx in txs {
            evm.transact_commit(tx_env(tx, CHAIN_ID)).unwrap();
        }
        txs.len()
    }
}
