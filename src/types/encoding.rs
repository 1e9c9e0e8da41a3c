//! The one canonical encoding: bincode 2 with fixed-width little-endian integers.
//!
//! Fixed-width integers make the encoding a bijection (every value has exactly one byte
//! string), so hashes of re-encoded values equal hashes of received bytes. Decoding is bounded
//! by a size limit and must consume every byte. All other modules encode through here.

use bincode::config::{self, Configuration, Fixint, LittleEndian, NoLimit};

/// Largest encoded transaction accepted from the network or RPC, in bytes.
pub const MAX_TX_BYTES: usize = 2 * 1024;
/// Largest encoded block accepted from the network, in bytes (also the gossipsub max
/// message size, rounded up).
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;

const fn base() -> Configuration<LittleEndian, Fixint, NoLimit> {
    config::standard().with_fixed_int_encoding()
}

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Input longer than the limit for its type.
    #[error("encoded value is {len} bytes, above the limit of {limit}")]
    TooLarge {
        /// Input length.
        len: usize,
        /// Limit for this type.
        limit: usize,
    },
    /// bincode rejected the bytes.
    #[error("malformed encoding: {0}")]
    Malformed(bincode::error::DecodeError),
    /// Bytes were left after the value.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

impl From<bincode::error::DecodeError> for DecodeError {
    /// Its message includes the cause, so the cause is not also its `source()` (an error chain printed with `{:#}` names it once).
    fn from(e: bincode::error::DecodeError) -> Self {
        DecodeError::Malformed(e)
    }
}

/// Canonical encoding of `value`.
pub fn encode<T: bincode::Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, base()).expect("encoding into a Vec cannot fail")
}

/// Encoded length of `value` in bytes, without allocating.
pub fn encoded_len<T: bincode::Encode>(value: &T) -> usize {
    let mut w = bincode::enc::write::SizeWriter::default();
    bincode::encode_into_writer(value, &mut w, base()).expect("size writer cannot fail");
    w.bytes_written
}

/// Decodes exactly one `T` from `bytes`, refusing inputs over `limit` bytes and trailing bytes.
///
/// Errors: [`DecodeError`]; never panics on any input (allocation is bounded by `limit`,
/// which bincode also enforces for length prefixes).
pub fn decode<T: bincode::Decode<()>>(bytes: &[u8], limit: usize) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    // bincode claims every length prefix against this limit before allocating, so a
    // forged prefix costs at most MAX_BLOCK_BYTES of memory and then fails.
    let (value, read) =
        bincode::decode_from_slice(bytes, base().with_limit::<{ MAX_BLOCK_BYTES }>())?;
    if read != bytes.len() {
        return Err(DecodeError::Trailing(bytes.len() - read));
    }
    Ok(value)
}
