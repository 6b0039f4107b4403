//! Fee versions of a payout. Version k pays the larger of its share of the batch's withdrawal
//! fees ((k+1)/4 of them, all from k = 3) and a fee rate of `rate(k)` sat/vB (1, 2, 3, 4, then
//! doubling, up to the genesis ceiling `payout_fee_ceiling_sat_vb`), and never more than the
//! batch's fee budget (its withdrawal fees plus the vault's surplus when it opened: what the
//! vault holds beyond hBTC supply and burned-but-unpaid). One step every [`BUMP_EVERY`] Bitcoin
//! blocks without confirmation. Every version spends the same coins, so at most one confirms.

use super::Batch;
use crate::deposit::TunnelRules;

/// Bitcoin blocks between fee bumps.
pub const BUMP_EVERY: u64 = 2;

/// The fee rate of version `k`, sat/vB, before the ceiling.
fn raw_rate(k: u32) -> u64 {
    if k < 4 {
        u64::from(k) + 1
    } else {
        4u64.checked_shl(k - 3).unwrap_or(u64::MAX)
    }
}

/// The fee rate of version `k` under `rules`' ceiling, sat/vB.
pub fn rate(k: u32, rules: &TunnelRules) -> u64 {
    raw_rate(k).min(rules.payout_fee_ceiling_sat_vb.max(1))
}

/// The highest fee version: the first whose rate reaches the ceiling, and at least 3 (the one
/// that pays all the withdrawal fees).
pub fn max_version(rules: &TunnelRules) -> u32 {
    (3..64).find(|k| raw_rate(*k) >= rules.payout_fee_ceiling_sat_vb).unwrap_or(63)
}

/// The fee version due with the Bitcoin view at `btc_tip`.
pub fn version_at(b: &Batch, btc_tip: u64, rules: &TunnelRules) -> u32 {
    let steps = btc_tip.saturating_sub(b.opened_btc) / BUMP_EVERY;
    u32::try_from(steps).unwrap_or(u32::MAX).min(max_version(rules))
}

/// The withdrawal fees of `withdrawals` requests.
pub fn withdrawal_fees(withdrawals: u64, rules: &TunnelRules) -> u64 {
    withdrawals.saturating_mul(rules.withdrawal_fee_sats)
}

/// Fee of version `version` for a payout of `vsize` vbytes.
pub fn fee(b: &Batch, rules: &TunnelRules, version: u32, vsize: u64) -> u64 {
    let k = version.min(max_version(rules));
    let share = withdrawal_fees(b.end - b.first, rules).saturating_mul(u64::from(k.min(3)) + 1) / 4;
    share.max(vsize.saturating_mul(rate(k, rules))).min(b.fee_budget)
}

/// The most any version of a batch of `withdrawals` over `inputs` coins can pay, under `budget`.
pub fn top_fee(inputs: u64, withdrawals: u64, budget: u64, rules: &TunnelRules) -> u64 {
    let at_ceiling = estimated_vsize(inputs, withdrawals, rules).saturating_mul(rate(max_version(rules), rules));
    withdrawal_fees(withdrawals, rules).max(at_ceiling).min(budget)
}

/// An upper bound of a payout's signed size with `inputs` coins and `outputs` withdrawals,
/// vbytes (every output as large as P2WSH's, plus change and tag).
pub fn estimated_vsize(inputs: u64, outputs: u64, rules: &TunnelRules) -> u64 {
    let n = rules.vault.keys().len() as u64;
    let leaf = rules.vault.leaf().len() as u64;
    let per_input_witness = 1 + 65 * n + 3 + leaf + 34;
    let base = 12 + 41 * inputs + 43 * (outputs + 1) + 40;
    (base * 4 + 2 + per_input_witness * inputs).div_ceil(4)
}

/// The signed size of a payout, vbytes: each input's witness holds t signatures, n − t empty
/// slots, the leaf and the control block.
pub fn vsize(tx: &bitcoin::Transaction, rules: &TunnelRules) -> u64 {
    let n = rules.vault.keys().len() as u64;
    let t = rules.vault.threshold() as u64;
    let leaf = rules.vault.leaf().len() as u64;
    let per_input = 1 + 65 * t + (n - t) + 3 + leaf + 34;
    let weight = tx.base_size() as u64 * 4 + 2 + per_input * tx.input.len() as u64;
    weight.div_ceil(4)
}
