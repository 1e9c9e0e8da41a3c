//! Compact blocks, after BIP152: the signed header, a per-block nonce, a 6-byte short id per
//! transaction the receiver is expected to have, and the transactions it is expected to lack
//! (prefilled). A receiver rebuilds the block from its pool and asks the sender for the rest
//! (BIP152 `getblocktxn`/`blocktxn`, here `BlockTxs` on the sync protocol).
//!
//! Short ids as BIP152: SipHash-2-4 keyed with the first two little-endian 64-bit words of
//! sha256(block hash || nonce as 8 little-endian bytes), over the transaction hash, keeping
//! the low 6 bytes. Prefilled indexes are absolute positions in the block (BIP152 encodes
//! differences), strictly increasing.

use super::{sha256, Block, BlockHeader, Hash, Signature, SignedTx};
use siphasher::sip::SipHasher24;

/// A 6-byte short transaction id (BIP152).
pub type ShortId = [u8; 6];

/// A transaction sent in full inside a compact block.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct PrefilledTx {
    /// Its position in the block (absolute, 0-based).
    pub index: u32,
    /// The transaction.
    pub tx: SignedTx,
}

/// A compact block (BIP152 `cmpctblock`), the payload of `/meshnode/N/cblock/1`.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CompactBlock {
    /// The block header.
    pub header: BlockHeader,
    /// The producer's signature over it.
    pub signature: Signature,
    /// Chosen by the sender per block; keys the short ids.
    pub nonce: u64,
    /// Short ids of the transactions not prefilled, in block order.
    pub short_ids: Vec<ShortId>,
    /// Transactions sent in full, indexes strictly increasing.
    pub prefilled: Vec<PrefilledTx>,
}

/// The SipHash keys for a block's short ids.
#[derive(Clone, Copy, Debug)]
pub struct ShortIdKeys(u64, u64);

impl ShortIdKeys {
    /// Keys for block `hash` and `nonce` (BIP152).
    pub fn new(hash: &Hash, nonce: u64) -> ShortIdKeys {
        let h = sha256(&[&hash.0, &nonce.to_le_bytes()]);
        let k0 = u64::from_le_bytes(h.0[0..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(h.0[8..16].try_into().expect("8 bytes"));
        ShortIdKeys(k0, k1)
    }

    /// The short id of the transaction with hash `tx_hash`.
    pub fn short_id(&self, tx_hash: &Hash) -> ShortId {
        let v = SipHasher24::new_with_keys(self.0, self.1).hash(&tx_hash.0);
        let b = v.to_le_bytes();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }
}

impl CompactBlock {
    /// The compact form of `block` with `nonce`, prefilling the transactions for which
    /// `prefill(index, tx)` is true.
    pub fn from_block(
        block: &Block,
        nonce: u64,
        mut prefill: impl FnMut(usize, &SignedTx) -> bool,
    ) -> CompactBlock {
        let keys = ShortIdKeys::new(&block.hash(), nonce);
        let mut short_ids = Vec::new();
        let mut prefilled = Vec::new();
        for (i, tx) in block.txs.iter().enumerate() {
            if prefill(i, tx) {
                prefilled.push(PrefilledTx {
                    index: i as u32,
                    tx: tx.clone(),
                });
            } else {
                short_ids.push(keys.short_id(&tx.hash()));
            }
        }
        CompactBlock {
            header: block.header.clone(),
            signature: block.signature,
            nonce,
            short_ids,
            prefilled,
        }
    }

    /// The block hash (of the header).
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    /// The short-id keys of this block.
    pub fn keys(&self) -> ShortIdKeys {
        ShortIdKeys::new(&self.hash(), self.nonce)
    }

    /// Number of transactions in the block it stands for.
    pub fn tx_count(&self) -> usize {
        self.short_ids.len() + self.prefilled.len()
    }

    /// Each position that travels as a short id, with its short id, in block order.
    pub fn short_id_positions(&self) -> Vec<(u32, ShortId)> {
        let mut prefilled = self.prefilled.iter().map(|p| p.index).peekable();
        let mut sids = self.short_ids.iter();
        let mut out = Vec::with_capacity(self.short_ids.len());
        for i in 0..self.tx_count() as u32 {
            if prefilled.peek() == Some(&i) {
                prefilled.next();
            } else if let Some(s) = sids.next() {
                out.push((i, *s));
            }
        }
        out
    }

    /// The header-only block (no transactions) whose header checks this block must pass.
    pub fn header_block(&self) -> Block {
        Block {
            header: self.header.clone(),
            signature: self.signature,
            txs: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_depend_on_block_and_nonce() {
        let h = Hash([1; 32]);
        let t = Hash([2; 32]);
        let a = ShortIdKeys::new(&h, 1).short_id(&t);
        assert_eq!(a, ShortIdKeys::new(&h, 1).short_id(&t));
        assert_ne!(a, ShortIdKeys::new(&h, 2).short_id(&t));
        assert_ne!(a, ShortIdKeys::new(&Hash([3; 32]), 1).short_id(&t));
    }
}
