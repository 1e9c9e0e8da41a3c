//! Signed transfer transactions.
//!
//! Wire form (canonical bincode, see [`super::encoding`]): `TxBody` then a 64-byte ed25519
//! signature over `b"meshnode/tx/v1" || encode(body)`. Tx hash = sha256(encode(signed tx)).

use super::{encoding, Address, Hash, Signature};

/// Largest `data` payload of a transaction, in bytes.
pub const MAX_TX_DATA: usize = 1024;

/// Domain separator prefixed to the encoded body before signing.
pub const TX_SIGNING_DOMAIN: &[u8] = b"meshnode/tx/v1";

/// An ed25519 public key, 32 bytes (the sender of a transaction, the producer of a block).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, bincode::Encode, bincode::Decode)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The account address of this key.
    pub fn address(&self) -> Address {
        Address::from_public_key(&self.0)
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TxBody {
    /// Chain id of the network the transaction is for (replay protection).
    pub chain_id: u64,
    /// Sender's account nonce: the count of the sender's earlier transactions in the chain.
    pub nonce: u64,
    /// Sender's public key; the sender's address is derived from it.
    pub from: PublicKey,
    /// Recipient address.
    pub to: Address,
    /// Amount transferred, in base units.
    pub amount: u64,
    /// Fee paid to the block producer, in base units.
    pub fee: u64,
    /// Opaque payload, at most [`MAX_TX_DATA`] bytes.
    pub data: Vec<u8>,
}

/// A transaction body with its signature.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SignedTx {
    /// What was signed.
    pub body: TxBody,
    /// ed25519 signature by `body.from` over `TX_SIGNING_DOMAIN || encode(body)`.
    pub signature: Signature,
}

impl TxBody {
    /// The bytes the sender signs: domain separator then the canonical body encoding.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = TX_SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&encoding::encode(self));
        out
    }
}

impl SignedTx {
    /// Canonical encoding of the signed transaction (what gossip and RPC carry).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Transaction hash: sha256 of the canonical signed encoding.
    pub fn hash(&self) -> Hash {
        super::sha256(&[&self.to_bytes()])
    }

    /// Sender address (derived from `body.from`).
    pub fn sender(&self) -> Address {
        self.body.from.address()
    }

    /// amount + fee, or `None` on overflow.
    pub fn cost(&self) -> Option<u64> {
        self.body.amount.checked_add(self.body.fee)
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        encoding::encoded_len(self)
    }
}
