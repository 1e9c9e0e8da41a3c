//! Blocks seen lately, imported or not: a block is relayed before its import, and peers that
//! rebuild it from a compact block ask for its missing transactions at once (BIP152
//! `getblocktxn`), so they are served from here before the store has the block.

use crate::types::{Block, Hash};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Blocks kept, at most (oldest dropped first): a few slots' worth.
pub const RECENT_BLOCKS: usize = 64;

/// Blocks by hash plus their insertion order.
type Lru = (HashMap<Hash, Arc<Block>>, VecDeque<Hash>);

/// The cache. Uses a `std::sync::Mutex`: map operations only, never across `.await`.
#[derive(Default)]
pub struct RecentBlocks {
    inner: Mutex<Lru>,
}

impl RecentBlocks {
    /// Remembers `block`.
    pub fn insert(&self, block: Arc<Block>) {
        let mut g = self.inner.lock().expect("recent blocks lock poisoned");
        let (map, order) = &mut *g;
        let hash = block.hash();
        if map.insert(hash, block).is_none() {
            order.push_back(hash);
            if order.len() > RECENT_BLOCKS {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }

    /// The block with `hash`, if seen lately.
    pub fn get(&self, hash: &Hash) -> Option<Arc<Block>> {
        self.inner
            .lock()
            .expect("recent blocks lock poisoned")
            .0
            .get(hash)
            .cloned()
    }
}
