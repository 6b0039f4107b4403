//! Block execution with revm: build a block from candidate transactions (leader) or re-execute a
//! proposed block and check every derived header field (replica).

use super::btc_precompiles::{BtcAt, HvmPrecompiles};
use super::chain::ChainSpec;
use super::fees::next_base_fee;
use super::hbtc::{mint_calldata, ALREADY_MINTED, HBTC_ADDRESS, SYSTEM_ADDRESS};
use super::leaf_cache::LeafCache;
use super::lthash::LtHash;
use super::state::{StateError, StateSource};
use super::tx::SignedTx;
use super::write_set::WriteSet;
use alloy_consensus::proofs::{calculate_receipt_root, calculate_transaction_root};
use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, TxEnvelope};
use alloy_primitives::{Address, B256, U256};
use bss_btc::inbox::ForcedTx;
use bss_consensus::inclusion::{obligations, InclusionList};
use bss_consensus::{Block, BlockHeader, BtcAttributes, ForcedOutcome, Mint};
use bss_storage::{BlockBody, LogRecord, ReceiptRecord, StateChanges};
use revm::context::result::{EVMError, ExecutionResult, InvalidTransaction};
use revm::context::{BlockEnv, CfgEnv, TxEnv};
use revm::handler::SystemCallEvm;
use revm::primitives::hardfork::SpecId;
use revm::{Context, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainContext};
use std::sync::Arc;

pub use super::state::BlockDiff;

/// Blocks with fewer transactions than this build their tries on the executing thread (a thread
/// costs more than the tries of an empty block: sync of near-empty chains spent its time there).
const PARALLEL_TRIES_MIN: usize = 64;

/// The EVM rules bss runs.
pub const SPEC: SpecId = SpecId::CANCUN;

#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("state: {0}")]
    State(#[from] StateError),
    #[error("block {number}: transaction {index} ({hash}) is invalid: {reason}")]
    InvalidTransaction { number: u64, index: usize, hash: B256, reason: String },
    #[error("block {number}: transaction {index} could not be decoded: {reason}")]
    Undecodable { number: u64, index: usize, reason: String },
    #[error("block {number}: header field {field} mismatch: proposed {proposed}, computed {computed}")]
    Mismatch { number: u64, field: &'static str, proposed: String, computed: String },
    #[error("block {number}: gas used {used} exceeds the gas limit {limit}")]
    GasLimit { number: u64, used: u64, limit: u64 },
    #[error("evm: {0}")]
    Evm(String),
    #[error("block {number} omits tx {hash} that an inclusion list names and that would succeed appended")]
    OmitsListedTx { number: u64, hash: B256 },
    #[error("block {number}: minting hBTC for deposit {deposit} failed: {reason}")]
    Mint { number: u64, deposit: B256, reason: String },
    #[error("block {number} does not start with the forced txs due in it (expected {expected}, found {found})")]
    ForcedOrder { number: u64, expected: B256, found: String },
}

/// A block executed on its parent state, not yet committed.
#[derive(Debug, Clone)]
pub struct ExecutedBlock {
    pub block: Block,
    pub body: BlockBody,
    pub receipts: Vec<ReceiptRecord>,
    pub changes: StateChanges,
    pub diff: Arc<BlockDiff>,
    pub accumulator: LtHash,
    /// Candidates the builder left out because they are invalid on this state (hash, reason).
    pub rejected: Vec<(B256, String)>,
}

impl ExecutedBlock {
    /// What storage writes for this block once it is committed under `certificate`.
    pub fn commit_batch(
        &self,
        certificate: bss_consensus::Certificate,
        proof: Option<bss_consensus::CommitProof>,
    ) -> bss_storage::CommitBatch {
        bss_storage::CommitBatch {
            block: self.block.clone(),
            certificate,
            proof,
            body: self.body.clone(),
            receipts: self.receipts.clone(),
            changes: self.changes.clone(),
        }
    }
}

/// Header fields the proposer chooses; everything else is derived by execution.
#[derive(Debug, Clone)]
pub struct ProposalFields {
    pub round: u64,
    pub proposer: u16,
    pub timestamp_ms: u64,
    pub btc: BtcAttributes,
    /// Keystone sightings the BTC headers bring in (derived from the Bitcoin view).
    pub anchors: Vec<bss_consensus::Anchor>,
    /// The parent's voters' inclusion lists the block embeds and answers.
    pub inclusion: Vec<InclusionList>,
    /// Forced txs due in this block (derived from the Bitcoin view), in Bitcoin order.
    pub forced: Vec<ForcedTx>,
    /// hBTC mints due in this block (derived from the Bitcoin view), in Bitcoin order.
    pub mints: Vec<Mint>,
    /// Leave out the mints due (the Byzantine `skip-mints` test mode: its blocks are then
    /// refused). False on an honest operator.
    pub skip_mints: bool,
    /// Senders whose listed txs the builder leaves out anyway (the Byzantine `censor` test
    /// mode: its blocks are then refused). Empty on an honest operator.
    pub omit_senders: Arc<std::collections::HashSet<Address>>,
}

pub struct BlockBuilder<'a, S: StateSource> {
    spec: &'a ChainSpec,
    state: &'a S,
    parent: &'a BlockHeader,
    parent_acc: &'a LtHash,
    /// The Bitcoin view as of this block's BTC tip, for the hVM precompiles.
    btc: Option<BtcAt>,
    /// Expansions of the leaves recent blocks added (the executor's; None: expand them all).
    leaf_cache: Option<&'a LeafCache>,
}

