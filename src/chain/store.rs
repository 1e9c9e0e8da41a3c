//! The sled chain store: blocks, canonical height index, transaction index, account state at
//! head, and meta (genesis hash, head, schema version).
//!
//! All live in one sled tree as key spaces with a one-byte prefix (`b` block hash -> block,
//! canonical or side branch; `c` height (big-endian) -> canonical hash; `t` tx hash ->
//! canonical location; `a` address -> account at head; `u` block hash -> undo record;
//! `x` hash of a chain tip (a block without stored children); `i` hash of a block that failed
//! validation; `m` name -> meta), so that a block and everything it changes are written with one atomic
//! `apply_batch`, then flushed to disk before [`ChainStore::commit_block`] returns: a block is
//! never announced before it is durable, and a crash leaves all of a block or none of it.
//! (One tree keeps the atomic write a plain batch instead of a multi-tree transaction; for a
//! 200-transaction block, about 600 keys, the two measured 7.6 and 9.5 ms median in the
//! 8-node bench, within this machine's noise: the key count, not the mechanism, is the cost.)

use crate::genesis::ChainSpec;
use crate::state::{Account, StateDiff, StateView};
use crate::types::{encoding, Address, Block, Hash};
use crate::validation::{Unapplied, Verified};
use std::path::Path;

/// Store layout version; a store with another one is refused.
pub const SCHEMA_VERSION: u32 = 4;

/// Where a transaction sits in the canonical chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TxLocation {
    /// Block hash.
    pub block: Hash,
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
}

/// What undoing a block restores: every account it changed, with its value before the block.
#[derive(Clone, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct UndoRecord {
    /// (address, account before the block).
    pub accounts: Vec<(Address, Account)>,
}

/// A reorg, ready to write: see [`ChainStore::commit_reorg`].
pub struct ReorgWrite<'a> {
    /// Blocks leaving the canonical chain.
    pub undone: &'a [Block],
    /// Blocks joining it, in height order, each with its undo record.
    pub applied: &'a [(Verified<Block>, UndoRecord)],
    /// Final value of every account the reorg touched.
    pub accounts: &'a std::collections::HashMap<Address, Account>,
    /// Height of the head being replaced.
    pub old_head_height: u64,
}

/// Store failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or corruption error.
    #[error("database error: {0}")]
    Db(sled::Error),
    /// The data dir belongs to another chain.
    #[error("data dir holds chain with genesis {found}, but the genesis file gives {expected}; use another --data-dir")]
    WrongGenesis {
        /// Genesis hash in the store.
        found: Hash,
        /// Genesis hash of the spec.
        expected: Hash,
    },
    /// The data dir was written by another schema version.
    #[error("data dir has store schema {found}, this build uses {expected}")]
    WrongSchema {
        /// Stored version.
        found: u32,
        /// Our version.
        expected: u32,
    },
    /// No store at the path.
    #[error("no chain store at {0}")]
    Missing(String),
    /// A stored value does not decode (corruption).
    #[error("corrupt store value in {0}")]
    Corrupt(&'static str),
}

impl From<sled::Error> for StoreError {
    /// Its message includes the cause, so the cause is not also its `source()` (an error chain printed with `{:#}` names it once).
    fn from(e: sled::Error) -> Self {
        StoreError::Db(e)
    }
}

/// The chain database.
#[derive(Clone)]
pub struct ChainStore {
    db: sled::Db,
    pub(super) tree: sled::Tree,
}

const BLOCK: u8 = b'b';
pub(super) const CANONICAL: u8 = b'c';
pub(super) const TXINDEX: u8 = b't';
pub(super) const ACCOUNT: u8 = b'a';
const META: u8 = b'm';
const UNDO: u8 = b'u';
const TIP: u8 = b'x';
const INVALID: u8 = b'i';
const META_GENESIS: &[u8] = b"genesis";
const META_HEAD: &[u8] = b"head";
const META_SCHEMA: &[u8] = b"schema";
const META_SPEC: &[u8] = b"spec";

