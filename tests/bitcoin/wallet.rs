//! Signing with the `bitcoin` crate's own sighash code and secp256k1 — an independent path from
//! the node's verifier (libbitcoinconsensus) — for P2WPKH, P2TR key-path and P2PKH spends.

use bitcoin::hashes::Hash;
use bitcoin::key::{Keypair, Secp256k1, TapTweak};
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::secp256k1::{All, Message, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::{
    absolute, transaction, Address, Amount, CompressedPublicKey, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxOut, Witness,
};

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    P2wpkh,
    P2tr,
    P2pkh,
}

pub struct Key {
    secp: Secp256k1<All>,
    sk: SecretKey,
    pub kind: Kind,
}

impl Key {
    pub fn new(seed: u8, kind: Kind) -> Key {
        Key { secp: Secp256k1::new(), sk: SecretKey::from_slice(&[seed; 32]).expect("key"), kind }
    }

    /// A key from its secret bytes (a key file read from an operator's data directory).
    pub fn from_secret(secret: [u8; 32], kind: Kind) -> Key {
        Key { secp: Secp256k1::new(), sk: SecretKey::from_slice(&secret).expect("key"), kind }
    }

    fn compressed(&self) -> CompressedPublicKey {
        CompressedPublicKey(self.sk.public_key(&self.secp))
    }

    pub fn address(&self) -> Address {
        match self.kind {
            Kind::P2wpkh => Address::p2wpkh(&self.compressed(), Network::Regtest),
            Kind::P2pkh => Address::p2pkh(self.compressed().pubkey_hash(), Network::Regtest),
            Kind::P2tr => {
                let (xonly, _) = Keypair::from_secret_key(&self.secp, &self.sk).x_only_public_key();
                Address::p2tr(&self.secp, xonly, None, Network::Regtest)
            }
        }
    }

    pub fn spend1(&self, input: &(OutPoint, TxOut), outputs: Vec<TxOut>) -> Transaction {
        self.spend(std::slice::from_ref(input), outputs)
    }

    /// Spends `inputs` (the outputs being spent, in input order) into `outputs`, signing every input.
    pub fn spend(&self, inputs: &[(OutPoint, TxOut)], outputs: Vec<TxOut>) -> Transaction {
        let mut tx = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: inputs
                .iter()
                .map(|(o, _)| TxIn {
                    previous_output: *o,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::default(),
                })
                .collect(),
            output: outputs,
        };
        let prevouts: Vec<TxOut> = inputs.iter().map(|(_, t)| t.clone()).collect();
        for i in 0..inputs.len() {
            self.sign_input(&mut tx, i, &prevouts);
        }
        tx
    }

    fn sign_input(&self, tx: &mut Transaction, i: usize, prevouts: &[TxOut]) {
        let mut cache = SighashCache::new(&mut *tx);
        match self.kind {
            Kind::P2wpkh => {
                let h = cache
                    .p2wpkh_signature_hash(i, &prevouts[i].script_pubkey, prevouts[i].value, EcdsaSighashType::All)
                    .expect("sighash");
                let sig = self.secp.sign_ecdsa(&Message::from_digest(h.to_byte_array()), &self.sk);
                let sig = bitcoin::ecdsa::Signature { signature: sig, sighash_type: EcdsaSighashType::All };
                *cache.witness_mut(i).expect("input") = Witness::p2wpkh(&sig, &self.compressed().0);
            }
            Kind::P2tr => {
                let h = cache
                    .taproot_key_spend_signature_hash(i, &Prevouts::All(prevouts), TapSighashType::Default)
                    .expect("sighash");
                let keypair = Keypair::from_secret_key(&self.secp, &self.sk).tap_tweak(&self.secp, None);
                let sig = self.secp.sign_schnorr(&Message::from_digest(h.to_byte_array()), &keypair.to_keypair());
                let sig = bitcoin::taproot::Signature { signature: sig, sighash_type: TapSighashType::Default };
                *cache.witness_mut(i).expect("input") = Witness::p2tr_key_spend(&sig);
            }
            Kind::P2pkh => {
                let h = cache
                    .legacy_signature_hash(i, &prevouts[i].script_pubkey, EcdsaSighashType::All.to_u32())
                    .expect("sighash");
                let sig = self.secp.sign_ecdsa(&Message::from_digest(h.to_byte_array()), &self.sk);
                let sig = bitcoin::ecdsa::Signature { signature: sig, sighash_type: EcdsaSighashType::All };
                let sig_bytes = PushBytesBuf::try_from(sig.to_vec()).expect("push");
                tx.input[i].script_sig = Builder::new()
                    .push_slice(sig_bytes)
                    .push_key(&bitcoin::PublicKey::new(self.compressed().0))
                    .into_script();
            }
        }
    }
}

pub fn op_return(data: &[u8]) -> TxOut {
    let push = PushBytesBuf::try_from(data.to_vec()).expect("push");
    TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(push) }
}
