//! The one bincode configuration used for everything that is hashed or signed.
//!
//! Big-endian, fixed-width integers: the encoding of a value never depends on its magnitude, so
//! every replica hashes exactly the same bytes.

use bincode::config::{BigEndian, Configuration, Fixint, Limit};

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

/// Most bytes a decode of untrusted input may claim for its containers in total. Without a limit
/// bincode allocates whatever length prefix a peer writes (found by the wire decoder's proptest:
/// a 20-byte frame claiming 2^64 bytes aborted the process).
pub const PEER_DECODE_LIMIT: usize = 256 * 1024 * 1024;

/// The canonical configuration with [`PEER_DECODE_LIMIT`]: same bytes, bounded decoding.
pub const BOUNDED: Configuration<BigEndian, Fixint, Limit<PEER_DECODE_LIMIT>> = CANONICAL.with_limit();

/// Decodes untrusted canonical bytes (from a peer or an RPC client): claimed lengths are checked
/// against [`PEER_DECODE_LIMIT`] before anything is allocated; trailing bytes are refused.
pub fn decode_untrusted<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, BOUNDED)?;
    if read != bytes.len() {
        return Err(bincode::error::DecodeError::OtherString(format!("{} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_huge_length_claim_is_an_error_not_an_allocation() {
        // A Vec<u8> claiming u64::MAX bytes, then nothing.
        let bytes = [0xffu8; 8];
        assert!(super::decode_untrusted::<Vec<u8>>(&bytes).is_err());
        assert!(super::decode_untrusted::<Vec<Vec<u8>>>(&[0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0])
            .is_err());
        let ok = super::encode(&vec![7u8; 1000]).expect("encode");
        assert_eq!(super::decode_untrusted::<Vec<u8>>(&ok).expect("decode"), vec![7u8; 1000]);
    }
}
