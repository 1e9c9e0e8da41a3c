//! The transaction index written behind the head, as geth's background transaction indexer
//! (`core/txindexer.go`) and Bitcoin Core's `-txindex` (`index/txindex.cpp`, a thread that
//! follows the chain) do: a block's import commits the block, its state and the head without
//! its `t` entries (tx hash -> [`TxLocation`]); a `tx-index` thread writes those later.
//!
//! Why: the entries are one sled key per transaction, the bulk of a block's write. For a
//! 1,000-transaction block they were about 9 ms of the 10 ms of CPU its store write took
//! (`bench propagation --nodes 16 --tps 1000`, the nodes' `store write timing` debug lines),
//! and every node paid them between relaying a block and importing it.
//!
//! Nothing reads a stale index meanwhile: blocks committed but not yet indexed are held in
//! memory ([`TxIndex`]), and [`ChainStore::tx_location`] looks there first. The store keeps
//! the height up to which every canonical block is indexed (meta `txindex`, written in the
//! same batch as the entries); opening a store indexes whatever lies above it (a crash
//! between a commit and its indexing), so the index is whole again before anything reads it.
//! A reorg lowers that height to the fork point and queues the blocks it applies.
//!
//! When: half a slot after a commit ([`tx_index_delay`]), not at once: at the start of a
//! slot every node of a devnet takes the same block within a few hundred milliseconds, and
//! the index's writes then compete with the block's relay for the cores.

use super::store::{key, ChainStore, StoreError, TxLocation, META, META_TXINDEX, TXINDEX};
use crate::types::{encoding, Block, Hash};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Blocks indexed in one sled batch by the `tx-index` thread.
pub const INDEX_BATCH_BLOCKS: usize = 16;

/// How long the `tx-index` thread lets a committed block wait before writing its entries:
/// half a slot of `slot_ms` milliseconds.
///
/// Measured (`bench propagation --nodes 32 --profile wan --relay compact --tps 62 --slot-ms
/// 16000 --blocks 6 --tx-batch 16`, `perf sched timehist`): while a 1,000-transaction block
/// travelled, the two cores were saturated for about 250 ms, and the 32 nodes' indexers,
/// woken by their imports, took 210 ms of CPU in that window, more than the runtime threads
/// that carry the block; each hop then came 20–25 ms (median) after the link's delay, and
/// 12 ms with the index written half a slot later.
pub fn tx_index_delay(slot_ms: u64) -> std::time::Duration {
    std::time::Duration::from_millis(slot_ms / 2)
}

/// Committed blocks left unindexed at most: beyond this, the committing thread indexes them
/// itself (a sync that imports faster than the thread indexes is slowed to its pace instead
/// of holding every transaction hash in memory).
pub const MAX_UNINDEXED_BLOCKS: usize = 64;

/// Canonical blocks above the indexed height, and their transactions' places.
#[derive(Debug, Default)]
pub(super) struct Queue {
    /// Every canonical block at or below this height has its entries in the store.
    indexed_to: u64,
    /// The canonical blocks above `indexed_to`, by height: (block hash, its tx hashes).
    blocks: BTreeMap<u64, (Hash, Vec<Hash>)>,
    /// The places of those blocks' transactions.
    recent: HashMap<Hash, TxLocation>,
    /// Set by [`TxIndexer::stop`].
    stop: bool,
    /// Since when blocks have waited (set when the first of them is queued, cleared once
    /// the queue is empty): the `tx-index` thread's delay counts from here.
    since: Option<std::time::Instant>,
}

impl Queue {
    fn push(&mut self, height: u64, hash: Hash, txs: Vec<Hash>) {
        for (i, h) in txs.iter().enumerate() {
            self.recent.insert(
                *h,
                TxLocation {
                    block: hash,
                    height,
                    index: i as u32,
                },
            );
        }
        self.blocks.insert(height, (hash, txs));
        self.since.get_or_insert_with(std::time::Instant::now);
    }

    /// Forgets the queued blocks above `height`.
    fn truncate_above(&mut self, height: u64) {
        for (_, (_, txs)) in self.blocks.split_off(&(height + 1)) {
            for h in txs {
                self.recent.remove(&h);
            }
        }
    }
}

/// The unindexed part of the transaction index, shared by every handle of one store.
#[derive(Debug, Default)]
pub(super) struct TxIndex {
    queue: Mutex<Queue>,
    /// Signalled when a block is queued or the indexer is stopped.
    wake: Condvar,
    /// Held while the store's `t` entries or its indexed height change (an indexing batch, a
    /// reorg), so that a reorg never lands between an indexing batch's read of the queue and
    /// its write.
    write: Mutex<()>,
    /// Whether a `tx-index` thread runs for this store.
    running: AtomicBool,
}

