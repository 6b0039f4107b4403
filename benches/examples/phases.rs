//! Where execute-and-commit spends its time, phase by phase.
//! Run: `cargo run --release -p bss-benches --example phases`.
#![allow(clippy::unwrap_used)]
use bss_actors::hvm::execute::ProposalFields;
use bss_actors::hvm::{BlockBuilder, LayeredState};
use bss_benches::{Chain, Kind};
use bss_consensus::{BtcAttributes, Certificate};
use bss_storage::CommitBatch;
use std::time::{Duration, Instant};

fn main() {
    for (name, kind) in [("eth", Kind::Eth), ("erc20", Kind::Erc20)] {
        let mut chain = Chain::new(1_000, kind, false);
        let (mut build, mut commit) = (Duration::ZERO, Duration::ZERO);
        let blocks = 30;
        let prepared: Vec<_> = (0..blocks).map(|_| chain.next_block()).collect();
        for txs in prepared {
            let state = LayeredState { base: chain.reader.clone(), layers: vec![] };
            let fields = ProposalFields {
                round: chain.head.round + 1,
                proposer: 0,
                timestamp_ms: chain.head.timestamp_ms + 1_000,
                btc: BtcAttributes::default(),
            };
            let t = Instant::now();
            let e = BlockBuilder::new(&chain.spec, &state, &chain.head, &chain.acc).build(&fields, txs).unwrap();
            build += t.elapsed();
            let t = Instant::now();
            let cert = Certificate { chain_id: 1, round: fields.round, block_hash: e.block.hash(), signatures: vec![] };
            chain
                .storage
                .commit_blocking(CommitBatch {
                    proof: None,
                    block: e.block.clone(),
                    certificate: cert,
                    body: e.body.clone(),
                    receipts: e.receipts.clone(),
                    changes: e.changes.clone(),
                })
                .unwrap();
            commit += t.elapsed();
            chain.head = e.block.header.clone();
            chain.acc = e.accumulator.clone();
        }
        println!("{name}: build {:?}/block, commit {:?}/block", build / blocks, commit / blocks);
    }
}