/// The revm transaction environment of a signed transaction. `chain_id` is used only for a tx
/// that names none (eth_call); a signed tx is judged by the chain id it was signed for.
pub fn tx_env(tx: &SignedTx, chain_id: u64) -> TxEnv {
    let priority = match tx.envelope {
        TxEnvelope::Eip1559(_) => Some(tx.max_priority_fee_per_gas()),
        _ => None,
    };
    TxEnv {
        tx_type: tx.tx_type(),
        caller: tx.sender,
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: Some(tx.chain_id().unwrap_or(chain_id)),
        access_list: alloy_consensus::Transaction::access_list(&tx.envelope).cloned().unwrap_or_default(),
        gas_priority_fee: priority,
        ..Default::default()
    }
}

pub(crate) fn cfg_env(chain_id: u64) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(SPEC);
    cfg.chain_id = chain_id;
    cfg
}

pub(crate) fn block_env(header: &BlockHeader, beneficiary: Address) -> BlockEnv {
    BlockEnv {
        number: U256::from(header.number),
        beneficiary,
        timestamp: U256::from(header.timestamp_secs()),
        gas_limit: header.gas_limit,
        basefee: header.base_fee,
        prevrandao: Some(header.parent_hash),
        ..Default::default()
    }
}

enum Mode {
    /// Leader: `retry` are the listed txs, tried again after the candidates until a pass
    /// includes none of them (a fixpoint), so that every one left out fails appended to the
    /// final block — exactly what voters check.
    Build {
        retry: Vec<Arc<SignedTx>>,
    },
    Validate,
}

impl<'a, S: StateSource> BlockBuilder<'a, S> {
    pub fn new(spec: &'a ChainSpec, state: &'a S, parent: &'a BlockHeader, parent_acc: &'a LtHash) -> Self {
        Self { spec, state, parent, parent_acc, btc: None, leaf_cache: None }
    }

    /// Remove and add state leaves with the expansions `cache` remembers, and remember this
    /// block's (README "Design notes": the state commitment).
    pub fn with_leaf_cache(mut self, cache: &'a LeafCache) -> Self {
        self.leaf_cache = Some(cache);
        self
    }

    /// The Bitcoin view the hVM precompiles read (as of the block's BTC tip).
    pub fn with_btc(mut self, btc: Option<BtcAt>) -> Self {
        self.btc = btc;
        self
    }

    fn header_template(&self, fields: &ProposalFields) -> BlockHeader {
        BlockHeader {
            chain_id: self.spec.chain_id,
            number: self.parent.number + 1,
            parent_hash: self.parent.hash(),
            round: fields.round,
            proposer: fields.proposer,
            timestamp_ms: fields.timestamp_ms.max(self.parent.timestamp_ms + 1),
            transactions_root: B256::ZERO,
            receipts_root: B256::ZERO,
            state_root: B256::ZERO,
            gas_used: 0,
            gas_limit: self.spec.gas_limit,
            base_fee: next_base_fee(
                self.parent.base_fee,
                self.parent.gas_used,
                self.parent.gas_limit,
                self.spec.min_base_fee,
            ),
            btc: fields.btc.clone(),
            anchors: fields.anchors.clone(),
            inclusion: fields.inclusion.clone(),
            forced: vec![],
            mints: vec![],
        }
    }

