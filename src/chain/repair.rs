//! `store repair`: rebuilds a damaged chain store from the blocks it can still read, as
//! Bitcoin Core's `-reindex` rebuilds its indexes and chainstate from the block files.
//!
//! The canonical blocks are read from the damaged store in height order and imported, each
//! fully validated (producer signature, transactions, state transition), into a fresh store
//! beside it; the walk stops at the first block that is missing, unreadable or invalid. The
//! fresh store then replaces the damaged one. What was lost above that height is refilled by
//! sync from peers when the node starts. With `resync` nothing is kept but genesis; nor when
//! nothing can be read (then the chain spec comes from the genesis file given).

use super::store::{ChainStore, HeadMarker, StoreError};
use super::Chain;
use crate::genesis::ChainSpec;
use crate::types::Hash;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What `store repair` did.
#[derive(Clone, Debug)]
pub struct RepairReport {
    /// Height of the head kept (0: only genesis).
    pub kept_height: u64,
    /// Hash of the head kept.
    pub kept_hash: Hash,
    /// The head the damaged store recorded, if it could be read.
    pub stored_head: Option<u64>,
    /// The head marker of the damaged store, if it had a readable one: the height the node
    /// had reached.
    pub marker: Option<HeadMarker>,
    /// Why the walk stopped below the stored head (the first damage met), if it did.
    pub stopped_by: Option<String>,
    /// Whether the chain was cleared on request (`--resync`).
    pub resync: bool,
}

/// Why `store repair` could not run.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// The store cannot be opened and no genesis was given to rebuild it from.
    #[error("the store cannot be read ({}), nor the chain spec inside it: pass the network's genesis file with --genesis", cause.what())]
    NoSpec {
        /// Why it cannot be opened.
        cause: StoreError,
    },
    /// The store belongs to another chain than the genesis given, or the fresh store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Moving the directories failed.
    #[error("replacing {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepairError + '_ {
    move |source| RepairError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Repairs the store in `dir` (`DATA_DIR/chain`; the node must be stopped). The chain spec
/// comes from the store, or from `genesis` when the store cannot be opened (with both, they
/// must agree). With `resync`, only genesis is kept.
///
/// Errors: see [`RepairError`]. On error the damaged store stays where it was (with its sled
/// snapshot set aside if it was damaged).
pub fn repair(
    dir: &Path,
    genesis: Option<&ChainSpec>,
    resync: bool,
) -> Result<RepairReport, RepairError> {
    let mut unreadable = None;
    let opened = match ChainStore::open_unverified(dir) {
        // sled's snapshot only caches where pages are in the log: when the two disagree
        // (a damaged log behind an intact snapshot, or a damaged snapshot), sled can rebuild
        // from the log alone, up to its first damaged message.
        Err(e) if e.is_damage() && set_snapshots_aside(dir).map_err(io(dir))? > 0 => {
            ChainStore::open_unverified(dir)
        }
        r => r,
    };
    let (old, spec) = match opened {
        Ok((s, spec)) => {
            if let Some(g) = genesis {
                if g.genesis_block().hash() != spec.genesis_block().hash() {
                    return Err(StoreError::WrongGenesis {
                        found: spec.genesis_block().hash(),
                        expected: g.genesis_block().hash(),
                    }
                    .into());
                }
            }
            (Some(s), spec)
        }
        Err(cause @ (StoreError::WrongGenesis { .. } | StoreError::WrongSchema { .. })) => {
            return Err(cause.into())
        }
        // Nothing can be read: the last consistent block is genesis.
        Err(cause) => match genesis {
            None => return Err(RepairError::NoSpec { cause }),
            Some(g) => {
                unreadable = Some(format!("the store cannot be read: {}", cause.what()));
                (None, g.clone())
            }
        },
    };
    let marker = old.as_ref().and_then(|s| s.read_marker().ok().flatten());
    let stored_head = old.as_ref().and_then(|s| {
        let h = s.head_hash().ok()?;
        Some(s.block(&h).ok()??.header.height)
    });

    let fresh_dir = dir.with_file_name(format!(
        "{}.repair",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("chain")
    ));
    if fresh_dir.exists() {
        std::fs::remove_dir_all(&fresh_dir).map_err(io(&fresh_dir))?;
    }
    let mut stopped_by = if resync { None } else { unreadable };
    let (kept_height, kept_hash) = {
        let fresh = Chain::open(&fresh_dir, spec.clone())?;
        if let (Some(old), false) = (&old, resync) {
            let none = HashSet::new();
            for h in 1.. {
                let block = match old.block_at(h) {
                    Ok(Some(b)) => b,
                    Ok(None) => {
                        if stored_head.is_some_and(|s| h <= s) {
                            stopped_by = Some(format!("no canonical block at height {h}"));
                        }
                        break;
                    }
                    Err(e) => {
                        stopped_by = Some(format!("height {h}: {e}"));
                        break;
                    }
                };
                if let Err(e) = fresh.import(block, &none) {
                    stopped_by = Some(format!("height {h}: {e}"));
                    break;
                }
            }
        }
        let head = fresh.head();
        (head.height, head.hash)
    };
    drop(old);
    // Swap: damaged -> chain.damaged, fresh -> chain, then remove the damaged copy.
    let aside = dir.with_file_name(format!(
        "{}.damaged",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("chain")
    ));
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(io(&aside))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &aside).map_err(io(dir))?;
    }
    std::fs::rename(&fresh_dir, dir).map_err(io(dir))?;
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(io(&aside))?;
    }
    Ok(RepairReport {
        kept_height,
        kept_hash,
        stored_head,
        marker,
        stopped_by,
        resync,
    })
}

/// Renames sled's snapshot files (`snap.*`) in `dir` out of sled's sight; returns how many.
fn set_snapshots_aside(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with("snap.") {
            std::fs::rename(e.path(), dir.join(format!("aside.{name}")))?;
            n += 1;
        }
    }
    Ok(n)
}
