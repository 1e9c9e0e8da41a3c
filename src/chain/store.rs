//! The sled chain store: blocks, canonical height index, transaction index, account state at
//! head, and meta (genesis hash, head, schema version).
//!
//! All live in one sled tree as key spaces with a one-byte prefix (`b` block hash -> where the
//! block's bytes lie in the block files, canonical or side branch ([`super::blockfile`]); `c` height (big-endian) -> canonical hash; `t` tx hash ->
//! canonical location; `a` address -> account at head; `u` block hash -> undo record;
//! `x` hash of a chain tip (a block without stored children); `i` hash of a block that failed
//! validation; `m` name -> meta), so that a block and everything it changes are written with one atomic
//! `apply_batch`, then flushed to disk before [`ChainStore::commit_block`] returns: a block is
//! never announced before it is durable, and a crash leaves all of a block or none of it. The
//! one exception is the `t` entries, written right behind the head by the `tx-index` thread
//! ([`super::txindex`]; a crash before them is caught up at the next open).
//! (One tree keeps the atomic write a plain batch instead of a multi-tree transaction; for a
//! 200-transaction block, about 600 keys, the two measured 7.6 and 9.5 ms median in the
//! 8-node bench, within this machine's noise: the key count, not the mechanism, is the cost.)
//!
//! **Integrity.** sled checks a CRC-32 on every message it reads, but when its log is damaged
//! it may recover silently to an earlier point (a flipped byte in the middle of a never-reopened
//! log truncates everything after it; measured: a store at height 199 reopened "fine" at
//! height 3). So the store keeps a **head marker** outside the database, `head.json` in the
//! store directory (height and hash of the head, replaced atomically after every flush), and
//! opening it (for `run` and `store check` alike):
//! - catches panics inside sled at this boundary (every sled call goes through one guard),
//!   turning them and sled's corruption errors into [`StoreError::Damaged`];
//! - compares the head with the marker: a head below it, or a marker naming a block the store
//!   lacks, is a rollback;
//! - reads every stored key and value once, so that sled verifies every checksum before the
//!   node trusts the store, and every block record, each against its CRC-32 (Bitcoin Core's
//!   `-checkblocks` at startup plays this role).
//!
//! A damage found later, while the node runs, is recorded once ([`ChainStore::damage`]); the
//! store then refuses every write, and the node shuts down naming it (Bitcoin Core's
//! `AbortNode`). [`StoreError::Damaged`]'s message names the remedy: `meshnode store repair`.

use super::blockfile::{BlockFiles, BlockPos, ReadError};
use crate::genesis::ChainSpec;
use crate::state::{Account, StateDiff, StateView};
use crate::types::{encoding, Address, Block, Hash};
use crate::validation::{Unapplied, Verified};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Store layout version; a store with another one is refused, except schema 4 (block bodies
/// inside sled), which opening moves to the block files ([`super::blockfile`]).
pub const SCHEMA_VERSION: u32 = 5;

/// The schema whose stores opening migrates: block bodies were values of the `b` space.
const SCHEMA_BODIES_IN_SLED: u32 = 4;

/// File name of the head marker, in the store directory.
pub const HEAD_MARKER: &str = "head.json";

/// Bytes of one head marker slot: a JSON line padded with spaces, ending in `\n`.
const MARKER_SLOT: usize = 192;

/// The open head marker file and the sequence number of its last record (see
/// [`ChainStore::write_marker`]).
struct MarkerFile {
    file: std::fs::File,
    seq: u64,
}

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
    /// sled reported an I/O error (disk full, permissions, the directory locked by another
    /// process).
    #[error("database error: {0}")]
    Db(sled::Error),
    /// A block file could not be opened, written, synced or read (disk full, permissions, a
    /// disk error; damage to one is [`StoreError::Damaged`]).
    #[error("block file {path}: {source}")]
    BlockFile {
        /// The file (or the block files' directory).
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing the head marker failed.
    #[error("writing the head marker {path}: {source}")]
    Marker {
        /// The marker's path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The store is damaged: sled found a checksum mismatch or panicked, a value does not
    /// decode, the head is below the head marker, or an invariant `store check` verifies does
    /// not hold. The message names the damage and the remedy (`meshnode store repair`).
    #[error("the chain store in {} is damaged: {what}. {}", dir.display(), remedy(dir))]
    Damaged {
        /// The store directory (`DATA_DIR/chain`).
        dir: PathBuf,
        /// What is damaged.
        what: String,
    },
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
}

impl StoreError {
    /// Whether this is damage to the store (which `meshnode store repair` addresses), as
    /// opposed to an I/O error, a wrong data dir or a missing store.
    pub fn is_damage(&self) -> bool {
        matches!(self, StoreError::Damaged { .. })
    }

    /// What is wrong, without the remedy: the damage for [`StoreError::Damaged`], the whole
    /// message otherwise.
    pub fn what(&self) -> String {
        match self {
            StoreError::Damaged { what, .. } => what.clone(),
            other => other.to_string(),
        }
    }
}

/// What to do about a damaged store in `dir` (`DATA_DIR/chain`).
fn remedy(dir: &Path) -> String {
    let data_dir = dir.parent().unwrap_or(dir);
    format!(
        "Remedy: stop the node and run `meshnode store repair --data-dir {}`: it keeps the chain up to \
         the last consistent block and sync refills the rest from peers (`--resync` clears the chain instead)",
        data_dir.display()
    )
}

/// Turns an I/O error on the block files of the store in `dir` into [`StoreError::BlockFile`].
fn block_file_error(dir: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::BlockFile {
        path: dir.join(super::blockfile::BLOCKS_DIR),
        source,
    }
}

/// sled's text for an error, without its (empty) backtrace.
fn describe_sled(e: &sled::Error) -> String {
    match e {
        sled::Error::Corruption { at: Some(at), .. } => {
            format!("sled read corrupted data (checksum mismatch) at {at:?}")
        }
        sled::Error::Corruption { at: None, .. } => {
            "sled read corrupted data (checksum mismatch, or a log that ends before its snapshot)"
                .into()
        }
        sled::Error::ReportableBug(s) => format!("sled found an inconsistency: {s}"),
        other => other.to_string(),
    }
}

thread_local! {
    /// Set while this thread runs a sled call inside [`ChainStore`]'s guard.
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs a panic hook that stays silent for panics inside the store's guard (they become
/// [`StoreError::Damaged`], which says what happened once) and defers to the previous hook for
/// every other panic. Call once, at startup of a binary.
pub fn quiet_guarded_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_GUARD.with(|g| g.get()) {
            previous(info);
        }
    }));
}

