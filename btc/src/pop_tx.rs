//! Keystone transactions (version 3): one P2TR script-path input whose witness carries the
//! certified keystone, one P2TR change output back to the same address.
//!
//! A PoP wallet's address is a taproot output with internal key K and one leaf,
//! `OP_2DROP × 8  <K> OP_CHECKSIG`: the leaf drops 16 data items and checks K's signature. A
//! keystone tx spends such a coin with the witness
//! `[sig, statement‖bitmap, sig_1 … sig_q, (empty items up to 16), leaf, control block]`, so the
//! statement and the federation's signatures ride in the witness at a quarter of their weight,
//! with no commit tx, and each item is at most 80 bytes (standard under Bitcoin Core's policy).
//! The leaf is the same for any federation of up to 22 operators (quorum ≤ 15), so a wallet's
//! address never changes with the operator set. The change pays the same address, so every
//! keystone tx funds the next. Vsize: 197 vB with 4 operators (`keystone_tx_sizes` measures 4,
//! 7 and 10: 197, 229, 261).
//!
//! The coin owner's signature does not cover the witness data: whoever relays or mines the tx
//! can swap the data items. The certificate authenticates itself, so a swap can only make the
//! keystone not count (the poster sees no counted keystone and posts again), never make a false
//! one count.
//! No bitcoind wallet: inputs come from the watcher's index, signing from the bitcoin crate.

