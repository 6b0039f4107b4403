use super::logic::Submitter;
use super::*;
use crate::btc::source::SourceError;
use crate::btc::testkit::{mine_chain, mine_on};
use crate::btc::BitcoinSource;
use bitcoin::consensus::encode;
use bitcoin::{Amount, Block, BlockHash, Transaction, TxOut};
use std::sync::mpsc;

/// A Bitcoin node that accepts every broadcast and never mines it.
struct Blackhole(mpsc::Sender<Transaction>);

impl BitcoinSource for Blackhole {
    fn block_count(&self) -> Result<u64, SourceError> {
        Err(SourceError::Rpc("unused".into()))
    }
    fn block_hash(&self, _: u64) -> Result<BlockHash, SourceError> {
        Err(SourceError::Rpc("unused".into()))
    }
    fn block(&self, _: &BlockHash) -> Result<Block, SourceError> {
        Err(SourceError::Rpc("unused".into()))
    }
    fn send_raw(&self, hex_tx: &str) -> Result<String, SourceError> {
        let tx: Transaction = encode::deserialize(&hex::decode(hex_tx).unwrap_or_default())
            .map_err(|e| SourceError::Decode(e.to_string()))?;
        let _ = self.0.send(tx);
        Ok(String::new())
    }
    fn estimate_fee(&self, _: u16) -> Result<Option<f64>, SourceError> {
        Ok(None)
    }
}

fn cfg() -> SubmitterConfig {
    SubmitterConfig {
        keystones: crate::pop::finality::KeystoneRules::new(7, operators().1),
        me: 0,
        operators: 4,
        keystone_interval: 5,
        superfinality_confirmations: 3,
        stagger_blocks: 2,
        bump_after_blocks: 2,
        fee_floor: 2.0,
        fee_cap: 4.0,
    }
}

fn header(n: u64) -> bss_consensus::BlockHeader {
    bss_consensus::BlockHeader {
        chain_id: 7,
        number: n,
        parent_hash: alloy_primitives::B256::ZERO,
        round: n,
        proposer: 0,
        timestamp_ms: 0,
        transactions_root: alloy_primitives::B256::ZERO,
        receipts_root: alloy_primitives::B256::ZERO,
        state_root: alloy_primitives::B256::ZERO,
        gas_used: 0,
        gas_limit: 1,
        base_fee: 1,
        btc: Default::default(),
        anchors: vec![],
        inclusion: vec![],
        forced: vec![],
        mints: vec![],
    }
}

fn operators() -> (Vec<bss_consensus::OperatorSigner>, bss_consensus::OperatorSet) {
    let s: Vec<_> = (1..=4u8).map(|i| bss_consensus::OperatorSigner::from_bytes([i; 32])).collect();
    let set = bss_consensus::OperatorSet::new(s.iter().map(|k| k.public()).collect());
    (s, set)
}

/// Stores the certificate of operators 0, 1 and 2 for `header`, as the attestation service does.
fn certify(db: &bss_storage::Store, header: &bss_consensus::BlockHeader) {
    let k = crate::pop::Keystone::of(header, 0);
    let (signers, _) = operators();
    let cert = crate::pop::keystone::CertifiedKeystone {
        keystone: k,
        signers: vec![0, 1, 2],
        signatures: signers[..3].iter().map(|s| s.sign(&k.statement())).collect(),
    };
    let mut b = bss_storage::AuxBatch::new(true);
    b.put(bss_storage::AuxSpace::KeystoneCerts, header.number.to_be_bytes(), cert.encode());
    bss_storage::AuxWriter::Direct(db.clone()).write_blocking(b).expect("store the certificate");
}

fn wallet() -> PopWallet {
    PopWallet::new([9; 32], bitcoin::Network::Regtest).expect("wallet")
}

#[test]
fn unconfirmed_keystones_are_bumped_and_a_restart_never_spends_twice() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = bss_storage::Store::open(dir.path().join("db"), false).expect("store");
    let store = PopStore { writer: bss_storage::AuxWriter::Direct(db.clone()), reader: db.reader() };
    // A chain where the wallet owns two coins.
    let mut blocks = mine_chain(None, 3, 1);
    let mut funding = mine_on(&blocks[2], vec![], 1);
    funding.txdata[0].output = vec![TxOut { value: Amount::from_sat(50_000), script_pubkey: wallet().script() }; 2];
    blocks.push(funding);
    let mut index = crate::btc::testkit::TestIndex::of(&blocks);
    let (view, publish) = BtcView::fixed(index.view());
    let (sent, seen) = mpsc::channel();
    let certs = crate::pop::attest::CertStore { reader: db.reader() };
    let mut s =
        Submitter::open(cfg(), Some(wallet()), Blackhole(sent.clone()), view.clone(), store.clone(), certs.clone())
            .expect("open");
    s.on_header(&header(20)); // (20 / 5) % 4 == 0: operator 0 goes first
    s.tick().expect("tick");
    assert!(seen.try_recv().is_err(), "nothing to post before the federation certified it");
    certify(&db, &header(20));
    s.tick().expect("tick");
    let first = seen.try_recv().expect("submitted once certified");
    assert!(seen.try_recv().is_err(), "broadcast once");
    let carried = crate::pop::tx::witness_keystone(&first.input[0].witness).expect("a keystone leaf spend");
    assert_eq!(carried.expect("decodes").signers, vec![0, 1, 2], "the certificate rides in the witness");
    let input = first.input[0].previous_output;
    // Two Bitcoin blocks without it: replaced with a higher fee on the same coin.
    for _ in 0..2 {
        let next = mine_on(blocks.last().expect("tip"), vec![], 2);
        index.connect(&next);
        blocks.push(next);
    }
    publish.send_replace(std::sync::Arc::new(index.view()));
    s.tick().expect("tick");
    let bumped = seen.try_recv().expect("bumped");
    assert_eq!(bumped.input[0].previous_output, input, "RBF spends the same coin");
    assert!(bumped.output[0].value < first.output[0].value, "a higher fee");
    // A restart loads the pending tx: the keystone is not paid again from the other coin.
    drop(s);
    let mut again = Submitter::open(cfg(), Some(wallet()), Blackhole(sent), view, store, certs).expect("reopen");
    again.on_header(&header(20));
    again.last_best = Some(index.view().best_height().unwrap_or(0));
    again.tick().expect("tick");
    while let Ok(tx) = seen.try_recv() {
        assert_eq!(tx.input[0].previous_output, input, "after a restart, only the pending tx is rebroadcast");
    }
}