/// The text of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// The chain database.
#[derive(Clone)]
pub struct ChainStore {
    db: sled::Db,
    pub(super) tree: sled::Tree,
    dir: Arc<PathBuf>,
    /// The first damage found, if any (then every write is refused).
    damage: Arc<tokio::sync::watch::Sender<Option<String>>>,
    /// The head marker, once this process has written it (then updated in place).
    marker: Arc<std::sync::Mutex<Option<MarkerFile>>>,
    /// Committed blocks whose transactions are not indexed yet ([`super::txindex`]).
    pub(super) txindex: Arc<super::txindex::TxIndex>,
    /// The block bodies ([`super::blockfile`]).
    files: Arc<BlockFiles>,
}

const BLOCK: u8 = b'b';
pub(super) const CANONICAL: u8 = b'c';
pub(super) const TXINDEX: u8 = b't';
pub(super) const ACCOUNT: u8 = b'a';
pub(super) const META: u8 = b'm';
const UNDO: u8 = b'u';
const TIP: u8 = b'x';
const INVALID: u8 = b'i';
const META_GENESIS: &[u8] = b"genesis";
const META_HEAD: &[u8] = b"head";
const META_SCHEMA: &[u8] = b"schema";
const META_SPEC: &[u8] = b"spec";
/// The height up to which every canonical block's transactions are indexed (u64 LE; see
/// [`super::txindex`]).
pub(super) const META_TXINDEX: &[u8] = b"txindex";

pub(super) fn key(space: u8, k: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + k.len());
    v.push(space);
    v.extend_from_slice(k);
    v
}

/// Runs a sled call with panics caught (see [`quiet_guarded_panics`]).
fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    IN_GUARD.with(|g| g.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(false));
    r.map_err(|p| panic_text(p.as_ref()))
}

/// The head marker's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadMarker {
    /// Head height.
    pub height: u64,
    /// Head hash.
    pub hash: Hash,
}

/// A head marker record's checksum: the first 8 bytes of SHA-256 over
/// `"{seq}:{height}:{hash}"`, in hex.
fn marker_sum(seq: u64, m: &HeadMarker) -> String {
    let d = crate::types::hash::sha256(&[format!("{seq}:{}:{}", m.height, m.hash).as_bytes()]);
    hex::encode(&d.0[..8])
}

/// One head marker slot: record `seq` as a JSON line (an empty slot for `None`), padded with
/// spaces to [`MARKER_SLOT`] bytes, the last one `\n`.
fn marker_slot(seq: u64, m: Option<&HeadMarker>) -> [u8; MARKER_SLOT] {
    let mut slot = [b' '; MARKER_SLOT];
    if let Some(m) = m {
        let line = serde_json::json!({
            "seq": seq,
            "height": m.height,
            "hash": m.hash.to_string(),
            "sum": marker_sum(seq, m),
        })
        .to_string();
        slot[..line.len()].copy_from_slice(line.as_bytes());
    }
    slot[MARKER_SLOT - 1] = b'\n';
    slot
}

