//! Attacks anyone can play from outside the federation, against real processes:
//! - keystones posted with one operator's stolen keys (a version-2 keystone for a past number,
//!   a version-3 one certified by that operator alone for a future one) must not pin, halt or
//!   finalize anything;
//! - a Byzantine operator's forged, uncertified sync header must not halt a node;
//! - a restart while the Bitcoin view lags must not turn into a state-root mismatch.

use crate::pop::{finality, fund_operators, mine_until, pop_config, INTERVAL};
use crate::support::*;
use crate::wallet::{Key, Kind};
use crate::Regtest;
use alloy_consensus::TxEip1559;
use alloy_primitives::{Bytes, TxKind, B256, U256};
use bitcoin::{Amount, OutPoint, TxOut};
use bitcoincore_rpc::RpcApi;
use bss_actors::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use bss_actors::hvm::bytecode::deploy_initcode;
use bss_actors::network::wire::{encode, WireMessage};
use bss_actors::pop::keystone::{CertifiedKeystone, Keystone};
use bss_actors::pop::tx::PopWallet;
use std::time::Duration;

/// The attack that halted a devnet (2026-12-06): operator 1's keystone key, read from its data
/// directory, posts a version-2 keystone with a false hash for a past L2 number, paid from a coin
/// of that key (what version 2 counted). With its operator key stolen too, it posts a version-3
/// keystone for a future number certified by that one operator. Neither counts, nobody halts,
/// nothing becomes superfinal on them, and both attempts are counted by reason.
#[test]
fn one_operators_stolen_keys_cannot_pin_halt_or_finalize() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    // Funded before the federation starts (coinbases mature under fund_operators' blocks): a
    // key-path coin of operator 1's keystone key, and a PoP wallet coin of an outsider's key.
    let secret: [u8; 32] = [0x51; 32];
    let stolen = Key::from_secret(secret, Kind::P2tr);
    let v2_coin = coinbase_of(&c, &stolen.address());
    let carrier = PopWallet::new([0x99; 32], bitcoin::Network::Regtest).expect("wallet");
    let v3_coin = coinbase_of(&c, &carrier.address);
    fund_operators(dir.path(), &c);
    let from_disk = std::fs::read_to_string(dir.path().join("node1/pop.key")).expect("operator 1's pop.key");
    assert_eq!(from_disk.trim(), hex::encode(secret), "the key the test steals is operator 1's");

    let fed = Federation::start(dir.path(), 4, &pop_config(btc.addr));
    fed.wait_all_at_least(&[0, 1, 2, 3], 2 * INTERVAL + 2, Duration::from_secs(60));
    let head = fed.nodes[0].block_number();
    let (past, future) = (head - 1, head + 40 - head % INTERVAL);

    let v2 = [&b"BSS\x02"[..], &(CHAIN_ID as u32).to_be_bytes(), &past.to_be_bytes(), &1u32.to_be_bytes(), &[0x66; 32]]
        .concat();
    let change =
        TxOut { value: v2_coin.1.value - Amount::from_sat(2_000), script_pubkey: stolen.address().script_pubkey() };
    let v2_tx = stolen.spend1(&v2_coin, vec![crate::wallet::op_return(&v2), change]);
    let (signers, _) = federation_keys(4);
    let forged = Keystone {
        chain_id: CHAIN_ID as u32,
        epoch: 0,
        l2_number: future,
        btc_ref_height: 1,
        l2_hash: B256::repeat_byte(0x66),
    };
    let one_signer = CertifiedKeystone {
        keystone: forged,
        signers: vec![1],
        signatures: vec![signers[1].sign(&forged.statement())],
    };
    let v3_tx = carrier.keystone_tx(v3_coin.0, v3_coin.1.value.to_sat(), &one_signer, 2.0).expect("v3 tx");
    c.send_raw_transaction(&v2_tx).expect("post the v2 keystone");
    c.send_raw_transaction(&v3_tx).expect("post the v3 keystone");
    // Bury them deep enough that they would be superfinal if they counted.
    let burn = PopWallet::new([0x77; 32], bitcoin::Network::Regtest).expect("wallet").address;
    c.generate_to_address(8, &burn).expect("mine");
    wait_until("the forged keystones ignored", Duration::from_secs(30), || {
        let m = fed.nodes[0].metrics();
        (metric(&m, "bss_pop_keystones_ignored{reason=\"v2\"}") >= 1.0
            && metric(&m, "bss_pop_keystones_ignored{reason=\"bad_certificate\"}") >= 1.0)
            .then_some(())
    });

    // The federation commits past both numbers, and real keystones make them superfinal.
    let targets = [past, future];
    mine_until(&c, "the chain superfinal past the forged numbers", || {
        (0..4).all(|i| targets.iter().all(|n| finality(&fed.nodes[i], *n)["superfinal"] == true)).then_some(())
    });
    fed.assert_same_chain(&[0, 1, 2, 3], future + 1);
    let forged_txids = [v2_tx.compute_txid().to_string(), v3_tx.compute_txid().to_string()];
    for n in targets {
        let f = finality(&fed.nodes[1], n);
        assert!(f["keystone"]["l2Number"].as_u64().is_some_and(|k| k >= n), "{f}");
        assert!(!forged_txids.iter().any(|t| f["keystone"]["btcTxid"].as_str() == Some(t.as_str())), "{f}");
    }
    for i in 0..4 {
        assert_eq!(metric(&fed.nodes[i].metrics(), "bss_consensus_halted"), 0.0, "operator {i} halted");
    }
}

