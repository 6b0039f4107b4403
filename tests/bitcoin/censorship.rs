//! Forced inclusion through Bitcoin, with real processes: all four operators censor account Y
//! (`--byzantine censor:Y`), so Y's tx sent over RPC never commits; posted with
//! `bss force-include` it must be executed first in the L2 block whose Bitcoin view gives the
//! reveal `forced_confirmations`, and a forced tx that is invalid by then is recorded as skipped.

use crate::support::*;
use crate::wallet::{Key, Kind};
use crate::Regtest;
use alloy_primitives::{Address, Bytes};
use bitcoincore_rpc::RpcApi;
use bss_actors::hvm::accounts::{derive_accounts, DevKey, DEV_MNEMONIC};

use serde_json::{json, Value};
use std::time::Duration;

const FORCED_CONFIRMATIONS: u64 = 6;

fn transfer(key: &DevKey, nonce: u64) -> Bytes {
    signed_transfer(key, nonce, Address::with_last_byte(0x55), 7)
}

/// Runs `bss --log-format json force-include` and returns what it printed.
fn force_include(btc: std::net::SocketAddr, raw: &Bytes) -> Value {
    force_include_all(btc, std::slice::from_ref(raw)).remove(0)
}

/// `bss force-include` with several `--raw`: chained postings, one JSON line each.
fn force_include_all(btc: std::net::SocketAddr, raws: &[Bytes]) -> Vec<Value> {
    let mut cmd = std::process::Command::new(BSS);
    cmd.args(["--log-format", "json", "force-include", "--btc-rpc"]).arg(format!("http://u:p@{btc}"));
    for raw in raws {
        cmd.args(["--raw", &raw.to_string()]);
    }
    let out = cmd
        .args(["--forced-confirmations", &FORCED_CONFIRMATIONS.to_string()])
        .output()
        .expect("run bss force-include");
    assert!(out.status.success(), "bss force-include failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("l2TxHash").is_some())
        .collect();
    assert_eq!(lines.len(), raws.len(), "one JSON line per posting: {stdout}");
    lines
}

/// A contract creation whose initcode loops until its gas runs out: with the whole block's gas
/// it burns 30M, and nothing else forced fits behind it in that L2 block.
fn burner(key: &DevKey, nonce: u64) -> Bytes {
    key.sign_raw(alloy_consensus::TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 30_000_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1,
        to: alloy_primitives::TxKind::Create,
        input: vec![0x5b, 0x60, 0x00, 0x56].into(), // JUMPDEST PUSH1 0 JUMP
        ..Default::default()
    })
}

