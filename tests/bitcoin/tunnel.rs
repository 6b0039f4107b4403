//! The BTC tunnel with real processes on the embedded regtest (whose mempool checks every spend
//! with Bitcoin Core's verifier): a deposit built with the `bitcoin` crate mints hBTC on all
//! four operators at `deposit_confirmations`; payments without a valid OP_RETURN or below the
//! minimum stay unattributed; a withdrawal is paid by three of four custody keys while the
//! fourth operator is killed as the batch opens, exactly once, with `sats − fee` to the script.
//! The invariant (hBTC supply + burned-but-unpaid ≤ vault balance) is checked after every step.

use crate::support::*;
use crate::wallet::{Key, Kind};
use crate::{coinbase_at, pay, Regtest};
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, Bytes, TxKind, U256};
use bitcoin::{Amount, TxOut};
use bitcoincore_rpc::{Client, RpcApi};
use bss_actors::btc::deposit::deposit_output;
use bss_actors::btc::vault::{CustodyKey, Vault};
use bss_actors::hvm::accounts::{derive_accounts, DevKey, DEV_MNEMONIC};
use bss_actors::hvm::hbtc::{balance_of_calldata, withdraw_calldata, HBTC_ADDRESS};
use serde_json::{json, Value};
use std::time::Duration;

const CONFIRMATIONS: u64 = 3;
const MIN_WITHDRAWAL: u64 = 20_000;
const FEE: u64 = 2_000;

fn custody(i: usize) -> CustodyKey {
    CustodyKey::new([0x30 + i as u8; 32]).expect("custody key")
}

/// A federation of four with a tunnel: genesis lists the custody keys, each operator its own.
pub(crate) fn start(dir: &std::path::Path, btc: std::net::SocketAddr) -> (Federation, Vault) {
    let keys: Vec<String> = (0..4).map(|i| custody(i).public().to_string()).collect();
    std::fs::write(
        dir.join("genesis.toml"),
        format!(
            "[genesis]\nchain_id = {CHAIN_ID}\n[genesis.tunnel]\ncustody_keys = {keys:?}\n\
             deposit_confirmations = {CONFIRMATIONS}\nmin_withdrawal_sats = {MIN_WITHDRAWAL}\nwithdrawal_fee_sats = {FEE}\n"
        ),
    )
    .expect("genesis");
    // Operator i's custody secret is the byte 0x3i repeated ("{i}" is what the template fills).
    let config = format!("{}[tunnel]\ncustody_key = \"{}\"\n", crate::btc_section(btc), "3{i}".repeat(32));
    let fed = Federation::start(dir, 4, &config);
    let vault = Vault::new((0..4).map(|i| custody(i).public()).collect(), 3).expect("vault");
    (fed, vault)
}

/// Mines one block and waits until every running operator's L2 view reaches best − lag.
pub(crate) fn mine_and_follow(c: &Client, fed: &Federation, running: &[usize]) {
    let miner = Key::new(3, Kind::P2wpkh).address();
    c.generate_to_address(1, &miner).expect("mine");
    let best = c.get_block_count().expect("count");
    wait_until("the L2 view at the Bitcoin tip", Duration::from_secs(60), || {
        running
            .iter()
            .all(|i| fed.nodes[*i].rpc("bss_btcTip", json!([]))["height"].as_u64() >= Some(best - 1))
            .then_some(())
    });
}

fn hbtc_balance(node: &Node, who: Address) -> u64 {
    let out = node.rpc("eth_call", json!([{"to": HBTC_ADDRESS, "data": balance_of_calldata(&who)}, "latest"]));
    hex_u64(&out)
}

fn assert_invariant(node: &Node) -> Value {
    let info = node.rpc("bss_tunnelInfo", json!([]));
    let supply = info["hbtcSupply"].as_str().map(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex"));
    let supply = supply.unwrap_or_else(|| info["hbtcSupply"].as_u64().expect("supply"));
    let pending = info["pendingWithdrawalSats"].as_u64().expect("pending");
    let vault = info["vaultBalanceSats"].as_u64().expect("vault");
    assert!(supply + pending <= vault, "tunnel invariant broken: {info}");
    assert_eq!(info["invariantHolds"], json!(true), "{info}");
    info
}

fn withdraw(key: &DevKey, nonce: u64, script: &[u8], sats: u64) -> Bytes {
    key.sign_raw(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 300_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(HBTC_ADDRESS),
        value: U256::ZERO,
        input: withdraw_calldata(script, sats),
        ..Default::default()
    })
}

