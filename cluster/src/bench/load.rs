//! The workload: funded sender keys, pre-signed transactions, and paced sender threads.

use super::client::RpcClient;
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use bss_actors::hvm::accounts::DevKey;
use bss_actors::hvm::bytecode::token_transfer;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fee cap of every transaction the bench signs (100 gwei). Blocks whose base fee is above
/// it cannot carry the load: the bench counts them (`Observed::priced_out_blocks`).
pub const MAX_FEE_PER_GAS: u128 = 100_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TxKindArg {
    /// Plain ETH transfers (21,000 gas).
    Eth,
    /// ERC-20-style token transfers (2 SLOAD, 2 SSTORE, a Transfer log).
    Erc20,
    /// Half and half.
    Mix,
}

pub struct Signed {
    pub raw: Vec<Bytes>,
    pub hashes: Vec<B256>,
    /// Sender thread of each tx (all of one sender's txs go through one thread, in nonce order).
    pub lane: Vec<usize>,
    pub index: HashMap<B256, usize>,
}

pub fn sender_keys(n: usize) -> Vec<DevKey> {
    (0..n as u64).map(|i| DevKey::from_seed(0xb55_0000 + i)).collect()
}

/// Signs `depth` rounds of one tx per sender (round k uses nonce `first_nonce + k`) on all cores.
pub fn presign(
    keys: &[DevKey],
    depth: usize,
    kind: TxKindArg,
    token: Address,
    chain_id: u64,
    first_nonce: &[u64],
    lanes: usize,
) -> Signed {
    let total = keys.len() * depth;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("signing   {bar:40} {pos}/{len} txs ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let chunk = keys.len().div_ceil(threads);
    let parts: Vec<Vec<(usize, Bytes, B256)>> = std::thread::scope(|s| {
        let handles: Vec<_> = keys
            .chunks(chunk)
            .enumerate()
            .map(|(c, ks)| {
                let bar = bar.clone();
                s.spawn(move || {
                    let mut out = Vec::with_capacity(ks.len() * depth);
                    for round in 0..depth {
                        for (j, k) in ks.iter().enumerate() {
                            let i = c * chunk + j;
                            let to = Address::with_last_byte((i % 250) as u8 + 1);
                            let erc20 = match kind {
                                TxKindArg::Eth => false,
                                TxKindArg::Erc20 => true,
                                TxKindArg::Mix => (i + round) % 2 == 1,
                            };
                            let (target, input, value, gas) = if erc20 {
                                (token, token_transfer(to, 1), U256::ZERO, 60_000)
                            } else {
                                (to, Bytes::new(), U256::from(1), 21_000)
                            };
                            let raw = k.sign_raw(TxEip1559 {
                                chain_id,
                                nonce: first_nonce[i] + round as u64,
                                gas_limit: gas,
                                max_fee_per_gas: MAX_FEE_PER_GAS,
                                max_priority_fee_per_gas: 1_000,
                                to: TxKind::Call(target),
                                value,
                                input,
                                ..Default::default()
                            });
                            // The hash of an EIP-2718 transaction is keccak256 of its encoding.
                            let hash = alloy_primitives::keccak256(&raw);
                            out.push((round * keys.len() + i, raw, hash));
                        }
                        bar.inc(ks.len() as u64);
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    bar.finish_and_clear();
    let mut all: Vec<(usize, Bytes, B256)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(pos, _, _)| *pos);
    let mut signed = Signed { raw: vec![], hashes: vec![], lane: vec![], index: HashMap::with_capacity(total) };
    for (pos, raw, hash) in all {
        let sender = pos % keys.len();
        signed.index.insert(hash, signed.raw.len());
        signed.raw.push(raw);
        signed.hashes.push(hash);
        signed.lane.push(sender % lanes);
    }
    signed
}

/// Shared between the sender threads and the observer.
pub struct SendLog {
    pub started: Instant,
    /// Microseconds since `started` at which each tx was sent (0: not sent).
    pub sent_at: Vec<AtomicU64>,
    pub sent: AtomicU64,
    pub rejected: AtomicU64,
    pub errors: AtomicU64,
    pub stop: AtomicBool,
}

impl SendLog {
    pub fn new(n: usize) -> Self {
        Self {
            started: Instant::now(),
            sent_at: (0..n).map(|_| AtomicU64::new(0)).collect(),
            sent: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }
    }
}

/// Longest gap between two batches of one lane at a target rate.
const PACE: Duration = Duration::from_millis(250);

/// One sender thread: its lane's txs, in order, in JSON-RPC batches, to one operator.
pub fn send_lane(rpc: String, signed: Arc<Signed>, lane: usize, batch: usize, rate_per_lane: f64, log: Arc<SendLog>) {
    let mut client = RpcClient::new(&rpc);
    let mine: Vec<usize> = (0..signed.raw.len()).filter(|i| signed.lane[*i] == lane).collect();
    let mut sent_here = 0usize;
    // At a target rate a batch holds at most PACE's worth of the lane's txs, so that a low rate
    // is spread over the run instead of leaving in one batch at the start.
    let batch =
        if rate_per_lane > 0.0 { batch.min((rate_per_lane * PACE.as_secs_f64()).ceil() as usize) } else { batch };
    for chunk in mine.chunks(batch.max(1)) {
        if log.stop.load(Ordering::Relaxed) {
            break;
        }
        if rate_per_lane > 0.0 {
            // Pace to the target rate: wait until this batch is due.
            let due = Duration::from_secs_f64(sent_here as f64 / rate_per_lane);
            let elapsed = log.started.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        let body: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    r#"{{"jsonrpc":"2.0","id":{i},"method":"eth_sendRawTransaction","params":["{}"]}}"#,
                    signed.raw[*i]
                )
            })
            .collect();
        let now = log.started.elapsed().as_micros() as u64 + 1;
        for i in chunk {
            log.sent_at[*i].store(now, Ordering::Relaxed);
        }
        match client.post(&format!("[{}]", body.join(","))) {
            Ok(text) => {
                let rejected = text.matches("\"error\"").count() as u64;
                log.rejected.fetch_add(rejected, Ordering::Relaxed);
            }
            Err(_) => {
                log.errors.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
        }
        sent_here += chunk.len();
        log.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
}
