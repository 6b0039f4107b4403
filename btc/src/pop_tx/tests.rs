use super::*;
use crate::keystone::tests::{certify, signers};
use crate::keystone::Keystone;
use alloy_primitives::B256;

fn keystone() -> Keystone {
    Keystone { chain_id: 1337, epoch: 0, l2_number: 4_000, btc_ref_height: 101, l2_hash: B256::repeat_byte(7) }
}

fn input() -> OutPoint {
    OutPoint::new(bitcoin::Txid::all_zeros(), 0)
}

/// The measured sizes (README, Proof-of-Proof): 4, 7 and 10 operators post their quorum's
/// 3, 5 and 7 signatures.
#[test]
fn keystone_tx_sizes() {
    let w = PopWallet::new([3; 32], Network::Regtest).expect("wallet");
    let mut sizes = vec![];
    for (n, want) in [(4u8, 197), (7, 229), (10, 261)] {
        let (s, set) = signers(n);
        let who: Vec<u16> = (0..set.quorum() as u16).collect();
        let cert = certify(keystone(), &s, &who);
        let tx = w.keystone_tx(input(), 100_000, &cert, 1.0).expect("tx");
        sizes.push((n, tx.vsize()));
        assert_eq!(tx.vsize(), want, "{n} operators");
        assert_eq!(tx.output[0].value.to_sat(), 100_000 - want as u64);
        // Every witness item standard policy limits is at most 80 bytes.
        let items: Vec<&[u8]> = tx.input[0].witness.iter().collect();
        assert!(items[..items.len() - 2].iter().all(|i| i.len() <= 80));
        // What the index reads back is the certificate.
        let back = witness_keystone(&tx.input[0].witness).expect("a keystone leaf").expect("decodes");
        assert_eq!(back, cert);
    }
    eprintln!("keystone tx vsize by operators: {sizes:?}");
    assert!(w.keystone_tx(input(), 300, &certify(keystone(), &signers(4).0, &[0, 1, 2]), 1.0).is_err());
}

/// The script-path spend is valid under Bitcoin's consensus rules (libbitcoinconsensus is not
/// built with taproot here, so the signature is checked as the interpreter would: BIP-341/342).
#[test]
fn the_leaf_signature_verifies() {
    let w = PopWallet::new([5; 32], Network::Regtest).expect("wallet");
    let (s, _) = signers(4);
    let cert = certify(keystone(), &s, &[1, 2, 3]);
    let tx = w.keystone_tx(input(), 50_000, &cert, 2.0).expect("tx");
    let wit = &tx.input[0].witness;
    let leaf = wit.taproot_leaf_script().expect("script path").script;
    assert_eq!(leaf.as_bytes(), keystone_leaf(w.public_key()).as_bytes());
    let control = bitcoin::taproot::ControlBlock::decode(wit.taproot_control_block().expect("control")).expect("cb");
    let secp = Secp256k1::verification_only();
    let spk = w.script();
    let output_key = bitcoin::key::TweakedPublicKey::dangerous_assume_tweaked(
        XOnlyPublicKey::from_slice(&spk.as_bytes()[2..]).expect("key"),
    );
    assert!(control.verify_taproot_commitment(&secp, output_key.to_x_only_public_key(), leaf));
    let prevouts = [TxOut { value: Amount::from_sat(50_000), script_pubkey: spk }];
    let sighash = SighashCache::new(&tx)
        .taproot_script_spend_signature_hash(
            0,
            &Prevouts::All(&prevouts),
            bitcoin::TapLeafHash::from_script(leaf, LeafVersion::TapScript),
            TapSighashType::Default,
        )
        .expect("sighash");
    let sig = bitcoin::secp256k1::schnorr::Signature::from_slice(&wit.nth(0).expect("sig")[..64]).expect("sig");
    secp.verify_schnorr(&sig, &Message::from_digest(sighash.to_byte_array()), &w.public_key()).expect("valid");
}

/// Other witnesses are not keystones; a keystone leaf with junk data is an error, not a panic.
#[test]
fn other_witnesses_are_not_keystones() {
    let w = PopWallet::new([5; 32], Network::Regtest).expect("wallet");
    let (s, _) = signers(4);
    let tx = w.keystone_tx(input(), 50_000, &certify(keystone(), &s, &[0, 1, 2]), 2.0).expect("tx");
    let good = &tx.input[0].witness;
    assert!(witness_keystone(&Witness::p2tr_key_spend(
        &bitcoin::taproot::Signature::from_slice(&[1; 64]).expect("sig")
    ))
    .is_none());
    let items: Vec<Vec<u8>> = good.iter().map(|i| i.to_vec()).collect();
    // One item fewer: not our layout.
    let mut short = items.clone();
    short.remove(5);
    assert!(witness_keystone(&Witness::from_slice(&short)).is_none());
    // Junk in the statement item.
    let mut junk = items.clone();
    junk[1] = b"BSS\x03junk".to_vec();
    assert!(matches!(witness_keystone(&Witness::from_slice(&junk)), Some(Err(_))));
    // Another leaf script.
    let mut other = items;
    let n = other.len();
    other[n - 2] = vec![0x51];
    assert!(witness_keystone(&Witness::from_slice(&other)).is_none());
}
