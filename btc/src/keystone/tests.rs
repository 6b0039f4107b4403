use super::*;
use bss_consensus::{OperatorKey, OperatorSigner};
use proptest::prelude::*;

fn keystone() -> Keystone {
    Keystone { chain_id: 1337, epoch: 0, l2_number: u64::MAX - 1, btc_ref_height: 101, l2_hash: B256::repeat_byte(7) }
}

pub(crate) fn signers(n: u8) -> (Vec<OperatorSigner>, OperatorSet) {
    let s: Vec<OperatorSigner> = (0..n).map(|i| OperatorSigner::from_bytes([i + 1; 32])).collect();
    let set = OperatorSet::new(s.iter().map(|k| k.public()).collect());
    (s, set)
}

/// A certificate of `who` over `k`.
pub(crate) fn certify(k: Keystone, signers: &[OperatorSigner], who: &[u16]) -> CertifiedKeystone {
    let statement = k.statement();
    CertifiedKeystone {
        keystone: k,
        signers: who.to_vec(),
        signatures: who.iter().map(|i| signers[usize::from(*i)].sign(&statement)).collect(),
    }
}

#[test]
fn statement_is_56_bytes_and_roundtrips() {
    let k = keystone();
    let b = k.statement();
    assert_eq!(&b[..4], b"BSS\x03");
    assert_eq!(Keystone::from_statement(&b), Ok(k));
    assert_eq!(Keystone::from_statement(&b[..55]), Err(KeystoneError::Length(55)));
    let mut wrong = b;
    wrong[0] = b'X';
    assert_eq!(Keystone::from_statement(&wrong), Err(KeystoneError::Magic));
    wrong = b;
    wrong[3] = 2;
    assert_eq!(Keystone::from_statement(&wrong), Err(KeystoneError::Version(2)));
    // A version-2 keystone is recognised as such (to be ignored), not decoded.
    let mut v2 = [0u8; 52];
    v2[..4].copy_from_slice(b"BSS\x02");
    assert_eq!(version_of(&v2), Some(2));
    assert_eq!(CertifiedKeystone::decode(&v2), Err(KeystoneError::Version(2)));
}

#[test]
fn a_quorum_verifies_and_a_short_or_foreign_one_does_not() {
    let (s, set) = signers(4);
    let k = keystone();
    let good = certify(k, &s, &[0, 2, 3]);
    assert_eq!(good.verify(&set), Ok(()));
    let enc = good.encode();
    assert_eq!(enc.len(), 56 + 1 + 1 + 3 * 64);
    assert_eq!(CertifiedKeystone::decode(&enc), Ok(good.clone()));
    let items = good.witness_items();
    assert!(items.iter().all(|i| i.len() <= MAX_WITNESS_ITEM));
    let refs: Vec<&[u8]> = items.iter().map(|i| i.as_slice()).collect();
    assert_eq!(CertifiedKeystone::from_witness_items(&refs), Ok(good.clone()));

    // One signature short.
    assert!(certify(k, &s, &[0, 2]).verify(&set).is_err());
    // A non-operator's signature in an operator's slot.
    let outsider = OperatorSigner::from_bytes([0x55; 32]);
    let mut forged = good.clone();
    forged.signatures[1] = outsider.sign(&k.statement());
    assert!(forged.verify(&set).is_err());
    // A signer the set does not have.
    let (s5, _) = signers(5);
    assert!(certify(k, &s5, &[0, 1, 4]).verify(&set).is_err());
    // A signature over another statement.
    let mut other = good.clone();
    other.keystone.l2_hash = B256::repeat_byte(8);
    assert!(other.verify(&set).is_err());
    // An empty set certifies nothing.
    assert!(good.verify(&OperatorSet::new(vec![])).is_err());
    // A set of ten: seven needed.
    let (s10, set10) = signers(10);
    let ten = certify(k, &s10, &[0, 1, 2, 3, 4, 8, 9]);
    assert_eq!(ten.verify(&set10), Ok(()));
    assert_eq!(CertifiedKeystone::decode(&ten.encode()), Ok(ten.clone()));
    assert!(certify(k, &s10, &[0, 1, 2, 3, 4, 9]).verify(&set10).is_err());
    let _ = OperatorKey([0; 32]);
}

