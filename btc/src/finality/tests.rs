use super::*;
use crate::keystone::tests::{certify, signers};
use crate::pop_tx::PopWallet;
use crate::testkit::{mine_chain, mine_on, TestIndex};
use bitcoin::hashes::Hash;
use bitcoin::script::PushBytesBuf;
use bitcoin::{absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

fn keystone(n: u64, h: u8) -> Keystone {
    Keystone { chain_id: 7, epoch: 0, l2_number: n, btc_ref_height: 1, l2_hash: B256::repeat_byte(h) }
}

/// A version-2 keystone in an OP_RETURN (what databases written before version 3 hold).
fn v2_tx(n: u64) -> Transaction {
    let payload = [&b"BSS\x02"[..], &7u32.to_be_bytes(), &n.to_be_bytes(), &1u32.to_be_bytes(), &[0x66; 32]].concat();
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([n as u8; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::default(),
        }],
        output: vec![TxOut {
            value: Amount::ZERO,
            script_pubkey: ScriptBuf::new_op_return(PushBytesBuf::try_from(payload).expect("push")),
        }],
    }
}

fn v3_tx(c: &crate::keystone::CertifiedKeystone, seed: u8) -> Transaction {
    let w = PopWallet::new([seed; 32], bitcoin::Network::Regtest).expect("wallet");
    let coin = OutPoint::new(bitcoin::Txid::from_byte_array([seed; 32]), 1);
    w.keystone_tx(coin, 50_000, c, 1.0).expect("tx")
}

/// One Bitcoin block with a v2 keystone, a v3 keystone, the same v3 keystone from another poster,
/// a forged one (two signers), a conflicting certified one, and one of another chain. The index
/// judges them as it reads the block and again when it reopens, and the rules agree.
#[test]
fn the_index_judges_each_kind_once_and_alike_after_a_reopen() {
    let (s, set) = signers(4);
    let rules = KeystoneRules::new(7, set);
    let good = certify(keystone(5, 1), &s, &[0, 1, 2]);
    let short = certify(keystone(10, 9), &s, &[0, 1]);
    let fork = certify(keystone(5, 2), &s, &[1, 2, 3]);
    let mut other_chain = keystone(15, 1);
    other_chain.chain_id = 8;
    let foreign = certify(other_chain, &s, &[0, 1, 2]);
    let txs = vec![v2_tx(3), v3_tx(&good, 1), v3_tx(&good, 2), v3_tx(&short, 3), v3_tx(&fork, 4), v3_tx(&foreign, 5)];
    let chain = mine_chain(None, 2, 1);
    let block = mine_on(&chain[1], txs.clone(), 1);
    let mut t = TestIndex::new(0);
    t.writer = std::mem::replace(&mut t.writer, TestIndex::new(0).writer).with_keystone_rules(rules.clone());
    for b in chain.iter().chain([&block]) {
        t.connect(b);
    }
    let check = |view: &BtcIndex| {
        assert!(view.sightings().all(|s| s.certified.is_some()), "judged when indexed");
        let j = judge_all(view, &rules);
        assert_eq!(j.counted.len(), 1, "one keystone counts");
        assert_eq!(j.counted[0].keystone, good.keystone);
        assert_eq!(j.counted[0].sighting.txid, txs[1].compute_txid(), "the first in Bitcoin's order");
        assert_eq!(j.counted[0].signers, vec![0, 1, 2]);
        assert_eq!(j.evidence.len(), 1, "the conflicting certificate is evidence");
        assert_eq!(j.evidence[0].conflicting.sighting.txid, txs[4].compute_txid());
        let f = FinalityView::compute(view, &rules, 1, |_| None);
        assert_eq!(f.pins.get(&5), Some(&good.keystone.l2_hash), "the first counted one pins");
        assert_eq!(f.evidence.len(), 1);
    };
    check(&t.view());
    // The same judgement without precomputed verdicts (a view read without rules).
    let mut bare = TestIndex::new(0);
    for b in chain.iter().chain([&block]) {
        bare.connect(b);
    }
    assert!(bare.view().sightings().all(|s| s.certified.is_none()));
    let j = judge_all(&bare.view(), &rules);
    assert_eq!((j.counted.len(), j.evidence.len()), (1, 1));
    // A database holding these sightings (v2 among them) opens, and is judged alike.
    t.reopen();
    t.writer = std::mem::replace(&mut t.writer, TestIndex::new(0).writer).with_keystone_rules(rules.clone());
    check(&t.view());
    assert_eq!(t.view().sightings().count(), 6, "every kind is a sighting, v2 too");
    assert_eq!(rules.check(&t.view().sightings().next().expect("v2").payload), Err(Ignored::Version2));
    assert_eq!(rules.check(&short.encode()), Err(Ignored::BadCertificate));
    assert_eq!(rules.check(&foreign.encode()), Err(Ignored::Malformed));
    let mut later = good.keystone;
    later.epoch = 1;
    assert_eq!(rules.check(&certify(later, &s, &[0, 1, 2]).encode()), Err(Ignored::UnknownEpoch));
}
