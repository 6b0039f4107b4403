//! The background load of a chaos run: transfers from the dev accounts at a fixed rate, each
//! through the first operator that answers; every acknowledged tx is reported.

use crate::bench::client::RpcClient;
use alloy_consensus::TxEip1559;
use alloy_primitives::{keccak256, Address, TxKind, U256};
use bss_actors::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// Sends transfers from the dev accounts at `rate`, through the first operator that answers;
/// reports each acknowledged tx.
pub fn send_load(rpc: Vec<String>, rate: f64, stop: Arc<AtomicBool>, acked: mpsc::Sender<(usize, u64, String)>) {
    let keys = match derive_accounts(DEV_MNEMONIC, 4) {
        Ok(k) => k,
        Err(_) => return,
    };
    let mut clients: Vec<RpcClient> = rpc.iter().map(|a| RpcClient::with_timeout(a, Duration::from_secs(2))).collect();
    let mut nonces = vec![0u64; keys.len()];
    let mut i = 0usize;
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.1));
    while !stop.load(Ordering::Relaxed) {
        let s = i % keys.len();
        let raw = keys[s].sign_raw(TxEip1559 {
            chain_id: 1337,
            nonce: nonces[s],
            gas_limit: 21_000,
            max_fee_per_gas: 100_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::with_last_byte(0x99)),
            value: U256::from(1),
            ..Default::default()
        });
        let hash = keccak256(&raw).to_string();
        for k in 0..clients.len() {
            let c = &mut clients[(i + k) % rpc.len()];
            match c.call("eth_sendRawTransaction", json!([raw])) {
                Ok(_) => {
                    let _ = acked.send((s, nonces[s], hash.clone()));
                    nonces[s] += 1;
                    break;
                }
                // Accepted before a crash whose reply we lost: it is ours all the same.
                Err(e) if e.contains("already known") => {
                    let _ = acked.send((s, nonces[s], hash.clone()));
                    nonces[s] += 1;
                    break;
                }
                Err(_) => continue,
            }
        }
        i += 1;
        std::thread::sleep(gap);
    }
}