fn key(space: u8, k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + k.len());
    v.push(space);
    v.extend_from_slice(k);
    v
}

impl ChainStore {
    /// Opens the sled database and checks the schema version of an existing store (schema 1
    /// kept separate trees; later ones a `schema` meta key).
    fn open_db(dir: &Path) -> Result<ChainStore, StoreError> {
        // sled releases a directory's file lock when its background flusher stops, shortly
        // after the last handle in this process drops; an immediate reopen waits for that
        // (up to 2 s). Another process holding the lock still fails after the wait.
        let mut tries = 0;
        let db = loop {
            // No background flusher: every write path flushes itself (a commit before its
            // notification, a side block, an invalid mark), so sled's 500 ms flusher thread
            // would only wake an idle node twice a second for nothing.
            match sled::Config::new().path(dir).flush_every_ms(None).open() {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && tries < 40 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                r => break r?,
            }
        };
        if db.tree_names().iter().any(|n| n.as_ref() == b"meta") {
            return Err(StoreError::WrongSchema {
                found: 1,
                expected: SCHEMA_VERSION,
            });
        }
        let s = ChainStore {
            tree: db.open_tree("chain")?,
            db,
        };
        if let Some(v) = s.tree.get(key(META, META_SCHEMA))? {
            let found = u32::from_le_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("meta schema"))?,
            );
            if found != SCHEMA_VERSION {
                return Err(StoreError::WrongSchema {
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        }
        Ok(s)
    }

    /// Opens an existing store without a genesis file, using the consensus fields it keeps;
    /// returns the store and its chain spec (without bootnodes).
    pub fn open_existing(dir: &Path) -> Result<(ChainStore, ChainSpec), StoreError> {
        if !dir.exists() {
            return Err(StoreError::Missing(dir.display().to_string()));
        }
        let s = ChainStore::open_db(dir)?;
        let v = s
            .tree
            .get(key(META, META_SPEC))?
            .ok_or(StoreError::Corrupt("meta spec"))?;
        let c: crate::genesis::ConsensusSpec =
            encoding::decode(&v, usize::MAX).map_err(|_| StoreError::Corrupt("meta spec"))?;
        let spec = ChainSpec::from_consensus(c);
        let s = s.verify_or_init(&spec)?;
        Ok((s, spec))
    }

    /// Opens (or creates) the store in `dir`. A new store is initialised with the genesis block
    /// and allocations; an existing one must match `spec`'s genesis and our schema.
    pub fn open(dir: &Path, spec: &ChainSpec) -> Result<ChainStore, StoreError> {
        ChainStore::open_db(dir)?.verify_or_init(spec)
    }

    /// Checks an opened store against `spec` (same genesis), or initialises an empty one.
    fn verify_or_init(self, spec: &ChainSpec) -> Result<ChainStore, StoreError> {
        let s = self;
        let genesis = spec.genesis_block();
        let gh = genesis.hash();
        match s.tree.get(key(META, META_GENESIS))? {
            Some(found) => {
                let found = Hash(
                    found
                        .as_ref()
                        .try_into()
                        .map_err(|_| StoreError::Corrupt("meta"))?,
                );
                if found != gh {
                    return Err(StoreError::WrongGenesis {
                        found,
                        expected: gh,
                    });
                }
            }
            None => {
                let mut diff = StateDiff::default();
                for (a, bal) in &spec.alloc {
                    diff.changed.insert(
                        *a,
                        Account {
                            balance: *bal,
                            nonce: 0,
                        },
                    );
                }
                s.tree
                    .insert(key(META, META_SCHEMA), &SCHEMA_VERSION.to_le_bytes())?;
                s.tree
                    .insert(key(META, META_SPEC), encoding::encode(&spec.consensus()))?;
                s.commit(&genesis, &diff)?;
                s.tree.insert(key(META, META_GENESIS), &gh.0)?;
                s.db.flush()?;
            }
        }
        Ok(s)
    }

    /// Hash of the head block.
    pub fn head_hash(&self) -> Result<Hash, StoreError> {
        let v = self
            .tree
            .get(key(META, META_HEAD))?
            .ok_or(StoreError::Corrupt("meta head"))?;
        Ok(Hash(
            v.as_ref()
                .try_into()
                .map_err(|_| StoreError::Corrupt("meta head"))?,
        ))
    }

    /// Genesis block hash.
    pub fn genesis_hash(&self) -> Result<Hash, StoreError> {
        self.hash_at(0)?.ok_or(StoreError::Corrupt("canonical"))
    }

    /// The block with `hash`, if stored.
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        match self.tree.get(key(BLOCK, &hash.0))? {
            Some(v) => Ok(Some(
                encoding::decode(&v, usize::MAX).map_err(|_| StoreError::Corrupt("blocks"))?,
            )),
            None => Ok(None),
        }
    }

