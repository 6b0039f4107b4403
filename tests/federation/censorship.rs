//! Censorship resistance with real processes: a censoring operator (`--byzantine censor:ADDR`)
//! cannot hold a sender's txs past the inclusion deadline, and an operator that claims false
//! omissions (`--byzantine false-lists`) does not stop commits. Forced inclusion through
//! Bitcoin is in `tests/bitcoin/censorship.rs`.

use crate::support::*;
use alloy_primitives::Address;
use bss_actors::hvm::accounts::{derive_accounts, DevKey, DEV_MNEMONIC};
use serde_json::json;
use std::time::Duration;

fn consensus(deadline: u64) -> String {
    format!("block_time = \"100ms\"\nbase_timeout = \"500ms\"\nmax_timeout = \"3s\"\ninclusion_deadline = {deadline}")
}

fn transfer(key: &DevKey, nonce: u64) -> alloy_primitives::Bytes {
    signed_transfer(key, nonce, Address::with_last_byte(0x77), 1)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// What a run with one censoring operator showed.
struct Censored {
    /// Refused proposals counted by the honest operators.
    refused: f64,
    /// Blocks whose header embeds inclusion lists of 2f+1 operators.
    with_lists: u64,
    /// Worst delay, in blocks, from the committed height at sending to the including block.
    max_delay: u64,
}

/// Blocks a vote may be ahead of the committed head (2-chain: one certified, one being voted
/// on): a tx admitted at committed height h is listed by the vote for block h + deadline + 1 at
/// the latest, and so committed by h + deadline + 2.
const PIPELINE: u64 = 2;

/// Operators `censors` censor account X; 20 txs from X, sent to operator `to` one after
/// another, must each commit within `deadline` (+ the pipeline) blocks of the committed height
/// when sent.
fn censored_sender(deadline: u64, censors: &[usize], to: usize) -> Censored {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = derive_accounts(DEV_MNEMONIC, 2).expect("keys");
    let x = &keys[1];
    let mode = format!("censor:{}", x.address);
    let byzantine: Vec<(usize, &str)> = censors.iter().map(|c| (*c, mode.as_str())).collect();
    let fed = Federation::start_byzantine(dir.path(), 4, &consensus(deadline), "", |_, _, _| None, &byzantine);
    let all = [0, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    let info = fed.nodes[1].rpc("bss_nodeInfo", json!([]));
    assert_eq!(info["inclusionDeadline"], json!(deadline));

    // The censor acknowledges X's tx and forgets it: never gossiped, never proposed.
    let dropped = fed.nodes[censors[0]].rpc("eth_sendRawTransaction", json!([transfer(x, 0)]));
    let mut delays = Vec::new();
    let mut first_block = None;
    for nonce in 0..20 {
        // Vary the phase of each send against the leader rotation: after the last inclusion,
        // wait for 0, 1 or 2 more blocks.
        if let Some(prev) = delays.last().map(|_| fed.nodes[to].block_number()) {
            fed.nodes[to].wait_for_block(prev + nonce % 3);
        }
        let sent_at = fed.nodes[to].block_number();
        let raw = transfer(x, nonce);
        let hash = fed.nodes[to].rpc("eth_sendRawTransaction", json!([raw]));
        let receipt = fed.nodes[to].wait_for_receipt(hash.as_str().expect("hash"));
        let included = hex_u64(&receipt["blockNumber"]);
        first_block.get_or_insert(included);
        assert!(
            included <= sent_at + deadline + PIPELINE,
            "tx {nonce} of the censored sender sent at height {sent_at} committed only at {included}"
        );
        delays.push(included - sent_at);
    }
    // Nonce 0 went in once: the copy sent to the censor was the same tx.
    assert_eq!(fed.nodes[to].rpc("eth_getTransactionReceipt", json!([dropped]))["status"], json!("0x1"));
    let last = fed.nodes[to].block_number();
    fed.wait_all_at_least(&all, last, Duration::from_secs(30));
    fed.assert_same_chain(&all, last);
    // The censor led blocks in that stretch, and none of its blocks carries X's txs.
    let mut led_by_censor = 0;
    let mut with_lists = 0;
    let mut listed = 0;
    for n in first_block.unwrap_or(1)..=last {
        let cert = fed.nodes[to].rpc("bss_getCertificate", json!([n]));
        let raw = hex::decode(cert["header"].as_str().expect("header")).expect("hex");
        let header: bss_consensus::BlockHeader = bss_consensus::codec::decode(&raw).expect("header");
        let signers: std::collections::BTreeSet<u16> = header.inclusion.iter().map(|l| l.operator).collect();
        with_lists += u64::from(signers.len() >= 3);
        listed += header.inclusion.iter().map(|l| l.txs.len()).sum::<usize>();
        let b = fed.nodes[to].rpc("eth_getBlockByNumber", json!([format!("0x{n:x}"), true]));
        if censors.contains(&(hex_u64(&b["bssProposer"]) as usize)) {
            led_by_censor += 1;
            let from_x = b["transactions"]
                .as_array()
                .expect("txs")
                .iter()
                .any(|t| t["from"].as_str().is_some_and(|f| f.eq_ignore_ascii_case(&x.address.to_string())));
            assert!(!from_x, "block {n}, proposed by the censor, carries a tx from the censored sender");
        }
    }
    delays.sort_unstable();
    let refused: f64 = (0..4)
        .filter(|i| !censors.contains(i))
        .map(|i| metric(&fed.nodes[i].metrics(), "bss_consensus_refused_proposals_total"))
        .sum();
    eprintln!(
        "deadline {deadline}, censors {censors:?}: inclusion delay for the censored sender (blocks): p50 {} p99 {} max {}; \
         censor led {led_by_censor} of {} blocks; honest operators refused {refused} proposals; \
         {with_lists} blocks embed lists of 2f+1 operators, naming {listed} txs in all",
        percentile(&delays, 0.5),
        percentile(&delays, 0.99),
        delays[delays.len() - 1],
        last + 1 - first_block.unwrap_or(1)
    );
    Censored { refused, with_lists, max_delay: delays[delays.len() - 1] }
}

#[test]
fn a_censoring_operator_cannot_hold_a_sender_past_the_inclusion_deadline() {
    let run = censored_sender(8, &[0], 1);
    assert!(run.with_lists > 0, "no block embeds the voters' inclusion lists");
    assert!(run.max_delay <= 8, "a censored tx waited {} blocks", run.max_delay);
}

#[test]
fn two_censors_leading_back_to_back_get_their_omissions_refused() {
    // Operators 0 and 1 lead consecutive rounds. With a one-block deadline every pending tx is
    // listed at once: a tx that reaches the voters during operator 0's round is on the lists
    // operator 1's block must answer, and the honest operators refuse that block. Two censors
    // are more than f, but lists from any 2f+1 operators still include an honest one.
    let run = censored_sender(1, &[0, 1], 2);
    assert!(run.refused > 0.0, "the censor's omissions were never refused");
}

#[test]
fn an_operator_claiming_false_omissions_does_not_stop_commits() {
    let dir = tempfile::tempdir().expect("tmp");
    let fed = Federation::start_byzantine(dir.path(), 4, &consensus(8), "", |_, _, _| None, &[(3, "false-lists")]);
    let honest = [0, 1, 2];
    fed.wait_all_at_least(&honest, 2, Duration::from_secs(60));
    let keys = derive_accounts(DEV_MNEMONIC, 1).expect("keys");
    let mut hashes = Vec::new();
    for nonce in 0..10 {
        let h = fed.nodes[(nonce % 3) as usize].rpc("eth_sendRawTransaction", json!([transfer(&keys[0], nonce)]));
        hashes.push(h.as_str().expect("hash").to_string());
    }
    for h in &hashes {
        fed.nodes[0].wait_for_receipt(h);
    }
    let start = fed.nodes[0].block_number();
    fed.wait_all_at_least(&honest, start + 30, Duration::from_secs(90));
    fed.assert_same_chain(&honest, start + 30);
    // Its made-up txs are in blocks' embedded lists, never in blocks: they fail appended.
    let refused = metric(&fed.nodes[3].metrics(), "bss_consensus_refused_proposals_total");
    assert!(refused > 0.0, "the false-lists operator never refused a block");
    eprintln!("false-lists operator refused {refused} proposals; honest operators committed 30 blocks past it");
}
