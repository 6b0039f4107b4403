//! hBTC on the hVM: genesis predeploys it, a block's mints credit deposits through system calls
//! (replicas refuse a block that skips, repeats or changes one), and `withdraw` burns and logs
//! a payout request only for standard output scripts above the minimum.

use super::call::{call, CallLimits, CallOutcome, CallRequest};
use super::execute::{BlockBuilder, ExecutedBlock, ExecutionError};
use super::execute_tests::{commit, fields, from_scratch, keys, node_with, tx, Node};
use super::hbtc::*;
use super::LayeredState;
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use bss_consensus::Mint;
use std::time::Duration;

const MIN_WITHDRAWAL: u64 = 20_000;

fn hbtc_node() -> Node {
    node_with(vec![hbtc_predeploy(MIN_WITHDRAWAL).expect("predeploy")])
}

fn mint(to: Address, sats: u64, txid: u8) -> Mint {
    Mint { btc_txid: B256::repeat_byte(txid), btc_height: 3, recipient: to, sats }
}

fn build_with(
    n: &Node,
    mints: Vec<Mint>,
    txs: Vec<std::sync::Arc<super::SignedTx>>,
) -> Result<ExecutedBlock, ExecutionError> {
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    let mut f = fields(n);
    f.mints = mints;
    BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).build(&f, txs)
}

fn validate_with(n: &Node, e: &ExecutedBlock, mints: &[Mint]) -> Result<ExecutedBlock, ExecutionError> {
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    let txs =
        e.block.transactions.iter().map(|r| std::sync::Arc::new(super::SignedTx::decode(r).expect("tx"))).collect();
    BlockBuilder::new(&n.spec, &state, &n.head, &n.acc).validate(&e.block, txs, mints, &[])
}

fn read(n: &Node, input: Bytes) -> U256 {
    let state = LayeredState { base: n.reader.clone(), layers: vec![] };
    let req = CallRequest { to: Some(HBTC_ADDRESS), input, ..Default::default() };
    match call(&n.spec, &state, &n.head, &req, None, CallLimits::new(1_000_000, Duration::from_secs(5))).expect("call")
    {
        CallOutcome::Success { output, .. } => decode_uint(&output).expect("uint"),
        other => panic!("{other:?}"),
    }
}

fn p2wpkh() -> Vec<u8> {
    let mut s = vec![0x00, 0x14];
    s.extend_from_slice(&[7u8; 20]);
    s
}

#[test]
fn deposits_mint_and_replicas_check_every_mint() {
    let mut n = hbtc_node();
    let alice = keys()[0].address;
    let due = vec![mint(alice, 50_000, 1), mint(keys()[1].address, 12_345, 2)];
    let built = build_with(&n, due.clone(), vec![]).expect("build");
    assert_eq!(built.block.header.mints, due);
    validate_with(&n, &built, &due).expect("a replica deriving the same mints agrees");
    // A proposal that skips a due mint, repeats one or gets one wrong: refused.
    let mut changed = due.clone();
    changed[0].sats += 1;
    for wrong in [vec![due[0].clone()], vec![due[0].clone(), due[1].clone(), due[1].clone()], changed] {
        let mut tampered = built.clone();
        tampered.block.header.mints = wrong;
        let e = validate_with(&n, &tampered, &due).expect_err("mismatched mints accepted");
        assert!(matches!(e, ExecutionError::Mismatch { field: "mints", .. }), "{e}");
    }
    // A replica whose view says nothing is due refuses the block that mints.
    let e = validate_with(&n, &built, &[]).expect_err("mints without deposits");
    assert!(matches!(e, ExecutionError::Mismatch { field: "mints", .. }), "{e}");
    commit(&mut n, &built);
    assert_eq!(read(&n, balance_of_calldata(&alice)), U256::from(50_000));
    assert_eq!(read(&n, getter_calldata("totalSupply()")), U256::from(62_345));
    assert_eq!(n.reader.storage(&HBTC_ADDRESS, &U256::from(TOTAL_SUPPLY_SLOT)).expect("slot"), U256::from(62_345));
    assert_eq!(n.head.state_root, from_scratch(&n.reader).root(), "genesis storage is in the state root");
    // A deposit due again (a shallow Bitcoin reorg brought its due height back) mints nothing:
    // the contract refuses it and the block leaves it out; a replica that does the same agrees.
    let again = build_with(&n, vec![mint(alice, 1, 1), mint(alice, 7, 3)], vec![]).expect("build");
    assert_eq!(again.block.header.mints, vec![mint(alice, 7, 3)]);
    validate_with(&n, &again, &[mint(alice, 1, 1), mint(alice, 7, 3)]).expect("replicas agree");
    commit(&mut n, &again);
    assert_eq!(read(&n, balance_of_calldata(&alice)), U256::from(50_007));
}

#[test]
fn withdraw_burns_and_logs_only_valid_requests_and_nobody_else_mints() {
    let mut n = hbtc_node();
    let k = &keys()[0];
    let built = build_with(&n, vec![mint(k.address, 100_000, 9)], vec![]).expect("build");
    commit(&mut n, &built);
    let to = TxKind::Call(HBTC_ADDRESS);
    let txs = vec![
        tx(k, 0, to, withdraw_calldata(&p2wpkh(), 30_000), 0),
        // Not a standard script, below the minimum, more than the balance: all revert.
        tx(k, 1, to, withdraw_calldata(&[0x6a, 0x01, 0x00], 30_000), 0),
        tx(k, 2, to, withdraw_calldata(&p2wpkh(), MIN_WITHDRAWAL - 1), 0),
        tx(k, 3, to, withdraw_calldata(&p2wpkh(), 1_000_000), 0),
        // An ordinary account calling mint: refused.
        tx(k, 4, to, mint_calldata(&mint(k.address, 5, 10)), 0),
    ];
    let block = build_with(&n, vec![], txs).expect("build");
    let ok: Vec<bool> = block.receipts.iter().map(|r| r.success).collect();
    assert_eq!(ok, vec![true, false, false, false, false]);
    let requests: Vec<WithdrawalRequest> =
        block.receipts[0].logs.iter().filter_map(|l| decode_withdrawal(&l.address, &l.topics, &l.data)).collect();
    assert_eq!(requests, vec![WithdrawalRequest { id: 0, from: k.address, script: p2wpkh(), sats: 30_000 }]);
    assert!(block.receipts[0].logs.iter().any(|l| l.topics[0] == transfer_topic() && l.topics[2] == B256::ZERO));
    commit(&mut n, &block);
    assert_eq!(read(&n, balance_of_calldata(&k.address)), U256::from(70_000));
    assert_eq!(read(&n, getter_calldata("totalSupply()")), U256::from(70_000));
    assert_eq!(read(&n, getter_calldata("withdrawalCount()")), U256::from(1));
}

/// The committed bytecode is what the committed source compiles to, whenever Vyper 0.4.3 is
/// installed (`scripts/setup.sh` installs it).
#[test]
fn committed_bytecode_matches_the_source() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts");
    let version = std::process::Command::new("vyper").arg("--version").output();
    let Ok(version) = version else {
        eprintln!("vyper is not installed: the bytecode comparison is skipped (scripts/setup.sh installs it)");
        return;
    };
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    assert!(version.starts_with(HBTC_COMPILER), "hbtc.bin was compiled by Vyper {HBTC_COMPILER}, this is {version}");
    let out = std::process::Command::new("vyper")
        .args(["-f", "bytecode"])
        .arg(dir.join("hbtc.vy"))
        .output()
        .expect("run vyper");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), HBTC_INIT_CODE_HEX.trim());
}
