//! The chain: the store plus the head, block import (validate -> fork choice -> commit) and
//! block building; every change of the canonical chain is announced once, as a
//! [`CanonNotification`] on a broadcast channel (reth's `CanonStateNotification`).
//!
//! Import and production are serialised by one lock (a `std::sync::Mutex` held only across
//! synchronous validation and the store commit, never across `.await`). The chain knows no
//! pool: production takes the transactions its caller selects on the head's state.

pub mod blockfile;
pub mod fsck;
pub mod recent;
pub mod repair;
pub mod store;
pub mod txindex;

use crate::crypto::Keypair;
use crate::genesis::ChainSpec;
use crate::state::{apply_block, Account, Overlay, StateView};
use crate::types::Address;
use crate::types::{Block, BlockHeader, Hash};
use crate::validation::{self, BlockContext, Unapplied, ValidationError, Verified};
pub use fsck::CheckReport;
use std::collections::HashMap;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
pub use store::{ChainStore, ReorgWrite, StoreError, UndoRecord};
use tokio::sync::broadcast;
pub use txindex::TxIndexer;

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

/// Fork choice: is a block at `height` with `hash` preferred over `head`? Greatest height,
/// then lowest hash (ARCHITECTURE.md, "Consensus for a devnet").
pub fn prefers(height: u64, hash: &Hash, head: &Head) -> bool {
    height > head.height || (height == head.height && *hash < head.hash)
}

/// What an import or a production changed in the canonical chain; broadcast to every
/// subscriber of [`Chain::subscribe`] once the change is committed (reth's
/// `CanonStateNotification`). Pool maintenance, `newHeads` subscriptions and arrival records
/// all follow the chain through it.
#[derive(Debug, Default)]
pub struct CanonNotification {
    /// Blocks that left the canonical chain (a reorg), highest first.
    pub undone: Vec<Block>,
    /// Blocks that joined it, in height order (empty for a block stored on a side branch).
    pub applied: Vec<Block>,
    /// When the change was committed to the store, µs since the Unix epoch.
    pub committed_us: u64,
}

/// What [`Chain::import`] returns: the notification it broadcast (empty for a block stored on
/// a side branch, which is not broadcast).
pub type Imported = Arc<CanonNotification>;

/// A synchronous observer of commits ([`Chain::observe`]): called with each notification and
/// the store, under the chain lock, right after the commit and before the broadcast.
pub type CommitObserver = Box<dyn Fn(&CanonNotification, &ChainStore) + Send + Sync>;