impl TxIndex {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().expect("tx index queue lock poisoned")
    }

    fn write(&self) -> MutexGuard<'_, ()> {
        self.write.lock().expect("tx index write lock poisoned")
    }
}

/// The `tx-index` thread of one store ([`ChainStore::spawn_tx_indexer`]); stopped (after
/// indexing what is queued) by [`TxIndexer::stop`] or on drop.
pub struct TxIndexer {
    store: ChainStore,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TxIndexer {
    /// Indexes what is still queued, then ends the thread and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            self.store.txindex.queue().stop = true;
            self.store.txindex.wake.notify_all();
            let _ = t.join();
            self.store.txindex.running.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for TxIndexer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl ChainStore {
    /// Queues a block just committed as the new head (its transactions readable through
    /// [`ChainStore::tx_location`] at once); indexes here when more than
    /// [`MAX_UNINDEXED_BLOCKS`] wait, or when no `tx-index` thread runs. The `tx-index` thread
    /// is woken once the head is flushed ([`ChainStore::wake_indexer`]), not here: woken in
    /// the middle of an import, it preempted the importing thread and its batch held sled's
    /// write lock while the new head's observers read accounts.
    pub(super) fn queue_for_index(&self, block: &Block) -> Result<(), StoreError> {
        let txs: Vec<Hash> = block.txs.iter().map(|t| t.hash()).collect();
        let backlog = {
            let mut q = self.txindex.queue();
            q.push(block.header.height, block.hash(), txs);
            q.blocks.len()
        };
        if backlog > MAX_UNINDEXED_BLOCKS {
            while self.index_pending(usize::MAX)? > 0 {}
        }
        self.index_if_unattended()
    }

    /// Wakes the `tx-index` thread if blocks wait for it (called once a commit's head is
    /// flushed).
    pub(super) fn wake_indexer(&self) {
        if !self.index_caught_up() {
            self.txindex.wake.notify_one();
        }
    }

    /// Whether every committed block is indexed (nothing queued).
    pub(super) fn index_caught_up(&self) -> bool {
        self.txindex.queue().blocks.is_empty()
    }

    /// Records that the indexed height is now `height` (written with a commit's batch).
    pub(super) fn set_indexed_height(&self, height: u64) {
        self.txindex.queue().indexed_to = height;
    }

    /// Without a `tx-index` thread (tools, tests, `store repair`), indexes what is queued at
    /// once, as the write that queued it happens.
    pub(super) fn index_if_unattended(&self) -> Result<(), StoreError> {
        if !self.txindex.running.load(Ordering::SeqCst) {
            while self.index_pending(usize::MAX)? > 0 {}
        }
        Ok(())
    }

    /// Leaves queued blocks unindexed until [`ChainStore::index_pending`] is called, as if a
    /// `tx-index` thread ran but had not got to them (a crash before indexing, for tests).
    #[cfg(test)]
    pub(crate) fn defer_tx_index(&self) {
        self.txindex.running.store(true, Ordering::SeqCst);
    }

    /// Where `hash` sits in the canonical chain, if it does: from the blocks not yet indexed,
    /// else from the index.
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StoreError> {
        if let Some(loc) = self.txindex.queue().recent.get(hash) {
            return Ok(Some(*loc));
        }
        self.indexed_location(hash)
    }

    /// Writes the entries of up to `max_blocks` queued blocks (lowest first) and the new
    /// indexed height in one batch; returns how many blocks it indexed (0: none queued).
    pub fn index_pending(&self, max_blocks: usize) -> Result<usize, StoreError> {
        let _w = self.txindex.write();
        let blocks: Vec<(u64, Hash, Vec<Hash>)> = self
            .txindex
            .queue()
            .blocks
            .iter()
            .take(max_blocks)
            .map(|(h, (b, txs))| (*h, *b, txs.clone()))
            .collect();
        let Some(&(last, _, _)) = blocks.last() else {
            return Ok(0);
        };
        let n = blocks.len();
        self.writable()?;
        let mut batch = sled::Batch::default();
        for (height, block, txs) in &blocks {
            for (i, h) in txs.iter().enumerate() {
                let loc = TxLocation {
                    block: *block,
                    height: *height,
                    index: i as u32,
                };
                batch.insert(key(TXINDEX, &h.0), encoding::encode(&loc));
            }
        }
        batch.insert(key(META, META_TXINDEX), &last.to_le_bytes());
        self.guard(|| self.tree.apply_batch(batch))?;
        let mut q = self.txindex.queue();
        for (height, _, txs) in blocks {
            q.blocks.remove(&height);
            for h in txs {
                q.recent.remove(&h);
            }
        }
        q.indexed_to = last;
        if q.blocks.is_empty() {
            q.since = None;
        }
        Ok(n)
    }

    /// The height up to which every canonical block's transactions are in the store's index
    /// (a store written before the index moved behind the head has all of them: its head).
    pub fn indexed_height(&self) -> Result<u64, StoreError> {
        match self.get(&key(META, META_TXINDEX))? {
            Some(v) => Ok(u64::from_le_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| self.corrupt("meta txindex"))?,
            )),
            None => Ok(self.head_height()?),
        }
    }

