//! The UTXO set of the active chain, and the rules that need it: inputs exist and are unspent,
//! coinbase maturity, value conservation, script verification by Bitcoin Core's own verifier
//! (libbitcoinconsensus, vendored by the `bitcoinconsensus` crate: P2PKH, P2SH, segwit v0 and
//! taproot), and the coinbase paying at most subsidy + fees.

use super::chain::subsidy;
use bitcoin::consensus::encode;
use bitcoin::{Amount, Block, BlockHash, OutPoint, Transaction, TxOut, Txid};
use std::collections::{HashMap, HashSet};

/// Regtest, like every network, lets a coinbase be spent only 100 blocks later.
pub const COINBASE_MATURITY: u64 = 100;

#[derive(Clone, Debug)]
pub struct Coin {
    pub out: TxOut,
    pub height: u64,
    pub coinbase: bool,
}

/// Why a transaction cannot spend what it spends; the strings are bitcoind's reject reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpendError {
    #[error("bad-txns-inputs-missingorspent")]
    MissingOrSpent,
    #[error("bad-txns-inputs-duplicate")]
    DuplicateInput,
    #[error("bad-txns-premature-spend-of-coinbase")]
    PrematureCoinbase,
    #[error("bad-txns-in-belowout")]
    InBelowOut,
    #[error("bad-txns-vout-toolarge")]
    OutputTooLarge,
    #[error("bad-txns-vin-empty")]
    NoInputs,
    #[error("bad-txns-vout-empty")]
    NoOutputs,
    #[error("mandatory-script-verify-flag-failed ({0})")]
    Script(String),
    #[error("bad-cb-amount")]
    CoinbaseAmount,
}

/// Context-free checks (CheckTransaction).
pub fn check_transaction(tx: &Transaction) -> Result<(), SpendError> {
    if tx.input.is_empty() {
        return Err(SpendError::NoInputs);
    }
    if tx.output.is_empty() {
        return Err(SpendError::NoOutputs);
    }
    let mut total = Amount::ZERO;
    for o in &tx.output {
        total = total.checked_add(o.value).filter(|t| *t <= Amount::MAX_MONEY).ok_or(SpendError::OutputTooLarge)?;
    }
    let mut seen = HashSet::new();
    if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
        return Err(SpendError::DuplicateInput);
    }
    Ok(())
}

/// Verifies every input's script against the outputs it spends (which must be in input order).
pub fn verify_scripts(tx: &Transaction, spent: &[TxOut]) -> Result<(), SpendError> {
    let bytes = encode::serialize(tx);
    let utxos: Vec<bitcoinconsensus::Utxo> = spent
        .iter()
        .map(|o| bitcoinconsensus::Utxo {
            script_pubkey: o.script_pubkey.as_bytes().as_ptr(),
            script_pubkey_len: o.script_pubkey.len() as u32,
            value: o.value.to_sat() as i64,
        })
        .collect();
    let flags = bitcoinconsensus::VERIFY_ALL_PRE_TAPROOT | bitcoinconsensus::VERIFY_TAPROOT;
    for (i, o) in spent.iter().enumerate() {
        bitcoinconsensus::verify_with_flags(
            o.script_pubkey.as_bytes(),
            o.value.to_sat(),
            &bytes,
            Some(&utxos),
            i,
            flags,
        )
        .map_err(|e| {
            SpendError::Script(match e {
                bitcoinconsensus::Error::ERR_SCRIPT => format!("input {i}: script evaluation failed"),
                other => format!("input {i}: {other}"),
            })
        })?;
    }
    Ok(())
}

/// Where an active-chain transaction sits.
#[derive(Clone, Copy, Debug)]
pub struct TxLocation {
    pub block: BlockHash,
    pub height: u64,
}

#[derive(Default, Clone)]
pub struct UtxoSet {
    coins: HashMap<OutPoint, Coin>,
    txs: HashMap<Txid, TxLocation>,
}

impl UtxoSet {
    pub fn coin(&self, o: &OutPoint) -> Option<&Coin> {
        self.coins.get(o)
    }

    pub fn locate(&self, txid: &Txid) -> Option<TxLocation> {
        self.txs.get(txid).copied()
    }

    /// Resolves a tx's inputs against `lookup` and applies the contextual checks; returns the
    /// spent outputs (in input order) and the fee.
    pub fn check_spend(
        tx: &Transaction,
        height: u64,
        mut lookup: impl FnMut(&OutPoint) -> Option<Coin>,
    ) -> Result<(Vec<TxOut>, Amount), SpendError> {
        check_transaction(tx)?;
        let mut spent = Vec::with_capacity(tx.input.len());
        let mut total_in = Amount::ZERO;
        for input in &tx.input {
            let coin = lookup(&input.previous_output).ok_or(SpendError::MissingOrSpent)?;
            if coin.coinbase && height.saturating_sub(coin.height) < COINBASE_MATURITY {
                return Err(SpendError::PrematureCoinbase);
            }
            total_in = total_in.checked_add(coin.out.value).ok_or(SpendError::OutputTooLarge)?;
            spent.push(coin.out);
        }
        let total_out: Amount = tx.output.iter().map(|o| o.value).sum();
        let fee = total_in.checked_sub(total_out).ok_or(SpendError::InBelowOut)?;
        verify_scripts(tx, &spent)?;
        Ok((spent, fee))
    }

    /// ConnectBlock: checks every tx against the set (and earlier txs of the block) and applies
    /// the block if all pass. On error the set is unchanged.
    pub fn connect(&mut self, block: &Block, height: u64) -> Result<Amount, SpendError> {
        let hash = block.block_hash();
        let mut created: HashMap<OutPoint, Coin> = HashMap::new();
        let mut spent_here: HashSet<OutPoint> = HashSet::new();
        let mut fees = Amount::ZERO;
        for tx in block.txdata.iter().skip(1) {
            let (_, fee) = Self::check_spend(tx, height, |o| {
                if !spent_here.insert(*o) {
                    return None;
                }
                created.get(o).or_else(|| self.coins.get(o)).cloned()
            })?;
            fees += fee;
            add_outputs(&mut created, tx, height, false);
        }
        if let Some(cb) = block.txdata.first() {
            let paid: Amount = cb.output.iter().map(|o| o.value).sum();
            if paid > subsidy(height) + fees {
                return Err(SpendError::CoinbaseAmount);
            }
            add_outputs(&mut created, cb, height, true);
        }
        for o in spent_here {
            self.coins.remove(&o);
            created.remove(&o);
        }
        self.coins.extend(created);
        for tx in &block.txdata {
            self.txs.insert(tx.compute_txid(), TxLocation { block: hash, height });
        }
        Ok(fees)
    }
}

fn add_outputs(into: &mut HashMap<OutPoint, Coin>, tx: &Transaction, height: u64, coinbase: bool) {
    let txid = tx.compute_txid();
    for (vout, out) in tx.output.iter().enumerate() {
        // Provably unspendable outputs never enter the set (as in Core).
        if out.script_pubkey.is_op_return() {
            continue;
        }
        into.insert(OutPoint::new(txid, vout as u32), Coin { out: out.clone(), height, coinbase });
    }
}
