//! Tunnel withdrawals: the ledger every operator derives from the committed L2 chain and the
//! agreed Bitcoin view (each block's own Bitcoin tip), and the payout tx they all build from it.
//!
//! * A `WithdrawalRequested` event (hBTC burned) in a committed block is a request; ids are
//!   consecutive from 0. A request whose script no payout can pay (not a standard output) is
//!   `unpayable` with its reason and skipped; its hBTC stays owed.
//! * With no batch open, the first committed block that sees unpaid requests opens one, from
//!   that block's Bitcoin view: the longest run of the next ids (at most [`MAX_BATCH`], down to
//!   one) that at most [`MAX_INPUTS`] vault coins cover, largest coins first. Coins are spent
//!   once they have `deposit_confirmations`, our payouts' change too. Every operator opens the
//!   same batch at the same block, so they all build the same transaction.
//! * When not even the next request alone is covered but the vault holds more coins than one
//!   payout may spend, the batch is a consolidation instead: the [`MAX_INPUTS`] largest coins
//!   into one, its fee paid from the vault's surplus. With no request waiting and more than
//!   [`CONSOLIDATE_ABOVE`] coins, the smallest are consolidated in the background, when the
//!   surplus pays for it.
//! * The payout pays each request's script `sats − withdrawal_fee_sats`, returns the rest to the
//!   vault and tags itself with an OP_RETURN `"BSSW" | chain_id u32 | first id u64 | end id u64`
//!   (first = end for a consolidation). Fee versions: [`fees`].
//! * A batch is paid when a block's Bitcoin view holds a tx spending its first coin; only then
//!   can the next batch open.

mod fees;
mod payout;
#[cfg(test)]
mod tests;

pub use fees::{estimated_vsize, max_version, rate, version_at, BUMP_EVERY};
pub use payout::{check_signatures, finalize, is_payout, payout_tx, sighashes, sign};

use super::deposit::TunnelRules;
use super::index::BtcIndex;
use super::vault::VaultError;
use alloy_primitives::Address;
use bitcoin::{OutPoint, ScriptBuf, Txid};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tag of a payout's OP_RETURN.
pub const PAYOUT_TAG: &[u8; 4] = b"BSSW";
/// Most withdrawals one payout carries.
pub const MAX_BATCH: u64 = 64;
/// Most vault coins one payout spends.
pub const MAX_INPUTS: usize = 32;
/// Spendable vault coins above which the smallest are consolidated while no request waits.
pub const CONSOLIDATE_ABOVE: usize = 2 * MAX_INPUTS;
/// Bitcoin's dust limit for the outputs a payout makes.
pub(crate) const DUST: u64 = 546;

/// A burn asking for BTC, from a committed `WithdrawalRequested` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub from: Address,
    pub script: ScriptBuf,
    pub sats: u64,
    pub l2_block: u64,
}

/// Where a paid withdrawal's BTC went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paid {
    pub txid: Txid,
    pub btc_height: u64,
    /// The committed L2 block whose Bitcoin view first held the payout.
    pub l2_block: u64,
}

/// Withdrawals `first..end` (none: a consolidation) being paid with `inputs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The batch's number (batches are numbered from 0 in the order they open): what payout
    /// signatures name.
    pub seq: u64,
    pub first: u64,
    pub end: u64,
    pub opened_l2: u64,
    pub opened_btc: u64,
    pub inputs: Vec<(OutPoint, u64)>,
    /// The most any fee version pays: the batch's withdrawal fees plus the vault's surplus.
    pub fee_budget: u64,
}

impl Batch {
    /// Whether this batch only merges vault coins.
    pub fn is_consolidation(&self) -> bool {
        self.first == self.end
    }
}

/// The tunnel's withdrawal state after a committed L2 block.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub requests: BTreeMap<u64, Request>,
    pub paid: BTreeMap<u64, Paid>,
    /// Requests no payout can pay, with the reason (their hBTC stays burned and owed).
    pub unpayable: BTreeMap<u64, String>,
    /// Deposits minted so far: deposit txid (display order) → the L2 block that minted it.
    pub minted: BTreeMap<alloy_primitives::B256, u64>,
    /// hBTC minted and burned in all, sats (supply = minted − burned).
    pub minted_sats: u64,
    pub burned_sats: u64,
    /// Ids below this are paid (or unpayable).
    pub paid_below: u64,
    pub batch: Option<Batch>,
    /// Batches opened so far (the next one's `seq`).
    pub batches: u64,
    /// Confirmed consolidations.
    pub consolidations: u64,
    /// The last L2 block applied and its Bitcoin tip.
    pub l2_head: u64,
    pub btc_tip: u64,
    /// Why unpaid requests wait without a batch, or what the open batch waits for.
    pub waiting: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    #[error("batch {first}..{end}: request {id} is missing from the ledger")]
    MissingRequest { first: u64, end: u64, id: u64 },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("operator {operator} sent {got} signatures for {inputs} inputs")]
    SignatureCount { operator: usize, got: usize, inputs: usize },
}