#[test]
fn malformed_certificates_are_refused() {
    let (s, _) = signers(4);
    let good = certify(keystone(), &s, &[0, 1, 2]).encode();
    // Bitmap length 0, too long, or running past the end.
    for len in [0u8, 25, 250] {
        let mut b = good.clone();
        b[56] = len;
        assert!(CertifiedKeystone::decode(&b).is_err(), "bitmap length {len}");
    }
    // Fewer or more signatures than signers.
    assert!(CertifiedKeystone::decode(&good[..good.len() - 64]).is_err());
    assert!(CertifiedKeystone::decode(&[&good[..], &[0u8; 64]].concat()).is_err());
    assert!(CertifiedKeystone::decode(&good[..good.len() - 1]).is_err());
    // A trailing zero bitmap byte is not canonical.
    let mut wide = good[..57].to_vec();
    wide[56] = 2;
    wide.extend([0b111, 0]);
    wide.extend(&good[58..]);
    assert!(CertifiedKeystone::decode(&wide).is_err());
}

fn arb_keystone() -> impl Strategy<Value = Keystone> {
    (any::<u32>(), any::<u32>(), any::<u64>(), any::<u32>(), any::<[u8; 32]>()).prop_map(|(c, e, n, h, hash)| {
        Keystone { chain_id: c, epoch: e, l2_number: n, btc_ref_height: h, l2_hash: B256::from(hash) }
    })
}

proptest! {
    // `BSS_PROPTEST_CASES=100000 cargo nextest run -p bss-btc keystone` for the long run.
    #![proptest_config(ProptestConfig::with_cases(bss_consensus::proptest_cases(256)))]

    /// Any bytes decode to a certified keystone or an error, never a panic; what decodes
    /// re-encodes to the same bytes.
    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(k) = CertifiedKeystone::decode(&bytes) {
            prop_assert_eq!(k.encode(), bytes);
        }
    }

    /// Bytes that start like a keystone (the interesting part of the input space).
    #[test]
    fn keystone_prefixed_bytes(tail in proptest::collection::vec(any::<u8>(), 0..300), v in 0u8..5) {
        let bytes = [&b"BSS"[..], &[v], &tail].concat();
        if let Ok(k) = CertifiedKeystone::decode(&bytes) {
            prop_assert_eq!(k.encode(), bytes.clone());
        }
        let items: Vec<&[u8]> = bytes.chunks(64).collect();
        let _ = CertifiedKeystone::from_witness_items(&items);
    }

    #[test]
    fn roundtrip(k in arb_keystone(), signers in proptest::collection::btree_set(0u16..192, 1..12)) {
        let signers: Vec<u16> = signers.into_iter().collect();
        let c = CertifiedKeystone { keystone: k, signatures: signers.iter().map(|i| [*i as u8; 64]).collect(), signers };
        prop_assert_eq!(CertifiedKeystone::decode(&c.encode()), Ok(c.clone()));
        let items = c.witness_items();
        let refs: Vec<&[u8]> = items.iter().map(|i| i.as_slice()).collect();
        prop_assert_eq!(CertifiedKeystone::from_witness_items(&refs), Ok(c));
    }

    /// A valid certificate with one byte changed never panics, and never verifies unless the
    /// byte was left as it was.
    #[test]
    fn mutated_certificates_do_not_verify(i in 0usize..250, v in 1u8..=255) {
        let (s, set) = signers(4);
        let mut b = certify(keystone(), &s, &[0, 1, 3]).encode();
        let i = i % b.len();
        b[i] ^= v;
        if let Ok(c) = CertifiedKeystone::decode(&b) {
            prop_assert!(c.verify(&set).is_err());
        }
    }
}
