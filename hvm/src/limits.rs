//! What this machine can do at most, to put a measured throughput in proportion: sender
//! recovery per second on one core (libsecp256k1, as the node uses) and raw revm transfers per
//! second in memory (no storage, no state root, no consensus).

use super::accounts::DevKey;
use super::execute::tx_env;
use super::tx::SignedTx;
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, TxKind, U256};
use revm::database::{CacheDB, EmptyDB};
use revm::state::AccountInfo;
use revm::{Context, ExecuteCommitEvm, MainBuilder, MainContext};
use std::time::Instant;

fn transfers(n: usize, senders: usize) -> Vec<SignedTx> {
    let keys: Vec<DevKey> = (0..senders as u64).map(|i| DevKey::from_seed(90_000 + i)).collect();
    (0..n)
        .map(|i| {
            let raw = keys[i % senders].sign_raw(TxEip1559 {
                chain_id: 1,
                nonce: (i / senders) as u64,
                gas_limit: 21_000,
                max_fee_per_gas: 2_000_000_000,
                max_priority_fee_per_gas: 1,
                to: TxKind::Call(Address::with_last_byte((i % 200) as u8 + 1)),
                value: U256::from(1),
                ..Default::default()
            });
            // Signed here, so this cannot fail.
            SignedTx::decode(&raw).unwrap_or_else(|e| unreachable!("{e}"))
        })
        .collect()
}

/// Decodes and recovers the sender of `n` signed transfers on this thread; per second.
pub fn sender_recovery_per_sec(n: usize) -> f64 {
    let raws: Vec<_> = transfers(n, 64).into_iter().map(|t| t.raw).collect();
    let started = Instant::now();
    let mut ok = 0usize;
    for raw in &raws {
        ok += usize::from(SignedTx::decode(raw).is_ok());
    }
    ok as f64 / started.elapsed().as_secs_f64()
}

/// Executes `n` transfers with raw revm over an in-memory database; per second.
pub fn raw_revm_transfers_per_sec(n: usize) -> f64 {
    let senders = 1_000.min(n.max(1));
    let txs = transfers(n, senders);
    let mut db = CacheDB::new(EmptyDB::default());
    for t in &txs {
        db.insert_account_info(t.sender, AccountInfo { balance: U256::from(10u128.pow(24)), ..Default::default() });
    }
    let mut cfg = revm::context::CfgEnv::new_with_spec(super::execute::SPEC);
    cfg.chain_id = 1;
    let block = revm::context::BlockEnv { basefee: 1_000_000_000, gas_limit: u64::MAX, ..Default::default() };
    let mut evm = Context::mainnet().with_db(&mut db).with_block(block).with_cfg(cfg).build_mainnet();
    let started = Instant::now();
    let mut ok = 0usize;
    for t in &txs {
        ok += usize::from(evm.transact_commit(tx_env(t, 1)).is_ok());
    }
    ok as f64 / started.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    #[test]
    fn probes_measure_something() {
        assert!(super::sender_recovery_per_sec(200) > 0.0);
        assert!(super::raw_revm_transfers_per_sec(200) > 0.0);
    }
}
