//! Where execute-and-commit spends its time, phase by phase.
//! Run: `cargo run --release -p bss-benches --example phases`.
//! `PHASES_BLOCKS=N` runs N blocks of each kind (30); `PHASES_PAUSE=1` prints READY once the
//! blocks are signed and waits 2 s, so a profiler can attach to the timed part alone
//! (`perf record --call-graph dwarf -p PID`).
#![allow(clippy::unwrap_used)]
use bss_benches::{Chain, Kind};
use std::time::{Duration, Instant};

fn main() {
    for (name, kind) in [("eth", Kind::Eth), ("erc20", Kind::Erc20)] {
        let mut chain = Chain::new(1_000, kind, false);
        let (mut build, mut commit) = (Duration::ZERO, Duration::ZERO);
        let blocks: u32 = std::env::var("PHASES_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
        let prepared: Vec<_> = (0..blocks).map(|_| chain.next_block()).collect();
        if std::env::var("PHASES_PAUSE").is_ok() {
            println!("READY");
            std::thread::sleep(Duration::from_secs(2));
        }
        for txs in prepared {
            let t = Instant::now();
            let e = chain.build(txs);
            build += t.elapsed();
            let t = Instant::now();
            chain.commit(&e);
            commit += t.elapsed();
        }
        let leaves = chain.leaf_cache.take_use();
        println!(
            "{name}: build {:?}/block, commit {:?}/block; state leaves: {} remembered, {} expanded",
            build / blocks,
            commit / blocks,
            leaves.remembered,
            leaves.expanded
        );
    }
}
