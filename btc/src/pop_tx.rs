//! Keystone transactions: one P2TR key-path input, one 52-byte OP_RETURN output, P2TR change
//! (174 vB).
//! No bitcoind wallet: inputs come from the watcher's index, signing from the bitcoin crate.

use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, Secp256k1, TapTweak};
use bitcoin::script::PushBytesBuf;
use bitcoin::secp256k1::{All, Message, SecretKey, XOnlyPublicKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    absolute, transaction, Address, Amount, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

#[derive(Debug, thiserror::Error)]
pub enum TxBuildError {
    #[error("input of {have} sats cannot pay a fee of {fee} sats and keep a change output")]
    TooSmall { have: u64, fee: u64 },
    #[error("signing: {0}")]
    Sign(String),
}

/// Below this a change output would be dust (P2TR at 3 sat/vB dust relay fee).
const MIN_CHANGE: u64 = 330;

pub struct PopWallet {
    secp: Secp256k1<All>,
    keypair: Keypair,
    pub address: Address,
}

impl PopWallet {
    pub fn new(secret: [u8; 32], network: Network) -> Result<Self, TxBuildError> {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&secret).map_err(|e| TxBuildError::Sign(e.to_string()))?;
        let keypair = Keypair::from_secret_key(&secp, &sk);
        let (xonly, _) = keypair.x_only_public_key();
        let address = Address::p2tr(&secp, xonly, None, network);
        Ok(Self { secp, keypair, address })
    }

    pub fn script(&self) -> ScriptBuf {
        self.address.script_pubkey()
    }

    /// The x-only public key other operators list in `[pop] keystone_keys`.
    pub fn public_key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }
}

/// The output script of an operator's keystone key (P2TR key path, no script tree): a keystone
/// counts only when its tx spends a coin paying one of these.
pub fn keystone_script(key: XOnlyPublicKey) -> ScriptBuf {
    ScriptBuf::new_p2tr(&Secp256k1::verification_only(), key, None)
}

impl PopWallet {
    /// A signed keystone tx spending `input` (worth `value`) at `sat_per_vb`.
    pub fn keystone_tx(
        &self,
        input: OutPoint,
        value: u64,
        payload: &[u8; crate::keystone::LEN],
        sat_per_vb: f64,
    ) -> Result<Transaction, TxBuildError> {
        // Size with a 64-byte Schnorr signature is exact before signing.
        let probe = self.build(input, value, payload, 0)?;
        let fee = (probe.vsize() as f64 * sat_per_vb).ceil() as u64;
        let change =
            value.checked_sub(fee).filter(|c| *c >= MIN_CHANGE).ok_or(TxBuildError::TooSmall { have: value, fee })?;
        self.build(input, value, payload, change)
    }

    fn build(
        &self,
        input: OutPoint,
        value: u64,
        payload: &[u8; crate::keystone::LEN],
        change: u64,
    ) -> Result<Transaction, TxBuildError> {
        let push = PushBytesBuf::try_from(payload.to_vec()).map_err(|e| TxBuildError::Sign(e.to_string()))?;
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: input,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::default(),
            }],
            output: vec![
                TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(push) },
                TxOut { value: Amount::from_sat(change.max(MIN_CHANGE)), script_pubkey: self.script() },
            ],
        };
        let prevout = TxOut { value: Amount::from_sat(value), script_pubkey: self.script() };
        sign_key_path(&self.secp, &self.keypair, &mut tx, prevout)?;
        Ok(tx)
    }
}

/// Signs input 0 of `tx` (its only input, spending `prevout`) on the key path of `keypair`'s
/// P2TR output with no script tree.
pub(crate) fn sign_key_path(
    secp: &Secp256k1<All>,
    keypair: &Keypair,
    tx: &mut Transaction,
    prevout: TxOut,
) -> Result<(), TxBuildError> {
    let prevouts = [prevout];
    let mut cache = SighashCache::new(tx);
    let sighash = cache
        .taproot_key_spend_signature_hash(0, &Prevouts::All(&prevouts), TapSighashType::Default)
        .map_err(|e| TxBuildError::Sign(e.to_string()))?;
    let tweaked = keypair.tap_tweak(secp, None);
    let sig = secp.sign_schnorr(&Message::from_digest(sighash.to_byte_array()), &tweaked.to_keypair());
    let sig = bitcoin::taproot::Signature { signature: sig, sighash_type: TapSighashType::Default };
    if let Some(w) = cache.witness_mut(0) {
        *w = Witness::p2tr_key_spend(&sig);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_tx_size_and_fee() {
        let w = PopWallet::new([3; 32], Network::Regtest).expect("wallet");
        let input = OutPoint::new(bitcoin::Txid::all_zeros(), 0);
        let tx = w.keystone_tx(input, 100_000, &[7; 52], 1.0).expect("tx");
        // 10.5 (tx) + 57.5 (P2TR key-path input) + 63 (52-byte OP_RETURN) + 43 (P2TR change):
        // within the 175 vB budget.
        assert_eq!(tx.vsize(), 174);
        assert_eq!(tx.output[1].value.to_sat(), 100_000 - 174);
        assert!(w.keystone_tx(input, 300, &[7; 52], 1.0).is_err());
    }
}
