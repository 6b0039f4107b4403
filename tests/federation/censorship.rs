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
    /// Entries of embedded lists that name one of the censored sender's txs.
    listed_x: usize,
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
    censored_sender_beside(deadline, censors, to, false)
}

/// An outsider's tx that is due for as long as it is held and too big for any list: 100 KiB of
/// calldata, a gas limit of the whole block and no tip, so it never fits behind another tx, sent
/// from a low address so that it sorts first among due txs. Kept due by `keep_poisoned`.
fn poison(key: &DevKey, nonce: u64) -> alloy_primitives::Bytes {
    key.sign_raw(alloy_consensus::TxEip1559 {
        chain_id: CHAIN_ID,
        nonce,
        gas_limit: 30_000_000,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 0,
        to: alloy_primitives::TxKind::Call(Address::with_last_byte(0x66)),
        input: vec![0x5a; 100 * 1024].into(),
        ..Default::default()
    })
}

/// Until `stop`: after every block, two small txs from `filler` (so that no block is empty and
/// the poison never fits) and, if the poison was included after all, its next nonce.
fn keep_poisoned(
    rpc: std::net::SocketAddr,
    filler: DevKey,
    low: DevKey,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let call = |method: &str, params: serde_json::Value| {
            let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
            http(rpc, "POST", "/", &body).ok().and_then(|(_, t)| serde_json::from_str::<serde_json::Value>(&t).ok())
        };
        let (mut filler_nonce, mut poison_nonce, mut included) = (1u64, 0u64, 0u64);
        call("eth_sendRawTransaction", json!([poison(&low, 0)]));
        let mut seen = 0u64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let at = wait_until("the next block", Duration::from_secs(30), || {
                let n = call("eth_blockNumber", json!([])).map(|v| hex_u64(&v["result"]))?;
                (n > seen).then_some(n)
            });
            seen = at;
            for _ in 0..2 {
                call(
                    "eth_sendRawTransaction",
                    json!([signed_transfer(&filler, filler_nonce, Address::with_last_byte(0x67), 1)]),
                );
                filler_nonce += 1;
            }
            let hash = alloy_primitives::keccak256(poison(&low, poison_nonce)).to_string();
            if call("eth_getTransactionReceipt", json!([hash])).is_some_and(|r| !r["result"].is_null()) {
                included += 1;
                poison_nonce += 1;
                call("eth_sendRawTransaction", json!([poison(&low, poison_nonce)]));
            }
        }
        included
    })
}