/// Why no payout can ever pay `r` (its script is not a standard output, or what it receives
/// after the withdrawal fee is dust).
pub fn unpayable_reason(r: &Request, rules: &TunnelRules) -> Option<String> {
    let s = &r.script;
    if !(s.is_p2pkh() || s.is_p2sh() || s.is_p2wpkh() || s.is_p2wsh() || s.is_p2tr()) {
        return Some(format!(
            "script 0x{} is not a standard output (P2PKH, P2SH, P2WPKH, P2WSH or P2TR): Bitcoin nodes do not relay a payout to it",
            hex::encode(s.as_bytes())
        ));
    }
    if r.sats.saturating_sub(rules.withdrawal_fee_sats) < DUST {
        return Some(format!("{} sats less the withdrawal fee is below the dust limit ({DUST})", r.sats));
    }
    None
}

impl Ledger {
    /// Satoshis burned and not yet paid (unpayable requests included: they are still owed).
    pub fn pending_sats(&self) -> u64 {
        let unpaid = self.requests.range(self.paid_below..).map(|(_, r)| r.sats);
        let unpayable = self.unpayable.keys().filter_map(|id| self.requests.get(id)).map(|r| r.sats);
        unpaid.chain(unpayable).fold(0u64, u64::saturating_add)
    }

    /// What the vault owes: hBTC supply plus burned-but-unpaid.
    pub fn liabilities(&self) -> u64 {
        self.minted_sats.saturating_sub(self.burned_sats).saturating_add(self.pending_sats())
    }

    /// Applies committed block `l2_block`: its mints and withdrawal requests and, when it
    /// carries a Bitcoin view up to `btc_tip` (`view` is that block's own view), what that view
    /// says about the open batch.
    pub fn apply(
        &mut self,
        l2_block: u64,
        btc_tip: Option<u64>,
        requests: Vec<Request>,
        mints: &[bss_consensus::Mint],
        view: &BtcIndex,
        rules: &TunnelRules,
    ) {
        for m in mints {
            self.minted.insert(m.btc_txid, l2_block);
            self.minted_sats = self.minted_sats.saturating_add(m.sats);
        }
        for r in requests {
            self.burned_sats = self.burned_sats.saturating_add(r.sats);
            self.requests.insert(r.id, r);
        }
        self.l2_head = l2_block;
        let Some(tip) = btc_tip else { return };
        self.btc_tip = tip;
        if let Some(b) = &self.batch {
            if let Some((txid, btc_height)) = payout_of(view, b, tip) {
                for id in b.first..b.end {
                    self.paid.insert(id, Paid { txid, btc_height, l2_block });
                }
                if b.is_consolidation() {
                    self.consolidations += 1;
                }
                self.paid_below = b.end;
                self.batch = None;
            }
        }
        if self.batch.is_none() {
            self.open_batch(l2_block, tip, view, rules);
        }
    }

    /// Skips the unpayable requests at the head of the queue.
    fn skip_unpayable(&mut self, rules: &TunnelRules) {
        while let Some(r) = self.requests.get(&self.paid_below) {
            let Some(why) = unpayable_reason(r, rules) else { break };
            self.unpayable.insert(r.id, why);
            self.paid_below += 1;
        }
    }

