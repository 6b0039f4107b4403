//! Execute-and-commit throughput through the real executor and fjall, next to raw revm in memory
//! on the same transactions, printed as a ratio. Run: `cargo bench -p bss-benches`.

use bss_benches::{Chain, Kind, RawRevm};
use criterion::{Criterion, Throughput};
use std::time::{Duration, Instant};

const SENDERS: usize = 1_000;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("execute_and_commit");
    group.throughput(Throughput::Elements(SENDERS as u64));
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for (name, kind, fsync) in [
        ("eth/bss-fsync", Kind::Eth, true),
        ("eth/bss-nofsync", Kind::Eth, false),
        ("erc20/bss-fsync", Kind::Erc20, true),
    ] {
        let mut chain = Chain::new(SENDERS, kind, fsync);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let txs = chain.next_block();
                    let started = Instant::now();
                    chain.execute_and_commit(txs);
                    total += started.elapsed();
                }
                total
            })
        });
    }
    for (name, kind) in [("eth/raw-revm", Kind::Eth), ("erc20/raw-revm", Kind::Erc20)] {
        let mut chain = Chain::new(SENDERS, kind, false);
        let token = matches!(kind, Kind::Erc20).then_some(chain.workload.token);
        let mut raw = RawRevm::new(&chain.workload.senders, token);
        let mut number = 0;
        if let Kind::Erc20 = kind {
            // Align nonces with the bss chain, whose block 1 deployed the token.
            let first = chain.workload.block(0);
            raw.execute(&first[1..], 0);
            raw.execute(&first[..1], 0);
        }
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let txs = chain.next_block();
                    number += 1;
                    let started = Instant::now();
                    raw.execute(&txs, number);
                    total += started.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

/// Blocks of SENDERS txs through both paths; txs/s of each and the ratio.
fn ratio(kind: Kind, blocks: usize) -> (f64, f64) {
    let mut chain = Chain::new(SENDERS, kind, true);
    let prepared: Vec<_> = (0..blocks).map(|_| chain.next_block()).collect();
    let started = Instant::now();
    let mut n = 0;
    for txs in prepared.clone() {
        n += chain.execute_and_commit(txs);
    }
    chain.wait_written();
    let bss = n as f64 / started.elapsed().as_secs_f64();
    let token = matches!(kind, Kind::Erc20).then_some(chain.workload.token);
    let mut raw = RawRevm::new(&chain.workload.senders, token);
    if let Kind::Erc20 = kind {
        let first = chain.workload.block(0);
        raw.execute(&first[1..], 0);
        raw.execute(&first[..1], 0);
    }
    let started = Instant::now();
    let mut n = 0;
    for (i, txs) in prepared.iter().enumerate() {
        n += raw.execute(txs, i as u64 + 1);
    }
    let revm = n as f64 / started.elapsed().as_secs_f64();
    (bss, revm)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    println!("\nexecute-and-commit vs raw revm ({SENDERS} txs per block, fsync on):");
    for (name, kind) in [("ETH transfers", Kind::Eth), ("ERC-20-style transfers", Kind::Erc20)] {
        let (bss, revm) = ratio(kind, 30);
        println!("  {name:24} bss {bss:>9.0} tx/s   raw revm {revm:>9.0} tx/s   ratio {:.2}x", bss / revm);
    }
}
