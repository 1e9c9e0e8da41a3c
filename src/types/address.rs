//! 20-byte account addresses: the last 20 bytes of sha256(ed25519 public key).

use std::fmt;
use std::str::FromStr;

/// An account address, shown as `0x` + 40 lowercase hex digits (the Ethereum form).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, bincode::Encode, bincode::Decode,
)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of an ed25519 public key: the last 20 bytes of its SHA-256.
    pub fn from_public_key(pk: &[u8; 32]) -> Address {
        let h = super::sha256(&[pk]);
        let mut a = [0u8; 20];
        a.copy_from_slice(&h.0[12..]);
        Address(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = String;
    /// Accepts 40 hex digits with or without `0x` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        super::parse_hex_array::<20>(s).map(Address)
    }
}
