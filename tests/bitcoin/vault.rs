//! The tunnel vault on the embedded regtest, whose mempool verifies every spend with Bitcoin
//! Core's own verifier (libbitcoinconsensus, taproot rules): 3 of 4 custody signatures move the
//! coins; 2, or a signature in another key's slot, do not.

use crate::wallet::{Key, Kind};
use crate::{coinbase_at, pay, Regtest};
use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use bitcoincore_rpc::RpcApi;
use bss_actors::btc::vault::{CustodyKey, Vault};

#[test]
fn three_of_four_custody_keys_move_vault_coins_and_two_cannot() {
    let dir = tempfile::tempdir().expect("tmp");
    let btc = Regtest::start_in(dir.path());
    let c = btc.client("u", "p");
    let miner = Key::new(7, Kind::P2wpkh);
    c.generate_to_address(101, &miner.address()).expect("mine");
    let custody: Vec<CustodyKey> = (1..=4u8).map(|i| CustodyKey::new([i * 17; 32]).expect("key")).collect();
    let vault = Vault::new(custody.iter().map(|k| k.public()).collect(), 3).expect("vault");

    // Fund the vault with 10 BTC.
    let cb = coinbase_at(&c, 1);
    let ten = Amount::from_btc(10.0).expect("amount");
    let change = cb.1.value - ten - Amount::from_sat(2_000);
    let locked = TxOut { value: ten, script_pubkey: vault.script_pubkey() };
    let fund = miner.spend1(&cb, vec![locked.clone(), pay(&miner, change)]);
    let fund_id = c.send_raw_transaction(&fund).expect("fund the vault");
    c.generate_to_address(1, &miner.address()).expect("mine");

    // A payout from the vault, signed by custody keys on their own.
    let mut payout = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(fund_id, 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::default(),
        }],
        output: vec![pay(&miner, ten - Amount::from_sat(3_000))],
    };
    let sighash = vault.sighash(&payout, 0, std::slice::from_ref(&locked)).expect("sighash");
    let sig = |i: usize| Some(custody[i].sign(&sighash));
    let attempt = |sigs: Vec<Option<[u8; 64]>>, tx: &mut Transaction| {
        tx.input[0].witness = vault.assemble(&sigs).expect("witness");
        c.send_raw_transaction(&*tx)
    };
    let refused = |r: Result<bitcoin::Txid, bitcoincore_rpc::Error>, what: &str| {
        let e = r.expect_err(what).to_string();
        assert!(e.contains("script"), "{what}: refused for another reason: {e}");
    };
    refused(attempt(vec![sig(0), None, None, sig(3)], &mut payout), "two of four moved vault coins");
    refused(attempt(vec![sig(0), sig(2), None, sig(3)], &mut payout), "a signature in another key's slot was accepted");
    assert!(vault.witness(&sighash, &[sig(0), None, None, sig(3)]).is_err(), "the builder refuses two");
    payout.input[0].witness = vault.witness(&sighash, &[sig(0), None, sig(2), sig(3)]).expect("three of four");
    let paid = c.send_raw_transaction(&payout).expect("three of four move the coins");
    c.generate_to_address(1, &miner.address()).expect("mine");
    let tx = c.get_raw_transaction_info(&paid, None).expect("payout");
    assert_eq!(tx.confirmations, Some(1));
}
