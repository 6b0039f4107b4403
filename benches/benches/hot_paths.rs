//! Criterion micro-benchmarks of the hot paths: tx decode + sender recovery, mempool insert and
//! selection, state-root (LtHash) update, storage commit of a block, certificate verification.
//! Run: `cargo bench -p bss-benches --bench hot_paths`.
#![allow(clippy::unwrap_used)]

use alloy_primitives::{Address, B256, U256};
use bss_benches::{Chain, Kind};
use bss_consensus::certificate::{vote_message, SigBytes};
use bss_consensus::{Certificate, OperatorSet, OperatorSigner};
use bss_hvm::leaf_cache::LeafCache;
use bss_hvm::lthash::{account_value, Leaf, LtHash};
use bss_hvm::txpool::{Pool, PoolConfig, SenderState};
use bss_hvm::SignedTx;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;

fn decode_and_recover(c: &mut Criterion) {
    let mut chain = Chain::new(1_000, Kind::Eth, false);
    let raws: Vec<_> = chain.next_block().iter().map(|t| t.raw.clone()).collect();
    let mut g = c.benchmark_group("tx");
    g.throughput(Throughput::Elements(raws.len() as u64));
    g.bench_function("decode_and_recover_1000", |b| {
        b.iter(|| raws.iter().map(|r| SignedTx::decode(r).unwrap().sender).collect::<Vec<_>>())
    });
    g.finish();
}

fn mempool(c: &mut Criterion) {
    let mut chain = Chain::new(1_000, Kind::Eth, false);
    let txs: Vec<Arc<SignedTx>> = (0..5).flat_map(|_| chain.next_block()).collect();
    let rich = SenderState { nonce: 0, balance: U256::from(10u128.pow(24)) };
    let mut g = c.benchmark_group("mempool");
    g.throughput(Throughput::Elements(txs.len() as u64));
    g.bench_function("insert_5000", |b| {
        b.iter_batched(
            || Pool::new(PoolConfig::default()),
            |mut pool| {
                for t in &txs {
                    pool.insert(t.clone(), rich).unwrap();
                }
                pool
            },
            BatchSize::SmallInput,
        )
    });
    let mut full = Pool::new(PoolConfig::default());
    for t in &txs {
        full.insert(t.clone(), rich).unwrap();
    }
    g.bench_function("select_5000", |b| b.iter(|| full.select(1_000_000_000, u64::MAX, 5_000).len()));
    g.finish();
}

fn state_root(c: &mut Criterion) {
    // What a block of 1,000 transfers changes: 1,000 senders and 200 recipients, old and new.
    let leaves: Vec<(bool, Leaf)> = (0..1_200u64)
        .flat_map(|i| {
            let a = Address::from_word(B256::from(U256::from(i)));
            [
                (false, Leaf::Account(a, account_value(i, &U256::from(i), &B256::ZERO))),
                (true, Leaf::Account(a, account_value(i + 1, &U256::from(i + 7), &B256::ZERO))),
            ]
        })
        .collect();
    let mut g = c.benchmark_group("state_root");
    g.throughput(Throughput::Elements(leaves.len() as u64));
    g.bench_function("lthash_apply_2400_leaves", |b| {
        b.iter_batched(
            LtHash::default,
            |mut acc| {
                acc.apply(&leaves);
                acc.root()
            },
            BatchSize::SmallInput,
        )
    });
    // The executor's steady state: block k moves 1,200 accounts from nonce k to k + 1, so it
    // removes the 1,200 leaves block k - 1 added (remembered) and adds 1,200 new ones.
    let block = |k: u64| -> Vec<(bool, Leaf)> {
        (0..1_200u64)
            .flat_map(|i| {
                let a = Address::from_word(B256::from(U256::from(i)));
                let leaf = |nonce: u64| Leaf::Account(a, account_value(nonce, &U256::from(i), &B256::ZERO));
                [(false, leaf(k)), (true, leaf(k + 1))]
            })
            .collect()
    };
    let cache = LeafCache::default();
    let mut acc = LtHash::default();
    acc.apply_cached(&block(0)[..], &cache);
    let mut k = 0;
    g.bench_function("lthash_apply_2400_leaves_half_remembered", |b| {
        b.iter_batched(
            || {
                k += 1;
                block(k)
            },
            |leaves| {
                acc.apply_cached(&leaves, &cache);
                acc.root()
            },
            BatchSize::SmallInput,
        )
    });
    let used = cache.take_use();
    assert_eq!(used.expanded, used.remembered + 2_400, "every removal but block 0's remembered: {used:?}");
    g.finish();
}

fn storage_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("storage");
    g.throughput(Throughput::Elements(1_000));
    for fsync in [false, true] {
        let mut chain = Chain::new(1_000, Kind::Eth, fsync);
        g.bench_function(if fsync { "commit_block_1000_txs_fsync" } else { "commit_block_1000_txs" }, |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let txs = chain.next_block();
                    let executed = chain.build(txs);
                    let started = std::time::Instant::now();
                    chain.commit(&executed);
                    total += started.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

fn certificates(c: &mut Criterion) {
    let signers: Vec<OperatorSigner> = (0..10u8).map(|i| OperatorSigner::from_bytes([i + 1; 32])).collect();
    let set = OperatorSet::new(signers.iter().map(|s| s.public()).collect());
    let hash = B256::repeat_byte(7);
    let msg = vote_message(1, 9, &hash);
    let cert = Certificate {
        chain_id: 1,
        round: 9,
        block_hash: hash,
        signatures: signers
            .iter()
            .take(set.quorum())
            .enumerate()
            .map(|(i, s)| (i as u16, SigBytes(s.sign(&msg))))
            .collect(),
        hotstuff_rs: None,
    };
    let mut g = c.benchmark_group("consensus");
    g.bench_function("verify_qc_7_of_10", |b| b.iter(|| cert.verify(&set, &hash).unwrap()));
    g.bench_function("sign_vote", |b| b.iter(|| signers[0].sign(&msg)));
    g.finish();
}

criterion_group!(benches, decode_and_recover, mempool, state_root, storage_commit, certificates);
criterion_main!(benches);
