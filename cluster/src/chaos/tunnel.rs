//! `bss chaos --tunnel`: BTC tunnel traffic under the faults. One deposit at the start (1 BTC to
//! a dedicated L2 key, paid on the embedded regtest), then a withdrawal every 3 s to a P2WPKH
//! script, sent to the next operator that answers. Every operator's tunnel invariant (hBTC
//! supply + burned-but-unpaid ≤ vault balance) is sampled throughout; after the heal every
//! withdrawal must be paid.

use crate::bench::client::{hex_u64, RpcClient};
use crate::btc_url::BtcUrl;
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, TxKind, U256};
use bitcoin::{Amount, TxOut};
use bitcoincore_rpc::RpcApi;
use bss_actors::btc::deposit::deposit_output;
use bss_actors::btc::forced_tx::ForcedPoster;
use bss_actors::hvm::accounts::DevKey;
use bss_actors::hvm::hbtc::{balance_of_calldata, withdraw_calldata, HBTC_ADDRESS};
use serde_json::json;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEPOSIT_SATS: u64 = 100_000_000;
const WITHDRAWAL_SATS: u64 = 25_000;
const EVERY: Duration = Duration::from_secs(3);

/// The L2 key that deposits and withdraws (funded with ETH in the genesis).
pub fn holder() -> DevKey {
    DevKey::from_seed(0x007a_11e1)
}

/// What the tunnel traffic of one run did.
#[derive(Debug, Default)]
pub struct TunnelTraffic {
    pub deposited: bool,
    pub withdrawals: u64,
    /// Samples in which an operator reported its invariant broken.
    pub violations: Vec<String>,
}

/// The first operator that answers `method`.
fn ask(clients: &mut [RpcClient], method: &str, params: serde_json::Value) -> Option<serde_json::Value> {
    clients.iter_mut().find_map(|c| c.call(method, params.clone()).ok())
}

fn deposit(clients: &mut [RpcClient], btc_url: &str, to: Address) -> eyre::Result<()> {
    let info = ask(clients, "bss_tunnelInfo", json!([])).ok_or_else(|| eyre::eyre!("no operator answers"))?;
    let client = BtcUrl::parse(btc_url)?.client()?;
    let vault = bitcoin::Address::from_str(info["vaultAddress"].as_str().unwrap_or_default())?
        .require_network(bitcoin::Network::Regtest)?;
    let payer = ForcedPoster::new([0x5a; 32], bitcoin::Network::Regtest).map_err(|e| eyre::eyre!("{e}"))?;
    let (coin, value) = crate::force_include::mine_coin(&client, &payer)?;
    let outs = vec![
        TxOut { value: Amount::from_sat(DEPOSIT_SATS), script_pubkey: vault.script_pubkey() },
        deposit_output(1337, &to),
    ];
    let tx = payer.pay(coin, value, outs, 2.0).map_err(|e| eyre::eyre!("{e}"))?;
    client.send_raw_transaction(&tx)?;
    Ok(())
}

fn withdraw(key: &DevKey, nonce: u64) -> alloy_primitives::Bytes {
    let mut script = vec![0x00, 0x14];
    script.extend_from_slice(&[0x77; 20]);
    key.sign_raw(TxEip1559 {
        chain_id: 1337,
        nonce,
        gas_limit: 300_000,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(HBTC_ADDRESS),
        value: U256::ZERO,
        input: withdraw_calldata(&script, WITHDRAWAL_SATS),
        ..Default::default()
    })
}

/// Samples every operator's invariant; records the ones that report it broken.
fn sample(clients: &mut [RpcClient], started: Instant, out: &mut TunnelTraffic) {
    for (i, c) in clients.iter_mut().enumerate() {
        if let Ok(info) = c.call("bss_tunnelInfo", json!([])) {
            if info["invariantHolds"] == json!(false) {
                out.violations.push(format!(
                    "{:.1}s operator {i}: tunnel invariant broken: {info}",
                    started.elapsed().as_secs_f64()
                ));
            }
        }
    }
}

/// Runs until `stop`: the deposit, then withdrawals every 3 s, sampling the invariant.
pub fn drive(rpc: Vec<String>, btc_url: String, stop: Arc<AtomicBool>) -> TunnelTraffic {
    let mut clients: Vec<RpcClient> = rpc.iter().map(|a| RpcClient::with_timeout(a, Duration::from_secs(2))).collect();
    let key = holder();
    let started = Instant::now();
    let mut out = TunnelTraffic::default();
    let mut next = Instant::now();
    let mut nonce: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        sample(&mut clients, started, &mut out);
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + EVERY;
        if !out.deposited {
            match deposit(&mut clients, &btc_url, key.address) {
                Ok(()) => out.deposited = true,
                Err(e) => println!("  tunnel: deposit not sent yet ({e})"),
            }
            continue;
        }
        let balance = ask(
            &mut clients,
            "eth_call",
            json!([{"to": HBTC_ADDRESS, "data": balance_of_calldata(&key.address)}, "latest"]),
        );
        if balance.as_ref().and_then(hex_u64).unwrap_or(0) < WITHDRAWAL_SATS {
            continue; // not minted yet
        }
        let n = match nonce {
            Some(n) => n,
            None => match ask(&mut clients, "eth_getTransactionCount", json!([key.address, "pending"]))
                .as_ref()
                .and_then(hex_u64)
            {
                Some(n) => n,
                None => continue,
            },
        };
        match ask(&mut clients, "eth_sendRawTransaction", json!([withdraw(&key, n)])) {
            Some(_) => {
                nonce = Some(n + 1);
                out.withdrawals += 1;
            }
            // Refused or nobody answered: ask the chain for the nonce next time.
            None => nonce = None,
        }
    }
    out
}

/// After the heal: every operator's invariant holds and every withdrawal the chain holds is paid
/// (within `deadline`). Returns what is wrong, if anything.
pub fn check_settled(rpc: &[String], deadline: Instant) -> Option<String> {
    let mut clients: Vec<RpcClient> = rpc.iter().map(|a| RpcClient::with_timeout(a, Duration::from_secs(2))).collect();
    loop {
        let infos: Vec<Option<serde_json::Value>> =
            clients.iter_mut().map(|c| c.call("bss_tunnelInfo", json!([])).ok()).collect();
        if let Some(bad) = infos.iter().flatten().find(|i| i["invariantHolds"] == json!(false)) {
            return Some(format!("tunnel invariant broken after the heal: {bad}"));
        }
        let settled = infos.iter().all(|i| i.as_ref().is_some_and(|i| i["pendingWithdrawalSats"] == json!(0)));
        if settled {
            return None;
        }
        if Instant::now() > deadline {
            let pending: Vec<_> =
                infos.iter().map(|i| i.as_ref().map(|i| i["pendingWithdrawalSats"].clone())).collect();
            return Some(format!("withdrawals still unpaid after the heal (pending sats per operator {pending:?})"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