    /// Whether a block with `hash` is stored.
    pub fn has_block(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key(BLOCK, &hash.0))?)
    }

    /// Encoded bytes of the block with `hash` (for sync responses without re-encoding).
    pub fn block_bytes(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key(BLOCK, &hash.0))?.map(|v| v.to_vec()))
    }

    /// Canonical block hash at `height`.
    pub fn hash_at(&self, height: u64) -> Result<Option<Hash>, StoreError> {
        match self.tree.get(key(CANONICAL, &height.to_be_bytes()))? {
            Some(v) => Ok(Some(Hash(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("canonical"))?,
            ))),
            None => Ok(None),
        }
    }

    /// Canonical block at `height`.
    pub fn block_at(&self, height: u64) -> Result<Option<Block>, StoreError> {
        match self.hash_at(height)? {
            Some(h) => self.block(&h),
            None => Ok(None),
        }
    }

    /// Where a transaction was included, if it is in the canonical chain.
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StoreError> {
        match self.tree.get(key(TXINDEX, &hash.0))? {
            Some(v) => Ok(Some(
                encoding::decode(&v, 64).map_err(|_| StoreError::Corrupt("txindex"))?,
            )),
            None => Ok(None),
        }
    }

    /// The account at head.
    pub fn get_account(&self, addr: &Address) -> Result<Account, StoreError> {
        match self.tree.get(key(ACCOUNT, &addr.0))? {
            Some(v) => Ok(encoding::decode(&v, 64).map_err(|_| StoreError::Corrupt("accounts"))?),
            None => Ok(Account::default()),
        }
    }

    /// Commits a verified block that extends the head, with its state diff, atomically, and
    /// flushes to disk before returning.
    pub fn commit_block(
        &self,
        block: &Verified<Block>,
        diff: &StateDiff,
    ) -> Result<(), StoreError> {
        self.write_block(block, diff)?;
        self.flush()
    }

    /// The atomic write of [`ChainStore::commit_block`] without the flush: readable at once,
    /// durable only after [`ChainStore::flush`].
    pub fn write_block(&self, block: &Verified<Block>, diff: &StateDiff) -> Result<(), StoreError> {
        let t0 = std::time::Instant::now();
        self.commit(block.inner(), diff)?;
        tracing::debug!(
            height = block.inner().header.height,
            txn_us = t0.elapsed().as_micros() as u64,
            "store write timing"
        );
        Ok(())
    }

    fn commit(&self, block: &Block, diff: &StateDiff) -> Result<(), StoreError> {
        let hash = block.hash();
        let height = block.header.height;
        let mut batch = sled::Batch::default();
        batch.insert(key(BLOCK, &hash.0), block.to_bytes());
        batch.insert(key(CANONICAL, &height.to_be_bytes()), &hash.0);
        for (i, t) in block.txs.iter().enumerate() {
            let loc = TxLocation {
                block: hash,
                height,
                index: i as u32,
            };
            batch.insert(key(TXINDEX, &t.hash().0), encoding::encode(&loc));
        }
        for (addr, acc) in &diff.changed {
            batch.insert(key(ACCOUNT, &addr.0), encoding::encode(acc));
        }
        let undo = UndoRecord {
            accounts: diff
                .changed
                .keys()
                .map(|a| Ok((*a, self.get_account(a)?)))
                .collect::<Result<_, StoreError>>()?,
        };
        batch.insert(key(UNDO, &hash.0), encoding::encode(&undo));
        batch.remove(key(TIP, &block.header.parent.0));
        batch.insert(key(TIP, &hash.0), &[]);
        batch.insert(key(META, META_HEAD), &hash.0);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Stores a block of a side branch (header, commitments and signatures checked; state not
    /// applied) without touching the canonical chain, and flushes.
    pub fn store_side_block(&self, block: &Unapplied) -> Result<(), StoreError> {
        let b = block.inner();
        let mut batch = sled::Batch::default();
        batch.insert(key(BLOCK, &b.hash().0), b.to_bytes());
        batch.remove(key(TIP, &b.header.parent.0));
        batch.insert(key(TIP, &b.hash().0), &[]);
        self.tree.apply_batch(batch)?;
        self.flush()
    }

    /// Switches the canonical chain in one atomic batch (then flushes): removes the undone
    /// blocks' heights and tx index entries, adds the applied blocks' heights, tx index entries
    /// and undo records, writes the final accounts, and moves the head to the last applied block.
    pub fn commit_reorg(&self, w: &ReorgWrite<'_>) -> Result<(), StoreError> {
        self.write_reorg(w)?;
        self.flush()
    }

    /// The atomic write of [`ChainStore::commit_reorg`] without the flush.
    pub fn write_reorg(&self, w: &ReorgWrite<'_>) -> Result<(), StoreError> {
        let Some((tip, _)) = w.applied.last() else {
            return Ok(());
        };
        let tip = tip.inner();
        let mut batch = sled::Batch::default();
        for b in w.undone {
            for t in &b.txs {
                batch.remove(key(TXINDEX, &t.hash().0));
            }
        }
        for h in tip.header.height + 1..=w.old_head_height {
            batch.remove(key(CANONICAL, &h.to_be_bytes()));
        }
        for (v, undo) in w.applied {
            let b = v.inner();
            let hash = b.hash();
            let height = b.header.height;
            batch.insert(key(CANONICAL, &height.to_be_bytes()), &hash.0);
            for (i, t) in b.txs.iter().enumerate() {
                let loc = TxLocation {
                    block: hash,
                    height,
                    index: i as u32,
                };
                batch.insert(key(TXINDEX, &t.hash().0), encoding::encode(&loc));
            }
            batch.insert(key(UNDO, &hash.0), encoding::encode(undo));
        }
        for (addr, acc) in w.accounts {
            batch.insert(key(ACCOUNT, &addr.0), encoding::encode(acc));
        }
        batch.insert(key(META, META_HEAD), &tip.hash().0);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// The undo record of a canonical (or once-canonical) block.
    pub fn undo_record(&self, hash: &Hash) -> Result<Option<UndoRecord>, StoreError> {
        match self.tree.get(key(UNDO, &hash.0))? {
            Some(v) => Ok(Some(
                encoding::decode(&v, usize::MAX).map_err(|_| StoreError::Corrupt("undo"))?,
            )),
            None => Ok(None),
        }
    }

    /// Hashes of all chain tips (blocks with no stored child), including the head.
    pub fn tips(&self) -> Result<Vec<Hash>, StoreError> {
        self.tree
            .scan_prefix([TIP])
            .keys()
            .map(|k| {
                let k = k?;
                Ok(Hash(
                    k[1..].try_into().map_err(|_| StoreError::Corrupt("tips"))?,
                ))
            })
            .collect()
    }

    /// Records that a block failed validation (its descendants are refused too).
    pub fn mark_invalid(&self, hash: &Hash) -> Result<(), StoreError> {
        self.tree.insert(key(INVALID, &hash.0), &[])?;
        self.flush()
    }

    /// Whether a block was marked invalid.
    pub fn is_invalid(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(key(INVALID, &hash.0))?)
    }

    /// Flushes all pending writes.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

impl StateView for ChainStore {
    /// State at head. A database error here is fatal to the node (as a LevelDB error is to
    /// Bitcoin Core): continuing would validate against state we cannot read.
    fn account(&self, addr: &Address) -> Account {
        self.get_account(addr)
            .unwrap_or_else(|e| panic!("fatal store error reading account {addr}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Chain;
    use crate::crypto::Keypair;
    use crate::types::TxBody;

    fn spec() -> ChainSpec {
        crate::genesis::test_spec(3, 1, 2, 1_000)
    }

    /// A store with 3 blocks, each with one transfer.
    fn built(dir: &Path) -> (ChainStore, ChainSpec) {
        let s = spec();
        let chain = Chain::open(dir, s.clone()).unwrap();
        let key = Keypair::dev_validator(0);
        let sender = Keypair::dev_account(0);
        for n in 0..3 {
            let tx = sender.sign_tx(TxBody {
                chain_id: 3,
                nonce: n,
                from: sender.public(),
                to: Keypair::dev_account(1).address(),
                amount: 10,
                fee: 1,
                data: vec![],
            });
            let v = crate::validation::check_tx(tx, 3).unwrap().into_inner();
            chain.produce(&key, n + 1, |_| vec![v]).unwrap().unwrap();
        }
        (chain.store.clone(), s)
    }

    #[test]
    fn check_passes_on_a_good_store_and_names_each_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (store, s) = built(dir.path());
        let r = store.check(&s).unwrap();
        assert_eq!((r.head_height, r.blocks, r.txs), (3, 4, 3));
        let expect_fail = |store: &ChainStore, what: &str| {
            let e = store.check(&s).unwrap_err().to_string();
            assert!(e.contains(what), "expected {what:?} in {e:?}");
        };
        // A wrong balance.
        let addr = Keypair::dev_account(1).address();
        let good = store.tree.get(key(ACCOUNT, &addr.0)).unwrap().unwrap();
        store
            .tree
            .insert(
                key(ACCOUNT, &addr.0),
                encoding::encode(&Account {
                    balance: 1,
                    nonce: 0,
                }),
            )
            .unwrap();
        expect_fail(&store, "account");
        store.tree.insert(key(ACCOUNT, &addr.0), good).unwrap();
        // A missing tx index entry.
        let b2 = store.block_at(2).unwrap().unwrap();
        let tk = key(TXINDEX, &b2.txs[0].hash().0);
        let good = store.tree.remove(&tk).unwrap().unwrap();
        expect_fail(&store, "tx index");
        store.tree.insert(&tk, good).unwrap();
        // A stale canonical entry above the head.
        store
            .tree
            .insert(key(CANONICAL, &9u64.to_be_bytes()), &b2.hash().0)
            .unwrap();
        expect_fail(&store, "canonical heights");
        store
            .tree
            .remove(key(CANONICAL, &9u64.to_be_bytes()))
            .unwrap();
        store.check(&s).unwrap();
    }

    #[test]
    fn open_existing_needs_no_genesis_and_old_schemas_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let head = {
            let (store, _) = built(dir.path());
            store.head_hash().unwrap()
        };
        let (store, s) = ChainStore::open_existing(dir.path()).unwrap();
        assert_eq!(store.head_hash().unwrap(), head);
        assert_eq!(s.spec_hash(), spec().spec_hash());
        drop(store);
        let old = tempfile::tempdir().unwrap();
        sled::open(old.path()).unwrap().open_tree("meta").unwrap();
        let e = ChainStore::open(old.path(), &spec()).err().unwrap();
        assert!(matches!(e, StoreError::WrongSchema { found: 1, .. }), "{e}");
        assert!(matches!(
            ChainStore::open_existing(&old.path().join("nothing")),
            Err(StoreError::Missing(_))
        ));
    }
}
