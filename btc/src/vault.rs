//! The tunnel vault (issue "BTC tunnels"): a taproot output spendable only by t of the n
//! operators' custody keys. The internal key is BIP-341's unspendable NUMS point, so there is no
//! key path; the one leaf is
//! `<k1> OP_CHECKSIG <k2> OP_CHECKSIGADD … <kn> OP_CHECKSIGADD <t> OP_NUMEQUAL`.
//! Every operator signs the same script-path sighash on its own — no interactive rounds, no
//! nonces shared between operators, nothing to lose in a crash — and any t signatures complete
//! the witness.

use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, Secp256k1};
use bitcoin::opcodes::all::{OP_CHECKSIG, OP_CHECKSIGADD, OP_NUMEQUAL};
use bitcoin::secp256k1::{All, Message, SecretKey, XOnlyPublicKey};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::taproot::{ControlBlock, LeafVersion, TapLeafHash, TaprootBuilder, TaprootSpendInfo};
use bitcoin::{Address, Network, ScriptBuf, Transaction, TxOut, Witness};

/// BIP-341's "nothing up my sleeve" point: H = lift_x(sha256(G)), whose discrete log nobody knows.
pub const NUMS: [u8; 32] = [
    0x50, 0x92, 0x9b, 0x74, 0xc1, 0xa0, 0x49, 0x54, 0xb7, 0x8b, 0x4b, 0x60, 0x35, 0xe9, 0x7a, 0x5e, 0x07, 0x8a, 0x5a,
    0x0f, 0x28, 0xec, 0x96, 0xd5, 0x47, 0xbf, 0xee, 0x9a, 0xce, 0x80, 0x3a, 0xc0,
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("a vault needs 1 to 16 custody keys and a threshold between 1 and their number (got {keys} keys, threshold {threshold})")]
    Shape { keys: usize, threshold: usize },
    #[error("custody key {0} appears twice")]
    DuplicateKey(usize),
    #[error("{0}")]
    Taproot(String),
    #[error("signature {index}: {reason}")]
    Signature { index: usize, reason: String },
}

/// The vault of one federation: its custody keys (in operator order) and threshold.
#[derive(Clone, Debug)]
pub struct Vault {
    keys: Vec<XOnlyPublicKey>,
    threshold: usize,
    leaf: ScriptBuf,
    info: TaprootSpendInfo,
}

impl Vault {
    pub fn new(keys: Vec<XOnlyPublicKey>, threshold: usize) -> Result<Self, VaultError> {
        if keys.is_empty() || keys.len() > 16 || threshold == 0 || threshold > keys.len() {
            return Err(VaultError::Shape { keys: keys.len(), threshold });
        }
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].contains(k) {
                return Err(VaultError::DuplicateKey(i));
            }
        }
        let leaf = leaf_script(&keys, threshold);
        let secp = Secp256k1::verification_only();
        let nums = XOnlyPublicKey::from_slice(&NUMS).map_err(|e| VaultError::Taproot(e.to_string()))?;
        let info = TaprootBuilder::new()
            .add_leaf(0, leaf.clone())
            .map_err(|e| VaultError::Taproot(e.to_string()))?
            .finalize(&secp, nums)
            .map_err(|_| VaultError::Taproot("the vault's script tree does not finalize".into()))?;
        Ok(Self { keys, threshold, leaf, info })
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn keys(&self) -> &[XOnlyPublicKey] {
        &self.keys
    }

    pub fn leaf(&self) -> &ScriptBuf {
        &self.leaf
    }

    pub fn script_pubkey(&self) -> ScriptBuf {
        ScriptBuf::new_p2tr_tweaked(self.info.output_key())
    }

    pub fn address(&self, network: Network) -> Address {
        Address::p2tr_tweaked(self.info.output_key(), network)
    }

    fn control_block(&self) -> Result<ControlBlock, VaultError> {
        self.info
            .control_block(&(self.leaf.clone(), LeafVersion::TapScript))
            .ok_or_else(|| VaultError::Taproot("no control block for the vault leaf".into()))
    }

    /// The script-path sighash every custody key signs for input `index` of `tx` (`prevouts`:
    /// every input's spent output, in order).
    pub fn sighash(&self, tx: &Transaction, index: usize, prevouts: &[TxOut]) -> Result<[u8; 32], VaultError> {
        let leaf_hash = TapLeafHash::from_script(&self.leaf, LeafVersion::TapScript);
        SighashCache::new(tx)
            .taproot_script_spend_signature_hash(index, &Prevouts::All(prevouts), leaf_hash, TapSighashType::Default)
            .map(|h| h.to_byte_array())
            .map_err(|e| VaultError::Taproot(e.to_string()))
    }

    /// The witness of a vault input from the signatures gathered, by key index. Exactly
    /// `threshold` of them are used (the lowest key indices present); fewer is an error.
    pub fn witness(&self, sighash: &[u8; 32], sigs: &[Option<[u8; 64]>]) -> Result<Witness, VaultError> {
        let secp = Secp256k1::verification_only();
        let msg = Message::from_digest(*sighash);
        let mut chosen: Vec<Option<[u8; 64]>> = vec![None; self.keys.len()];
        let mut have = 0;
        for (i, s) in sigs.iter().enumerate().take(self.keys.len()) {
            let Some(s) = s else { continue };
            if have == self.threshold {
                break;
            }
            let sig = bitcoin::secp256k1::schnorr::Signature::from_slice(s)
                .map_err(|e| VaultError::Signature { index: i, reason: e.to_string() })?;
            secp.verify_schnorr(&sig, &msg, &self.keys[i]).map_err(|_| VaultError::Signature {
                index: i,
                reason: "does not verify under its custody key".into(),
            })?;
            chosen[i] = Some(*s);
            have += 1;
        }
        if have < self.threshold {
            return Err(VaultError::Signature {
                index: have,
                reason: format!("{have} valid signatures, {} needed", self.threshold),
            });
        }
        self.assemble(&chosen)
    }

    /// The witness as given, without checking (tests use it to show what Bitcoin refuses).
    pub fn assemble(&self, sigs: &[Option<[u8; 64]>]) -> Result<Witness, VaultError> {
        let mut w = Witness::new();
        // The script consumes k1's signature first: it must be on top, so the witness lists
        // the keys' signatures from the last key to the first.
        for i in (0..self.keys.len()).rev() {
            match sigs.get(i).copied().flatten() {
                Some(s) => w.push(s),
                None => w.push([]),
            }
        }
        w.push(self.leaf.as_bytes());
        w.push(self.control_block()?.serialize());
        Ok(w)
    }
}

