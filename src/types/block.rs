//! Blocks: a signed header plus the transactions it commits to.
//!
//! Header signature: ed25519 by `producer` over `b"meshnode/block/v1" || encode(header)`.
//! Block hash = sha256(encode(header)); the signature is not part of the hash.

use super::{encoding, merkle_root, Hash, PublicKey, Signature, SignedTx};

/// Domain separator prefixed to the encoded header before signing.
pub const BLOCK_SIGNING_DOMAIN: &[u8] = b"meshnode/block/v1";

/// A block header.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct BlockHeader {
    /// Chain id (must equal the genesis chain id).
    pub chain_id: u64,
    /// Height: the parent's height + 1; genesis is 0.
    pub height: u64,
    /// Proof-of-authority slot the block was produced in.
    pub slot: u64,
    /// Hash of the parent block ([`Hash::ZERO`]'s role is taken by the genesis spec hash at height 0).
    pub parent: Hash,
    /// Producer's wall clock at production, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Producer's public key (must be the validator scheduled for `slot`).
    pub producer: PublicKey,
    /// Merkle root of the transaction hashes ([`merkle_root`]).
    pub tx_root: Hash,
    /// Number of transactions.
    pub tx_count: u32,
}

/// A full block.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// Producer's signature over the header (all zero for genesis).
    pub signature: Signature,
    /// Transactions in execution order.
    pub txs: Vec<SignedTx>,
}

impl BlockHeader {
    /// Block hash: sha256 of the canonical header encoding.
    pub fn hash(&self) -> Hash {
        super::sha256(&[&encoding::encode(self)])
    }

    /// The bytes the producer signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut out = BLOCK_SIGNING_DOMAIN.to_vec();
        out.extend_from_slice(&encoding::encode(self));
        out
    }
}

impl Block {
    /// Block hash (of the header).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// Canonical encoding of the whole block (what gossip and sync carry).
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        encoding::encoded_len(self)
    }

    /// Hashes of the transactions, in order.
    pub fn tx_hashes(&self) -> Vec<Hash> {
        self.txs.iter().map(SignedTx::hash).collect()
    }

    /// Merkle root computed from the transactions (compare with `header.tx_root`).
    pub fn computed_tx_root(&self) -> Hash {
        merkle_root(&self.tx_hashes())
    }
}

/// A block's transaction hashes, in order, with the merkle root they make (computed here,
/// once). Made where the hashes are at hand already, e.g. a compact block rebuilt from the
/// mempool, so that checking the root and then gossip-verifying the block hash nothing twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxHashes {
    hashes: Vec<Hash>,
    root: Hash,
}

impl TxHashes {
    /// `hashes` and their merkle root.
    pub fn new(hashes: Vec<Hash>) -> TxHashes {
        let root = merkle_root(&hashes);
        TxHashes { hashes, root }
    }

    /// Hashes `block`'s transactions.
    pub fn of(block: &Block) -> TxHashes {
        TxHashes::new(block.tx_hashes())
    }

    /// The hashes, in order.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Their merkle root (compare with `header.tx_root`).
    pub fn root(&self) -> Hash {
        self.root
    }
}