    fn open_batch(&mut self, l2_block: u64, tip: u64, view: &BtcIndex, rules: &TunnelRules) {
        self.skip_unpayable(rules);
        let first = self.paid_below;
        let mut end = first;
        while end - first < MAX_BATCH && self.requests.get(&end).is_some_and(|r| unpayable_reason(r, rules).is_none()) {
            end += 1;
        }
        // Every vault coin with `deposit_confirmations` in this view (deposits, donations and
        // our own change alike: a tx a reorg can still take out is never spent).
        let deep = tip.saturating_add(1).saturating_sub(rules.deposit_confirmations);
        let mut coins = Vec::new();
        // What backs the liabilities: deep coins and our own change (a reorg that takes a
        // payout out gives its coins back), not deposits that have not minted yet.
        let mut backing = 0u64;
        for (o, v) in view.utxos(&rules.vault.script_pubkey(), tip) {
            let Some(c) = view.coin(&o, tip) else { continue };
            if c.height <= deep {
                coins.push((o, v));
                backing = backing.saturating_add(v);
            } else if view.tx(&o.txid, tip).is_some_and(|t| super::deposit::spends_vault(view, &t.tx, t.height, rules))
            {
                backing = backing.saturating_add(v);
            }
        }
        coins.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let surplus = backing.saturating_sub(self.liabilities());
        let open = |this: &mut Self, first: u64, end: u64, inputs: Vec<(OutPoint, u64)>, fee_budget: u64| {
            this.batch =
                Some(Batch { seq: this.batches, first, end, opened_l2: l2_block, opened_btc: tip, inputs, fee_budget });
            this.batches += 1;
        };
        if end > first {
            // The longest run of the next requests the largest coins cover.
            let mut short = None;
            for n in (1..=end - first).rev() {
                match self.select(first, first + n, &coins, surplus, rules) {
                    Ok((inputs, budget)) => {
                        self.waiting = None;
                        return open(self, first, first + n, inputs, budget);
                    }
                    Err(why) => {
                        short.get_or_insert(why);
                    }
                }
            }
            let why = short.unwrap_or_default();
            if coins.len() > MAX_INPUTS {
                if let Some((inputs, budget)) = consolidation(&coins[..MAX_INPUTS], surplus, rules) {
                    self.waiting = Some(format!("{why}; consolidating the {MAX_INPUTS} largest vault coins first"));
                    return open(self, first, first, inputs, budget);
                }
            }
            self.waiting = Some(why);
            return;
        }
        self.waiting = None;
        if coins.len() > CONSOLIDATE_ABOVE {
            if let Some((inputs, budget)) = consolidation(&coins[coins.len() - MAX_INPUTS..], surplus, rules) {
                open(self, first, first, inputs, budget);
            }
        }
    }

    /// The coins (largest first, at most [`MAX_INPUTS`]) and fee budget that pay withdrawals
    /// `first..end` at every fee version, or why there are none.
    fn select(
        &self,
        first: u64,
        end: u64,
        coins: &[(OutPoint, u64)],
        surplus: u64,
        rules: &TunnelRules,
    ) -> Result<(Vec<(OutPoint, u64)>, u64), String> {
        let n = end - first;
        let owed: u64 = self.requests.range(first..end).map(|(_, r)| r.sats).fold(0, u64::saturating_add);
        let fees = fees::withdrawal_fees(n, rules);
        let budget = fees.saturating_add(surplus);
        // Enough for the highest fee version, so that every version spends the same coins.
        let need =
            |inputs: usize| owed.saturating_sub(fees).saturating_add(fees::top_fee(inputs as u64, n, budget, rules));
        let mut inputs = Vec::new();
        let mut sum = 0u64;
        for c in coins.iter().take(MAX_INPUTS) {
            if !inputs.is_empty() && sum >= need(inputs.len()) {
                break;
            }
            sum = sum.saturating_add(c.1);
            inputs.push(*c);
        }
        let need = need(inputs.len().max(1));
        let vsize = estimated_vsize(inputs.len().max(1) as u64, n, rules);
        if sum < need {
            let total: u64 = coins.iter().map(|(_, v)| *v).fold(0, u64::saturating_add);
            return Err(format!(
                "withdrawals {first}..{end} need {need} sats from at most {MAX_INPUTS} confirmed vault coins; the largest {} hold {sum} ({} coins, {total} sats confirmed in all)",
                inputs.len(),
                coins.len()
            ));
        }
        if budget < vsize {
            return Err(format!(
                "withdrawals {first}..{end}: a payout of {vsize} vB needs at least {vsize} sats of fee (1 sat/vB); the withdrawal fees and the vault's surplus give {budget}"
            ));
        }
        Ok((inputs, budget))
    }
}

/// A consolidation of `coins` whose fee the vault's surplus pays at 1 sat/vB or more.
fn consolidation(coins: &[(OutPoint, u64)], surplus: u64, rules: &TunnelRules) -> Option<(Vec<(OutPoint, u64)>, u64)> {
    let vsize = estimated_vsize(coins.len() as u64, 0, rules);
    let budget = fees::top_fee(coins.len() as u64, 0, surplus, rules);
    let total: u64 = coins.iter().map(|(_, v)| *v).fold(0, u64::saturating_add);
    (coins.len() > 1 && budget >= vsize && total > budget.saturating_add(DUST)).then(|| (coins.to_vec(), budget))
}

/// The payout of `b` in the view up to `tip`: the tx spending its first coin.
fn payout_of(view: &BtcIndex, b: &Batch, tip: u64) -> Option<(Txid, u64)> {
    let (first, _) = b.inputs.first()?;
    let spent_at = view.coin(first, tip)?.spent_at.filter(|h| *h <= tip)?;
    view.txids_at(spent_at).into_iter().find_map(|txid| {
        let rec = view.tx(&txid, spent_at)?;
        rec.tx.input.iter().any(|i| i.previous_output == *first).then_some((txid, spent_at))
    })
}
