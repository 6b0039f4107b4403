//! The leader rule at the engine boundary: a proposal counts only from the leader that the
//! committed chain elects, not from the round-robin slot reputation skipped.

use super::*;
use crate::native::messages::{proposal_message, sign_vote};
use crate::BtcAttributes;

const CHAIN: u64 = 9;

fn signers() -> Vec<OperatorSigner> {
    (0..4).map(|i| OperatorSigner::from_bytes([i as u8 + 11; 32])).collect()
}

fn header(number: u64, round: u64, parent: B256, proposer: u16) -> BlockHeader {
    BlockHeader {
        chain_id: CHAIN,
        number,
        parent_hash: parent,
        round,
        proposer,
        timestamp_ms: number,
        transactions_root: B256::ZERO,
        receipts_root: B256::ZERO,
        state_root: B256::ZERO,
        gas_used: 0,
        gas_limit: 1,
        base_fee: 1,
        btc: BtcAttributes::default(),
        anchors: vec![],
        inclusion: vec![],
        forced: vec![],
        mints: vec![],
    }
}

fn qc(s: &[OperatorSigner], round: u64, hash: B256) -> Certificate {
    let signatures = (0..3u16).map(|i| (i, sign_vote(&s[i as usize], CHAIN, round, &hash))).collect();
    Certificate { chain_id: CHAIN, round, block_hash: hash, signatures, hotstuff_rs: None }
}

/// Replica `me`, committed at a block of round `round - 1`, with a history in which operator 2's
/// rounds failed.
fn replica(s: &[OperatorSigner], round: u64, me: usize) -> (NativeEngine, BlockHeader, Certificate) {
    let set = OperatorSet::new(s.iter().map(|k| k.public()).collect());
    let cfg = NativeConfig {
        chain_id: CHAIN,
        operators: set,
        genesis_hash: B256::repeat_byte(1),
        base_timeout: Duration::from_secs(1),
        max_timeout: Duration::from_secs(3),
        block_time: Duration::ZERO,
        reputation_window: 8,
    };
    let history: Vec<(u64, u16)> = (1..round).filter(|r| r % 4 != 2).map(|r| (r, (r % 4) as u16)).collect();
    let head = header(100, round - 1, B256::repeat_byte(2), ((round - 1) % 4) as u16);
    let head_qc = qc(s, round - 1, head.hash());
    let e =
        NativeEngine::new(cfg, s[me].clone(), head.clone(), head_qc.clone(), SafetyData::default(), vec![], history)
            .expect("in the set");
    (e, head, head_qc)
}

fn proposal(s: &[OperatorSigner], by: u16, round: u64, parent: &BlockHeader, justify: &Certificate) -> NativeMessage {
    let block = Block { header: header(parent.number + 1, round, parent.hash(), by), transactions: vec![] };
    let signature = SigBytes(s[by as usize].sign(&proposal_message(CHAIN, round, &block.hash())));
    NativeMessage::Proposal(Box::new(Proposal { block, justify: justify.clone(), tc: None, signature }))
}

fn validates(fx: &[Effect<NativeMessage>]) -> bool {
    fx.iter().any(|e| matches!(e, Effect::RequestValidation { .. }))
}

#[test]
fn an_operator_reputation_skipped_cannot_propose_from_its_round_robin_slot() {
    let s = signers();
    // A round whose round-robin slot is operator 2's, in an epoch that skips operator 2.
    let round = (48..200).find(|r| r % 4 == 2).expect("round");
    let (probe, _, _) = replica(&s, round, 3);
    // The replica judging is neither the racer nor the elected leader.
    let me = [0, 1, 3].into_iter().find(|i| *i != probe.leader(round) as usize).expect("a judge");
    let (mut e, head, head_qc) = replica(&s, round, me);
    assert!(e.reputation.excluded(round).contains(&2), "operator 2 is skipped");
    assert_eq!(e.reputation.base_leader(round), 2);
    let elected = e.leader(round);
    assert_ne!(elected, 2);
    e.handle(Input::Start);
    // Both proposals carry 2f+1 valid lists: only the leader rule tells them apart.
    let with_lists = |by: u16| {
        let mut p = proposal(&s, by, round, &head, &head_qc);
        if let NativeMessage::Proposal(p) = &mut p {
            p.block.header.inclusion =
                (0..3u16).map(|i| InclusionList::sign(&s[i as usize], i, CHAIN, &head.hash(), vec![])).collect();
            p.signature = SigBytes(s[by as usize].sign(&proposal_message(CHAIN, round, &p.block.hash())));
        }
        p
    };
    let racer = e.handle(Input::Message { from: 2, message: with_lists(2) });
    assert!(!validates(&racer), "a proposal from the skipped round-robin leader was taken");
    let taken = e.handle(Input::Message { from: elected, message: with_lists(elected) });
    assert!(validates(&taken), "the elected leader's proposal was not taken");
}

#[test]
fn a_normal_path_proposal_without_2f1_lists_is_refused() {
    let s = signers();
    let round = 41;
    let (probe, _, _) = replica(&s, round, 0);
    let leader = probe.leader(round);
    let (mut e, head, head_qc) = replica(&s, round, if leader == 0 { 1 } else { 0 });
    e.handle(Input::Start);
    let fx = e.handle(Input::Message { from: leader, message: proposal(&s, leader, round, &head, &head_qc) });
    assert!(!validates(&fx), "a proposal on a QC of the previous round with no lists was taken");
}

#[test]
fn a_connected_peer_is_asked_for_blocks_past_the_head_once_at_a_time() {
    let s = signers();
    let (mut e, head, _) = replica(&s, 41, 0);
    e.handle(Input::Start);
    let asks = |fx: &[Effect<NativeMessage>]| -> Vec<(u16, u64)> {
        fx.iter()
            .filter_map(|f| match f {
                Effect::RequestSync { peer, from_number } => Some((*peer, *from_number)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(asks(&e.handle(Input::PeerConnected { peer: 2 })), vec![(2, head.number + 1)]);
    // One request at a time: a second connection while it is out asks nothing.
    assert!(asks(&e.handle(Input::PeerConnected { peer: 3 })).is_empty());
    // The peer was not ahead: its empty answer frees the next request at once.
    e.handle(Input::Synced { from: 2, blocks: vec![], headers: vec![], proof: None, more: false });
    assert_eq!(asks(&e.handle(Input::PeerConnected { peer: 3 })), vec![(3, head.number + 1)]);
}