impl ChainStore {
    /// Runs `f` (sled calls) at the store boundary: a panic inside sled, or sled's corruption
    /// error, becomes [`StoreError::Damaged`] (and is recorded); an I/O error stays
    /// [`StoreError::Db`].
    pub(super) fn guard<T>(&self, f: impl FnOnce() -> sled::Result<T>) -> Result<T, StoreError> {
        match catch(f) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e @ (sled::Error::Corruption { .. } | sled::Error::ReportableBug(_)))) => {
                Err(self.damaged(describe_sled(&e)))
            }
            Ok(Err(e)) => Err(StoreError::Db(e)),
            Err(p) => Err(self.damaged(format!("sled panicked: {p}"))),
        }
    }

    /// Records `what` as damage (the first one found is kept) and returns the error naming it.
    pub(super) fn damaged(&self, what: impl Into<String>) -> StoreError {
        let what = what.into();
        self.damage.send_if_modified(|d| {
            if d.is_none() {
                // Debug only: whoever gets the error reports it (once, with the remedy).
                tracing::debug!(dir = %self.dir.display(), %what, "chain store damaged");
                *d = Some(what.clone());
                true
            } else {
                false
            }
        });
        StoreError::Damaged {
            dir: self.dir.as_ref().clone(),
            what,
        }
    }

    /// A stored value in `space` that does not decode.
    pub(super) fn corrupt(&self, space: &str) -> StoreError {
        self.damaged(format!("a stored {space} value does not decode"))
    }

    /// The damage found so far, if any.
    pub fn damage(&self) -> Option<String> {
        self.damage.borrow().clone()
    }

    /// Resolves with the first damage found (at once if one was found already).
    pub async fn damage_found(&self) -> String {
        let mut rx = self.damage.subscribe();
        let found = rx.wait_for(|d| d.is_some()).await.map(|d| d.clone());
        match found {
            Ok(d) => d.unwrap_or_default(),
            // The sender lives in `self`: unreachable while we are borrowed.
            Err(_) => std::future::pending().await,
        }
    }

    /// Refuses writes once damage was found.
    pub(super) fn writable(&self) -> Result<(), StoreError> {
        match self.damage() {
            Some(what) => Err(StoreError::Damaged {
                dir: self.dir.as_ref().clone(),
                what,
            }),
            None => Ok(()),
        }
    }

    pub(super) fn get(&self, k: &[u8]) -> Result<Option<sled::IVec>, StoreError> {
        self.guard(|| self.tree.get(k))
    }

    /// Every (key, value) under a one-byte prefix, read inside the guard.
    pub(super) fn scan(&self, space: u8) -> Result<Vec<(sled::IVec, sled::IVec)>, StoreError> {
        self.guard(|| self.tree.scan_prefix([space]).collect())
    }

    /// Opens the sled database (panics and corruption caught) and checks the schema version
    /// of an existing store (schema 1 kept separate trees; later ones a `schema` meta key).
    /// Nothing is verified beyond that: see [`ChainStore::verify_integrity`].
    pub(super) fn open_db(dir: &Path) -> Result<ChainStore, StoreError> {
        let damaged = |what: String| StoreError::Damaged {
            dir: dir.to_path_buf(),
            what,
        };
        // sled releases a directory's file lock when its background flusher stops, shortly
        // after the last handle in this process drops; an immediate reopen waits for that
        // (up to 2 s). Another process holding the lock still fails after the wait.
        let mut tries = 0;
        let db = loop {
            // No background flusher: every write path flushes itself (a commit before its
            // notification, a side block, an invalid mark), so sled's 500 ms flusher thread
            // would only wake an idle node twice a second for nothing.
            let opened = catch(|| sled::Config::new().path(dir).flush_every_ms(None).open())
                .map_err(|p| damaged(format!("sled panicked while opening it: {p}")))?;
            match opened {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock") && tries < 40 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e @ (sled::Error::Corruption { .. } | sled::Error::ReportableBug(_))) => {
                    return Err(damaged(format!(
                        "it cannot be opened: {}",
                        describe_sled(&e)
                    )))
                }
                r => break r.map_err(StoreError::Db)?,
            }
        };
        if db.tree_names().iter().any(|n| n.as_ref() == b"meta") {
            return Err(StoreError::WrongSchema {
                found: 1,
                expected: SCHEMA_VERSION,
            });
        }
        let tree = match catch(|| db.open_tree("chain")) {
            Ok(Ok(t)) => t,
            Ok(Err(sled::Error::Io(e))) => return Err(StoreError::Db(sled::Error::Io(e))),
            Ok(Err(e)) => return Err(damaged(describe_sled(&e))),
            Err(p) => return Err(damaged(format!("sled panicked while opening it: {p}"))),
        };
        let files = BlockFiles::open(dir).map_err(block_file_error(dir))?;
        let s = ChainStore {
            tree,
            db,
            dir: Arc::new(dir.to_path_buf()),
            damage: Arc::new(tokio::sync::watch::channel(None).0),
            marker: Default::default(),
            txindex: super::txindex::new_index(),
            files: Arc::new(files),
        };
        if let Some(v) = s.get(&key(META, META_SCHEMA))? {
            let found = u32::from_le_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| s.corrupt("meta schema"))?,
            );
            if found == SCHEMA_BODIES_IN_SLED {
                s.move_bodies_to_files()?;
            } else if found != SCHEMA_VERSION {
                return Err(StoreError::WrongSchema {
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
        }
        Ok(s)
    }

    /// Opens an existing store without a genesis file, using the consensus fields it keeps,
    /// and verifies its integrity ([`ChainStore::verify_integrity`]); returns the store and
    /// its chain spec (without bootnodes).
    pub fn open_existing(dir: &Path) -> Result<(ChainStore, ChainSpec), StoreError> {
        let (s, spec) = ChainStore::open_unverified(dir)?;
        s.verify_integrity()?;
        s.catch_up_tx_index()?;
        Ok((s, spec))
    }

    /// As [`ChainStore::open_existing`], without the integrity checks (for `store repair`,
    /// which salvages what it can read).
    pub fn open_unverified(dir: &Path) -> Result<(ChainStore, ChainSpec), StoreError> {
        if !dir.exists() {
            return Err(StoreError::Missing(dir.display().to_string()));
        }
        let s = ChainStore::open_db(dir)?;
        let v = match s.get(&key(META, META_SPEC))? {
            Some(v) => v,
            // An empty database and no marker: nothing was ever stored here.
            None if s.read_marker()?.is_none() && s.guard(|| Ok(s.tree.is_empty()))? => {
                return Err(StoreError::Missing(dir.display().to_string()))
            }
            None => return Err(s.damaged("the chain spec (meta) is missing")),
        };
        let c: crate::genesis::ConsensusSpec =
            encoding::decode(&v, usize::MAX).map_err(|_| s.corrupt("meta spec"))?;
        let spec = ChainSpec::from_consensus(c);
        let s = s.verify_or_init(&spec)?;
        Ok((s, spec))
    }

    /// Opens (or creates) the store in `dir` and verifies its integrity
    /// ([`ChainStore::verify_integrity`]). A new store is initialised with the genesis block
    /// and allocations; an existing one must match `spec`'s genesis and our schema.
    pub fn open(dir: &Path, spec: &ChainSpec) -> Result<ChainStore, StoreError> {
        let s = ChainStore::open_db(dir)?.verify_or_init(spec)?;
        s.verify_integrity()?;
        s.catch_up_tx_index()?;
        Ok(s)
    }

    /// Migrates a schema 4 store: every block's bytes, a value of the `b` space, go to the
    /// block files and their [`BlockPos`] replaces them, in one batch with the new schema
    /// version, synced and flushed. Interrupted, it leaves a schema 4 store (the appended
    /// records unreferenced) and runs again at the next open.
    fn move_bodies_to_files(&self) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut n = 0u64;
        for (k, v) in self.scan(BLOCK)? {
            let pos = self.append_body(&v)?;
            batch.insert(k, encoding::encode(&pos));
            n += 1;
        }
        batch.insert(key(META, META_SCHEMA), &SCHEMA_VERSION.to_le_bytes());
        self.guard(|| self.tree.apply_batch(batch))?;
        self.flush()?;
        tracing::info!(
            blocks = n,
            dir = %self.files.path(0).parent().unwrap_or(Path::new("")).display(),
            "store schema {SCHEMA_BODIES_IN_SLED} -> {SCHEMA_VERSION}: block bodies moved to block files"
        );
        Ok(())
    }

    /// Appends a block's bytes to the block files.
    fn append_body(&self, bytes: &[u8]) -> Result<BlockPos, StoreError> {
        self.files
            .append(bytes)
            .map_err(block_file_error(&self.dir))
    }

    /// The bytes of a block from its index entry (a `b` value).
    fn body(&self, hash_key: &[u8], pos: &[u8]) -> Result<Vec<u8>, StoreError> {
        let pos: BlockPos =
            encoding::decode(pos, 64).map_err(|_| self.corrupt("block position"))?;
        self.files.read(&pos).map_err(|e| match e {
            ReadError::Damaged(what) => self.damaged(format!(
                "block {}: {what}",
                hex::encode(hash_key.get(1..).unwrap_or_default())
            )),
            ReadError::Io(path, source) => StoreError::BlockFile { path, source },
        })
    }

    /// Checks an opened store against `spec` (same genesis), or initialises an empty one.
    fn verify_or_init(self, spec: &ChainSpec) -> Result<ChainStore, StoreError> {
        let s = self;
        let genesis = spec.genesis_block();
        let gh = genesis.hash();
        match s.get(&key(META, META_GENESIS))? {
            Some(found) => {
                let found = Hash(found.as_ref().try_into().map_err(|_| s.corrupt("meta"))?);
                if found != gh {
                    return Err(StoreError::WrongGenesis {
                        found,
                        expected: gh,
                    });
                }
            }
            None => {
                if s.get(&key(META, META_HEAD))?.is_some() {
                    return Err(s.damaged("the genesis hash (meta) is missing"));
                }
                // The marker is written last when a store is created: with one present, the
                // database lost (nearly) everything, and must not be silently re-created.
                if let Some(m) = s.read_marker()? {
                    return Err(s.damaged(format!(
                        "the database has lost its genesis entries, but the head marker {} says height {}",
                        s.marker_path().display(),
                        m.height
                    )));
                }
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
                s.guard(|| {
                    s.tree
                        .insert(key(META, META_SCHEMA), &SCHEMA_VERSION.to_le_bytes())
                })?;
                s.guard(|| {
                    s.tree
                        .insert(key(META, META_SPEC), encoding::encode(&spec.consensus()))
                })?;
                s.guard(|| s.tree.insert(key(META, META_TXINDEX), &0u64.to_le_bytes()))?;
                s.commit(&genesis, &diff)?;
                s.guard(|| s.tree.insert(key(META, META_GENESIS), &gh.0))?;
                s.flush_head(0, gh)?;
            }
        }
        Ok(s)
    }

    /// Verifies what opening a store must: the head block is stored and is what its hash
    /// says; the head is not below the head marker, and the marker's block is stored (else
    /// the database lost its tail: a rollback); and every stored key and value reads back
    /// (sled verifies each message's CRC-32), and so does every block record in the block
    /// files (its CRC-32, [`super::blockfile`]). A store without a marker (written before
    /// markers existed, or the marker deleted) gets one, with a warning. Returns the head.
    ///
    /// Errors: [`StoreError::Damaged`] naming the damage; I/O errors.
    pub fn verify_integrity(&self) -> Result<HeadMarker, StoreError> {
        let hash = self.head_hash()?;
        let block = self
            .block(&hash)?
            .ok_or_else(|| self.damaged(format!("the head block {hash} is missing")))?;
        if block.hash() != hash {
            return Err(self.damaged(format!(
                "the block stored as head {hash} hashes to {}",
                block.hash()
            )));
        }
        let head = HeadMarker {
            height: block.header.height,
            hash,
        };
        match self.read_marker()? {
            Some(m) if m.height > head.height => {
                return Err(self.damaged(format!(
                    "the database ends at height {} but the head marker {} says height {} ({}): \
                     the last {} blocks were lost",
                    head.height,
                    self.marker_path().display(),
                    m.height,
                    m.hash,
                    m.height - head.height
                )));
            }
            // A crash between a commit's flush and the marker's replacement leaves the
            // marker one change behind: its block is still stored.
            Some(m) if m != head && !self.has_block(&m.hash)? => {
                return Err(self.damaged(format!(
                    "the head marker names block {} at height {}, which the database lacks",
                    m.hash, m.height
                )));
            }
            Some(m) if m != head => self.write_marker(head)?,
            Some(_) => {}
            None => {
                tracing::warn!(
                    path = %self.marker_path().display(),
                    height = head.height,
                    "no head marker: writing one (a rollback before this point cannot be detected)"
                );
                self.write_marker(head)?;
            }
        }
        let mut n = 0u64;
        self.guard(|| {
            for kv in self.tree.iter() {
                kv?;
                n += 1;
            }
            Ok(())
        })?;
        // The block files' records, each checked against its CRC-32.
        let blocks = self.each_block(|_, _| Ok(()))?;
        tracing::debug!(
            keys = n,
            blocks,
            "store integrity scan: every value and block record read back"
        );
        Ok(head)
    }

    /// Path of the head marker.
    pub fn marker_path(&self) -> PathBuf {
        self.dir.join(HEAD_MARKER)
    }

    /// The head marker, if there is one. The file holds up to two records (see
    /// [`ChainStore::write_marker`]); the valid one with the highest `seq` wins, a record whose
    /// checksum fails (a write torn by a crash) is skipped, and a record without `seq` and
    /// `sum` (an older marker, or one written by hand) counts as `seq` 0.
    ///
    /// Errors: a marker with no valid record is damage; I/O errors.
    pub fn read_marker(&self) -> Result<Option<HeadMarker>, StoreError> {
        Ok(self.read_marker_record()?.map(|(m, _)| m))
    }

    /// [`ChainStore::read_marker`] with the record's sequence number.
    fn read_marker_record(&self) -> Result<Option<(HeadMarker, u64)>, StoreError> {
        let path = self.marker_path();
        let bytes = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Marker { path, source: e }),
        };
        let best = bytes
            .split(|b| *b == b'\n')
            .filter_map(|line| {
                let v: serde_json::Value = serde_json::from_slice(line.trim_ascii()).ok()?;
                let m = HeadMarker {
                    height: v["height"].as_u64()?,
                    hash: v["hash"].as_str()?.parse().ok()?,
                };
                match (v["seq"].as_u64(), v["sum"].as_str()) {
                    (Some(seq), Some(sum)) => (sum == marker_sum(seq, &m)).then_some((m, seq)),
                    (None, None) => Some((m, 0)),
                    _ => None,
                }
            })
            .max_by_key(|(_, seq)| *seq);
        best.map(Some).ok_or_else(|| {
            self.damaged(format!("the head marker {} is unreadable", path.display()))
        })
    }

    /// Moves the head marker to `m`. The file has two fixed slots of [`MARKER_SLOT`] bytes,
    /// each a JSON line `{"seq", "height", "hash", "sum"}` (`sum`: the first 8 bytes of
    /// SHA-256 over seq, height and hash, in hex); record `seq` goes to slot `seq % 2`, so a
    /// write torn by a crash spoils only its own slot and the other still holds the previous
    /// head (the double-buffered meta pages of LMDB). The first write of a process replaces
    /// the whole file atomically (temporary file, fsync, rename; an older single-record marker
    /// becomes two slots); later ones overwrite one slot in place and `fdatasync`: no new
    /// inode, rename or directory update per block.
    fn write_marker(&self, m: HeadMarker) -> Result<(), StoreError> {
        use std::io::Write;
        use std::os::unix::fs::FileExt;
        let path = self.marker_path();
        let mut open = self.marker.lock().unwrap_or_else(|p| p.into_inner());
        let res = (|| -> std::io::Result<()> {
            if let Some(f) = open.as_mut() {
                let seq = f.seq + 1;
                let slot = (seq % 2) as usize * MARKER_SLOT;
                f.file
                    .write_all_at(&marker_slot(seq, Some(&m)), slot as u64)?;
                f.file.sync_data()?;
                f.seq = seq;
                return Ok(());
            }
            let old = self.read_marker_record().ok().flatten();
            let seq = old.map_or(1, |(_, seq)| seq + 1);
            // The previous record stays, in the other slot.
            let mut slots = [marker_slot(0, None); 2];
            for (m, seq) in old.into_iter().chain([(m, seq)]) {
                slots[(seq % 2) as usize] = marker_slot(seq, Some(&m));
            }
            let text = slots.concat();
            let tmp = self.dir.join(format!("{HEAD_MARKER}.tmp"));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            *open = Some(MarkerFile {
                file: std::fs::OpenOptions::new().write(true).open(&path)?,
                seq,
            });
            Ok(())
        })();
        if res.is_err() {
            // Start over with a whole-file write next time.
            *open = None;
        }
        res.map_err(|source| StoreError::Marker { path, source })
    }

    /// Flushes, then moves the head marker to (`height`, `hash`), the head just flushed.
    pub fn flush_head(&self, height: u64, hash: Hash) -> Result<(), StoreError> {
        self.flush()?;
        let marked = self.write_marker(HeadMarker { height, hash });
        // The queued blocks' index entries are written behind the head, now that it is
        // durable (`super::txindex`).
        self.wake_indexer();
        marked
    }

    /// Hash of the head block.
    pub fn head_hash(&self) -> Result<Hash, StoreError> {
        let v = self
            .get(&key(META, META_HEAD))?
            .ok_or_else(|| self.damaged("the head (meta) is missing"))?;
        Ok(Hash(
            v.as_ref()
                .try_into()
                .map_err(|_| self.corrupt("meta head"))?,
        ))
    }

    /// Genesis block hash.
    pub fn genesis_hash(&self) -> Result<Hash, StoreError> {
        self.hash_at(0)?
            .ok_or_else(|| self.damaged("no canonical block at height 0"))
    }

    /// The block with `hash`, if stored.
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        match self.block_bytes(hash)? {
            Some(v) => Ok(Some(
                encoding::decode(&v, usize::MAX).map_err(|_| self.corrupt("block"))?,
            )),
            None => Ok(None),
        }
    }

    /// Whether a block with `hash` is stored.
    pub fn has_block(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.guard(|| self.tree.contains_key(key(BLOCK, &hash.0)))
    }

    /// Encoded bytes of the block with `hash` (for sync responses without re-encoding).
    pub fn block_bytes(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        let k = key(BLOCK, &hash.0);
        match self.get(&k)? {
            Some(pos) => Ok(Some(self.body(&k, &pos)?)),
            None => Ok(None),
        }
    }

    /// Canonical block hash at `height`.
    pub fn hash_at(&self, height: u64) -> Result<Option<Hash>, StoreError> {
        match self.get(&key(CANONICAL, &height.to_be_bytes()))? {
            Some(v) => Ok(Some(Hash(
                v.as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("canonical index"))?,
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

    /// Where a transaction was included according to the store's index alone (see
    /// [`ChainStore::tx_location`] for every canonical transaction).
    pub(super) fn indexed_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StoreError> {
        match self.get(&key(TXINDEX, &hash.0))? {
            Some(v) => Ok(Some(
                encoding::decode(&v, 64).map_err(|_| self.corrupt("tx index"))?,
            )),
            None => Ok(None),
        }
    }

    /// The account at head.
    pub fn get_account(&self, addr: &Address) -> Result<Account, StoreError> {
        match self.get(&key(ACCOUNT, &addr.0))? {
            Some(v) => Ok(encoding::decode(&v, 64).map_err(|_| self.corrupt("account"))?),
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
        let b = block.inner();
        self.flush_head(b.header.height, b.hash())
    }

    /// The atomic write of [`ChainStore::commit_block`] without the flush: readable at once,
    /// durable only after [`ChainStore::flush`].
    pub fn write_block(&self, block: &Verified<Block>, diff: &StateDiff) -> Result<(), StoreError> {
        let t0 = std::time::Instant::now();
        let cpu = || {
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
                .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
                .unwrap_or(0)
        };
        let c0 = cpu();
        // Time this thread waited for a core (Linux schedstat, µs), read only for the debug
        // line: the rest of the wall time beyond CPU and that wait is time blocked (sled's
        // locks, its I/O pool, the disk).
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        let rq = || {
            debug
                .then(|| std::fs::read_to_string("/proc/thread-self/schedstat").ok())
                .flatten()
                .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
                .unwrap_or(0)
                / 1000
        };
        let r0 = rq();
        self.commit(block.inner(), diff)?;
        tracing::debug!(
            height = block.inner().header.height,
            rq_us = rq().saturating_sub(r0),
            cpu_us = cpu().saturating_sub(c0),
            txn_us = t0.elapsed().as_micros() as u64,
            "store write timing"
        );
        Ok(())
    }

    fn commit(&self, block: &Block, diff: &StateDiff) -> Result<(), StoreError> {
        self.writable()?;
        let hash = block.hash();
        let height = block.header.height;
        let mut batch = sled::Batch::default();
        let pos = self.append_body(&block.to_bytes())?;
        batch.insert(key(BLOCK, &hash.0), encoding::encode(&pos));
        batch.insert(key(CANONICAL, &height.to_be_bytes()), &hash.0);
        // The transactions' index entries follow behind the head (`super::txindex`).
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
        // A block without transactions on a caught-up index moves the indexed height itself
        // (commits are serialised, so nothing is queued meanwhile): an idle node's indexer
        // never wakes.
        let quiet = block.txs.is_empty() && self.index_caught_up();
        if quiet {
            batch.insert(key(META, META_TXINDEX), &height.to_le_bytes());
        }
        self.guard(|| self.tree.apply_batch(batch))?;
        if quiet {
            self.set_indexed_height(height);
            Ok(())
        } else {
            self.queue_for_index(block)
        }
    }

    /// Stores a block of a side branch (header, commitments and signatures checked; state not
    /// applied) without touching the canonical chain, and flushes.
    pub fn store_side_block(&self, block: &Unapplied) -> Result<(), StoreError> {
        self.writable()?;
        let b = block.inner();
        let mut batch = sled::Batch::default();
        let pos = self.append_body(&b.to_bytes())?;
        batch.insert(key(BLOCK, &b.hash().0), encoding::encode(&pos));
        batch.remove(key(TIP, &b.header.parent.0));
        batch.insert(key(TIP, &b.hash().0), &[]);
        self.guard(|| self.tree.apply_batch(batch))?;
        self.flush()
    }

    /// Switches the canonical chain in one atomic batch (then flushes): removes the undone
    /// blocks' heights and tx index entries, adds the applied blocks' heights and undo records,
    /// writes the final accounts, and moves the head to the last applied block; the applied
    /// blocks' transactions are queued for the index ([`super::txindex`]), whose indexed height
    /// falls to the fork point in the same batch.
    pub fn commit_reorg(&self, w: &ReorgWrite<'_>) -> Result<(), StoreError> {
        self.write_reorg(w)?;
        match w.applied.last() {
            Some((tip, _)) => self.flush_head(tip.inner().header.height, tip.inner().hash()),
            None => Ok(()),
        }
    }

    /// The atomic write of [`ChainStore::commit_reorg`] without the flush.
    pub fn write_reorg(&self, w: &ReorgWrite<'_>) -> Result<(), StoreError> {
        self.writable()?;
        let Some((tip, _)) = w.applied.last() else {
            return Ok(());
        };
        let tip = tip.inner();
        let fork = w.applied[0].0.inner().header.height.saturating_sub(1);
        // No indexing batch may land between this batch and the queue's update.
        let _index = self.reorg_index_lock();
        let indexed_to = self.reorg_indexed_height(fork);
        let mut batch = sled::Batch::default();
        batch.insert(key(META, META_TXINDEX), &indexed_to.to_le_bytes());
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
            batch.insert(key(UNDO, &hash.0), encoding::encode(undo));
        }
        for (addr, acc) in w.accounts {
            batch.insert(key(ACCOUNT, &addr.0), encoding::encode(acc));
        }
        batch.insert(key(META, META_HEAD), &tip.hash().0);
        self.guard(|| self.tree.apply_batch(batch))?;
        let applied: Vec<&Block> = w.applied.iter().map(|(v, _)| v.inner()).collect();
        self.requeue_after_reorg(fork, indexed_to, &applied);
        drop(_index);
        self.index_if_unattended()
    }

    /// The undo record of a canonical (or once-canonical) block.
    pub fn undo_record(&self, hash: &Hash) -> Result<Option<UndoRecord>, StoreError> {
        match self.get(&key(UNDO, &hash.0))? {
            Some(v) => Ok(Some(
                encoding::decode(&v, usize::MAX).map_err(|_| self.corrupt("undo record"))?,
            )),
            None => Ok(None),
        }
    }

    /// Hashes of all chain tips (blocks with no stored child), including the head.
    pub fn tips(&self) -> Result<Vec<Hash>, StoreError> {
        self.scan(TIP)?
            .into_iter()
            .map(|(k, _)| Ok(Hash(k[1..].try_into().map_err(|_| self.corrupt("tip"))?)))
            .collect()
    }

    /// Records that a block failed validation (its descendants are refused too).
    pub fn mark_invalid(&self, hash: &Hash) -> Result<(), StoreError> {
        self.writable()?;
        self.guard(|| self.tree.insert(key(INVALID, &hash.0), &[]))?;
        self.flush()
    }

    /// Whether a block was marked invalid.
    pub fn is_invalid(&self, hash: &Hash) -> Result<bool, StoreError> {
        self.guard(|| self.tree.contains_key(key(INVALID, &hash.0)))
    }

    /// Flushes all pending writes: the block files are synced first, so that no index entry
    /// on disk points at bytes that are not.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.files.sync().map_err(block_file_error(&self.dir))?;
        self.guard(|| self.db.flush())?;
        Ok(())
    }

    /// Calls `f` with every stored block's hash (canonical and side branches) and bytes, read
    /// one at a time from the block files with their checksums verified (`store check`, the
    /// integrity scan at open). Returns how many there were.
    ///
    /// Errors: the first record that is damaged, as [`StoreError::Damaged`]; I/O errors;
    /// whatever `f` returns.
    pub(super) fn each_block(
        &self,
        mut f: impl FnMut(&[u8], Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for (k, pos) in self.scan(BLOCK)? {
            let bytes = self.body(&k, &pos)?;
            f(k.get(1..).unwrap_or_default(), bytes)?;
            n += 1;
        }
        Ok(n)
    }
}

impl StateView for ChainStore {
    /// State at head. A database error here is recorded as damage (when it is one): the store
    /// then refuses every write and the node shuts down naming it, so the default account
    /// returned meanwhile never reaches the store.
    fn account(&self, addr: &Address) -> Account {
        self.get_account(addr).unwrap_or_else(|e| {
            if !e.is_damage() {
                let _ = self.damaged(format!("account {addr} cannot be read: {e}"));
            }
            Account::default()
        })
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
        // A block's index entry that is no position.
        let good = store.tree.get(key(BLOCK, &b2.hash().0)).unwrap().unwrap();
        store
            .tree
            .insert(key(BLOCK, &b2.hash().0), &b"garbage"[..])
            .unwrap();
        expect_fail(&store, "block position value does not decode");
        store.tree.insert(key(BLOCK, &b2.hash().0), good).unwrap();
        store.check(&s).unwrap();
    }

    /// Flips one byte inside the record of block `hash` in its block file.
    fn flip_in_record(store: &ChainStore, hash: &Hash) {
        let v = store.tree.get(key(BLOCK, &hash.0)).unwrap().unwrap();
        let pos: BlockPos = encoding::decode(&v, 64).unwrap();
        let path = store.files.path(pos.file);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[pos.offset as usize + 8 + pos.len as usize / 2] ^= 0x10;
        std::fs::write(&path, bytes).unwrap();
    }

    #[test]
    fn a_schema_4_store_has_its_block_bodies_moved_to_the_block_files() {
        let dir = tempfile::tempdir().unwrap();
        let head = {
            let (store, _) = built(dir.path());
            // Back to schema 4: bodies as the `b` values, no block files.
            for (k, pos) in store.scan(BLOCK).unwrap() {
                let body = store.body(&k, &pos).unwrap();
                store.tree.insert(k, body).unwrap();
            }
            store
                .tree
                .insert(key(META, META_SCHEMA), &4u32.to_le_bytes())
                .unwrap();
            store.flush().unwrap();
            store.head_hash().unwrap()
        };
        std::fs::remove_dir_all(dir.path().join(super::super::blockfile::BLOCKS_DIR)).unwrap();
        let (store, s) = ChainStore::open_existing(dir.path()).unwrap();
        assert_eq!(store.head_hash().unwrap(), head);
        assert_eq!(store.check(&s).unwrap().stored_blocks, 4);
        let v = store.get(&key(META, META_SCHEMA)).unwrap().unwrap();
        assert_eq!(v.as_ref(), &SCHEMA_VERSION.to_le_bytes());
        assert!(store.files.path(0).exists());
        // Another schema is still refused.
        store
            .tree
            .insert(key(META, META_SCHEMA), &3u32.to_le_bytes())
            .unwrap();
        store.flush().unwrap();
        drop(store);
        let e = ChainStore::open_existing(dir.path()).err().unwrap();
        assert!(matches!(e, StoreError::WrongSchema { found: 3, .. }), "{e}");
    }

    #[test]
    fn a_panic_inside_sled_becomes_damage_and_stops_writes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = built(dir.path());
        let e = store
            .guard(|| -> sled::Result<()> { panic!("tried to serialize Uninitialized") })
            .unwrap_err();
        assert!(e.is_damage(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("sled panicked: tried to serialize Uninitialized")
                && text.contains("meshnode store repair --data-dir"),
            "{text}"
        );
        assert!(store.damage().is_some());
        assert!(store.mark_invalid(&Hash([7; 32])).unwrap_err().is_damage());
    }

    #[test]
    fn the_head_marker_catches_a_rollback_and_a_missing_one_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let (head, marker, parent) = {
            let (store, _) = built(dir.path());
            let head = store.head_hash().unwrap();
            let parent = store.block(&head).unwrap().unwrap().header.parent;
            (head, store.marker_path(), parent)
        };
        // Two slots: the head (seq 4: genesis and three blocks) and the block before it.
        let text = std::fs::read_to_string(&marker).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l.trim()).unwrap())
            .collect();
        assert_eq!(text.len(), 2 * MARKER_SLOT, "{text:?}");
        assert_eq!(
            (lines[0]["seq"].as_u64(), lines[0]["height"].as_u64()),
            (Some(4), Some(3))
        );
        assert_eq!(lines[0]["hash"].as_str(), Some(&*head.to_string()));
        assert_eq!(
            (lines[1]["seq"].as_u64(), lines[1]["hash"].as_str()),
            (Some(3), Some(&*parent.to_string()))
        );
        let reopen = || ChainStore::open(dir.path(), &spec()).map(|_| ());
        // A crash tore the newest record: the other slot names the parent, still stored,
        // and the store opens (the marker is moved back up to the head).
        let mut torn = text.clone().into_bytes();
        torn[20..40].copy_from_slice(&[b'x'; 20]);
        std::fs::write(&marker, &torn).unwrap();
        reopen().unwrap();
        let store = ChainStore::open(dir.path(), &spec()).unwrap();
        assert_eq!(
            store.read_marker().unwrap().map(|m| m.hash),
            Some(head),
            "the head again after reopening"
        );
        drop(store);
        // A record whose checksum does not match its fields is not trusted.
        let forged = String::from_utf8(std::fs::read(&marker).unwrap())
            .unwrap()
            .replace("\"height\":3", "\"height\":9");
        std::fs::write(&marker, forged).unwrap();
        reopen().unwrap();
        // The database "lost" two blocks: the marker is ahead of it.
        std::fs::write(
            &marker,
            format!(r#"{{"height":5,"hash":"{}"}}"#, Hash([9; 32])),
        )
        .unwrap();
        let e = reopen().unwrap_err().to_string();
        assert!(
            e.contains("ends at height 3") && e.contains("the last 2 blocks were lost"),
            "{e}"
        );
        // A marker naming a block the database lacks.
        std::fs::write(
            &marker,
            format!(r#"{{"height":2,"hash":"{}"}}"#, Hash([9; 32])),
        )
        .unwrap();
        let e = reopen().unwrap_err().to_string();
        assert!(e.contains("which the database lacks"), "{e}");
        std::fs::write(&marker, "{\"height\":").unwrap();
        let e = reopen().unwrap_err().to_string();
        assert!(e.contains("head.json is unreadable"), "{e}");
        // No marker (a store from before markers): opened, and given one.
        std::fs::remove_file(&marker).unwrap();
        reopen().unwrap();
        assert!(std::fs::read_to_string(&marker)
            .unwrap()
            .contains(&head.to_string()));
        // While a process runs, blocks move the marker in place: the same file throughout.
        {
            use std::os::unix::fs::MetadataExt;
            let chain = Chain::open(dir.path(), spec()).unwrap();
            let key = Keypair::dev_validator(0);
            // The process's first write replaces the file; the later ones do not.
            chain.produce(&key, 10, |_| vec![]).unwrap().unwrap();
            let inode = std::fs::metadata(&marker).unwrap().ino();
            for slot in 11..14 {
                chain.produce(&key, slot, |_| vec![]).unwrap().unwrap();
            }
            let h = chain.store.head_hash().unwrap();
            assert_eq!(std::fs::metadata(&marker).unwrap().ino(), inode);
            assert_eq!(chain.store.read_marker().unwrap().map(|m| m.hash), Some(h));
            assert_eq!(
                std::fs::metadata(&marker).unwrap().len(),
                2 * MARKER_SLOT as u64
            );
        }
        // A database recreated empty under a marker is refused, not re-initialised.
        let db = tempfile::tempdir().unwrap();
        std::fs::copy(&marker, db.path().join(HEAD_MARKER)).unwrap();
        let e = ChainStore::open(db.path(), &spec())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("lost its genesis entries"), "{e}");
    }

    #[test]
    fn repair_keeps_the_blocks_before_the_first_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let chain_dir = dir.path().join("chain");
        {
            let (store, _) = built(&chain_dir);
            let b2 = store.hash_at(2).unwrap().unwrap();
            flip_in_record(&store, &b2);
        }
        // Found at open (every block record is read back, its CRC-32 checked), named.
        let e = ChainStore::open_existing(&chain_dir).err().unwrap();
        assert!(e.is_damage(), "{e}");
        assert!(
            e.to_string().contains("blk00000.dat") && e.to_string().contains("checksum"),
            "{e}"
        );
        let r = crate::chain::repair::repair(&chain_dir, None, false).unwrap();
        assert_eq!(r.kept_height, 1);
        assert_eq!(r.marker.map(|m| m.height), Some(3));
        assert!(r.stopped_by.unwrap().contains("height 2"));
        let (store, s) = ChainStore::open_existing(&chain_dir).unwrap();
        assert_eq!(store.check(&s).unwrap().head_height, 1);
        drop(store);
        let r = crate::chain::repair::repair(&chain_dir, None, true).unwrap();
        assert_eq!((r.kept_height, r.resync), (0, true));
        assert!(!dir.path().join("chain.damaged").exists());
        assert!(!dir.path().join("chain.repair").exists());
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