#[test]
fn a_tx_every_operator_censors_is_forced_in_through_bitcoin() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(3, Kind::P2wpkh).address();
    c.generate_to_address(1, &miner).expect("mine");
    let y = derive_accounts(DEV_MNEMONIC, 3).expect("keys").remove(2);
    let mode = format!("censor:{}", y.address);
    let everyone: Vec<(usize, &str)> = (0..4).map(|i| (i, mode.as_str())).collect();
    let config = format!(
        "{}[censorship]\nforced_confirmations = {FORCED_CONFIRMATIONS}\n",
        crate::btc_section(btc.addr).replace("block_time", "base_timeout = \"500ms\"\nblock_time")
    );
    let fed = Federation::start_byzantine(dir.path(), 4, &config, "", |_, _, _| None, &everyone);
    let all = [0, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    assert_eq!(fed.nodes[0].rpc("bss_nodeInfo", json!([]))["forcedConfirmations"], json!(FORCED_CONFIRMATIONS));

    // Over RPC the tx is acknowledged everywhere and committed nowhere.
    let raw = transfer(&y, 0);
    let mut hash = Value::Null;
    for node in &fed.nodes {
        hash = node.rpc("eth_sendRawTransaction", json!([raw]));
    }
    let hash = hash.as_str().expect("hash").to_string();
    let sent_at = fed.nodes[0].block_number();
    fed.wait_all_at_least(&all, sent_at + 10, Duration::from_secs(60));
    assert_eq!(fed.nodes[0].rpc("eth_getTransactionReceipt", json!([hash])), Value::Null, "censored, yet committed");

    // Forced: one with a nonce that cannot be valid (skipped with the reason; its reveal is
    // mined with the blocks that fund the next posting), then the valid tx.
    let stale = transfer(&y, 5);
    let posted_bad = force_include(btc.addr, &stale);
    let posted = force_include(btc.addr, &raw);
    assert_eq!(posted["l2TxHash"], json!(hash));
    let start = c.get_block_count().expect("count");
    let mut blocks = 0;
    let receipt = loop {
        c.generate_to_address(1, &miner).expect("mine");
        blocks += 1;
        let best = c.get_block_count().expect("count");
        // Wait until every operator's chain has taken in the view up to best − lag (1).
        wait_until("the L2 view at the Bitcoin tip", Duration::from_secs(60), || {
            all.iter()
                .all(|i| fed.nodes[*i].rpc("bss_btcTip", json!([]))["height"].as_u64() >= Some(best - 1))
                .then_some(())
        });
        let r = fed.nodes[1].rpc("eth_getTransactionReceipt", json!([hash]));
        if !r.is_null() {
            break r;
        }
        if blocks == 1 {
            let pending = fed.nodes[2].rpc("bss_getForcedTx", json!([hash]));
            assert_eq!(pending["status"], json!("pending"), "{pending}");
            assert_eq!(pending["btcHeight"], json!(start + 1));
        }
        assert!(blocks <= FORCED_CONFIRMATIONS + 2, "not forced in after {blocks} Bitcoin blocks");
    };
    eprintln!("forced inclusion: {blocks} Bitcoin blocks from posting to the L2 receipt");
    assert_eq!(receipt["status"], json!("0x1"));
    let l2_block = hex_u64(&receipt["blockNumber"]);
    let block = fed.nodes[3].rpc("eth_getBlockByNumber", json!([format!("0x{l2_block:x}"), false]));
    assert_eq!(block["transactions"][0], json!(hash), "the forced tx runs first in its block");

    // Every operator reports both outcomes the same way.
    let stale_hash = posted_bad["l2TxHash"].as_str().expect("hash").to_string();
    for node in &fed.nodes {
        node.wait_for_block(l2_block);
        let f = node.rpc("bss_getForcedTx", json!([hash]));
        assert_eq!(f["status"], json!("included"), "{f}");
        assert_eq!(f["l2Block"], json!(l2_block));
        assert_eq!(f["btcTxid"], posted["revealTxid"]);
        let s = node.rpc("bss_getForcedTx", json!([stale_hash]));
        assert_eq!(s["status"], json!("skipped"), "{s}");
        assert!(s["reason"].as_str().is_some_and(|r| r.contains("nonce too high")), "{s}");
    }
    fed.assert_same_chain(&all, l2_block);

    // Issue 31, item 5: a 30M-gas loop and its victim forced in the same Bitcoin block. The
    // victim does not fit behind the loop; it is carried and runs first in the next L2 block
    // (it used to be skipped for good).
    let victim = transfer(&derive_accounts(DEV_MNEMONIC, 1).expect("keys")[0], 0);
    let posted = force_include_all(btc.addr, &[burner(&y, 1), victim.clone()]);
    assert_eq!(posted[0]["btcTip"], posted[1]["btcTip"], "both reveals wait for the same Bitcoin block");
    let victim_hash = posted[1]["l2TxHash"].as_str().expect("hash").to_string();
    let burner_hash = posted[0]["l2TxHash"].as_str().expect("hash").to_string();
    let mut mined = 0;
    let victim_receipt = loop {
        c.generate_to_address(1, &miner).expect("mine");
        mined += 1;
        let r = fed.nodes[1].rpc("eth_getTransactionReceipt", json!([victim_hash]));
        if !r.is_null() {
            break r;
        }
        assert!(mined <= FORCED_CONFIRMATIONS + 4, "the victim was not forced in after {mined} Bitcoin blocks");
        let best = c.get_block_count().expect("count");
        wait_until("the L2 view at the Bitcoin tip", Duration::from_secs(60), || {
            (fed.nodes[1].rpc("bss_btcTip", json!([]))["height"].as_u64() >= Some(best - 1)).then_some(())
        });
    };
    assert_eq!(victim_receipt["status"], json!("0x1"));
    let burnt = fed.nodes[1].wait_for_receipt(&burner_hash);
    assert_eq!(hex_u64(&burnt["gasUsed"]), 30_000_000, "{burnt}");
    assert_eq!(
        hex_u64(&victim_receipt["blockNumber"]),
        hex_u64(&burnt["blockNumber"]) + 1,
        "carried to the next block"
    );
    let victim_block = hex_u64(&victim_receipt["blockNumber"]);
    let b = fed.nodes[2].rpc("eth_getBlockByNumber", json!([format!("0x{victim_block:x}"), false]));
    assert_eq!(b["transactions"][0], json!(victim_hash), "the carried forced tx runs first");
    for node in &fed.nodes {
        node.wait_for_block(victim_block);
        assert_eq!(node.rpc("bss_getForcedTx", json!([victim_hash]))["status"], json!("included"));
    }
    fed.assert_same_chain(&all, victim_block);
    // An L2 tx never posted is unknown.
    assert_eq!(fed.nodes[0].rpc("bss_getForcedTx", json!([format!("0x{}", "11".repeat(32))])), Value::Null);
}