/// Keys of a quorum (operators 0, 1 and 2) stolen: they certify another hash for a keystone
/// number the honest federation already anchored. Both certificates verify, so the second is
/// evidence of a compromised supermajority: every operator records it (`bss_keystoneEvidence`,
/// `bss_pop_conflicting_certificates`) and stops loudly, as the fork guard does.
#[test]
fn conflicting_certificates_from_a_stolen_quorum_are_detected_and_stop_every_operator() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let carrier = PopWallet::new([0x99; 32], bitcoin::Network::Regtest).expect("wallet");
    let coin = coinbase_of(&c, &carrier.address);
    fund_operators(dir.path(), &c);
    let fed = Federation::start(dir.path(), 4, &pop_config(btc.addr));
    mine_until(&c, "the honest keystone of block 5 in Bitcoin", || {
        (0..4).all(|i| finality(&fed.nodes[i], INTERVAL)["keystone"]["l2Number"] == INTERVAL).then_some(())
    });
    let (signers, _) = federation_keys(4);
    let fork = Keystone {
        chain_id: CHAIN_ID as u32,
        epoch: 0,
        l2_number: INTERVAL,
        btc_ref_height: 1,
        l2_hash: B256::repeat_byte(0x66),
    };
    let cert = CertifiedKeystone {
        keystone: fork,
        signers: vec![0, 1, 2],
        signatures: signers[..3].iter().map(|s| s.sign(&fork.statement())).collect(),
    };
    let tx = carrier.keystone_tx(coin.0, coin.1.value.to_sat(), &cert, 2.0).expect("tx");
    c.send_raw_transaction(&tx).expect("post the conflicting keystone");
    let burn = PopWallet::new([0x77; 32], bitcoin::Network::Regtest).expect("wallet").address;
    c.generate_to_address(1, &burn).expect("mine");
    wait_until("every operator holds the evidence and stopped", Duration::from_secs(60), || {
        (0..4)
            .all(|i| {
                let e = fed.nodes[i].rpc("bss_keystoneEvidence", serde_json::json!([]));
                let m = fed.nodes[i].metrics();
                e.as_array().is_some_and(|a| a.len() == 1)
                    && e[0]["conflicting"]["btcTxid"] == tx.compute_txid().to_string()
                    && metric(&m, "bss_pop_conflicting_certificates") == 1.0
                    && metric(&m, "bss_consensus_halted") == 1.0
            })
            .then_some(())
    });
    // The first certificate in Bitcoin's order still counts: block 5 keeps its honest hash.
    let honest = fed.nodes[0].rpc("eth_getBlockByNumber", serde_json::json!([format!("{INTERVAL:#x}"), false]));
    assert_eq!(finality(&fed.nodes[0], INTERVAL)["keystone"]["l2Hash"], honest["hash"]);
}

/// Mines one block to `addr` and returns its coinbase output (mature after 100 more blocks).
fn coinbase_of(c: &bitcoincore_rpc::Client, addr: &bitcoin::Address) -> (OutPoint, TxOut) {
    let hash = c.generate_to_address(1, addr).expect("mine")[0];
    let cb = c.get_block(&hash).expect("block").txdata[0].clone();
    (OutPoint::new(cb.compute_txid(), 0), cb.output[0].clone())
}