    /// Leader: executes the forced txs due, then the listed ones, then candidates in order,
    /// leaving out what does not fit or is invalid, and retries listed txs at the end (so that
    /// none it leaves out would succeed appended).
    pub fn build(
        &self,
        fields: &ProposalFields,
        candidates: impl IntoIterator<Item = Arc<SignedTx>>,
    ) -> Result<ExecutedBlock, ExecutionError> {
        let header = self.header_template(fields);
        let mut listed: Vec<Arc<SignedTx>> = obligations(&fields.inclusion)
            .iter()
            .filter_map(|raw| SignedTx::decode(raw).ok().map(Arc::new))
            .filter(|t| !fields.omit_senders.contains(&t.sender))
            .collect();
        listed.sort_by_key(|t| t.nonce());
        let skip: std::collections::HashSet<B256> = listed.iter().map(|t| t.hash).collect();
        let mut items: Vec<Item> = listed.iter().cloned().map(Item::Listed).collect();
        items.extend(candidates.into_iter().filter(|t| !skip.contains(&t.hash)).map(Item::Candidate));
        self.run(header, &fields.mints, &fields.forced, items, Mode::Build { retry: listed })
    }

    /// Replica: re-executes `block` and checks every derived header field against its own
    /// result, that it mints exactly the deposits due, starts with the forced txs due in it,
    /// and answers its lists.
    pub fn validate(
        &self,
        block: &Block,
        txs: Vec<Arc<SignedTx>>,
        mints: &[Mint],
        forced: &[ForcedTx],
    ) -> Result<ExecutedBlock, ExecutionError> {
        let p = &block.header;
        let expected = self.header_template(&ProposalFields {
            round: p.round,
            proposer: p.proposer,
            timestamp_ms: p.timestamp_ms,
            btc: p.btc.clone(),
            anchors: p.anchors.clone(),
            inclusion: p.inclusion.clone(),
            forced: vec![],
            mints: vec![],
            skip_mints: false,
            omit_senders: Default::default(),
        });
        let mismatch = |field: &'static str, a: String, b: String| ExecutionError::Mismatch {
            number: p.number,
            field,
            proposed: a,
            computed: b,
        };
        if p.chain_id != expected.chain_id {
            return Err(mismatch("chain_id", p.chain_id.to_string(), expected.chain_id.to_string()));
        }
        if p.number != expected.number {
            return Err(mismatch("number", p.number.to_string(), expected.number.to_string()));
        }
        if p.parent_hash != expected.parent_hash {
            return Err(mismatch("parent_hash", p.parent_hash.to_string(), expected.parent_hash.to_string()));
        }
        if p.timestamp_ms != expected.timestamp_ms {
            return Err(mismatch("timestamp_ms", p.timestamp_ms.to_string(), expected.timestamp_ms.to_string()));
        }
        if p.gas_limit != expected.gas_limit {
            return Err(mismatch("gas_limit", p.gas_limit.to_string(), expected.gas_limit.to_string()));
        }
        if p.base_fee != expected.base_fee {
            return Err(mismatch("base_fee", p.base_fee.to_string(), expected.base_fee.to_string()));
        }
        let executed = self.run(expected, mints, forced, txs.into_iter().map(Item::Block).collect(), Mode::Validate)?;
        let c = &executed.block.header;
        // Skipping a due mint, repeating one or getting one wrong changes this list.
        if p.mints != c.mints {
            return Err(mismatch("mints", format!("{:?}", p.mints), format!("{:?}", c.mints)));
        }
        for (field, a, b) in [
            ("transactions_root", p.transactions_root, c.transactions_root),
            ("receipts_root", p.receipts_root, c.receipts_root),
            ("state_root", p.state_root, c.state_root),
        ] {
            if a != b {
                return Err(mismatch(field, a.to_string(), b.to_string()));
            }
        }
        if p.gas_used != c.gas_used {
            return Err(mismatch("gas_used", p.gas_used.to_string(), c.gas_used.to_string()));
        }
        if p.anchors != c.anchors {
            return Err(mismatch("anchors", format!("{:?}", p.anchors), format!("{:?}", c.anchors)));
        }
        if p.forced != c.forced {
            return Err(mismatch("forced", format!("{:?}", p.forced), format!("{:?}", c.forced)));
        }
        Ok(executed)
    }

    fn run(
        &self,
        mut header: BlockHeader,
        mints: &[Mint],
        forced: &[ForcedTx],
        items: Vec<Item>,
        mut mode: Mode,
    ) -> Result<ExecutedBlock, ExecutionError> {
        let number = header.number;
        let ws = WriteSet::new(self.state);
        let mut evm = Context::mainnet()
            .with_db(ws)
            .with_block(block_env(&header, self.spec.fee_recipient))
            .with_cfg(cfg_env(self.spec.chain_id))
            .build_mainnet()
            .with_precompiles(HvmPrecompiles::new(SPEC, self.btc.clone()));
        // One transaction against the block so far, not yet committed: Err(reason) when it
        // is invalid there (the block goes on); a storage or EVM failure ends the block.
        macro_rules! attempt {
            ($tx:expr) => {{
                let tx: &SignedTx = $tx;
                match tx.check_stateless(self.spec.chain_id, header.gas_limit, self.spec.max_tx_size) {
                    Err(e) => Err(e.to_string()),
                    Ok(()) => match evm.transact(tx_env(tx, self.spec.chain_id)) {
                        Ok(r) => Ok(r),
                        Err(EVMError::Database(e)) => return Err(e.into()),
                        Err(EVMError::Transaction(e)) => Err(invalid_reason(&e)),
                        Err(e) => return Err(ExecutionError::Evm(e.to_string())),
                    },
                }
            }};
        }
        let mut included: Vec<Arc<SignedTx>> = Vec::new();
        let mut receipts: Vec<ReceiptRecord> = Vec::new();
        let mut rejected = Vec::new();
        let mut skipped_senders: Vec<Address> = Vec::new();
        let mut cumulative = 0u64;
        // Mints first: system calls to hBTC, outside the block's gas. A deposit minted before
        // falls due again when a Bitcoin reorg shallower than the confirmation depth brings
        // its due height back into a later block's view: hBTC refuses it, and it is left out.
        let mut minted = Vec::with_capacity(mints.len());
        for m in mints {
            let failed = |reason: String| ExecutionError::Mint { number, deposit: m.btc_txid, reason };
            match evm.system_call_with_caller(SYSTEM_ADDRESS, HBTC_ADDRESS, mint_calldata(m)) {
                Ok(out) if out.result.is_success() => {
                    evm.commit(out.state);
                    minted.push(m.clone());
                }
                Ok(out) => {
                    let output = out.result.output().cloned().unwrap_or_default();
                    if super::call::revert_reason(&output).as_deref() != Some(ALREADY_MINTED) {
                        return Err(failed(format!("{:?}", out.result)));
                    }
                }
                Err(EVMError::Database(e)) => return Err(e.into()),
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        header.mints = minted;
        // Forced txs first, in both modes, in order: each executes, is skipped for good (it is
        // invalid), or — once one does not fit in the gas left — is carried to the next block
        // with every forced tx after it (`bss_consensus::CARRIED`).
        let mut outcomes = Vec::with_capacity(forced.len());
        let mut carrying = false;
        for f in forced {
            let tx = SignedTx::decode(&f.raw).map(Arc::new).map_err(|e| e.to_string());
            let valid = tx.and_then(|tx| {
                tx.check_stateless(self.spec.chain_id, header.gas_limit, self.spec.max_tx_size)
                    .map(|()| tx)
                    .map_err(|e| e.to_string())
            });
            carrying |= valid.as_ref().is_ok_and(|tx| tx.gas_limit() > header.gas_limit - cumulative);
            let skipped = match valid {
                Err(reason) => Some(reason),
                Ok(_) if carrying => Some(bss_consensus::CARRIED.to_string()),
                Ok(tx) => match attempt!(&tx) {
                    Err(reason) => Some(reason),
                    Ok(result) => {
                        evm.commit(result.state);
                        cumulative += result.result.tx_gas_used();
                        receipts.push(receipt_record(&tx, &result.result, cumulative, header.base_fee));
                        included.push(tx);
                        None
                    }
                },
            };
            let hash = alloy_primitives::keccak256(&f.raw);
            outcomes.push(ForcedOutcome { btc_txid: f.btc_txid, btc_height: f.btc_height, tx_hash: hash, skipped });
        }
        let forced_included = included.len();
        let retry = match mode {
            Mode::Build { ref mut retry } => std::mem::take(retry),
            Mode::Validate => vec![],
        };
        let mut items = items.into_iter();
        if matches!(mode, Mode::Validate) {
            for expected in included.iter() {
                let found = match items.next() {
                    Some(Item::Block(t)) => t.hash.to_string(),
                    _ => "the end of the block".to_string(),
                };
                if found != expected.hash.to_string() {
                    return Err(ExecutionError::ForcedOrder { number, expected: expected.hash, found });
                }
            }
        }
        let mut included_hashes: std::collections::HashSet<B256> = included.iter().map(|t| t.hash).collect();
        for (index, item) in items.enumerate() {
            let index = index + forced_included;
            let (tx, building) = match item {
                Item::Block(t) => (t, None),
                Item::Listed(t) => (t, Some(true)),
                Item::Candidate(t) => (t, Some(false)),
            };
            if let Some(listed) = building {
                if included_hashes.contains(&tx.hash) || !listed && skipped_senders.contains(&tx.sender) {
                    continue;
                }
                if tx.gas_limit() > header.gas_limit - cumulative {
                    if !listed {
                        skipped_senders.push(tx.sender);
                    }
                    continue;
                }
            }
            // Block validity, not just admission: a leader's block may carry txs no mempool saw
            // (another chain's, unprotected by EIP-155, fee fields out of order, oversized).
            let outcome = attempt!(&tx);
            let result = match (outcome, building) {
                (Ok(r), _) => r,
                // A listed tx that fails here may succeed after later txs: retried at the end.
                (Err(_), Some(true)) => continue,
                (Err(reason), Some(false)) => {
                    rejected.push((tx.hash, reason));
                    skipped_senders.push(tx.sender);
                    continue;
                }
                (Err(reason), None) => {
                    return Err(ExecutionError::InvalidTransaction { number, index, hash: tx.hash, reason })
                }
            };
            evm.commit(result.state);
            let exec = result.result;
            let gas_used = exec.tx_gas_used();
            cumulative += gas_used;
            if cumulative > header.gas_limit {
                return Err(ExecutionError::GasLimit { number, used: cumulative, limit: header.gas_limit });
            }
            receipts.push(receipt_record(&tx, &exec, cumulative, header.base_fee));
            included_hashes.insert(tx.hash);
            included.push(tx);
        }
        // The builder's fixpoint: a listed tx that failed may succeed once another listed tx
        // (or a candidate) ran, and that one may enable a third. Each pass that includes
        // something shrinks the set, so there are at most `retry.len()` passes, each of cheap
        // refusals (nonce, funds, fit) but for what it includes.
        let mut pending: Vec<Arc<SignedTx>> =
            retry.into_iter().filter(|t| !included_hashes.contains(&t.hash)).collect();
        loop {
            let before = pending.len();
            let mut left = Vec::with_capacity(pending.len());
            for tx in pending {
                if tx.gas_limit() > header.gas_limit - cumulative {
                    left.push(tx);
                    continue;
                }
                match attempt!(&tx) {
                    Err(_) => left.push(tx),
                    Ok(result) => {
                        evm.commit(result.state);
                        cumulative += result.result.tx_gas_used();
                        if cumulative > header.gas_limit {
                            return Err(ExecutionError::GasLimit { number, used: cumulative, limit: header.gas_limit });
                        }
                        receipts.push(receipt_record(&tx, &result.result, cumulative, header.base_fee));
                        included_hashes.insert(tx.hash);
                        included.push(tx);
                    }
                }
            }
            pending = left;
            if pending.len() == before {
                break;
            }
        }
        // Conditional inclusion: every listed tx left out must fail appended to the block. (A
        // builder retried its listed txs until nothing changed; voters judge what it left out.)
        let judged = if matches!(mode, Mode::Validate) { obligations(&header.inclusion) } else { vec![] };
        for raw in judged {
            let Ok(tx) = SignedTx::decode(&raw) else { continue };
            if included_hashes.contains(&tx.hash)
                || tx.gas_limit() > header.gas_limit - cumulative
                || tx.check_stateless(self.spec.chain_id, header.gas_limit, self.spec.max_tx_size).is_err()
            {
                continue;
            }
            match evm.transact(tx_env(&tx, self.spec.chain_id)) {
                Ok(_) => return Err(ExecutionError::OmitsListedTx { number, hash: tx.hash }),
                Err(EVMError::Database(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
        header.forced = outcomes;
        let ws = &mut evm.ctx.journaled_state.database;
        let tries = || {
            let envelopes: Vec<&TxEnvelope> = included.iter().map(|t| &t.envelope).collect();
            (calculate_transaction_root(&envelopes), receipts_root(&included, &receipts))
        };
        // The two tries depend only on the transactions and receipts: for a block worth a thread,
        // build them on a second core while this one turns the write set into the diff and the
        // new state commitment.
        let (finished, roots) = if included.len() < PARALLEL_TRIES_MIN {
            (ws.finish(self.parent_acc, number, self.leaf_cache), Ok(tries()))
        } else {
            std::thread::scope(|s| {
                let tries = s.spawn(tries);
                let finished = ws.finish(self.parent_acc, number, self.leaf_cache);
                (finished, tries.join())
            })
        };
        let (diff, changes, acc) = finished?;
        let (transactions_root, receipts_root) =
            roots.map_err(|_| ExecutionError::Evm("computing the block tries panicked".into()))?;
        header.transactions_root = transactions_root;
        header.receipts_root = receipts_root;
        header.state_root = acc.root();
        header.gas_used = cumulative;
        let block = Block { header, transactions: included.iter().map(|t| t.raw.clone()).collect() };
        let mut diff = diff;
        diff.hash = block.hash();
        let body = BlockBody {
            transactions: block.transactions.clone(),
            tx_hashes: included.iter().map(|t| t.hash).collect(),
            senders: included.iter().map(|t| t.sender).collect(),
        };
        Ok(ExecutedBlock { block, body, receipts, changes, diff: Arc::new(diff), accumulator: acc, rejected })
    }
}

/// What `run` executes after the forced txs: a proposal's own txs (validation), or, when
/// building, the txs inclusion lists name and the mempool's candidates.
enum Item {
    Block(Arc<SignedTx>),
    Listed(Arc<SignedTx>),
    Candidate(Arc<SignedTx>),
}

fn invalid_reason(e: &InvalidTransaction) -> String {
    match e {
        InvalidTransaction::NonceTooLow { tx, state } => {
            format!("nonce too low: tx {tx} state {state}")
        }
        InvalidTransaction::NonceTooHigh { tx, state } => {
            format!("nonce too high: tx {tx} state {state}")
        }
        InvalidTransaction::LackOfFundForMaxFee { .. } => "insufficient funds for gas * price + value".into(),
        other => other.to_string(),
    }
}

fn receipt_record(tx: &SignedTx, exec: &ExecutionResult, cumulative: u64, base_fee: u64) -> ReceiptRecord {
    let logs = exec
        .logs()
        .iter()
        .map(|l| LogRecord { address: l.address, topics: l.topics().to_vec(), data: l.data.data.clone() })
        .collect();
    ReceiptRecord {
        tx_type: tx.tx_type(),
        success: exec.is_success(),
        gas_used: exec.tx_gas_used(),
        cumulative_gas_used: cumulative,
        effective_gas_price: tx.effective_gas_price(base_fee),
        contract_address: exec.created_address(),
        logs,
    }
}

/// The standard Ethereum receipts trie root.
pub fn receipts_root(txs: &[Arc<SignedTx>], receipts: &[ReceiptRecord]) -> B256 {
    let envelopes: Vec<ReceiptEnvelope> = txs
        .iter()
        .zip(receipts)
        .map(|(tx, r)| {
            let receipt = Receipt {
                status: Eip658Value::Eip658(r.success),
                cumulative_gas_used: r.cumulative_gas_used,
                logs: r
                    .logs
                    .iter()
                    .map(|l| alloy_primitives::Log::new_unchecked(l.address, l.topics.clone(), l.data.clone()))
                    .collect(),
            }
            .with_bloom();
            match tx.envelope {
                TxEnvelope::Legacy(_) => ReceiptEnvelope::Legacy(receipt),
                TxEnvelope::Eip2930(_) => ReceiptEnvelope::Eip2930(receipt),
                _ => ReceiptEnvelope::Eip1559(receipt),
            }
        })
        .collect();
    calculate_receipt_root(&envelopes)
}
