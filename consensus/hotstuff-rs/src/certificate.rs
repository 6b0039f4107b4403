//! hotstuff-rs quorum certificates mapped into bss's stored [`Certificate`]: the phase
//! certificate that certifies the hotstuff-rs block carrying an L2 block, with what a verifier
//! needs to recompute that block's hash from the L2 block hash (see [`HotstuffRsQc`]).

use alloy_primitives::B256;
use borsh::BorshSerialize;
use bss_consensus::{Certificate, HotstuffRsQc, SigBytes};
use hotstuff_rs::block_tree::pluggables::KVGet;
use hotstuff_rs::hotstuff::types::PhaseCertificate;
use hotstuff_rs::types::data_types::CryptoHash;

/// The certificate of the hotstuff-rs block `hs` (which carries the L2 block `l2_hash`): the
/// justify of a child that points at it, or the tree's highest certificate.
pub fn certificate_for(kv: &impl KVGet, hs: &CryptoHash, chain_id: u64, l2_hash: &B256) -> Result<Certificate, String> {
    let height = kv.block_height(hs).map_err(|e| format!("{e:?}"))?.ok_or("block not in the tree")?;
    let justify = kv.block_justify(hs).map_err(|e| format!("{e:?}"))?;
    let mut qc = None;
    for child in kv.children(hs).map_err(|e| format!("{e:?}"))?.iter() {
        let j = kv.block_justify(child).map_err(|e| format!("{e:?}"))?;
        if j.block == *hs {
            qc = Some(j);
            break;
        }
    }
    if qc.is_none() {
        let highest = kv.highest_pc().map_err(|e| format!("{e:?}"))?;
        qc = Some(highest).filter(|h| h.block == *hs);
    }
    let qc = qc.ok_or("no quorum certificate for the block in the tree")?;
    Ok(Certificate {
        chain_id,
        round: qc.view.int(),
        block_hash: *l2_hash,
        signatures: vec![],
        hotstuff_rs: Some(mapped(height.int(), &justify, &qc)?),
    })
}

fn mapped(height: u64, justify: &PhaseCertificate, qc: &PhaseCertificate) -> Result<HotstuffRsQc, String> {
    let justify = justify.try_to_vec().map_err(|e| e.to_string())?;
    let phase = *qc.phase.try_to_vec().map_err(|e| e.to_string())?.first().ok_or("empty phase encoding")?;
    let signatures = qc.signatures.iter().map(|s| s.map(|s| SigBytes(s.bytes()))).collect();
    Ok(HotstuffRsQc { height, justify, phase, signatures })
}

#[cfg(test)]
mod tests {
    use super::*;
    use borsh::BorshDeserialize;
    use bss_consensus::{OperatorSet, OperatorSigner};
    use hotstuff_rs::hotstuff::types::Phase;
    use hotstuff_rs::types::block::Block as HsBlock;
    use hotstuff_rs::types::data_types::{BlockHeight, ChainID, ViewNumber};

    /// Borsh of a PhaseCertificate, written out by hand, so the test builds one with signatures
    /// (the library keeps its constructors crate-private).
    fn pc_bytes(chain_id: u64, view: u64, block: [u8; 32], phase: u8, sigs: &[Option<[u8; 64]>]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&chain_id.to_le_bytes());
        b.extend_from_slice(&view.to_le_bytes());
        b.extend_from_slice(&block);
        b.push(phase);
        b.extend_from_slice(&(sigs.len() as u32).to_le_bytes());
        for s in sigs {
            match s {
                None => b.push(0),
                Some(s) => {
                    b.push(1);
                    b.extend_from_slice(s);
                }
            }
        }
        b
    }

    #[test]
    fn a_mapped_hotstuff_rs_certificate_verifies_with_our_checker_and_only_for_its_block() {
        let signers: Vec<OperatorSigner> = (1..=4u8).map(|i| OperatorSigner::from_bytes([i; 32])).collect();
        let set = OperatorSet::new(signers.iter().map(|s| s.public()).collect());
        let (chain_id, view, height) = (31337u64, 12u64, 7u64);
        let l2_hash = B256::repeat_byte(0xab);
        let parent = PhaseCertificate::try_from_slice(&pc_bytes(chain_id, 11, [3; 32], 0, &[None; 4])).expect("pc");
        // The library's own block hash of (height, justify, data_hash = L2 hash).
        let hs = HsBlock::hash(BlockHeight::new(height), &parent, &CryptoHash::new(l2_hash.0));
        // What the library signs, encoded by the library.
        let msg = (ChainID::new(chain_id), ViewNumber::new(view), hs, Phase::Generic).try_to_vec().expect("borsh");
        assert_eq!(
            msg,
            HotstuffRsQc::vote_message(chain_id, view, &hs.bytes(), 0),
            "our vote encoding is the library's"
        );
        // Slots in ascending key order; three of four operators sign.
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by_key(|i| set.keys[*i].0);
        let sigs: Vec<Option<[u8; 64]>> = order.iter().map(|i| (*i != 2).then(|| signers[*i].sign(&msg))).collect();
        let qc = PhaseCertificate::try_from_slice(&pc_bytes(chain_id, view, hs.bytes(), 0, &sigs)).expect("qc");
        let cert = Certificate {
            chain_id,
            round: view,
            block_hash: l2_hash,
            signatures: vec![],
            hotstuff_rs: Some(mapped(height, &parent, &qc).expect("map")),
        };
        assert_eq!(cert.hotstuff_rs.as_ref().expect("qc").block_hash(&l2_hash), hs.bytes());
        cert.verify(&set, &l2_hash).expect("a real quorum verifies");
        // Another L2 block, another height or a dropped signature: refused.
        let other = B256::repeat_byte(0xac);
        let mut moved = cert.clone();
        moved.block_hash = other;
        assert!(moved.verify(&set, &other).is_err());
        let mut taller = cert.clone();
        if let Some(q) = taller.hotstuff_rs.as_mut() {
            q.height += 1;
        }
        assert!(taller.verify(&set, &l2_hash).is_err());
        let mut thin = cert.clone();
        if let Some(q) = thin.hotstuff_rs.as_mut() {
            let first = q.signatures.iter().position(Option::is_some).expect("a signature");
            q.signatures[first] = None;
        }
        assert!(matches!(thin.verify(&set, &l2_hash), Err(bss_consensus::CertificateError::NoQuorum { .. })));
    }
}