/// `<k1> CHECKSIG <k2> CHECKSIGADD … <kn> CHECKSIGADD <t> NUMEQUAL`.
fn leaf_script(keys: &[XOnlyPublicKey], threshold: usize) -> ScriptBuf {
    let mut b = bitcoin::script::Builder::new();
    for (i, k) in keys.iter().enumerate() {
        b = b.push_x_only_key(k).push_opcode(if i == 0 { OP_CHECKSIG } else { OP_CHECKSIGADD });
    }
    b.push_int(threshold as i64).push_opcode(OP_NUMEQUAL).into_script()
}

/// One operator's custody key: signs vault sighashes.
pub struct CustodyKey {
    secp: Secp256k1<All>,
    keypair: Keypair,
}

impl CustodyKey {
    pub fn new(secret: [u8; 32]) -> Result<Self, VaultError> {
        let secp = Secp256k1::new();
        let sk = SecretKey::from_slice(&secret).map_err(|e| VaultError::Taproot(e.to_string()))?;
        Ok(Self { keypair: Keypair::from_secret_key(&secp, &sk), secp })
    }

    pub fn public(&self) -> XOnlyPublicKey {
        self.keypair.x_only_public_key().0
    }

    /// A BIP-340 signature over a vault sighash (deterministic nonce: signing the same sighash
    /// twice, e.g. after a crash, gives the same signature).
    pub fn sign(&self, sighash: &[u8; 32]) -> [u8; 64] {
        let sig = self.secp.sign_schnorr_no_aux_rand(&Message::from_digest(*sighash), &self.keypair);
        *sig.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<CustodyKey> {
        (1..=n).map(|i| CustodyKey::new([i; 32]).expect("key")).collect()
    }

    #[test]
    fn the_vault_leaf_and_its_shape_rules() {
        let k = keys(4);
        let v = Vault::new(k.iter().map(|c| c.public()).collect(), 3).expect("vault");
        let asm = v.leaf().to_asm_string();
        assert_eq!(asm.matches("OP_CHECKSIGADD").count(), 3);
        assert!(asm.starts_with("OP_PUSHBYTES_32") && asm.ends_with("OP_PUSHNUM_3 OP_NUMEQUAL"), "{asm}");
        assert!(v.script_pubkey().is_p2tr());
        // The NUMS point is a valid x-only key.
        assert!(XOnlyPublicKey::from_slice(&NUMS).is_ok());
        assert!(matches!(Vault::new(vec![], 1), Err(VaultError::Shape { .. })));
        assert!(matches!(Vault::new(vec![k[0].public(); 2], 1), Err(VaultError::DuplicateKey(1))));
        assert!(matches!(Vault::new(vec![k[0].public()], 2), Err(VaultError::Shape { .. })));
    }

    #[test]
    fn witness_needs_threshold_valid_signatures_and_signing_is_repeatable() {
        let k = keys(4);
        let v = Vault::new(k.iter().map(|c| c.public()).collect(), 3).expect("vault");
        let sighash = [9u8; 32];
        assert_eq!(k[0].sign(&sighash), k[0].sign(&sighash), "a restart signs the same bytes");
        let sigs: Vec<Option<[u8; 64]>> =
            vec![Some(k[0].sign(&sighash)), None, Some(k[2].sign(&sighash)), Some(k[3].sign(&sighash))];
        let w = v.witness(&sighash, &sigs).expect("three of four");
        assert_eq!(w.len(), 4 + 2, "one slot per key, then script and control block");
        let two = vec![Some(k[0].sign(&sighash)), None, None, Some(k[3].sign(&sighash))];
        assert!(v.witness(&sighash, &two).is_err());
        let mut wrong = sigs.clone();
        wrong[2] = Some(k[1].sign(&sighash)); // key 1's signature in key 2's slot
        assert!(matches!(v.witness(&sighash, &wrong), Err(VaultError::Signature { index: 2, .. })));
    }
}
