//! Wire types: hashes, addresses, signed transactions and blocks, and their one canonical encoding.

pub mod address;
pub mod block;
pub mod compact;
pub mod encoding;
pub mod hash;
pub mod transaction;

pub use address::Address;
pub use block::{Block, BlockHeader, TxHashes};
pub use compact::{CompactBlock, PrefilledTx, ShortId, ShortIdKeys};
pub use hash::{merkle_root, sha256, Hash};
pub use transaction::{PublicKey, SignedTx, TxBody, MAX_TX_DATA};

/// An ed25519 signature, 64 bytes (RFC 8032).
#[derive(Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Signature(pub [u8; 64]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// Parses hex with or without a `0x` prefix into exactly `N` bytes.
///
/// Errors: a message naming the expected length, or the hex error.
pub fn parse_hex_array<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let bytes = hex::decode(s).map_err(|e| format!("invalid hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("expected {N} bytes, got {}", b.len()))
}
