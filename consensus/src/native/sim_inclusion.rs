//! Simulation scenarios for the inclusion-list rule (README "Censorship resistance"). Every
//! commit in the simulation is checked against the rule (the mock executor's conditional
//! inclusion), so any run that commits a block omitting a listed tx fails.

use super::sim::{check, lossy, seeds, Behavior, Scenario, Sim};
use alloy_primitives::Bytes;

fn due() -> Vec<Bytes> {
    vec![Bytes::from_static(b"tx from a censored sender #1"), Bytes::from_static(b"tx from a censored sender #2")]
}

fn calm(behaviors: Vec<Behavior>, due: Vec<Bytes>) -> Scenario {
    Scenario {
        n: behaviors.len(),
        behaviors,
        twins: vec![],
        drop_rate: 0.0,
        max_delay_ms: 10,
        partitions: vec![],
        crashes: vec![],
        duration_ms: 6_000,
        min_progress_after_heal: 20,
        due,
    }
}

/// Height at which `tx` is committed on `slot` (it must be there exactly once).
fn committed_once(sim: &Sim, slot: usize, tx: &Bytes, seed: u64) -> u64 {
    let at: Vec<u64> = sim.committed_blocks(slot).filter(|b| b.transactions.contains(tx)).map(|b| b.number()).collect();
    assert_eq!(at.len(), 1, "seed {seed}: replica {slot} committed the listed tx at heights {at:?}");
    at[0]
}

#[test]
fn sim_censoring_leader_cannot_omit_listed_txs() {
    for seed in seeds(7_000..7_024) {
        let censor = (seed % 4) as usize;
        let mut b = vec![Behavior::Honest; 4];
        b[censor] = Behavior::Censor;
        let sim = check(seed, calm(b, due()));
        for (slot, _) in sim.honest_heights() {
            for tx in due() {
                // Lists bind from block 2 on (block 1 extends genesis, which nobody voted for);
                // a censoring leader's block 2 is refused and the round after it includes.
                let h = committed_once(&sim, slot, &tx, seed);
                assert!(h <= 3, "seed {seed}: listed tx committed only at height {h}");
            }
        }
    }
}

#[test]
fn sim_lists_hold_on_a_lossy_partitioned_network() {
    for seed in seeds(7_100..7_120) {
        let mut s = lossy(seed, 4, vec![Behavior::Honest; 4], vec![]);
        s.behaviors[(seed % 4) as usize] = Behavior::Censor;
        s.due = due();
        let sim = check(seed, s);
        for (slot, _) in sim.honest_heights() {
            for tx in due() {
                committed_once(&sim, slot, &tx, seed);
            }
        }
    }
}

#[test]
fn sim_equivocating_list_maker_is_ignored() {
    for seed in seeds(7_200..7_212) {
        let mut b = vec![Behavior::Honest; 4];
        b[3] = Behavior::ListEquivocator;
        let sim = check(seed, calm(b, due()));
        let (slot, _) = sim.honest_heights()[0];
        let mut evidence = 0;
        for block in sim.committed_blocks(slot) {
            let from_3 = block.header.inclusion.iter().filter(|l| l.operator == 3).count();
            if from_3 == 2 {
                evidence += 1;
                // Its made-up txs oblige nothing once it is caught.
                assert!(
                    block.transactions.iter().all(|t| !t.starts_with(&[0xa, 3]) && !t.starts_with(&[0xb, 3])),
                    "seed {seed}: block {} included an equivocator's listed tx",
                    block.number()
                );
            }
        }
        assert!(evidence > 0, "seed {seed}: no committed block carries the equivocation evidence");
    }
}

#[test]
fn sim_voters_withholding_lists_do_not_stop_commits() {
    for seed in seeds(7_300..7_308) {
        let mut b = vec![Behavior::Honest; 4];
        b[(seed % 4) as usize] = Behavior::Listless;
        let sim = check(seed, calm(b, due()));
        for (slot, h) in sim.honest_heights() {
            assert!(h > 100, "seed {seed}: replica {slot} only at height {h}");
            for tx in due() {
                committed_once(&sim, slot, &tx, seed);
            }
        }
    }
}