use crate::keystone::{CertifiedKeystone, KeystoneError};
use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, Secp256k1, TapTweak};
use bitcoin::opcodes::all::{OP_2DROP, OP_CHECKSIG};
use bitcoin::script::{Builder, Instruction};
use bitcoin::secp256k1::{All, Message, SecretKey, XOnlyPublicKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::{LeafVersion, TaprootBuilder, TaprootSpendInfo};
use bitcoin::{
    absolute, transaction, Address, Amount, Network, OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness,
};

#[derive(Debug, thiserror::Error)]
pub enum TxBuildError {
    #[error("input of {have} sats cannot pay a fee of {fee} sats and keep a change output")]
    TooSmall { have: u64, fee: u64 },
    #[error("a certificate of {0} signatures does not fit the keystone leaf ({MAX_SIGNATURES} at most)")]
    TooManySignatures(usize),
    #[error("signing: {0}")]
    Sign(String),
}

/// Below this a change output would be dust (P2TR at 3 sat/vB dust relay fee).
const MIN_CHANGE: u64 = 330;
/// Data items the keystone leaf drops: the statement item and up to 15 signatures.
pub const DATA_ITEMS: usize = 16;
pub const MAX_SIGNATURES: usize = DATA_ITEMS - 1;

/// The keystone leaf of key `k`: drop [`DATA_ITEMS`] items, check a signature by `k`.
pub fn keystone_leaf(k: XOnlyPublicKey) -> ScriptBuf {
    let mut b = Builder::new();
    for _ in 0..DATA_ITEMS / 2 {
        b = b.push_opcode(OP_2DROP);
    }
    b.push_x_only_key(&k).push_opcode(OP_CHECKSIG).into_script()
}

/// Whether `script` is a keystone leaf (of any key).
fn is_keystone_leaf(script: &Script) -> bool {
    let mut ins = script.instructions();
    for _ in 0..DATA_ITEMS / 2 {
        if !matches!(ins.next(), Some(Ok(Instruction::Op(OP_2DROP)))) {
            return false;
        }
    }
    matches!(ins.next(), Some(Ok(Instruction::PushBytes(p))) if p.len() == 32)
        && matches!(ins.next(), Some(Ok(Instruction::Op(OP_CHECKSIG))))
        && ins.next().is_none()
}

/// The certified keystone a tx input's witness carries, if it spends a keystone leaf: `None`
/// for any other witness; an error for a keystone leaf spend whose data does not decode.
pub fn witness_keystone(w: &Witness) -> Option<Result<CertifiedKeystone, KeystoneError>> {
    let leaf = w.taproot_leaf_script()?;
    if leaf.version != LeafVersion::TapScript || !is_keystone_leaf(leaf.script) {
        return None;
    }
    // [sig, data × DATA_ITEMS, leaf, control] (an annex is not standard; one makes it not ours).
    if w.len() != DATA_ITEMS + 3 {
        return None;
    }
    let items: Vec<&[u8]> = w.iter().skip(1).take(DATA_ITEMS).collect();
    let used = items.iter().rposition(|i| !i.is_empty()).map_or(0, |p| p + 1);
    Some(CertifiedKeystone::from_witness_items(&items[..used]))
}

pub struct PopWallet {
    secp: Secp256k1<All>,
    keypair: Keypair,
    leaf: ScriptBuf,
    spend: TaprootSpendInfo,
    pub address: Address,
}

impl PopWallet {
    pub fn new(secret: [u8; 32], network: Network) -> Result<Self, TxBuildError> {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&secret).map_err(|e| TxBuildError::Sign(e.to_string()))?;
        let keypair = Keypair::from_secret_key(&secp, &sk);
        let (xonly, _) = keypair.x_only_public_key();
        let leaf = keystone_leaf(xonly);
        let spend = TaprootBuilder::new()
            .add_leaf(0, leaf.clone())
            .and_then(|b| b.finalize(&secp, xonly).map_err(|_| bitcoin::taproot::TaprootBuilderError::EmptyTree))
            .map_err(|e| TxBuildError::Sign(e.to_string()))?;
        let address = Address::p2tr(&secp, xonly, spend.merkle_root(), network);
        Ok(Self { secp, keypair, leaf, spend, address })
    }

    pub fn script(&self) -> ScriptBuf {
        self.address.script_pubkey()
    }

    /// The wallet's x-only public key (its internal key and the leaf's key).
    pub fn public_key(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    /// A signed keystone tx spending `input` (worth `value`) at `sat_per_vb`.
    pub fn keystone_tx(
        &self,
        input: OutPoint,
        value: u64,
        cert: &CertifiedKeystone,
        sat_per_vb: f64,
    ) -> Result<Transaction, TxBuildError> {
        if cert.signatures.len() > MAX_SIGNATURES {
            return Err(TxBuildError::TooManySignatures(cert.signatures.len()));
        }
        // Size with a 64-byte Schnorr signature is exact before signing.
        let probe = self.build(input, value, cert, 0)?;
        let fee = (probe.vsize() as f64 * sat_per_vb).ceil() as u64;
        let change =
            value.checked_sub(fee).filter(|c| *c >= MIN_CHANGE).ok_or(TxBuildError::TooSmall { have: value, fee })?;
        self.build(input, value, cert, change)
    }

    fn build(
        &self,
        input: OutPoint,
        value: u64,
        cert: &CertifiedKeystone,
        change: u64,
    ) -> Result<Transaction, TxBuildError> {
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: input,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::default(),
            }],
            output: vec![TxOut { value: Amount::from_sat(change.max(MIN_CHANGE)), script_pubkey: self.script() }],
        };
        let prevouts = [TxOut { value: Amount::from_sat(value), script_pubkey: self.script() }];
        let leaf_hash = bitcoin::TapLeafHash::from_script(&self.leaf, LeafVersion::TapScript);
        let sighash = SighashCache::new(&tx)
            .taproot_script_spend_signature_hash(0, &Prevouts::All(&prevouts), leaf_hash, TapSighashType::Default)
            .map_err(|e| TxBuildError::Sign(e.to_string()))?;
        let sig = self.secp.sign_schnorr(&Message::from_digest(sighash.to_byte_array()), &self.keypair);
        let control = self
            .spend
            .control_block(&(self.leaf.clone(), LeafVersion::TapScript))
            .ok_or_else(|| TxBuildError::Sign("no control block for the keystone leaf".into()))?;
        let mut w = Witness::new();
        w.push(sig.as_ref());
        let items = cert.witness_items();
        for i in 0..DATA_ITEMS {
            w.push(items.get(i).map_or(&[][..], |v| v.as_slice()));
        }
        w.push(self.leaf.as_bytes());
        w.push(control.serialize());
        tx.input[0].witness = w;
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
mod tests;