#[test]
fn deposits_mint_everywhere_and_three_of_four_pay_a_withdrawal_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(7, Kind::P2wpkh);
    c.generate_to_address(3, &miner.address()).expect("mine");
    c.generate_to_address(100, &Key::new(3, Kind::P2wpkh).address()).expect("mature");
    let (fed, vault) = start(dir.path(), btc.addr);
    let all = [0usize, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    let info = fed.nodes[0].rpc("bss_tunnelInfo", json!([]));
    assert_eq!(info["vaultAddress"], json!(vault.address(bitcoin::Network::Regtest).to_string()));
    assert_eq!((info["threshold"].clone(), info["operators"].clone()), (json!(3), json!(4)));

    // A deposit, a payment without OP_RETURN and one below the minimum, built with `bitcoin`.
    let alice = derive_accounts(DEV_MNEMONIC, 2).expect("keys").remove(1);
    let to_vault = |sats: u64| TxOut { value: Amount::from_sat(sats), script_pubkey: vault.script_pubkey() };
    let spend = |h: u64, outs: Vec<TxOut>| {
        let cb = coinbase_at(&c, h);
        let change = cb.1.value - outs.iter().map(|o| o.value).sum::<Amount>() - Amount::from_sat(3_000);
        let mut outs = outs;
        outs.push(pay(&miner, change));
        c.send_raw_transaction(&miner.spend1(&cb, outs)).expect("send")
    };
    let deposit = spend(1, vec![to_vault(150_000), deposit_output(CHAIN_ID as u32, &alice.address)]);
    let stray = spend(2, vec![to_vault(40_000)]);
    let small = spend(3, vec![to_vault(5_000), deposit_output(CHAIN_ID as u32, &alice.address)]);
    mine_and_follow(&c, &fed, &all);
    let seen = fed.nodes[1].rpc("bss_getDeposit", json!([deposit.to_string()]));
    assert_eq!(seen["status"], json!("seen"), "{seen}");
    let mut mined = 1;
    let minted_at = loop {
        let d = fed.nodes[2].rpc("bss_getDeposit", json!([deposit.to_string()]));
        if d["status"] == json!("minted") {
            break d["l2Block"].as_u64().expect("block");
        }
        assert!(mined <= CONFIRMATIONS + 2, "not minted after {mined} Bitcoin blocks: {d}");
        mine_and_follow(&c, &fed, &all);
        mined += 1;
    };
    for node in &fed.nodes {
        node.wait_for_block(minted_at);
        let d = node.rpc("bss_getDeposit", json!([deposit.to_string()]));
        assert_eq!(
            (d["status"].clone(), d["l2Block"].clone(), d["sats"].clone()),
            (json!("minted"), json!(minted_at), json!(150_000))
        );
        assert_eq!(d["recipient"], json!(alice.address));
        assert_eq!(hbtc_balance(node, alice.address), 150_000);
        let s = node.rpc("bss_getDeposit", json!([stray.to_string()]));
        assert_eq!(s["status"], json!("unattributed"), "{s}");
        assert!(s["reason"].as_str().is_some_and(|r| r.contains("no OP_RETURN")), "{s}");
        let m = node.rpc("bss_getDeposit", json!([small.to_string()]));
        assert_eq!(m["status"], json!("unattributed"), "{m}");
        let info = assert_invariant(node);
        assert_eq!(info["vaultBalanceSats"], json!(195_000));
    }
    fed.assert_same_chain(&all, minted_at);

    // Withdraw 30,000 sats to a P2WPKH script; kill operator 3 once the burn is committed.
    let payee = Key::new(11, Kind::P2wpkh).address().script_pubkey();
    let hash = fed.nodes[0].rpc("eth_sendRawTransaction", json!([withdraw(&alice, 0, payee.as_bytes(), 30_000)]));
    let receipt = fed.nodes[0].wait_for_receipt(hash.as_str().expect("hash"));
    assert_eq!(receipt["status"], json!("0x1"), "{receipt}");
    let mut fed = fed;
    fed.nodes[3].kill();
    let up = [0usize, 1, 2];
    let requested = wait_until("the tunnel to see the burn", Duration::from_secs(30), || {
        Some(fed.nodes[0].rpc("bss_getWithdrawal", json!([0]))).filter(|w| !w.is_null())
    });
    assert!(matches!(requested["status"].as_str(), Some("requested" | "signing" | "broadcast")), "{requested}");
    let mut blocks = 0;
    let paid = loop {
        mine_and_follow(&c, &fed, &up);
        blocks += 1;
        let w = fed.nodes[1].rpc("bss_getWithdrawal", json!([0]));
        if w["status"] == json!("paid") {
            break w;
        }
        assert!(blocks <= 8, "withdrawal not paid after {blocks} Bitcoin blocks: {w}");
    };
    let payout: bitcoin::Txid = paid["payoutTxid"].as_str().expect("txid").parse().expect("txid");
    let tx = c.get_raw_transaction(&payout, None).expect("payout tx");
    let to_payee: Vec<u64> = tx.output.iter().filter(|o| o.script_pubkey == payee).map(|o| o.value.to_sat()).collect();
    assert_eq!(to_payee, vec![30_000 - FEE], "the script receives exactly sats - withdrawal fee");
    for i in up {
        let info = assert_invariant(&fed.nodes[i]);
        assert_eq!(info["pendingWithdrawalSats"], json!(0));
    }

    // Operator 3 comes back, agrees, and nothing is paid twice.
    fed.nodes[3].spawn();
    mine_and_follow(&c, &fed, &all);
    wait_until("operator 3 to see the payout", Duration::from_secs(60), || {
        let w = fed.nodes[3].try_rpc("bss_getWithdrawal", json!([0])).ok()?;
        (w["status"] == json!("paid")).then_some(w)
    });
    assert_eq!(fed.nodes[3].rpc("bss_getWithdrawal", json!([0]))["payoutTxid"], paid["payoutTxid"]);
    for _ in 0..3 {
        mine_and_follow(&c, &fed, &all);
    }
    let best = c.get_block_count().expect("count");
    let mut payouts = 0;
    for h in 1..=best {
        let block = c.get_block(&c.get_block_hash(h).expect("hash")).expect("block");
        payouts += block.txdata.iter().flat_map(|t| &t.output).filter(|o| o.script_pubkey == payee).count();
    }
    assert_eq!(payouts, 1, "withdrawal 0 paid {payouts} times");
    assert_invariant(&fed.nodes[3]);
}
