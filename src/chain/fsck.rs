//! `store check`: verifies a chain store's invariants offline (like `git fsck`), naming the
//! first damage it finds.

use super::store::{ChainStore, StoreError, TxLocation, ACCOUNT, CANONICAL, TXINDEX};
use crate::genesis::ChainSpec;
use crate::state::Account;
use crate::types::{encoding, Address, Hash};

/// What `store check` verified.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// Head height.
    pub head_height: u64,
    /// Head hash.
    pub head_hash: Hash,
    /// Canonical blocks checked (including genesis).
    pub blocks: u64,
    /// Stored blocks (canonical and side branches), each read from the block files (CRC-32
    /// checked), decoded and found to hash to the key it is stored under.
    pub stored_blocks: u64,
    /// Canonical transactions checked.
    pub txs: u64,
    /// Accounts compared with the replay.
    pub accounts: u64,
}

impl ChainStore {
    fn space_len(&self, space: u8) -> Result<usize, StoreError> {
        self.guard(|| {
            let mut n = 0;
            for kv in self.tree.scan_prefix([space]) {
                kv?;
                n += 1;
            }
            Ok(n)
        })
    }

    /// Verifies the store's invariants: the canonical chain links back to `spec`'s genesis
    /// (hashes, heights, parents, tx roots, producer signatures), every canonical block has an
    /// undo record, the height index has nothing above the head, every canonical transaction
    /// is found at its place ([`ChainStore::tx_location`]) and the stored tx index holds
    /// exactly those up to the indexed height ([`super::txindex`]), and the accounts equal a
    /// replay of the canonical blocks from the genesis allocations; every stored block (side
    /// branches too) decodes and hashes to its key. Run it on a store opened with
    /// [`ChainStore::open_existing`], which has verified the head marker and read every value
    /// back.
    ///
    /// Errors: the first violation, as [`StoreError::Damaged`] (whose message names the
    /// remedy), or an I/O error.
    pub fn check(&self, spec: &ChainSpec) -> Result<CheckReport, StoreError> {
        let bad = |m: String| self.damaged(format!("invariant violated: {m}"));
        let genesis = spec.genesis_block();
        if self.hash_at(0)? != Some(genesis.hash()) {
            return Err(bad("height 0 is not the genesis of the stored spec".into()));
        }
        let head_hash = self.head_hash()?;
        let head = self
            .block(&head_hash)?
            .ok_or_else(|| bad(format!("head block {head_hash} is missing")))?;
        let head_height = head.header.height;
        let mut state: std::collections::HashMap<Address, Account> = spec
            .alloc
            .iter()
            .map(|(a, b)| {
                (
                    *a,
                    Account {
                        balance: *b,
                        nonce: 0,
                    },
                )
            })
            .collect();
        let mut txs = std::collections::HashMap::new();
        let mut prev = genesis.hash();
        for h in 1..=head_height {
            let hash = self
                .hash_at(h)?
                .ok_or_else(|| bad(format!("no canonical block at height {h}")))?;
            let b = self
                .block(&hash)?
                .ok_or_else(|| bad(format!("canonical block {hash} (height {h}) is missing")))?;
            if b.hash() != hash {
                return Err(bad(format!(
                    "block stored under {hash} hashes to {}",
                    b.hash()
                )));
            }
            if b.header.height != h || b.header.parent != prev {
                return Err(bad(format!(
                    "height {h} ({hash}) does not link to height {}",
                    h - 1
                )));
            }
            if b.computed_tx_root() != b.header.tx_root {
                return Err(bad(format!("tx_root mismatch in block {h}")));
            }
            if b.header.producer != spec.producer_of(b.header.slot)
                || crate::crypto::verify_block_header(&b).is_err()
            {
                return Err(bad(format!(
                    "block {h} is not signed by the producer of its slot"
                )));
            }
            if self.undo_record(&hash)?.is_none() {
                return Err(bad(format!("block {h} has no undo record")));
            }
            let diff = crate::state::apply_block(&state, &b)
                .map_err(|(i, e)| bad(format!("block {h} tx {i} does not apply on replay: {e}")))?;
            state.extend(diff.changed);
            for (i, t) in b.txs.iter().enumerate() {
                txs.insert(
                    t.hash(),
                    TxLocation {
                        block: hash,
                        height: h,
                        index: i as u32,
                    },
                );
            }
            prev = hash;
        }
        if prev != head_hash {
            return Err(bad(format!(
                "head {head_hash} is not the canonical block at height {head_height}"
            )));
        }
        let canonical = self.space_len(CANONICAL)? as u64;
        if canonical != head_height + 1 {
            return Err(bad(format!(
                "{canonical} canonical heights for a head at {head_height}"
            )));
        }
        for (h, loc) in &txs {
            if self.tx_location(h)? != Some(*loc) {
                return Err(bad(format!("tx index entry of {h} is missing or wrong")));
            }
        }
        // Entries exist for the blocks up to the indexed height; above it (a running node's
        // last blocks) the index is behind the head, and its queue answers.
        let indexed_to = self.indexed_height()?;
        let expected = txs.values().filter(|l| l.height <= indexed_to).count();
        let indexed = self.space_len(TXINDEX)?;
        if indexed != expected {
            return Err(bad(format!(
                "tx index has {indexed} entries, the canonical chain {expected} transactions up to height {indexed_to}"
            )));
        }
        let mut accounts = 0;
        for (k, v) in self.scan(ACCOUNT)? {
            let addr = Address(k[1..].try_into().map_err(|_| self.corrupt("account key"))?);
            let stored: Account = encoding::decode(&v, 64).map_err(|_| self.corrupt("account"))?;
            let replayed = state.get(&addr).copied().unwrap_or_default();
            if stored != replayed {
                return Err(bad(format!(
                    "account {addr}: stored {stored:?}, replay gives {replayed:?}"
                )));
            }
            accounts += 1;
        }
        for (addr, acc) in &state {
            if self.get_account(addr)? != *acc {
                return Err(bad(format!("account {addr} missing from the store")));
            }
        }
        let stored_blocks = self.each_block(|k, v| {
            let b: crate::types::Block =
                encoding::decode(&v, usize::MAX).map_err(|_| self.corrupt("block"))?;
            if b.hash().0[..] != *k {
                return Err(bad(format!(
                    "a block stored under {} hashes to {}",
                    hex::encode(k),
                    b.hash()
                )));
            }
            Ok(())
        })?;
        Ok(CheckReport {
            stored_blocks,
            head_height,
            head_hash,
            blocks: head_height + 1,
            txs: txs.len() as u64,
            accounts,
        })
    }
}