    /// Height of the head block.
    fn head_height(&self) -> Result<u64, StoreError> {
        let hash = self.head_hash()?;
        Ok(self
            .block(&hash)?
            .ok_or_else(|| self.damaged(format!("the head block {hash} is missing")))?
            .header
            .height)
    }

    /// At open: indexes the canonical blocks above the stored indexed height (committed, then
    /// a crash before their indexing), so that the index is whole before anything reads it.
    ///
    /// Errors: a canonical block that is missing ([`StoreError::Damaged`]); I/O errors.
    pub(super) fn catch_up_tx_index(&self) -> Result<(), StoreError> {
        let head = self.head_height()?;
        let from = self.indexed_height()?;
        if from > head {
            return Err(self.damaged(format!(
                "the transaction index claims height {from}, above the head at {head}"
            )));
        }
        {
            let mut q = self.txindex.queue();
            q.indexed_to = from;
            q.blocks.clear();
            q.recent.clear();
        }
        for height in from + 1..=head {
            let block = self
                .block_at(height)?
                .ok_or_else(|| self.damaged(format!("canonical block {height} is missing")))?;
            let txs = block.txs.iter().map(|t| t.hash()).collect();
            self.txindex.queue().push(height, block.hash(), txs);
        }
        if head > from {
            tracing::info!(
                from = from + 1,
                to = head,
                "indexing the transactions of blocks committed before a stop"
            );
        }
        while self.index_pending(INDEX_BATCH_BLOCKS)? > 0 {}
        Ok(())
    }

    /// The part of a reorg's write that concerns the index, called with the index's write lock
    /// held (see [`ChainStore::reorg_index_lock`]): the indexed height falls to `fork` if it
    /// was above, and the returned value is what the reorg batch must store as it.
    pub(super) fn reorg_indexed_height(&self, fork: u64) -> u64 {
        self.txindex.queue().indexed_to.min(fork)
    }

