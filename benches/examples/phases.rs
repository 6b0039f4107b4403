//! Where execute-and-commit spends its time, phase by phase.
//! Run: `cargo run --release -p bss-benches --example phases`.
#![allow(clippy::unwrap_used)]
use bss_benches::{Chain, Kind};
use std::time::{Duration, Instant};

fn main() {
    for (name, kind) in [("eth", Kind::Eth), ("erc20", Kind::Erc20)] {
        let mut chain = Chain::new(1_000, kind, false);
        let (mut build, mut commit) = (Duration::ZERO, Duration::ZERO);
        let blocks = 30;
        let prepared: Vec<_> = (0..blocks).map(|_| chain.next_block()).collect();
        for txs in prepared {
            let t = Instant::now();
            let e = chain.build(txs);
            build += t.elapsed();
            let t = Instant::now();
            chain.commit(&e);
            commit += t.elapsed();
        }
        println!("{name}: build {:?}/block, commit {:?}/block", build / blocks, commit / blocks);
    }
}
