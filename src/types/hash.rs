//! 32-byte SHA-256 hashes and the binary merkle root of transaction hashes.

use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest. Displayed as 64 lowercase hex digits (no prefix, as Bitcoin Core shows
/// hashes); [`Hash::to_0x`] gives the Ethereum form.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, bincode::Encode, bincode::Decode,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash: the genesis block's "no parent", the merkle root of no transactions.
    pub const ZERO: Hash = Hash([0; 32]);

    /// `0x` followed by 64 hex digits, as Ethereum JSON-RPC shows hashes.
    pub fn to_0x(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", hex::encode(&self.0[..8]))
    }
}

impl FromStr for Hash {
    type Err = String;
    /// Accepts 64 hex digits with or without `0x`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        super::parse_hex_array::<32>(s).map(Hash)
    }
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    Hash(h.finalize().into())
}

/// Binary merkle root of `leaves` (transaction hashes in block order).
///
/// Interior node = sha256(0x01 || left || right); an odd node at the end of a level is carried
/// up unchanged (so, unlike Bitcoin's duplication rule, no two lists share a root; blocks with
/// a repeated transaction are rejected anyway). No leaves -> [`Hash::ZERO`].
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::ZERO;
    }
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => sha256(&[&[1u8], &l.0, &r.0]),
                [one] => *one,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_root_depends_on_order_and_content() {
        let a = sha256(&[b"a"]);
        let b = sha256(&[b"b"]);
        let c = sha256(&[b"c"]);
        assert_eq!(merkle_root(&[]), Hash::ZERO);
        assert_eq!(merkle_root(&[a]), a);
        assert_ne!(merkle_root(&[a, b]), merkle_root(&[b, a]));
        assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b]));
        assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b, c, c]));
    }

    #[test]
    fn hash_hex_round_trip() {
        let h = sha256(&[b"x"]);
        assert_eq!(h.to_string().parse::<Hash>().unwrap(), h);
        assert_eq!(h.to_0x().parse::<Hash>().unwrap(), h);
        assert!("zz".parse::<Hash>().is_err());
    }
}
