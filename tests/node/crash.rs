//! SIGKILL a node under load, restart it, and check that storage is consistent: every tx that had
//! a receipt before the kill still has it, every acknowledged tx commits exactly once, and
//! balances and nonces agree with the receipts.

use crate::support::*;
use alloy_consensus::TxEip1559;
use alloy_primitives::{Address, TxKind, U256};
use bss_actors::hvm::accounts::{derive_accounts, DEV_MNEMONIC};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

fn recipient(sender: usize) -> Address {
    Address::with_last_byte(0x50 + sender as u8)
}

#[test]
fn sigkill_under_load_restarts_consistent() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut node = Node::start(dir.path(), "");
    let senders = derive_accounts(DEV_MNEMONIC, 4).expect("keys");
    // The load thread reports each acknowledged tx on a channel.
    let (report, acks) = mpsc::channel::<(usize, u64, String)>();
    let mut accepted: Vec<(usize, u64, String)> = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, senders, addr) = (stop.clone(), senders.clone(), node.addr);
        std::thread::spawn(move || {
            let mut nonces = [0u64; 4];
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let s = i % senders.len();
                i += 1;
                let raw = senders[s].sign_raw(TxEip1559 {
                    chain_id: CHAIN_ID,
                    nonce: nonces[s],
                    gas_limit: 21_000,
                    max_fee_per_gas: 20_000_000_000,
                    max_priority_fee_per_gas: 1,
                    to: TxKind::Call(recipient(s)),
                    value: U256::from(1),
                    ..Default::default()
                });
                let body = json!({"jsonrpc":"2.0","id":1,"method":"eth_sendRawTransaction","params":[raw]}).to_string();
                match http(addr, "POST", "/", &body) {
                    Ok((_, text)) if text.contains("\"result\"") => {
                        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
                        let hash = v["result"].as_str().expect("hash").to_string();
                        if report.send((s, nonces[s], hash)).is_err() {
                            return;
                        }
                        nonces[s] += 1;
                    }
                    Ok((status, text)) if !text.is_empty() => {
                        panic!("tx rejected under load: HTTP {status}: {text:?}")
                    }
                    _ => return, // the node was killed mid-request
                }
            }
        })
    };
    // Let the load build up, then take a snapshot of what is committed and kill at once.
    wait_until("200 accepted txs", Duration::from_secs(60), || {
        accepted.extend(acks.try_iter());
        (accepted.len() >= 200).then_some(())
    });
    let first = accepted[0].2.clone();
    node.wait_for_receipt(&first);
    accepted.extend(acks.try_iter());
    let snapshot: Vec<(usize, u64, String)> = accepted.clone();
    let mut committed_before = Vec::new();
    for (_, _, h) in &snapshot {
        let r = node.rpc("eth_getTransactionReceipt", json!([h]));
        if !r.is_null() {
            committed_before.push((h.clone(), r["blockHash"].clone()));
        }
    }
    assert!(!committed_before.is_empty(), "nothing committed before the kill");
    node.kill();
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");

    node.spawn();
    for (h, block_hash) in &committed_before {
        let r = node.rpc("eth_getTransactionReceipt", json!([h]));
        assert_eq!(&r["blockHash"], block_hash, "receipt of {h} changed or vanished after restart");
    }
    // Every acknowledged transaction was journaled before its ack: all of them commit, once.
    accepted.extend(acks.try_iter());
    let all = accepted;
    for (_, _, h) in &all {
        assert_eq!(node.wait_for_receipt(h)["status"], json!("0x1"), "{h}");
    }
    // Let a possibly accepted-but-unacknowledged in-flight tx settle too.
    wait_until("an empty mempool", Duration::from_secs(30), || {
        let info = node.rpc("bss_nodeInfo", json!([]));
        (info["mempool"]["pending"] == json!(0) && info["mempool"]["queued"] == json!(0)).then_some(())
    });
    for (s, key) in senders.iter().enumerate() {
        let sent = all.iter().filter(|(who, _, _)| *who == s).count() as u64;
        let nonce = hex_u64(&node.rpc("eth_getTransactionCount", json!([key.address, "latest"])));
        // The request in flight when the node died may have been accepted without its reply
        // reaching us: at most one more than acknowledged.
        assert!(nonce == sent || nonce == sent + 1, "sender {s}: committed nonce {nonce}, acknowledged {sent}");
        let balance = node.rpc("eth_getBalance", json!([recipient(s), "latest"]));
        assert_eq!(balance, json!(U256::from(nonce)), "recipient of sender {s}");
    }
    // And the node keeps going: a new tx on top of the recovered state commits.
    let next = hex_u64(&node.rpc("eth_getTransactionCount", json!([senders[0].address, "latest"])));
    let raw = senders[0].sign_raw(TxEip1559 {
        chain_id: CHAIN_ID,
        nonce: next,
        gas_limit: 21_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(recipient(0)),
        value: U256::from(1),
        ..Default::default()
    });
    let h = node.rpc("eth_sendRawTransaction", json!([raw]));
    assert_eq!(node.wait_for_receipt(h.as_str().expect("hash"))["status"], json!("0x1"));
}
