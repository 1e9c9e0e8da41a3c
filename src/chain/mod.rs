//! The chain: the store plus the head, block import (validate -> commit) and block production.
//!
//! Import and production are serialised by one lock (a `std::sync::Mutex` held only across
//! synchronous validation and the store commit, never across `.await`).

pub mod producer;
pub mod store;

use crate::crypto::Keypair;
use crate::genesis::ChainSpec;
use crate::mempool::Mempool;
use crate::state::apply_block;
use crate::types::{Block, BlockHeader, Hash};
use crate::validation::{self, BlockContext, ValidationError, Verified};
use std::collections::HashSet;
use std::sync::{Mutex, RwLock};
pub use store::{ChainStore, StoreError};

/// Most transactions the producer puts in one block.
pub const PRODUCER_MAX_TXS: usize = 5_000;
/// Most bytes of transactions the producer puts in one block.
pub const PRODUCER_MAX_BYTES: usize = 2 * 1024 * 1024;

/// The head block's summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Height.
    pub height: u64,
    /// Hash.
    pub hash: Hash,
    /// Slot.
    pub slot: u64,
}

/// Why a block was not imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The block is invalid (or not importable now); see [`ValidationError::verdict`].
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The chain state of one node.
pub struct Chain {
    /// The database.
    pub store: ChainStore,
    /// Genesis spec.
    pub spec: ChainSpec,
    head: RwLock<Head>,
    lock: Mutex<()>,
}

fn head_of(h: &BlockHeader, hash: Hash) -> Head {
    Head {
        height: h.height,
        hash,
        slot: h.slot,
    }
}

impl Chain {
    /// Opens the store in `dir` for `spec` and loads the head.
    pub fn open(dir: &std::path::Path, spec: ChainSpec) -> Result<Chain, StoreError> {
        let store = ChainStore::open(dir, &spec)?;
        let hash = store.head_hash()?;
        let block = store
            .block(&hash)?
            .ok_or(StoreError::Corrupt("head block"))?;
        Ok(Chain {
            head: RwLock::new(head_of(&block.header, hash)),
            store,
            spec,
            lock: Mutex::new(()),
        })
    }

    /// The current head.
    pub fn head(&self) -> Head {
        *self.head.read().expect("head lock poisoned")
    }

    /// Validates `block` against the head and commits it. `already_verified` says which
    /// transaction signatures were verified on mempool admission.
    ///
    /// Errors: [`ValidationError::Known`] for a stored block, `UnknownParent` when the parent is
    /// missing (the caller syncs), `NotOnHead` when it extends another block we have, and any
    /// validation failure.
    pub fn import(
        &self,
        block: Block,
        already_verified: &HashSet<Hash>,
    ) -> Result<Verified<Block>, ImportError> {
        let _g = self.lock.lock().expect("chain lock poisoned");
        let hash = block.hash();
        if self.store.has_block(&hash)? {
            return Err(ValidationError::Known.into());
        }
        let head = self.head();
        let parent_hash = block.header.parent;
        if parent_hash != head.hash {
            return Err(if self.store.has_block(&parent_hash)? {
                ValidationError::NotOnHead
            } else {
                ValidationError::UnknownParent(parent_hash)
            }
            .into());
        }
        let parent = self
            .store
            .block(&head.hash)?
            .ok_or(StoreError::Corrupt("head block"))?;
        let ctx = BlockContext {
            spec: &self.spec,
            parent: &parent.header,
            now_ms: crate::now_ms(),
            state: &self.store,
            already_verified: &|h| already_verified.contains(h),
        };
        let t0 = std::time::Instant::now();
        let (verified, diff) = validation::check_block(block, &ctx)?;
        let t1 = std::time::Instant::now();
        self.store.commit_block(&verified, &diff)?;
        tracing::debug!(
            height = verified.inner().header.height,
            txs = verified.inner().txs.len(),
            check_us = (t1 - t0).as_micros() as u64,
            commit_us = t1.elapsed().as_micros() as u64,
            "block import timing"
        );
        *self.head.write().expect("head lock poisoned") = head_of(&verified.inner().header, hash);
        Ok(verified)
    }