/// Notifications buffered for a slow subscriber; one that falls further behind gets
/// `Lagged` and must re-read the head.
pub const CANON_CAPACITY: usize = 1024;

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
    canon: broadcast::Sender<Arc<CanonNotification>>,
    /// `std::sync::RwLock`: read on every commit, written once per observer at start-up.
    observers: RwLock<Vec<CommitObserver>>,
    /// Blocks seen lately, imported or not (served to peers rebuilding compact blocks).
    pub recent: recent::RecentBlocks,
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
            .ok_or_else(|| store.damaged("the head block is missing"))?;
        Ok(Chain {
            head: RwLock::new(head_of(&block.header, hash)),
            store,
            spec,
            lock: Mutex::new(()),
            canon: broadcast::channel(CANON_CAPACITY).0,
            observers: RwLock::new(Vec::new()),
            recent: Default::default(),
        })
    }

    /// Canonical notifications from now on, in commit order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CanonNotification>> {
        self.canon.subscribe()
    }

    /// Registers a synchronous observer of commits: for effects that must be done before the
    /// commit's caller goes on (the pool dropping what a new block includes, so that no RPC
    /// caller sees a transaction both in a block and in the pool). Keep it short: it runs
    /// under the chain lock. Everything else should follow [`Chain::subscribe`].
    pub fn observe(&self, f: CommitObserver) {
        self.observers
            .write()
            .expect("observers lock poisoned")
            .push(f);
    }

    /// Finishes a change the store has written (readable, not yet durable): tells the
    /// observers at once (so the pool drops what the blocks include the moment they are
    /// readable), flushes, moves the head, broadcasts. Call with the chain lock held, so
    /// everyone sees changes in commit order.
    fn finish_commit(
        &self,
        undone: Vec<Block>,
        applied: Vec<Block>,
        head: Head,
    ) -> Result<Imported, ImportError> {
        let n = Arc::new(CanonNotification {
            undone,
            applied,
            committed_us: crate::now_us(),
        });
        let t0 = std::time::Instant::now();
        for o in self
            .observers
            .read()
            .expect("observers lock poisoned")
            .iter()
        {
            o(&n, &self.store);
        }
        let t1 = std::time::Instant::now();
        self.store.flush_head(head.height, head.hash)?;
        tracing::debug!(
            height = head.height,
            observers_us = (t1 - t0).as_micros() as u64,
            flush_us = t1.elapsed().as_micros() as u64,
            "commit timing"
        );
        *self.head.write().expect("head lock poisoned") = head;
        let _ = self.canon.send(n.clone());
        Ok(n)
    }

    /// The current head.
    pub fn head(&self) -> Head {
        *self.head.read().expect("head lock poisoned")
    }

    /// Imports a block: [`Chain::gossip_verify`], then [`Chain::import_verified`].
    ///
    /// Errors: as those two.
    pub fn import(
        &self,
        block: Block,
        already_verified: &HashSet<Hash>,
    ) -> Result<Imported, ImportError> {
        let verified = self.gossip_verify(block, already_verified)?;
        self.import_verified(verified)
    }

    /// Gossip verification (Lighthouse's `GossipVerifiedBlock`; consensus-specs p2p
    /// `beacon_block` rules): every check that needs no state. Not already stored; parent
    /// known and not invalid; header (chain id, height, slot after the parent's, not in the
    /// future, producer schedule, timestamp, producer signature); size, `tx_count`,
    /// `tx_root`, duplicate transactions; every transaction's fields and signature (those in
    /// `already_verified`, the pool's verified set, are skipped; the rest are batch-verified).
    /// A block that passes may be relayed before its state transition runs.
    ///
    /// Errors: `Known` for a stored block, `UnknownParent` when the parent is missing (the
    /// caller syncs), `InvalidParent` for a child of an invalid block, and any stateless
    /// validation failure.
    pub fn gossip_verify(
        &self,
        block: Block,
        already_verified: &HashSet<Hash>,
    ) -> Result<Unapplied, ImportError> {
        self.gossip_verify_hashed(block, None, already_verified)
    }

    /// [`Chain::gossip_verify`] with the transactions' hashes already computed locally
    /// ([`validation::check_block_stateless_hashed`] says which hashes qualify).
    pub fn gossip_verify_hashed(
        &self,
        block: Block,
        tx_hashes: Option<&crate::types::TxHashes>,
        already_verified: &HashSet<Hash>,
    ) -> Result<Unapplied, ImportError> {
        let parent = self.new_block_parent(&block)?;
        let ctx = BlockContext {
            spec: &self.spec,
            parent: &parent,
            now_ms: crate::now_ms(),
            state: &self.store,
            already_verified: &|h| already_verified.contains(h),
        };
        Ok(validation::check_block_stateless_hashed(
            block, tx_hashes, &ctx,
        )?)
    }

    /// The header of the parent of a block not stored yet: the parent must be stored; its
    /// header comes from the recent blocks when it is there (the usual case, the block just
    /// before), so that a block's relay path does not decode its parent's whole body from the
    /// store (about 0.4 ms for 1,000 transactions here). Errors: `Known` (stored),
    /// `InvalidParent`, `UnknownParent`, or the store.
    fn new_block_parent(&self, block: &Block) -> Result<BlockHeader, ImportError> {
        if self.store.has_block(&block.hash())? {
            return Err(ValidationError::Known.into());
        }
        let parent_hash = block.header.parent;
        if self.store.is_invalid(&parent_hash)? {
            return Err(ValidationError::InvalidParent(parent_hash).into());
        }
        if !self.store.has_block(&parent_hash)? {
            return Err(ValidationError::UnknownParent(parent_hash).into());
        }
        if let Some(b) = self.recent.get(&parent_hash) {
            return Ok(b.header.clone());
        }
        Ok(self
            .store
            .block(&parent_hash)?
            .ok_or(ValidationError::UnknownParent(parent_hash))?
            .header)
    }

    /// Imports a gossip-verified block and applies fork choice (greatest height, then lowest
    /// hash). A block on the head gets its state transition and is committed; one that fails
    /// it is marked invalid (never imported, and its descendants are refused as
    /// `InvalidParent`). A block on another known block is stored as a side branch; if that
    /// branch is now preferred, the node reorgs to it (undo to the fork point, apply the
    /// branch with full validation, one atomic write). Broadcasts what became canonical.
    ///
    /// Errors: `Known` (imported meanwhile), `InvalidParent`, `InvalidBlockTx` for a state
    /// transition that fails (on the head, or of a branch block during a reorg: then the
    /// branch block is marked invalid and the head stays as it was), or the store.
    pub fn import_verified(&self, block: Unapplied) -> Result<Imported, ImportError> {
        let tl = std::time::Instant::now();
        let _g = self.lock.lock().expect("chain lock poisoned");
        let lock_us = tl.elapsed().as_micros() as u64;
        let hash = block.inner().hash();
        if self.store.has_block(&hash)? {
            return Err(ValidationError::Known.into());
        }
        let parent_hash = block.inner().header.parent;
        if self.store.is_invalid(&parent_hash)? {
            return Err(ValidationError::InvalidParent(parent_hash).into());
        }
        let head = self.head();
        let checks_us = (tl.elapsed().as_micros() as u64).saturating_sub(lock_us);
        if parent_hash == head.hash {
            let t0 = std::time::Instant::now();
            let (verified, diff) = match block.apply(&self.store) {
                Ok(v) => v,
                Err(e) => {
                    self.store.mark_invalid(&hash)?;
                    return Err(e.into());
                }
            };
            let t1 = std::time::Instant::now();
            self.store.write_block(&verified, &diff)?;
            let new_head = head_of(&verified.inner().header, hash);
            let txs = verified.inner().txs.len();
            let n = self.finish_commit(vec![], vec![verified.into_inner()], new_head)?;
            tracing::debug!(
                height = new_head.height,
                txs,
                lock_us,
                checks_us,
                apply_us = (t1 - t0).as_micros() as u64,
                commit_us = t1.elapsed().as_micros() as u64,
                "block import timing"
            );
            return Ok(n);
        }
        let height = block.inner().header.height;
        self.store.store_side_block(&block)?;
        if !prefers(height, &hash, &head) {
            return Ok(Imported::default());
        }
        self.reorg_to(hash, head)
    }

    /// A block by hash: a recent one (possibly not imported yet) or a stored one.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Arc<Block>>, StoreError> {
        if let Some(b) = self.recent.get(hash) {
            return Ok(Some(b));
        }
        Ok(self.store.block(hash)?.map(Arc::new))
    }

    /// The checks of [`Chain::gossip_verify`] that need only a header: not stored, parent
    /// known and not invalid, and the header itself (chain id, height, slot, schedule,
    /// timestamp, producer signature). `block` may have no transactions (a compact block's
    /// header); the body is checked once rebuilt.
    pub fn verify_header(&self, block: &Block) -> Result<(), ImportError> {
        let parent = self.new_block_parent(block)?;
        let ctx = BlockContext {
            spec: &self.spec,
            parent: &parent,
            now_ms: crate::now_ms(),
            state: &self.store,
            already_verified: &|_| false,
        };
        Ok(validation::check_header(block, &ctx)?)
    }

    /// Makes `tip` (a stored side-branch block) the head. Caller holds the chain lock.
    fn reorg_to(&self, tip: Hash, head: Head) -> Result<Imported, ImportError> {
        // The branch, from just above the fork point up to the tip.
        let mut branch = Vec::new();
        let mut h = tip;
        let fork_height = loop {
            let b = self
                .store
                .block(&h)?
                .ok_or_else(|| self.store.damaged("a side-branch block is missing"))?;
            if self.store.hash_at(b.header.height)? == Some(h) {
                break b.header.height;
            }
            h = b.header.parent;
            branch.push(b);
        };
        branch.reverse();
        // Undo the canonical blocks above the fork point, in memory.
        let mut accounts: HashMap<Address, Account> = HashMap::new();
        let mut undone = Vec::new();
        for height in (fork_height + 1..=head.height).rev() {
            let bh = self
                .store
                .hash_at(height)?
                .ok_or_else(|| self.store.damaged("a canonical height is missing"))?;
            let undo = self
                .store
                .undo_record(&bh)?
                .ok_or_else(|| self.store.damaged("an undo record is missing"))?;
            accounts.extend(undo.accounts);
            undone.push(
                self.store
                    .block(&bh)?
                    .ok_or_else(|| self.store.damaged("a canonical block is missing"))?,
            );
        }
        // Apply the branch with full state validation.
        let mut applied = Vec::with_capacity(branch.len());
        for b in branch {
            let bh = b.hash();
            let view = Overlay {
                changed: &accounts,
                base: &self.store,
            };
            let (verified, diff) = match validation::stored_side_block(b).apply(&view) {
                Ok(r) => r,
                Err(e) => {
                    self.store.mark_invalid(&bh)?;
                    tracing::warn!(block = %bh, cause = %e, "reorg abandoned: branch block invalid");
                    return Err(e.into());
                }
            };
            let undo = UndoRecord {
                accounts: diff.changed.keys().map(|a| (*a, view.account(a))).collect(),
            };
            accounts.extend(diff.changed);
            applied.push((verified, undo));
        }
        self.store.write_reorg(&ReorgWrite {
            undone: &undone,
            applied: &applied,
            accounts: &accounts,
            old_head_height: head.height,
        })?;
        let new_tip = applied
            .last()
            .expect("a preferred branch is not empty")
            .0
            .inner();
        let new_head = head_of(&new_tip.header, tip);
        tracing::info!(
            from = head.height,
            to = new_head.height,
            depth = undone.len(),
            applied = applied.len(),
            hash = %tip,
            "reorg"
        );
        self.finish_commit(
            undone,
            applied.into_iter().map(|(v, _)| v.into_inner()).collect(),
            new_head,
        )
    }

    /// Builds, signs and commits a block for `slot` on top of the head with the transactions
    /// `select` picks on the head's state (called under the chain lock, so the head cannot
    /// move in between; each picked transaction must apply in order, and the signatures must
    /// have been verified by the caller). Broadcasts the new head. Returns `None` if the head
    /// is already at or past `slot`.
    ///
    /// Errors: a picked transaction that does not apply (`InvalidBlockTx`, a caller bug), or
    /// the store.
    pub fn produce(
        &self,
        key: &Keypair,
        slot: u64,
        select: impl FnOnce(&ChainStore) -> Vec<crate::types::SignedTx>,
    ) -> Result<Option<Verified<Block>>, ImportError> {
        let _g = self.lock.lock().expect("chain lock poisoned");
        let head = self.head();
        if head.slot >= slot {
            return Ok(None);
        }
        let txs = select(&self.store);
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
        self.store.write_block(&verified, &diff)?;
        let hash = verified.inner().hash();
        let new_head = head_of(&verified.inner().header, hash);
        self.finish_commit(vec![], vec![verified.inner().clone()], new_head)?;
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
    use crate::state::StateView;

    fn spec(chain_id: u64) -> ChainSpec {
        crate::genesis::test_spec(chain_id, 1, 2, 1_000)
    }

    #[test]
    fn reopen_resumes_at_head_and_refuses_another_chain() {
        let dir = tempfile::tempdir().unwrap();
        let key = Keypair::dev_validator(0);

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
            let v = validation::check_tx(tx, 5).unwrap().into_inner();
            let b = chain
                .produce(&key, 1, |_| vec![v.clone()])
                .unwrap()
                .unwrap();
            assert_eq!(b.inner().txs.len(), 1);
            assert!(
                chain.produce(&key, 1, |_| vec![v]).unwrap().is_none(),
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

#[cfg(test)]
pub(crate) mod reorg_tests_support {
    use super::*;
    use crate::types::{Signature, SignedTx, TxBody};

    pub const CHAIN: u64 = 77;

    pub fn spec() -> ChainSpec {
        crate::genesis::test_spec(CHAIN, 2, 3, 10_000)
    }

    pub fn transfer(from: u64, nonce: u64, amount: u64) -> SignedTx {
        let k = Keypair::dev_account(from);
        k.sign_tx(TxBody {
            chain_id: CHAIN,
            nonce,
            from: k.public(),
            to: Keypair::dev_account(2).address(),
            amount,
            fee: 1,
            data: vec![],
        })
    }

    /// Two branches on `g`: A (a1, a2: dev:0 sends 100 twice) and the longer B (b1: dev:0
    /// sends 50, b2: dev:1 sends 7, b3: empty). Returns [a1, a2, b1, b2, b3].
    pub fn two_branches(s: &ChainSpec, g: &Block) -> [Block; 5] {
        let a1 = block(s, g, 1, vec![transfer(0, 0, 100)]);
        let a2 = block(s, &a1, 3, vec![transfer(0, 1, 100)]);
        let b1 = block(s, g, 2, vec![transfer(0, 0, 50)]);
        let b2 = block(s, &b1, 4, vec![transfer(1, 0, 7)]);
        let b3 = block(s, &b2, 6, vec![]);
        [a1, a2, b1, b2, b3]
    }

    /// A block on `parent` in `slot`, signed by the slot's validator.
    pub fn block(s: &ChainSpec, parent: &Block, slot: u64, txs: Vec<SignedTx>) -> Block {
        let key = Keypair::dev_validator(slot % 2);
        let hashes: Vec<Hash> = txs.iter().map(SignedTx::hash).collect();
        let mut b = Block {
            header: BlockHeader {
                chain_id: CHAIN,
                height: parent.header.height + 1,
                slot,
                parent: parent.hash(),
                timestamp_ms: s.slot_start_ms(slot) + 1,
                producer: key.public(),
                tx_root: crate::types::merkle_root(&hashes),
                tx_count: txs.len() as u32,
            },
            signature: Signature([0; 64]),
            txs,
        };
        key.sign_block(&mut b);
        b
    }
}

#[cfg(test)]
mod reorg_tests {
    use super::reorg_tests_support::*;
    use super::*;

    fn import(c: &Chain, b: &Block) -> Result<Imported, ImportError> {
        c.import(b.clone(), &HashSet::new())
    }

    #[test]
    fn gossip_verify_uses_local_hashes_and_a_recent_parent_only_once_stored() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let [a1, a2, ..] = two_branches(&s, &g);
        let chain = Chain::open(dir.path(), s.clone()).unwrap();
        let none = HashSet::new();
        let hashes = crate::types::TxHashes::of(&a1);
        assert!(chain
            .gossip_verify_hashed(a1.clone(), Some(&hashes), &none)
            .is_ok());
        // Hashes of another count are not used.
        let empty = crate::types::TxHashes::new(vec![]);
        assert!(chain
            .gossip_verify_hashed(a1.clone(), Some(&empty), &none)
            .is_ok());
        // The given hashes are the ones checked against tx_root.
        let wrong = crate::types::TxHashes::new(vec![Hash([9; 32]); hashes.hashes().len()]);
        assert!(matches!(
            chain.gossip_verify_hashed(a1.clone(), Some(&wrong), &none),
            Err(ImportError::Invalid(ValidationError::TxRootMismatch))
        ));
        // A parent relayed but not stored yet is still unknown.
        chain.recent.insert(Arc::new(a1.clone()));
        assert!(matches!(
            chain.gossip_verify(a2.clone(), &none),
            Err(ImportError::Invalid(ValidationError::UnknownParent(_)))
        ));
        import(&chain, &a1).unwrap();
        assert!(chain.gossip_verify(a2.clone(), &none).is_ok());
        // The same once it has left the recent blocks: its header is read from the store.
        for i in 0..crate::chain::recent::RECENT_BLOCKS as u64 {
            let mut other = a2.clone();
            other.header.slot += 100 + i;
            chain.recent.insert(Arc::new(other));
        }
        assert!(chain.recent.get(&a1.hash()).is_none());
        assert!(chain.gossip_verify(a2, &none).is_ok());
    }

    #[test]
    fn heavier_branch_wins_and_state_equals_a_replay() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let [a1, a2, b1, b2, b3] = two_branches(&s, &g);
        let chain = Chain::open(dir.path(), s.clone()).unwrap();
        assert_eq!(import(&chain, &a1).unwrap().applied.len(), 1);
        import(&chain, &a2).unwrap();
        let side = import(&chain, &b1).unwrap();
        assert!(
            side.applied.is_empty() && side.undone.is_empty(),
            "shorter branch is only stored"
        );
        assert_eq!(chain.head().hash, a2.hash());
        let r2 = import(&chain, &b2).unwrap();
        let r3 = import(&chain, &b3).unwrap();
        let mut undone: Vec<Hash> = r2
            .undone
            .iter()
            .chain(&r3.undone)
            .map(Block::hash)
            .collect();
        undone.sort();
        let mut expect_undone = vec![a1.hash(), a2.hash()];
        expect_undone.sort();
        assert_eq!(undone, expect_undone, "A's blocks left the chain");
        assert_eq!(chain.head().hash, b3.hash());
        for (h, b) in [(1, &b1), (2, &b2), (3, &b3)] {
            assert_eq!(chain.store.hash_at(h).unwrap(), Some(b.hash()));
        }
        // Account state equals a replay of B from genesis.
        let mut replay: HashMap<Address, Account> = s
            .alloc
            .iter()
            .map(|(a, bal)| {
                (
                    *a,
                    Account {
                        balance: *bal,
                        nonce: 0,
                    },
                )
            })
            .collect();
        for b in [&b1, &b2, &b3] {
            let d = crate::state::apply_block(&replay, b).unwrap();
            replay.extend(d.changed);
        }
        for (a, acc) in &replay {
            assert_eq!(chain.store.account(a), *acc, "account {a}");
        }
        // Tx index follows the canonical chain.
        assert!(chain
            .store
            .tx_location(&a2.txs[0].hash())
            .unwrap()
            .is_none());
        assert_eq!(
            chain
                .store
                .tx_location(&b1.txs[0].hash())
                .unwrap()
                .unwrap()
                .height,
            1
        );
        let mut tips = chain.store.tips().unwrap();
        tips.sort();
        let mut expect_tips = vec![a2.hash(), b3.hash()];
        expect_tips.sort();
        assert_eq!(tips, expect_tips);
        let report = chain.store.check(&s).unwrap();
        assert_eq!((report.head_height, report.txs), (3, 2));
        // The reorg is durable.
        drop(chain);
        let chain = Chain::open(dir.path(), s).unwrap();
        assert_eq!(chain.head().hash, b3.hash());
        assert_eq!(
            chain.store.account(&Keypair::dev_account(0).address()),
            replay[&Keypair::dev_account(0).address()]
        );
    }

    #[test]
    fn invalid_branch_is_abandoned_and_its_children_refused() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let a1 = block(&s, &g, 1, vec![transfer(0, 0, 100)]);
        // c1 is valid without state, but dev:0 cannot pay 1,000,000: invalid on its state.
        let c1 = block(&s, &g, 2, vec![transfer(0, 0, 1_000_000)]);
        let c2 = block(&s, &c1, 4, vec![]);
        let c3 = block(&s, &c2, 6, vec![]);
        let chain = Chain::open(dir.path(), s).unwrap();
        import(&chain, &a1).unwrap();
        let head_before = chain.head();
        // c1 ties a1 on height: depending on the hashes it is preferred at once (the reorg
        // fails on c1) or only once c2 makes the branch longer (the reorg fails then).
        let r1 = import(&chain, &c1);
        let r2 = import(&chain, &c2);
        let invalid_tx = |r: &Result<Imported, ImportError>| {
            matches!(
                r,
                Err(ImportError::Invalid(ValidationError::InvalidBlockTx { .. }))
            )
        };
        match (&r1, &r2) {
            (Ok(_), r2) => assert!(invalid_tx(r2), "{r2:?}"),
            (r1, Err(ImportError::Invalid(ValidationError::InvalidParent(_)))) => {
                assert!(invalid_tx(r1), "{r1:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(chain.head(), head_before, "the head did not move");
        assert_eq!(chain.head().hash, a1.hash());
        assert!(chain.store.is_invalid(&c1.hash()).unwrap());
        if r1.is_ok() {
            // c2 was stored and marked invalid: its child is refused as such.
            let e = import(&chain, &c3).unwrap_err();
            assert!(
                matches!(e, ImportError::Invalid(ValidationError::InvalidParent(_))),
                "{e:?}"
            );
        }
    }
}

#[cfg(test)]
mod notification_tests {
    use super::reorg_tests_support::*;
    use super::*;

    #[test]
    fn every_commit_is_broadcast_once_with_applied_and_undone_on_a_reorg() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let [a1, a2, b1, b2, b3] = two_branches(&s, &g);
        let chain = Chain::open(dir.path(), s).unwrap();
        let mut rx = chain.subscribe();
        for b in [&a1, &a2, &b1, &b2, &b3] {
            chain.import(b.clone(), &HashSet::new()).unwrap();
        }
        let mut got = Vec::new();
        while let Ok(n) = rx.try_recv() {
            assert!(n.committed_us > 0);
            got.push(n);
        }
        let hashes = |bs: &[Block]| bs.iter().map(Block::hash).collect::<Vec<_>>();
        assert_eq!(hashes(&got[0].applied), [a1.hash()]);
        assert_eq!(hashes(&got[1].applied), [a2.hash()]);
        assert!(got[0].undone.is_empty() && got[1].undone.is_empty());
        // b1 went to a side branch: no notification. Then one reorg (at b2 or at b3,
        // depending on the hash tie-break), then possibly b3 on the new head.
        let reorgs: Vec<_> = got.iter().filter(|n| !n.undone.is_empty()).collect();
        assert_eq!(reorgs.len(), 1, "exactly one reorg notification");
        assert_eq!(
            hashes(&reorgs[0].undone),
            [a2.hash(), a1.hash()],
            "undone, highest first"
        );
        let after: Vec<Hash> = got[2..].iter().flat_map(|n| hashes(&n.applied)).collect();
        assert_eq!(
            after,
            [b1.hash(), b2.hash(), b3.hash()],
            "applied in height order"
        );
        // A production is broadcast too.
        let key = Keypair::dev_validator(0);
        let slot = 8;
        chain.produce(&key, slot, |_| vec![]).unwrap().unwrap();
        let n = rx.try_recv().unwrap();
        assert_eq!(n.applied.len(), 1);
        assert_eq!(n.applied[0].header.slot, slot);
    }
}
