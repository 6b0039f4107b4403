//! The background load of a chaos run: signed transfers at a fixed rate, sent every 50 ms as
//! one JSON-RPC batch to the next operator that answers. Each batch names every sender at most
//! once, so a tx an operator refuses leaves no later tx of its sender waiting behind a gap: the
//! sender simply sends that nonce again. Every acknowledged tx is reported, with the operator
//! that took it. While an operator censors sender 0 (`byzantine:censor`), the load keeps away
//! from it: what counts is whether the honest operators get sender 0's txs committed.

use super::checker::Ack;
use crate::bench::client::RpcClient;
use alloy_consensus::TxEip1559;
use alloy_primitives::{keccak256, Address, TxKind, U256};
use bss_actors::hvm::accounts::DevKey;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(50);

/// Senders a load of `rate` tx/s needs (one tx per sender per batch), funded in the genesis.
pub fn senders(rate: f64) -> Vec<DevKey> {
    let per_batch = (rate * TICK.as_secs_f64()).ceil().max(1.0) as usize;
    crate::bench::load::sender_keys(per_batch.max(4))
}

/// A transfer of `sender`'s `nonce` on the devnet chain (1337).
fn transfer(sender: &DevKey, nonce: u64) -> alloy_primitives::Bytes {
    sender.sign_raw(TxEip1559 {
        chain_id: 1337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(Address::with_last_byte(0x99)),
        value: U256::from(1),
        ..Default::default()
    })
}

/// Tells the load to keep away from an operator (`Some(i)`) or not (`None`); the load answers
/// on the enclosed channel once no batch goes to that operator any more.
pub type Avoid = (Option<usize>, mpsc::Sender<()>);

pub fn send_load(
    rpc: Vec<String>,
    keys: Vec<DevKey>,
    rate: f64,
    stop: Arc<AtomicBool>,
    acked: mpsc::Sender<Ack>,
    avoid: mpsc::Receiver<Avoid>,
) {
    let mut avoided: Option<usize> = None;
    let mut clients: Vec<RpcClient> = rpc.iter().map(|a| RpcClient::with_timeout(a, Duration::from_secs(2))).collect();
    let mut nonces = vec![0u64; keys.len()];
    let mut owed = 0.0f64;
    let mut next_sender = 0usize;
    let mut target = 0usize;
    let mut next_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        for (which, done) in avoid.try_iter() {
            avoided = which;
            let _ = done.send(());
        }
        owed += rate * TICK.as_secs_f64();
        let n = (owed.floor() as usize).min(keys.len());
        owed -= n as f64;
        let batch: Vec<(usize, u64, alloy_primitives::Bytes)> = (0..n)
            .map(|k| {
                let s = (next_sender + k) % keys.len();
                (s, nonces[s], transfer(&keys[s], nonces[s]))
            })
            .collect();
        next_sender = (next_sender + n) % keys.len();
        if !batch.is_empty() {
            let body: Vec<Value> = batch
                .iter()
                .enumerate()
                .map(|(id, (_, _, raw))| json!({"jsonrpc": "2.0", "id": id, "method": "eth_sendRawTransaction", "params": [raw]}))
                .collect();
            let body = Value::Array(body).to_string();
            // The first operator (round robin) that answers takes the whole batch.
            for k in 0..clients.len() {
                let operator = (target + k) % rpc.len();
                if avoided == Some(operator) {
                    continue;
                }
                let c = &mut clients[operator];
                let Ok(text) = c.post(&body) else { continue };
                let Ok(Value::Array(answers)) = serde_json::from_str::<Value>(&text) else { continue };
                for a in answers {
                    let Some((s, nonce, raw)) = a["id"].as_u64().and_then(|id| batch.get(id as usize)) else {
                        continue;
                    };
                    let error = a["error"]["message"].as_str().unwrap_or_default();
                    // Accepted, or accepted before a crash whose reply was lost: ours all the same.
                    if a.get("result").is_some() || error.contains("already known") {
                        let _ = acked.send(Ack { sender: *s, nonce: *nonce, hash: keccak256(raw), operator });
                        nonces[*s] = nonce + 1;
                    } else if error.contains("nonce too low") {
                        // Taken in a batch whose reply was lost and committed since: not
                        // acknowledged (so not checked), but the sender moves on.
                        nonces[*s] = nonce + 1;
                    }
                }
                break;
            }
            target = (target + 1) % rpc.len();
        }
        next_tick += TICK;
        let now = Instant::now();
        if next_tick > now {
            std::thread::sleep(next_tick - now);
        } else {
            next_tick = now;
        }
    }
}
