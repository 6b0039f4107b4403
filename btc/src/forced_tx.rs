//! The two Bitcoin transactions that post a forced L2 tx (`bss force-include`): a commit tx that
//! pays a taproot output whose only leaf is the envelope script (see [`crate::inbox`]), and the
//! reveal tx that spends it through that leaf, which puts the envelope in its witness.
//! Both are signed by one key: the commit spends a key-path coin of that key, the reveal signs
//! the leaf's `<key> OP_CHECKSIG`.

use super::inbox::envelope_script;
use super::pop_tx::{sign_key_path, TxBuildError};
use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, Secp256k1};
use bitcoin::secp256k1::{All, Message, SecretKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::{LeafVersion, TaprootBuilder, TaprootSpendInfo};
use bitcoin::{
    absolute, transaction, Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

/// What the reveal leaves at the poster's address (above P2TR dust).
const REVEAL_OUTPUT: u64 = 1_000;
/// Below this a change output would be dust.
const MIN_CHANGE: u64 = 330;

pub struct ForcedPoster {
    secp: Secp256k1<All>,
    keypair: Keypair,
    network: Network,
}

/// A signed commit/reveal pair.
pub struct Posting {
    pub commit: Transaction,
    pub reveal: Transaction,
}

impl ForcedPoster {
    pub fn new(secret: [u8; 32], network: Network) -> Result<Self, TxBuildError> {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&secret).map_err(|e| TxBuildError::Sign(e.to_string()))?;
        Ok(Self { keypair: Keypair::from_secret_key(&secp, &sk), secp, network })
    }

    /// The key-path P2TR address whose coins fund postings (and where the reveal's output goes).
    pub fn address(&self) -> Address {
        Address::p2tr(&self.secp, self.keypair.x_only_public_key().0, None, self.network)
    }

    fn spend_info(&self, leaf: &ScriptBuf) -> Result<TaprootSpendInfo, TxBuildError> {
        let key = self.keypair.x_only_public_key().0;
        TaprootBuilder::new()
            .add_leaf(0, leaf.clone())
            .map_err(|e| TxBuildError::Sign(e.to_string()))?
            .finalize(&self.secp, key)
            .map_err(|_| TxBuildError::Sign("taproot tree".into()))
    }

    /// Commit and reveal for `raw` (a signed L2 tx of `chain_id`), funded by `coin` (a key-path
    /// coin of [`Self::address`] worth `value`), at `sat_per_vb`.
    pub fn post(
        &self,
        coin: OutPoint,
        value: u64,
        chain_id: u32,
        raw: &[u8],
        sat_per_vb: f64,
    ) -> Result<Posting, TxBuildError> {
        let leaf = envelope_script(&self.keypair.x_only_public_key().0, chain_id, raw);
        let info = self.spend_info(&leaf)?;
        let commit_script = ScriptBuf::new_p2tr_tweaked(info.output_key());
        // The reveal's size does not depend on the commit's txid: size it first.
        let probe = self.reveal(OutPoint::null(), 0, &leaf, &info, &commit_script)?;
        let reveal_fee = (probe.vsize() as f64 * sat_per_vb).ceil() as u64;
        let commit_value = REVEAL_OUTPUT + reveal_fee;
        let commit_probe = self.commit(coin, value, commit_value, &commit_script, MIN_CHANGE)?;
        let commit_fee = (commit_probe.vsize() as f64 * sat_per_vb).ceil() as u64;
        let needed = commit_value + commit_fee + MIN_CHANGE;
        let change = value.checked_sub(commit_value + commit_fee).filter(|c| *c >= MIN_CHANGE);
        let change = change.ok_or(TxBuildError::TooSmall { have: value, fee: needed })?;
        let commit = self.commit(coin, value, commit_value, &commit_script, change)?;
        let reveal =
            self.reveal(OutPoint::new(commit.compute_txid(), 0), commit_value, &leaf, &info, &commit_script)?;
        Ok(Posting { commit, reveal })
    }

    /// A tx spending `coin` (a key-path coin of [`Self::address`] worth `value`) to `outputs`,
    /// with change back to the address, at `sat_per_vb` (`bss tunnel deposit` pays the vault
    /// and the deposit OP_RETURN with it).
    pub fn pay(
        &self,
        coin: OutPoint,
        value: u64,
        outputs: Vec<TxOut>,
        sat_per_vb: f64,
    ) -> Result<Transaction, TxBuildError> {
        let mine = self.address().script_pubkey();
        let spent: u64 = outputs.iter().map(|o| o.value.to_sat()).sum();
        let build = |change: u64| -> Result<Transaction, TxBuildError> {
            let mut out = outputs.clone();
            out.push(TxOut { value: Amount::from_sat(change), script_pubkey: mine.clone() });
            let mut tx = Transaction {
                version: transaction::Version::TWO,
                lock_time: absolute::LockTime::ZERO,
                input: vec![txin(coin)],
                output: out,
            };
            sign_key_path(
                &self.secp,
                &self.keypair,
                &mut tx,
                TxOut { value: Amount::from_sat(value), script_pubkey: mine.clone() },
            )?;
            Ok(tx)
        };
        let fee = (build(MIN_CHANGE)?.vsize() as f64 * sat_per_vb).ceil() as u64;
        let change = value.checked_sub(spent + fee).filter(|c| *c >= MIN_CHANGE);
        build(change.ok_or(TxBuildError::TooSmall { have: value, fee: spent + fee + MIN_CHANGE })?)
    }

    fn commit(
        &self,
        coin: OutPoint,
        value: u64,
        commit_value: u64,
        commit_script: &ScriptBuf,
        change: u64,
    ) -> Result<Transaction, TxBuildError> {
        let mine = self.address().script_pubkey();
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![txin(coin)],
            output: vec![
                TxOut { value: Amount::from_sat(commit_value), script_pubkey: commit_script.clone() },
                TxOut { value: Amount::from_sat(change), script_pubkey: mine.clone() },
            ],
        };
        sign_key_path(
            &self.secp,
            &self.keypair,
            &mut tx,
            TxOut { value: Amount::from_sat(value), script_pubkey: mine },
        )?;
        Ok(tx)
    }

    fn reveal(
        &self,
        commit: OutPoint,
        commit_value: u64,
        leaf: &ScriptBuf,
        info: &TaprootSpendInfo,
        commit_script: &ScriptBuf,
    ) -> Result<Transaction, TxBuildError> {
        let control = info
            .control_block(&(leaf.clone(), LeafVersion::TapScript))
            .ok_or_else(|| TxBuildError::Sign("no control block for the envelope leaf".into()))?;
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![txin(commit)],
            output: vec![TxOut {
                value: Amount::from_sat(REVEAL_OUTPUT),
                script_pubkey: self.address().script_pubkey(),
            }],
        };
        let prevouts = [TxOut { value: Amount::from_sat(commit_value), script_pubkey: commit_script.clone() }];
        let leaf_hash = bitcoin::TapLeafHash::from_script(leaf, LeafVersion::TapScript);
        let mut cache = SighashCache::new(&mut tx);
        let sighash = cache
            .taproot_script_spend_signature_hash(0, &Prevouts::All(&prevouts), leaf_hash, TapSighashType::Default)
            .map_err(|e| TxBuildError::Sign(e.to_string()))?;
        let sig = self.secp.sign_schnorr(&Message::from_digest(sighash.to_byte_array()), &self.keypair);
        let sig = bitcoin::taproot::Signature { signature: sig, sighash_type: TapSighashType::Default };
        if let Some(w) = cache.witness_mut(0) {
            let mut witness = Witness::new();
            witness.push(sig.to_vec());
            witness.push(leaf.as_bytes());
            witness.push(control.serialize());
            *w = witness;
        }
        Ok(tx)
    }
}

fn txin(previous_output: OutPoint) -> TxIn {
    TxIn {
        previous_output,
        script_sig: ScriptBuf::new(),
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        witness: Witness::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox::envelopes;

    #[test]
    fn the_reveal_carries_the_envelope_and_pays_its_fee() {
        let poster = ForcedPoster::new([9; 32], Network::Regtest).expect("key");
        let raw = vec![0x02u8; 1_300];
        let coin = OutPoint::new(bitcoin::Txid::all_zeros(), 0);
        let p = poster.post(coin, 5_000_000_000, 1337, &raw, 2.0).expect("post");
        assert_eq!(envelopes(&p.reveal), vec![(1337, raw)]);
        assert_eq!(p.reveal.input[0].previous_output.txid, p.commit.compute_txid());
        let fee = p.commit.output[0].value.to_sat() - p.reveal.output[0].value.to_sat();
        assert!(fee as f64 >= p.reveal.vsize() as f64 * 2.0, "reveal fee {fee} for {} vB", p.reveal.vsize());
        assert!(envelopes(&p.commit).is_empty());
        assert!(poster.post(coin, 1_200, 1337, &[1, 2, 3], 2.0).is_err(), "too small a coin");
    }
}