/// A Byzantine operator (a genuine key, over a genuine Noise link) sends a sync answer whose
/// uncertified header conflicts with a superfinal keystone. The fork guard judges synced blocks
/// only after their certificates check out, so the node ignores it instead of halting.
#[test]
fn a_forged_sync_header_does_not_halt_the_node() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    fund_operators(dir.path(), &c);
    let fed = Federation::start(dir.path(), 4, &pop_config(btc.addr));
    let pinned = 2 * INTERVAL;
    mine_until(&c, "a superfinal keystone on operator 3", || {
        (finality(&fed.nodes[3], pinned)["superfinal"] == true).then_some(())
    });
    let served = fed.nodes[3].rpc("bss_getCertificate", serde_json::json!([pinned]));
    let bytes = hex::decode(served["header"].as_str().expect("header")).expect("hex");
    let mut header: bss_consensus::BlockHeader = bss_consensus::codec::decode(&bytes).expect("header");
    header.state_root = B256::repeat_byte(0x13);

    let forged = WireMessage::SyncResponse { blocks: vec![], headers: vec![header], proof: None, more: false };
    send_as_operator(p2p_addr(dir.path(), 3), 0, 3, &[encode(&forged).expect("encode")], Duration::from_secs(2));
    let h = fed.nodes[3].block_number();
    fed.wait_all_at_least(&[0, 1, 2, 3], h + 10, Duration::from_secs(60));
    let m = fed.nodes[3].metrics();
    assert_eq!(metric(&m, "bss_consensus_halted"), 0.0, "a forged, uncertified header halted the node");
    assert_eq!(metric(&m, "bss_fork_guard_refusals_total"), 0.0);
}

/// A contract that stores keccak256(btcLastHeader()) in slot 0: its state depends on the
/// Bitcoin view of the block that runs it.
const VIEW_RECORDER: [u8; 20] = [
    0x5f, 0x5f, 0x5f, 0x5f, 0x60, 0x44, 0x5a, 0xfa, 0x50, // STATICCALL(gas, 0x44, 0, 0, 0, 0)
    0x3d, 0x5f, 0x5f, 0x3e, // RETURNDATACOPY(0, 0, RETURNDATASIZE)
    0x3d, 0x5f, 0x20, // KECCAK256(0, RETURNDATASIZE)
    0x5f, 0x55, 0x00, 0x00, // SSTORE(0, hash) STOP
];

/// A dev account's EIP-1559 tx with room for the view recorder's calls.
fn sign_call(dev: &bss_actors::hvm::accounts::DevKey, nonce: u64, to: TxKind, input: Bytes) -> Bytes {
    dev.sign_raw(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 200_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000,
        to,
        value: U256::ZERO,
        input,
        ..Default::default()
    })
}

/// Operator 3 restarts while its Bitcoin node is down: the certified blocks it syncs read a
/// Bitcoin view it does not have yet. It waits for the view (counted) instead of executing
/// against a lagging one and dying on a state-root mismatch, then catches up.
#[test]
fn a_restart_while_the_bitcoin_view_lags_waits_then_catches_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let (btc_dir, port) = (dir.path().join("btc"), btc.addr.port());
    let c = btc.client("u", "p");
    let burn = PopWallet::new([0x77; 32], bitcoin::Network::Regtest).expect("wallet").address;
    c.generate_to_address(5, &burn).expect("mine");
    let section = crate::btc_section(btc.addr);
    let mut fed = Federation::start(dir.path(), 4, &section);
    let dev = derive_accounts(DEV_MNEMONIC, 1).expect("keys").remove(0);
    let sign = |nonce: u64, to: TxKind, input: Bytes| sign_call(&dev, nonce, to, input);
    let hash = fed.nodes[0]
        .rpc("eth_sendRawTransaction", serde_json::json!([sign(0, TxKind::Create, deploy_initcode(&VIEW_RECORDER))]));
    let receipt = fed.nodes[0].wait_for_receipt(hash.as_str().expect("hash"));
    let recorder: alloy_primitives::Address =
        receipt["contractAddress"].as_str().expect("address").parse().expect("addr");

    // Operator 3 goes down; the others record the Bitcoin view in state as Bitcoin moves.
    fed.nodes[3].kill();
    for nonce in 1..=6 {
        c.generate_to_address(1, &burn).expect("mine");
        let tip = c.get_block_count().expect("count") - 1; // confirmations_lag 1
        wait_until("the chain's view at the new tip", Duration::from_secs(30), || {
            (fed.nodes[0].rpc("bss_btcTip", serde_json::json!([]))["height"] == tip).then_some(())
        });
        let h = fed.nodes[0]
            .rpc("eth_sendRawTransaction", serde_json::json!([sign(nonce, TxKind::Call(recorder), Bytes::new())]));
        let r = fed.nodes[0].wait_for_receipt(h.as_str().expect("hash"));
        assert_eq!(r["status"], "0x1");
    }
    let target = fed.nodes[0].block_number();

    // Bitcoin goes down; operator 3 comes back with an empty view and syncs certified blocks.
    drop(c);
    drop(btc);
    fed.nodes[3].spawn();
    wait_until("operator 3 waiting for its Bitcoin view", Duration::from_secs(60), || {
        (metric(&fed.nodes[3].metrics(), "bss_executor_btc_view_waits_total") >= 1.0).then_some(())
    });
    // Bitcoin comes back: operator 3's watcher catches up, and so does operator 3.
    let _btc = Regtest::start(&btc_dir, port);
    fed.wait_all_at_least(&[0, 1, 2, 3], target + 5, Duration::from_secs(90));
    fed.assert_same_chain(&[0, 1, 2, 3], target);
    let slot = |i: usize| fed.nodes[i].rpc("eth_getStorageAt", serde_json::json!([recorder, "0x0", "latest"]));
    assert_eq!(slot(3), slot(0), "operator 3 recorded another Bitcoin view");
}

