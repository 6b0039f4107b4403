//! The one bincode configuration used for everything that is hashed or signed.
//!
//! Big-endian, fixed-width integers: the encoding of a value never depends on its magnitude, so
//! every replica hashes exactly the same bytes.

use bincode::config::{BigEndian, Configuration, Fixint};

/// Canonical bincode configuration: big-endian, fixed-width integers, no size limit.
pub const CANONICAL: Configuration<BigEndian, Fixint> =
    bincode::config::standard().with_big_endian().with_fixed_int_encoding();

/// Encodes a value canonically.
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, CANONICAL)
}

/// Decodes a canonically encoded value, rejecting trailing bytes.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, CANONICAL)?;
    if read != bytes.len() {
        return Err(bincode::error::DecodeError::OtherString(format!("{} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}
