//! Ethereum JSON-RPC object shapes (blocks, transactions, receipts, logs).

use crate::hvm::SignedTx;
use alloy_primitives::{Address, Bloom, BloomInput, B256, U256};
use bss_consensus::BlockHeader;
use bss_storage::{BlockBody, LogRecord, ReceiptRecord};
use serde_json::{json, Map, Value};

/// keccak256(rlp([])): no uncles.
const EMPTY_UNCLES: &str = "0x1dcc4de8dec75d7aab85b567b6ccd41ad312451b948a7413f0a142fd40d49347";

pub fn qty(n: impl Into<u128>) -> String {
    format!("{:#x}", n.into())
}

pub fn logs_bloom<'a>(logs: impl Iterator<Item = &'a LogRecord>) -> Bloom {
    let mut bloom = Bloom::default();
    for log in logs {
        bloom.accrue(BloomInput::Raw(log.address.as_slice()));
        for t in &log.topics {
            bloom.accrue(BloomInput::Raw(t.as_slice()));
        }
    }
    bloom
}

/// Where a committed transaction sits.
#[derive(Clone, Copy)]
pub struct TxPosition {
    pub block_hash: B256,
    pub block_number: u64,
    pub index: u64,
    pub base_fee: u64,
}

pub fn transaction(tx: &SignedTx, pos: Option<TxPosition>) -> Value {
    let mut v = serde_json::to_value(&tx.envelope).unwrap_or(Value::Null);
    let obj = match v.as_object_mut() {
        Some(o) => o,
        None => return Value::Null,
    };
    obj.insert("hash".into(), json!(tx.hash));
    obj.insert("from".into(), json!(tx.sender));
    obj.insert("input".into(), json!(tx.input()));
    if !obj.contains_key("to") {
        obj.insert("to".into(), Value::Null);
    }
    let (bh, bn, idx, price) = match pos {
        Some(p) => {
            (json!(p.block_hash), json!(qty(p.block_number)), json!(qty(p.index)), tx.effective_gas_price(p.base_fee))
        }
        None => (Value::Null, Value::Null, Value::Null, tx.max_fee_per_gas()),
    };
    obj.insert("blockHash".into(), bh);
    obj.insert("blockNumber".into(), bn);
    obj.insert("transactionIndex".into(), idx);
    obj.insert("gasPrice".into(), json!(qty(price)));
    v
}

pub fn log(log: &LogRecord, pos: TxPosition, tx_hash: B256, log_index: u64) -> Value {
    json!({
        "address": log.address,
        "topics": log.topics,
        "data": log.data,
        "blockNumber": qty(pos.block_number),
        "blockHash": pos.block_hash,
        "transactionHash": tx_hash,
        "transactionIndex": qty(pos.index),
        "logIndex": qty(log_index),
        "removed": false,
    })
}

pub struct ReceiptContext<'a> {
    pub receipt: &'a ReceiptRecord,
    pub tx: &'a SignedTx,
    pub pos: TxPosition,
    /// Index in the block of this receipt's first log.
    pub first_log_index: u64,
}

pub fn receipt(r: &ReceiptContext<'_>) -> Value {
    let logs: Vec<Value> = r
        .receipt
        .logs
        .iter()
        .enumerate()
        .map(|(i, l)| log(l, r.pos, r.tx.hash, r.first_log_index + i as u64))
        .collect();
    let to = match r.tx.kind() {
        alloy_primitives::TxKind::Call(a) => json!(a),
        alloy_primitives::TxKind::Create => Value::Null,
    };
    json!({
        "transactionHash": r.tx.hash,
        "transactionIndex": qty(r.pos.index),
        "blockHash": r.pos.block_hash,
        "blockNumber": qty(r.pos.block_number),
        "from": r.tx.sender,
        "to": to,
        "cumulativeGasUsed": qty(r.receipt.cumulative_gas_used),
        "gasUsed": qty(r.receipt.gas_used),
        "effectiveGasPrice": qty(r.receipt.effective_gas_price),
        "contractAddress": r.receipt.contract_address,
        "logs": logs,
        "logsBloom": logs_bloom(r.receipt.logs.iter()),
        "type": qty(r.receipt.tx_type),
        "status": qty(u8::from(r.receipt.success)),
    })
}

/// A block object. `txs` are full transaction objects or hashes.
pub fn block(
    header: &BlockHeader,
    body: &BlockBody,
    receipts: &[ReceiptRecord],
    miner: Address,
    full: bool,
    decoded: &[SignedTx],
) -> Value {
    let hash = header.hash();
    let transactions: Vec<Value> = if full {
        decoded
            .iter()
            .enumerate()
            .map(|(i, tx)| {
                transaction(
                    tx,
                    Some(TxPosition {
                        block_hash: hash,
                        block_number: header.number,
                        index: i as u64,
                        base_fee: header.base_fee,
                    }),
                )
            })
            .collect()
    } else {
        body.tx_hashes.iter().map(|h| json!(h)).collect()
    };
    let size: usize = 600 + body.transactions.iter().map(|b| b.len()).sum::<usize>();
    let mut obj = Map::new();
    obj.insert("number".into(), json!(qty(header.number)));
    obj.insert("hash".into(), json!(hash));
    obj.insert("parentHash".into(), json!(header.parent_hash));
    obj.insert("nonce".into(), json!("0x0000000000000000"));
    obj.insert("sha3Uncles".into(), json!(EMPTY_UNCLES));
    obj.insert("logsBloom".into(), json!(logs_bloom(receipts.iter().flat_map(|r| r.logs.iter()))));
    obj.insert("transactionsRoot".into(), json!(header.transactions_root));
    obj.insert("stateRoot".into(), json!(header.state_root));
    obj.insert("receiptsRoot".into(), json!(header.receipts_root));
    obj.insert("miner".into(), json!(miner));
    obj.insert("difficulty".into(), json!("0x0"));
    obj.insert("totalDifficulty".into(), json!("0x0"));
    obj.insert("extraData".into(), json!("0x"));
    obj.insert("size".into(), json!(qty(size as u64)));
    obj.insert("gasLimit".into(), json!(qty(header.gas_limit)));
    obj.insert("gasUsed".into(), json!(qty(header.gas_used)));
    obj.insert("timestamp".into(), json!(qty(header.timestamp_secs())));
    obj.insert("baseFeePerGas".into(), json!(qty(header.base_fee)));
    obj.insert("mixHash".into(), json!(B256::ZERO));
    obj.insert("uncles".into(), json!([]));
    obj.insert("transactions".into(), Value::Array(transactions));
    obj.insert("bssRound".into(), json!(qty(header.round)));
    obj.insert("bssProposer".into(), json!(qty(header.proposer)));
    obj.insert("bssTimestampMs".into(), json!(qty(header.timestamp_ms)));
    obj.insert(
        "bssBtc".into(),
        json!({ "tipHeight": qty(header.btc.tip_height), "tipHash": header.btc.tip_hash, "headers": header.btc.headers.len() }),
    );
    Value::Object(obj)
}

pub fn u256(v: U256) -> Value {
    json!(v)
}