    /// Builds, signs and commits a block for `slot` on top of the head with the best
    /// transactions of `mempool`. Returns `None` if the head is already at or past `slot`.
    pub fn produce(
        &self,
        key: &Keypair,
        slot: u64,
        mempool: &Mutex<Mempool>,
    ) -> Result<Option<Verified<Block>>, ImportError> {
        let _g = self.lock.lock().expect("chain lock poisoned");
        let head = self.head();
        if head.slot >= slot {
            return Ok(None);
        }
        let txs = mempool.lock().expect("mempool lock poisoned").select(
            &self.store,
            &key.address(),
            PRODUCER_MAX_TXS,
            PRODUCER_MAX_BYTES,
        );
        let start = self.spec.slot_start_ms(slot);
        let timestamp_ms = crate::now_ms().clamp(start, start + self.spec.slot_ms - 1);
        let tx_root = crate::types::merkle_root(&txs.iter().map(|t| t.hash()).collect::<Vec<_>>());
        let mut block = Block {
            header: BlockHeader {
                chain_id: self.spec.chain_id,
                height: head.height + 1,
                slot,
                parent: head.hash,
                timestamp_ms,
                producer: key.public(),
                tx_root,
                tx_count: txs.len() as u32,
            },
            signature: crate::types::Signature([0; 64]),
            txs,
        };
        key.sign_block(&mut block);
        // Selection already applied every transaction to this state; a failure here is a bug.
        let diff =
            apply_block(&self.store, &block).map_err(|(i, e)| ValidationError::InvalidBlockTx {
                index: i,
                reason: e.to_string(),
            })?;
        let verified = validation::own_block(block);
        self.store.commit_block(&verified, &diff)?;
        let hash = verified.inner().hash();
        *self.head.write().expect("head lock poisoned") = head_of(&verified.inner().header, hash);
        Ok(Some(verified))
    }

    /// The canonical block at `height`.
    pub fn block_at(&self, height: u64) -> Result<Option<Verified<Block>>, StoreError> {
        Ok(self.store.block_at(height)?.map(validation::stored_block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::{DevAccounts, GenesisFile};
    use crate::state::StateView;

    fn spec(chain_id: u64) -> ChainSpec {
        GenesisFile {
            chain_id,
            genesis_time_ms: 0,
            slot_ms: 1000,
            validators: vec![hex::encode(Keypair::dev_validator(0).public().0)],
            alloc: Default::default(),
            dev_accounts: Some(DevAccounts {
                count: 2,
                balance: 1_000,
            }),
            bootnodes: vec![],
        }
        .to_spec()
        .unwrap()
    }

    #[test]
    fn reopen_resumes_at_head_and_refuses_another_chain() {
        let dir = tempfile::tempdir().unwrap();
        let key = Keypair::dev_validator(0);
        let mempool = Mutex::new(Mempool::new(10));
        let sender = Keypair::dev_account(0);
        let tx = sender.sign_tx(crate::types::TxBody {
            chain_id: 5,
            nonce: 0,
            from: sender.public(),
            to: Keypair::dev_account(1).address(),
            amount: 100,
            fee: 1,
            data: vec![],
        });
        let head = {
            let chain = Chain::open(dir.path(), spec(5)).unwrap();
            let acc = chain.store.account(&sender.address());
            let v = validation::check_tx(tx, 5).unwrap();
            mempool.lock().unwrap().insert(v, acc).unwrap();
            let b = chain.produce(&key, 1, &mempool).unwrap().unwrap();
            assert_eq!(b.inner().txs.len(), 1);
            assert!(
                chain.produce(&key, 1, &mempool).unwrap().is_none(),
                "slot already filled"
            );
            chain.head()
        };
        let chain = Chain::open(dir.path(), spec(5)).unwrap();
        assert_eq!(chain.head(), head);
        assert_eq!(head.height, 1);
        assert_eq!(chain.store.account(&sender.address()).balance, 1_000 - 101);
        assert_eq!(
            chain.store.account(&key.address()).balance,
            1,
            "fee to the producer"
        );
        let loc = chain
            .store
            .tx_location(&chain.block_at(1).unwrap().unwrap().inner().txs[0].hash());
        assert_eq!(loc.unwrap().unwrap().height, 1);
        drop(chain);
        let err = Chain::open(dir.path(), spec(6))
            .err()
            .expect("another genesis is refused");
        assert!(matches!(err, StoreError::WrongGenesis { .. }), "{err}");
    }
}
