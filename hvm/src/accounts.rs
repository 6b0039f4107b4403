//! Development accounts and local signing.
//!
//! The usual development mnemonic ("test test … junk") derived along m/44'/60'/0'/0/i gives the
//! same ten funded accounts every Ethereum tool knows, and [`DevKey`] signs transactions with
//! libsecp256k1 for tests, the load generator and the benchmark.

use alloy_consensus::{SignableTransaction, TxEnvelope};
use alloy_eips::eip2718::Encodable2718;
use alloy_primitives::{keccak256, Address, Bytes, Signature, B256, U256};
use bitcoin::bip32::{DerivationPath, Xpriv};
use secp256k1::{Message, PublicKey, SecretKey, SECP256K1};
use std::str::FromStr;

pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("mnemonic: {0}")]
    Mnemonic(String),
    #[error("derivation: {0}")]
    Derivation(String),
    #[error("secret key: {0}")]
    Secret(String),
}

/// A secp256k1 account key.
#[derive(Clone)]
pub struct DevKey {
    secret: SecretKey,
    pub address: Address,
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevKey({})", self.address)
    }
}

impl DevKey {
    pub fn from_secret(bytes: [u8; 32]) -> Result<Self, KeyError> {
        let secret = SecretKey::from_byte_array(bytes).map_err(|e| KeyError::Secret(e.to_string()))?;
        let pk = PublicKey::from_secret_key_global(&secret);
        let address = Address::from_slice(&keccak256(&pk.serialize_uncompressed()[1..])[12..]);
        Ok(Self { secret, address })
    }

    /// A deterministic key from a seed (load generators).
    pub fn from_seed(seed: u64) -> Self {
        let mut counter = 0u64;
        loop {
            let mut material = seed.to_be_bytes().to_vec();
            material.extend_from_slice(&counter.to_be_bytes());
            if let Ok(k) = Self::from_secret(keccak256(&material).0) {
                return k;
            }
            counter += 1;
        }
    }

    pub fn secret_hex(&self) -> String {
        hex::encode(self.secret.secret_bytes())
    }

    /// Signs a transaction and returns its envelope.
    pub fn sign<T>(&self, tx: T) -> TxEnvelope
    where
        T: SignableTransaction<Signature>,
        TxEnvelope: From<alloy_consensus::Signed<T>>,
    {
        let hash: B256 = tx.signature_hash();
        let sig = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(hash.0), &self.secret);
        let (recid, compact) = sig.serialize_compact();
        let y_parity = i32::from(recid) == 1;
        let signature =
            Signature::new(U256::from_be_slice(&compact[..32]), U256::from_be_slice(&compact[32..]), y_parity);
        TxEnvelope::from(tx.into_signed(signature))
    }

    /// Signs and encodes (EIP-2718), ready for eth_sendRawTransaction.
    pub fn sign_raw<T>(&self, tx: T) -> Bytes
    where
        T: SignableTransaction<Signature>,
        TxEnvelope: From<alloy_consensus::Signed<T>>,
    {
        Bytes::from(self.sign(tx).encoded_2718())
    }
}

/// The first `count` accounts of a BIP-39 mnemonic along m/44'/60'/0'/0/i.
pub fn derive_accounts(mnemonic: &str, count: usize) -> Result<Vec<DevKey>, KeyError> {
    let m = bip39::Mnemonic::parse_normalized(mnemonic).map_err(|e| KeyError::Mnemonic(e.to_string()))?;
    let seed = m.to_seed("");
    let master =
        Xpriv::new_master(bitcoin::NetworkKind::Main, &seed).map_err(|e| KeyError::Derivation(e.to_string()))?;
    let secp = bitcoin::secp256k1::Secp256k1::new();
    (0..count)
        .map(|i| {
            let path = DerivationPath::from_str(&format!("m/44'/60'/0'/0/{i}"))
                .map_err(|e| KeyError::Derivation(e.to_string()))?;
            let child = master.derive_priv(&secp, &path).map_err(|e| KeyError::Derivation(e.to_string()))?;
            DevKey::from_secret(child.private_key.secret_bytes())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::SignedTx;
    use alloy_consensus::{TxEip1559, TxLegacy};
    use alloy_primitives::{address, TxKind};

    #[test]
    fn dev_mnemonic_gives_the_well_known_accounts() {
        let keys = derive_accounts(DEV_MNEMONIC, 3).expect("derive");
        assert_eq!(keys[0].address, address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"));
        assert_eq!(keys[1].address, address!("70997970C51812dc3A010C7d01b50e0d17dc79C8"));
        assert_eq!(keys[2].address, address!("3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"));
    }

    #[test]
    fn signed_txs_recover_their_sender() {
        let key = DevKey::from_seed(7);
        let raw = key.sign_raw(TxEip1559 {
            chain_id: 1,
            nonce: 3,
            gas_limit: 21_000,
            max_fee_per_gas: 2_000_000_000,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::repeat_byte(9)),
            value: U256::from(5),
            ..Default::default()
        });
        let tx = SignedTx::decode(&raw).expect("decode");
        assert_eq!(tx.sender, key.address);
        assert_eq!(tx.nonce(), 3);
        let legacy = key.sign_raw(TxLegacy {
            chain_id: Some(1),
            gas_price: 1_000_000_000,
            gas_limit: 21_000,
            to: TxKind::Call(Address::ZERO),
            ..Default::default()
        });
        assert_eq!(SignedTx::decode(&legacy).expect("decode").sender, key.address);
        let mut bad = raw.to_vec();
        bad.truncate(bad.len() - 3);
        assert!(matches!(SignedTx::decode(&bad), Err(crate::TxError::Decode(_))));
    }
}