fn censored_sender_beside(deadline: u64, censors: &[usize], to: usize, poisoned: bool) -> Censored {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = derive_accounts(DEV_MNEMONIC, 3).expect("keys");
    let x = &keys[1];
    let mode = format!("censor:{}", x.address);
    let byzantine: Vec<(usize, &str)> = censors.iter().map(|c| (*c, mode.as_str())).collect();
    let fed = Federation::start_byzantine(dir.path(), 4, &consensus(deadline), "", |_, _, _| None, &byzantine);
    let all = [0, 1, 2, 3];
    fed.wait_all_at_least(&all, 2, Duration::from_secs(60));
    let info = fed.nodes[1].rpc("bss_nodeInfo", json!([]));
    assert_eq!(info["inclusionDeadline"], json!(deadline));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poisoner = poisoned.then(|| {
        // The lowest of a few thousand addresses, funded by the filler's first tx.
        let low = (0..4096u64).map(|i| DevKey::from_seed(0x10_0000 + i)).min_by_key(|k| k.address).expect("keys");
        let fund = signed_transfer(&keys[2], 0, low.address, 1_000_000_000_000_000_000);
        let h = fed.nodes[to].rpc("eth_sendRawTransaction", json!([fund]));
        fed.nodes[to].wait_for_receipt(h.as_str().expect("hash"));
        let handle = keep_poisoned(fed.nodes[to].addr, keys[2].clone(), low, stop.clone());
        // Let the poison fall due before the censored sender starts.
        let now = fed.nodes[to].block_number();
        fed.nodes[to].wait_for_block(now + deadline + 2);
        handle
    });

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
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let x_hashes: std::collections::HashSet<alloy_primitives::B256> =
        (0..20).map(|nonce| alloy_primitives::keccak256(transfer(x, nonce))).collect();
    let mut listed_x = 0;
    for n in first_block.unwrap_or(1)..=last {
        let cert = fed.nodes[to].rpc("bss_getCertificate", json!([n]));
        let raw = hex::decode(cert["header"].as_str().expect("header")).expect("hex");
        let header: bss_consensus::BlockHeader = bss_consensus::codec::decode(&raw).expect("header");
        listed_x += header
            .inclusion
            .iter()
            .flat_map(|l| &l.txs)
            .filter(|t| x_hashes.contains(&alloy_primitives::keccak256(t)))
            .count();
    }
    if let Some(handle) = poisoner {
        let included = handle.join().expect("poisoner");
        eprintln!("poison txs included in spite of the fillers: {included}");
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
    Censored { refused, with_lists, listed_x, max_delay: delays[delays.len() - 1] }
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
fn one_oversized_due_tx_does_not_empty_the_honest_lists() {
    // With a one-block deadline every tx of the censored sender is listed while it waits. Before
    // the fix, one due tx over the list's byte bound that sorted first dropped every tx after it
    // from every honest list, so the censor's blocks passed (issue 31, item 4).
    let run = censored_sender_beside(1, &[0], 2, true);
    assert!(run.listed_x > 0, "no honest list named a tx of the censored sender beside the oversized one");
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

#[test]
fn a_poisoned_inclusion_list_does_not_stop_honest_leaders() {
    // Operator 0 runs `list-txs:FILE`: its lists name X (a fresh sender with no ETH, nonce 0)
    // and Z (its own funded sender at nonce 1, paying X's sender), and it votes normally. W
    // (the same sender, nonce 0) reaches every mempool but no list. A builder that retries its
    // listed txs only once runs Z after W and leaves X out although X succeeds appended: every
    // honest leader's block is refused, for good (played on a devnet at 916cb2f).
    let dir = tempfile::tempdir().expect("tmp");
    let keys = derive_accounts(DEV_MNEMONIC, 4).expect("keys");
    let attacker = &keys[3];
    let fresh = DevKey::from_seed(0x5eed_0031);
    let x = signed_transfer(&fresh, 0, Address::with_last_byte(0x78), 1);
    let z = signed_transfer(attacker, 1, fresh.address, 1_000_000_000_000_000);
    let w = signed_transfer(attacker, 0, Address::with_last_byte(0x79), 1);
    let file = dir.path().join("poison.txt");
    std::fs::write(&file, format!("{x}\n{z}\n")).expect("list file");
    let mode = format!("list-txs:{}", file.display());
    let fed = Federation::start_byzantine(dir.path(), 4, &consensus(8), "", |_, _, _| None, &[(0, mode.as_str())]);
    let honest = [1, 2, 3];
    fed.wait_all_at_least(&[0, 1, 2, 3], 3, Duration::from_secs(60));
    for node in &fed.nodes {
        // Gossip may have brought it already.
        if let Err(e) = node.try_rpc("eth_sendRawTransaction", json!([w])) {
            assert!(e.message.contains("already known"), "W refused: {e:?}");
        }
    }
    let x_hash = alloy_primitives::keccak256(&x).to_string();
    let receipt = fed.nodes[1].wait_for_receipt(&x_hash);
    assert_eq!(receipt["status"], json!("0x1"), "X, funded only by the listed Z, commits");
    let start = fed.nodes[1].block_number();
    fed.wait_all_at_least(&honest, start + 15, Duration::from_secs(90));
    fed.assert_same_chain(&honest, start + 15);
    let refused: f64 =
        honest.iter().map(|i| metric(&fed.nodes[*i].metrics(), "bss_consensus_refused_proposals_total")).sum();
    eprintln!(
        "poisoned list: X committed in block {}; honest operators refused {refused} proposals",
        hex_u64(&receipt["blockNumber"])
    );
}