    /// The lock a reorg holds across its batch and [`ChainStore::requeue_after_reorg`].
    pub(super) fn reorg_index_lock(&self) -> MutexGuard<'_, ()> {
        self.txindex.write()
    }

    /// After a reorg's batch: forgets the queued blocks above `fork`, lowers the indexed height
    /// to `indexed_to`, and queues the `applied` blocks (lowest first).
    pub(super) fn requeue_after_reorg(&self, fork: u64, indexed_to: u64, applied: &[&Block]) {
        {
            let mut q = self.txindex.queue();
            q.truncate_above(fork);
            q.indexed_to = indexed_to;
            for b in applied {
                q.push(
                    b.header.height,
                    b.hash(),
                    b.txs.iter().map(|t| t.hash()).collect(),
                );
            }
        }
        self.txindex.wake.notify_one();
    }

    /// Starts the `tx-index` thread, which writes queued blocks' entries
    /// ([`INDEX_BATCH_BLOCKS`] per batch) once the oldest of them has waited `delay` (at once
    /// when [`INDEX_BATCH_BLOCKS`] wait, and everything when stopped). A node passes half a
    /// slot ([`tx_index_delay`]): blocks travel at the start of a slot, when every node takes
    /// the same block at once, and the index's writes then wait for the quieter second
    /// half. A write error is logged and the thread ends (the store records the damage;
    /// commits then index in place, and fail the same way).
    ///
    /// Errors: the OS refusing a thread.
    pub fn spawn_tx_indexer(&self, delay: std::time::Duration) -> std::io::Result<TxIndexer> {
        let store = self.clone();
        self.txindex.queue().stop = false;
        self.txindex.running.store(true, Ordering::SeqCst);
        let thread = std::thread::Builder::new()
            .name("tx-index".into())
            .spawn(move || store.run_tx_indexer(delay));
        match thread {
            Ok(t) => Ok(TxIndexer {
                store: self.clone(),
                thread: Some(t),
            }),
            Err(e) => {
                self.txindex.running.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    fn run_tx_indexer(&self, delay: std::time::Duration) {
        loop {
            let stopping = {
                let mut q = self.txindex.queue();
                loop {
                    if q.stop {
                        break;
                    }
                    if q.blocks.is_empty() {
                        q.since = None;
                        q = self
                            .txindex
                            .wake
                            .wait(q)
                            .expect("tx index queue lock poisoned");
                        continue;
                    }
                    let now = std::time::Instant::now();
                    let due = *q.since.get_or_insert(now) + delay;
                    if now >= due || q.blocks.len() >= INDEX_BATCH_BLOCKS {
                        break;
                    }
                    q = self
                        .txindex
                        .wake
                        .wait_timeout(q, due - now)
                        .expect("tx index queue lock poisoned")
                        .0;
                }
                q.stop
            };
            let indexed = self.index_pending(if stopping {
                usize::MAX
            } else {
                INDEX_BATCH_BLOCKS
            });
            match indexed {
                Err(e) => {
                    tracing::warn!(cause = %e, "the transaction indexer stopped");
                    self.txindex.running.store(false, Ordering::SeqCst);
                    return;
                }
                Ok(0) if stopping => return,
                Ok(_) => {}
            }
        }
    }
}

/// The shared state a store's handles hold (one per opened store).
pub(super) fn new_index() -> Arc<TxIndex> {
    Arc::new(TxIndex::default())
}

#[cfg(test)]
mod tests {
    use super::super::reorg_tests_support::*;
    use super::super::{Chain, ChainStore};
    use crate::types::Block;
    use std::collections::HashSet;

    fn import(c: &Chain, b: &Block) {
        c.import(b.clone(), &HashSet::new()).unwrap();
    }

    fn indexed(store: &ChainStore, b: &Block) -> Vec<bool> {
        b.txs
            .iter()
            .map(|t| store.indexed_location(&t.hash()).unwrap().is_some())
            .collect()
    }

    /// Where the first transaction of `b` is, by [`ChainStore::tx_location`].
    fn found(store: &ChainStore, b: &Block) -> Option<super::TxLocation> {
        store.tx_location(&b.txs[0].hash()).unwrap()
    }

    #[test]
    fn committed_transactions_are_found_before_their_entries_are_written() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let a1 = block(&s, &g, 1, vec![transfer(0, 0, 100), transfer(1, 0, 5)]);
        let a2 = block(&s, &a1, 3, vec![transfer(0, 1, 100)]);
        let chain = Chain::open(dir.path(), s.clone()).unwrap();
        chain.store.defer_tx_index();
        import(&chain, &a1);
        import(&chain, &a2);
        // Committed, not indexed: the queue answers.
        assert_eq!(indexed(&chain.store, &a1), [false, false]);
        assert_eq!(chain.store.indexed_height().unwrap(), 0);
        let loc = chain.store.tx_location(&a1.txs[1].hash()).unwrap().unwrap();
        assert_eq!((loc.block, loc.height, loc.index), (a1.hash(), 1, 1));
        assert!(
            chain.store.check(&s).is_ok(),
            "a lagging index is no damage"
        );
        // One batch of one block, then the rest.
        assert_eq!(chain.store.index_pending(1).unwrap(), 1);
        assert_eq!(indexed(&chain.store, &a1), [true, true]);
        assert_eq!(indexed(&chain.store, &a2), [false]);
        assert_eq!(chain.store.indexed_height().unwrap(), 1);
        assert_eq!(chain.store.index_pending(usize::MAX).unwrap(), 1);
        assert_eq!(chain.store.index_pending(usize::MAX).unwrap(), 0);
        assert_eq!(indexed(&chain.store, &a2), [true]);
        assert_eq!(
            chain
                .store
                .tx_location(&a2.txs[0].hash())
                .unwrap()
                .unwrap()
                .height,
            2
        );
        assert_eq!(chain.store.check(&s).unwrap().txs, 3);
        // An empty block on a caught-up index moves the indexed height with its commit.
        let a3 = block(&s, &a2, 5, vec![]);
        import(&chain, &a3);
        assert!(chain.store.index_caught_up());
        assert_eq!(chain.store.indexed_height().unwrap(), 3);
        // Behind a queued block, an empty one waits its turn.
        let a4 = block(&s, &a3, 7, vec![transfer(1, 1, 5)]);
        let a5 = block(&s, &a4, 9, vec![]);
        import(&chain, &a4);
        import(&chain, &a5);
        assert_eq!(chain.store.indexed_height().unwrap(), 3);
        assert_eq!(chain.store.index_pending(usize::MAX).unwrap(), 2);
        assert_eq!(chain.store.indexed_height().unwrap(), 5);
        chain.store.check(&s).unwrap();
    }

    #[test]
    fn opening_indexes_blocks_committed_before_a_crash() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let a1 = block(&s, &g, 1, vec![transfer(0, 0, 100)]);
        let a2 = block(&s, &a1, 3, vec![transfer(0, 1, 100), transfer(1, 0, 5)]);
        {
            let chain = Chain::open(dir.path(), s.clone()).unwrap();
            chain.store.defer_tx_index();
            import(&chain, &a1);
            chain.store.index_pending(1).unwrap();
            import(&chain, &a2);
            // The process dies here: a2 committed and flushed, its entries never written.
            assert_eq!(indexed(&chain.store, &a2), [false, false]);
        }
        let store = ChainStore::open(dir.path(), &s).unwrap();
        assert_eq!(store.indexed_height().unwrap(), 2);
        assert_eq!(indexed(&store, &a2), [true, true]);
        assert_eq!(store.check(&s).unwrap().txs, 3);
    }

    #[test]
    fn a_reorg_lowers_the_indexed_height_and_queues_the_new_branch() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let [a1, a2, b1, b2, b3] = two_branches(&s, &g);
        let chain = Chain::open(dir.path(), s.clone()).unwrap();
        chain.store.defer_tx_index();
        import(&chain, &a1);
        import(&chain, &a2);
        chain.store.index_pending(usize::MAX).unwrap();
        assert_eq!(indexed(&chain.store, &a2), [true]);
        for b in [&b1, &b2, &b3] {
            import(&chain, b);
        }
        assert_eq!(chain.head().hash, b3.hash());
        // A's entries are gone at once; B's are queued, and found.
        assert_eq!(indexed(&chain.store, &a1), [false]);
        assert_eq!(indexed(&chain.store, &a2), [false]);
        assert_eq!(chain.store.indexed_height().unwrap(), 0);
        assert_eq!(found(&chain.store, &a2), None);
        assert_eq!(found(&chain.store, &b2).map(|l| l.block), Some(b2.hash()));
        chain.store.check(&s).unwrap();
        while chain.store.index_pending(1).unwrap() > 0 {}
        assert_eq!(chain.store.indexed_height().unwrap(), 3);
        assert_eq!(indexed(&chain.store, &b1), [true]);
        assert_eq!(chain.store.check(&s).unwrap().txs, 2);
    }

    #[test]
    fn the_indexer_thread_writes_entries_and_stops_after_the_queue() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let a1 = block(&s, &g, 1, vec![transfer(0, 0, 100)]);
        let a2 = block(&s, &a1, 3, vec![transfer(0, 1, 100)]);
        let chain = Chain::open(dir.path(), s.clone()).unwrap();
        let indexer = chain
            .store
            .spawn_tx_indexer(std::time::Duration::ZERO)
            .unwrap();
        import(&chain, &a1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while indexed(&chain.store, &a1) != [true] {
            assert!(std::time::Instant::now() < deadline, "never indexed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        import(&chain, &a2);
        indexer.stop();
        assert_eq!(
            indexed(&chain.store, &a2),
            [true],
            "indexed before stopping"
        );
        assert_eq!(chain.store.indexed_height().unwrap(), 2);
    }

    #[test]
    fn the_indexer_thread_waits_its_delay_after_a_commit() {
        let s = spec();
        let dir = tempfile::tempdir().unwrap();
        let g = s.genesis_block();
        let a1 = block(&s, &g, 1, vec![transfer(0, 0, 100)]);
        let chain = Chain::open(dir.path(), s.clone()).unwrap();
        let delay = std::time::Duration::from_secs(2);
        let indexer = chain.store.spawn_tx_indexer(delay).unwrap();
        let committed = std::time::Instant::now();
        import(&chain, &a1);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            indexed(&chain.store, &a1),
            [false],
            "indexed within its delay"
        );
        assert_eq!(found(&chain.store, &a1).map(|l| l.block), Some(a1.hash()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while indexed(&chain.store, &a1) != [true] {
            assert!(std::time::Instant::now() < deadline, "never indexed");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(committed.elapsed() >= delay, "indexed before its delay");
        assert_eq!(chain.store.indexed_height().unwrap(), 1);
        indexer.stop();
    }
}