/// A Bitcoin reorg two blocks deeper than the lag (1) orphans the Bitcoin tips of certified L2
/// blocks that operator 3, down meanwhile, has not executed; each recorded the Bitcoin view in
/// state. The others restart the view from the fork point and go on. Back up, operator 3 (whose
/// watcher never saw the orphaned blocks) fetches them by hash from bitcoind, executes those
/// blocks against the fork they saw (the same state roots), and follows the chain.
#[test]
fn a_reorg_deeper_than_the_lag_under_certified_blocks_strands_no_replica() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let burn = PopWallet::new([0x77; 32], bitcoin::Network::Regtest).expect("wallet").address;
    let other = PopWallet::new([0x78; 32], bitcoin::Network::Regtest).expect("wallet").address;
    c.generate_to_address(5, &burn).expect("mine");
    let mut fed = Federation::start(dir.path(), 4, &crate::btc_section(btc.addr));
    let dev = derive_accounts(DEV_MNEMONIC, 1).expect("keys").remove(0);
    let sign = |nonce: u64, to: TxKind, input: Bytes| sign_call(&dev, nonce, to, input);
    let send = |node: &Node, nonce: u64, to: TxKind, input: Bytes| {
        let h = node.rpc("eth_sendRawTransaction", serde_json::json!([sign(nonce, to, input)]));
        node.wait_for_receipt(h.as_str().expect("hash"))
    };
    let receipt = send(&fed.nodes[0], 0, TxKind::Create, deploy_initcode(&VIEW_RECORDER));
    let recorder: alloy_primitives::Address =
        receipt["contractAddress"].as_str().expect("address").parse().expect("addr");
    let view_at = |node: &Node, tip: u64| {
        let want = serde_json::json!(c.get_block_hash(tip).expect("hash").to_string());
        wait_until("the chain's view at the tip", Duration::from_secs(30), || {
            let v = node.rpc("bss_btcTip", serde_json::json!([]));
            (v["height"] == tip && v["hash"] == want).then_some(())
        });
    };

    // Operator 3 goes down; three Bitcoin blocks, each recorded by a committed L2 block.
    fed.nodes[3].kill();
    let base = c.get_block_count().expect("count");
    for nonce in 1..=3 {
        c.generate_to_address(1, &burn).expect("mine");
        view_at(&fed.nodes[0], c.get_block_count().expect("count") - 1);
        assert_eq!(send(&fed.nodes[0], nonce, TxKind::Call(recorder), Bytes::new())["status"], "0x1");
    }
    // The reorg: blocks base+1 ..= base+3 leave the best chain (3 deep, the lag is 1), a longer
    // branch replaces them. The L2 goes on from the fork point.
    c.invalidate_block(&c.get_block_hash(base + 1).expect("hash")).expect("invalidate");
    c.generate_to_address(5, &other).expect("mine the other branch");
    view_at(&fed.nodes[0], c.get_block_count().expect("count") - 1);
    assert_eq!(send(&fed.nodes[0], 4, TxKind::Call(recorder), Bytes::new())["status"], "0x1");
    let target = fed.nodes[0].block_number();

    // Operator 3 comes back and executes the blocks whose Bitcoin tips are orphaned.
    fed.nodes[3].spawn();
    fed.wait_all_at_least(&[0, 1, 2, 3], target, Duration::from_secs(90));
    fed.assert_same_chain(&[0, 1, 2, 3], target);
    let fetched = metric(&fed.nodes[3].metrics(), "bss_btc_stale_blocks_fetched_total");
    assert!(fetched >= 1.0, "operator 3 fetched no orphaned block by hash ({fetched})");
    let slot = |i: usize| fed.nodes[i].rpc("eth_getStorageAt", serde_json::json!([recorder, "0x0", "latest"]));
    assert_eq!(slot(3), slot(0));
}
