//! The pool's signature checks: which transaction signatures this node has already verified
//! (a cache after Bitcoin Core's `CSignatureCache`), so no signature is verified twice whether
//! it arrives by RPC, gossip or inside a block.

use crate::types::Hash;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Hashes of transactions whose signatures verified here, at most `capacity` (oldest dropped
/// first). A transaction hash covers its signature, so a hit means "this exact signed
/// transaction verified". Uses a `std::sync::Mutex`: set operations only, never across
/// `.await`.
pub struct SigCache {
    capacity: usize,
    inner: Mutex<(HashSet<Hash>, VecDeque<Hash>)>,
}

impl SigCache {
    /// An empty cache holding at most `capacity` hashes (at least 1).
    pub fn new(capacity: usize) -> SigCache {
        SigCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Default::default()),
        }
    }

    /// Whether `hash`'s signature verified here (and is still remembered).
    pub fn contains(&self, hash: &Hash) -> bool {
        self.lock().0.contains(hash)
    }

    /// For each hash, whether it is remembered; one lock for all.
    pub fn contains_each(&self, hashes: &[Hash]) -> Vec<bool> {
        let g = self.lock();
        hashes.iter().map(|h| g.0.contains(h)).collect()
    }

    /// Remembers that these transactions' signatures verified.
    pub fn insert_all(&self, hashes: impl IntoIterator<Item = Hash>) {
        let mut g = self.lock();
        let (set, order) = &mut *g;
        for h in hashes {
            if set.insert(h) {
                order.push_back(h);
                if order.len() > self.capacity {
                    if let Some(old) = order.pop_front() {
                        set.remove(&old);
                    }
                }
            }
        }
    }

    /// How many hashes are remembered.
    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashSet<Hash>, VecDeque<Hash>)> {
        // A panic elsewhere cannot leave the set half-updated in a way that matters: at worst
        // a hash is missing and its signature is verified again.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_capacity_hashes() {
        let c = SigCache::new(3);
        let h = |i: u8| Hash([i; 32]);
        c.insert_all([h(1), h(2), h(3), h(2)]);
        assert_eq!(c.len(), 3);
        c.insert_all([h(4)]);
        assert_eq!(
            c.contains_each(&[h(1), h(2), h(3), h(4)]),
            [false, true, true, true]
        );
    }
}
