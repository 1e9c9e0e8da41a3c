//! Transaction admission: one service, one entry, [`TxPool::add`]`(origin, txs)`, after
//! reth's `TransactionPool::add_transactions(origin, ..)`.
//!
//! ```text
//! add(origin, txs)
//!   -> already pooled (Known)
//!   -> validate: fields + signatures (SigCache hits skip theirs; the rest batch-verified),
//!      Reorg returns skip both (their block was verified here)
//!   -> Gossip: one invalid tx rejects the whole message
//!   -> pool: nonce, balance, replacement, limits (geth txpool, Bitcoin Core mempool)
//!   -> nonce too low and in the tx index: already in a block (AlreadyInChain)
//!   -> new: newPendingTransactions subscribers; relay policy: Rpc and Reorg go to the
//!      announcer (`/txs/1` batches), Gossip is relayed by gossipsub itself
//! ```
//!
//! Parts: [`pool`] (the data structure), [`validate`] (signature cache), [`maintain`] (new
//! head, reorg, expiry: a subscriber of the chain's canonical notifications), [`announce`]
//! (the announcer), [`config`], [`error`]. Block selection is [`pool::Mempool::select`].

pub mod announce;
pub mod config;
pub mod error;
pub mod journal;
pub mod maintain;
pub mod pool;
pub mod reconcile;
pub mod validate;

pub use config::{MempoolConfig, TxPoolConfig};
pub use error::{MempoolError, SubmitError};
pub use pool::{Admission, Entry, Inserted, Mempool, MempoolInfo};
pub use validate::SigCache;

use crate::chain::Chain;
use crate::state::StateView;
use crate::types::{Address, CompactBlock, Hash, ShortId, SignedTx};
use crate::validation::{self, Verified};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

/// Where transactions handed to [`TxPool::add`] come from; decides which checks run and
/// whether new ones are announced (reth's `TransactionOrigin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Submitted over JSON-RPC: every check; new ones are announced, and the caller waits
    /// while the announcement queue is full (backpressure).
    Rpc,
    /// One gossip message (`/tx/1` or `/txs/1`): every check; one invalid transaction rejects
    /// the whole message ([`SubmitError::BatchRejected`]); gossipsub relays accepted messages,
    /// so nothing is announced.
    Gossip,
    /// Back from blocks a reorg undid: their signatures and fields were verified with their
    /// block, so only pool checks run; new ones are announced again (peers on the new chain
    /// may never have seen them), without waiting.
    Reorg,
    /// Fetched from a new peer's mempool ([`reconcile`], eth/68's pooled-transaction
    /// exchange): every check, each transaction on its own; new pending ones are announced
    /// without waiting, so they spread on this side of the connection.
    Peer,
    /// Reloaded at start from the local-transaction journal ([`journal`]): every check, each
    /// on its own; announced without waiting; local, so kept in the journal.
    Journal,
}

/// A compact block rebuilt from the pool ([`TxPool::rebuild`]).
#[derive(Debug)]
pub struct Rebuilt {
    /// The block's transactions; `None` where the pool had no match.
    pub txs: Vec<Option<SignedTx>>,
    /// Their hashes where known (the pool's, or computed for a prefilled transaction); `None`
    /// exactly where `txs` is.
    pub hashes: Vec<Option<Hash>>,
    /// Positions still missing (to ask for with BIP152 `getblocktxn`).
    pub missing: Vec<u32>,
}

/// Two short ids of a compact block are equal, or one matches two pooled transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("short id collision")]
pub struct ShortIdCollision;

/// What [`TxPool::add`] answers per transaction, in input order.
pub type Outcome = Result<Inserted, SubmitError>;

/// Read access to the pool ([`TxPool::read`]); holds the pool's lock until dropped, so keep
/// it short and never across `.await`.
pub struct PoolRead<'a>(MutexGuard<'a, Mempool>);

impl std::ops::Deref for PoolRead<'_> {
    type Target = Mempool;
    fn deref(&self) -> &Mempool {
        &self.0
    }
}

struct Inner {
    chain: Arc<Chain>,
    /// `std::sync::Mutex`: every section (insert, select, re-check) is synchronous.
    pool: Mutex<Mempool>,
    sigs: SigCache,
    new_txs: broadcast::Sender<Hash>,
    announce: mpsc::Sender<SignedTx>,
    /// The announcer's batch delay ([`TxPoolConfig::announce_delay`]).
    announce_delay: std::time::Duration,
    threads: usize,
    /// The local-transaction journal, once attached ([`TxPool::attach_journal`]).
    journal: std::sync::OnceLock<journal::Journal>,
    /// Hashes of local transactions (admitted over RPC or from the journal) since the last
    /// rotation.
    locals: Mutex<HashSet<Hash>>,
}

/// The admission service: a cloneable handle.
#[derive(Clone)]
pub struct TxPool {
    inner: Arc<Inner>,
}

/// Events buffered for a slow `newPendingTransactions` subscriber.
pub const NEW_TX_EVENTS: usize = 4096;

impl TxPool {
    /// A pool over `chain`'s state. Returns the pool and the receiving end of its announcement
    /// queue, for [`announce::run`].
    pub fn new(chain: Arc<Chain>, cfg: TxPoolConfig) -> (TxPool, mpsc::Receiver<SignedTx>) {
        let (announce, rx) = mpsc::channel(cfg.announce_queue.max(1));
        let pool = TxPool {
            inner: Arc::new(Inner {
                chain,
                pool: Mutex::new(Mempool::with_config(cfg.pool)),
                sigs: SigCache::new(cfg.sig_cache),
                new_txs: broadcast::channel(NEW_TX_EVENTS).0,
                announce,
                announce_delay: cfg.announce_delay,
                threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
                journal: std::sync::OnceLock::new(),
                locals: Mutex::new(HashSet::new()),
            }),
        };
        // Included transactions leave the pool before the commit's caller goes on
        // (maintain::on_commit); a weak handle, so the chain does not keep the pool alive.
        let weak = Arc::downgrade(&pool.inner);
        pool.inner.chain.observe(Box::new(move |n, store| {
            if let Some(inner) = weak.upgrade() {
                maintain::on_commit(&inner.pool, n, store);
            }
        }));
        (pool, rx)
    }

    /// The one admission entry: checks `txs` as `origin` requires and admits what passes.
    /// Returns an outcome per transaction, in input order: `Inserted::New` (admitted now,
    /// pending), `Inserted::Queued` (admitted now behind a nonce gap; not relayed until it
    /// becomes pending), `Inserted::Known` (already pooled), or why not ([`SubmitError`]).
    ///
    /// CPU-bound (signature checks): from async code, hand large bursts to a blocking thread.
    /// Awaits only for `Origin::Rpc`, while the announcement queue is full.
    pub async fn add(&self, origin: Origin, txs: Vec<SignedTx>) -> Vec<Outcome> {
        let local = matches!(origin, Origin::Rpc | Origin::Journal);
        let journaled = (local && self.inner.journal.get().is_some()).then(|| txs.clone());
        let (outcomes, new) = self.admit(origin, txs);
        if let Some(txs) = journaled {
            self.journal_admitted(origin, &txs, &outcomes);
        }
        match origin {
            Origin::Rpc => {
                for tx in new {
                    // Waits while the queue is full: RPC submitters are slowed to what the
                    // network carries instead of outrunning it.
                    let _ = self.inner.announce.send(tx).await;
                }
            }
            // The gossip workers must not wait: beyond a full queue, not announced (logged).
            Origin::Reorg | Origin::Gossip | Origin::Peer | Origin::Journal => {
                self.announce_now(new)
            }
        }
        outcomes
    }

    /// Records the local transactions `outcomes` admitted: appended to the journal (for
    /// `Origin::Rpc`, before the caller answers) and remembered for the next rotation.
    fn journal_admitted(&self, origin: Origin, txs: &[SignedTx], outcomes: &[Outcome]) {
        // From the journal every one stays local (a mined one until it is buried: see
        // `rotate_journal`); from RPC the ones admitted now.
        let admitted: Vec<&SignedTx> = txs
            .iter()
            .zip(outcomes)
            .filter(|(_, o)| {
                origin == Origin::Journal || matches!(o, Ok(Inserted::New(_) | Inserted::Queued(_)))
            })
            .map(|(t, _)| t)
            .collect();
        if admitted.is_empty() {
            return;
        }
        self.inner
            .locals
            .lock()
            .expect("locals lock poisoned")
            .extend(admitted.iter().map(|t| t.hash()));
        if origin == Origin::Rpc {
            if let Some(j) = self.inner.journal.get() {
                if let Err(e) = j.append(&admitted) {
                    warn!(path = %j.path().display(), cause = %e, "appending to the transaction journal failed");
                }
            }
        }
    }

    /// Attaches the local-transaction journal at `path` ([`journal`]): re-admits what it holds
    /// (`Origin::Journal`, every check) and rewrites it with the ones admitted. Returns
    /// (admitted, refused). Call once, at start, before RPC serves.
    ///
    /// Errors: the journal cannot be read, opened or rewritten.
    pub async fn attach_journal(&self, path: &std::path::Path) -> std::io::Result<(usize, usize)> {
        let (j, loaded) = journal::Journal::open(path)?;
        if loaded.damaged_tail > 0 {
            warn!(path = %path.display(), bytes = loaded.damaged_tail, "transaction journal ends in a damaged entry (a crash mid-append); the entries before it are kept");
        }
        if self.inner.journal.set(j).is_err() {
            return Err(std::io::Error::other("a journal is attached already"));
        }
        let n = loaded.txs.len();
        let outcomes = self.add(Origin::Journal, loaded.txs).await;
        let admitted = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Inserted::New(_) | Inserted::Queued(_))))
            .count();
        self.rotate_journal()?;
        Ok((admitted, n - admitted))
    }

    /// Rewrites the journal with the local transactions still in the pool, and those mined
    /// less than [`journal::JOURNAL_DEPTH`] blocks below the head (replaced, evicted and
    /// buried ones leave it). Keeping recently mined ones covers a node whose newest blocks
    /// are lost before the network has them (its own fork rolled back by `store repair`): at
    /// the next start they are not in its chain, so they are admitted and announced again.
    /// Returns how many it holds. No journal: `Ok(0)`.
    pub fn rotate_journal(&self) -> std::io::Result<usize> {
        let Some(j) = self.inner.journal.get() else {
            return Ok(0);
        };
        let mut locals = self.inner.locals.lock().expect("locals lock poisoned");
        let mut keep: Vec<SignedTx> = {
            let pool = self.lock();
            locals
                .iter()
                .filter_map(|h| pool.get(h).map(|e| e.tx.clone()))
                .collect()
        };
        let pooled: HashSet<Hash> = keep.iter().map(SignedTx::hash).collect();
        let chain = &self.inner.chain;
        let floor = chain.head().height.saturating_sub(journal::JOURNAL_DEPTH);
        let mut mined: HashMap<Hash, Vec<u32>> = HashMap::new();
        for h in locals.iter().filter(|h| !pooled.contains(*h)) {
            if let Ok(Some(loc)) = chain.store.tx_location(h) {
                if loc.height > floor {
                    mined.entry(loc.block).or_default().push(loc.index);
                }
            }
        }
        for (block, idx) in mined {
            if let Ok(Some(b)) = chain.store.block(&block) {
                keep.extend(idx.iter().filter_map(|&i| b.txs.get(i as usize).cloned()));
            }
        }
        // Each sender's nonces in order, so a reload admits them in order.
        keep.sort_by_key(|t| (t.sender(), t.body.nonce));
        *locals = keep.iter().map(SignedTx::hash).collect();
        j.rotate(&keep.iter().collect::<Vec<_>>())?;
        Ok(keep.len())
    }

    /// Hands `txs` to the announcer without waiting; beyond a full queue they are not
    /// announced (logged).
    fn announce_now(&self, txs: Vec<SignedTx>) {
        for tx in txs {
            if self.inner.announce.try_send(tx).is_err() {
                warn!("announcement queue full; a transaction is not announced");
            }
        }
    }

    /// Announces the transactions that became pending outside an admission (a new head
    /// advanced a sender's nonce past a gap): queued transactions travel once they are
    /// executable. Called by pool maintenance after each head change.
    pub fn announce_promoted(&self) {
        let txs: Vec<SignedTx> = {
            let mut pool = self.lock();
            let hashes = pool.take_newly_pending();
            let by = std::time::Instant::now() + self.inner.announce_delay;
            hashes
                .iter()
                .filter_map(|h| pool.announce_by(h, by).map(|e| e.tx.clone()))
                .collect()
        };
        self.announce_now(txs);
    }

    /// The synchronous part of [`TxPool::add`]; returns the outcomes and the transactions to
    /// announce (see the relay policy inside).
    fn admit(&self, origin: Origin, txs: Vec<SignedTx>) -> (Vec<Outcome>, Vec<SignedTx>) {
        let inner = &*self.inner;
        let hashes: Vec<Hash> = txs.iter().map(SignedTx::hash).collect();
        let mut out: Vec<Option<Outcome>> = (0..txs.len()).map(|_| None).collect();
        {
            let pool = self.lock();
            for (o, h) in out.iter_mut().zip(&hashes) {
                if pool.contains(h) {
                    *o = Some(Ok(Inserted::Known(*h)));
                }
            }
        }
        // Stateless checks of the undecided ones.
        let todo: Vec<usize> = (0..txs.len()).filter(|&i| out[i].is_none()).collect();
        let mut todo_txs: Vec<SignedTx> = Vec::with_capacity(todo.len());
        let mut txs: Vec<Option<SignedTx>> = txs.into_iter().map(Some).collect();
        for &i in &todo {
            todo_txs.push(txs[i].take().expect("each index once"));
        }
        let checked: Vec<Result<Verified<SignedTx>, validation::ValidationError>> = match origin {
            Origin::Reorg => todo_txs
                .into_iter()
                .map(|t| Ok(validation::verified_tx(t)))
                .collect(),
            Origin::Rpc | Origin::Gossip | Origin::Peer | Origin::Journal => {
                let todo_hashes: Vec<Hash> = todo.iter().map(|&i| hashes[i]).collect();
                let known = inner.sigs.contains_each(&todo_hashes);
                let checked = validation::check_txs(
                    todo_txs,
                    inner.chain.spec.chain_id,
                    inner.threads,
                    &known,
                );
                inner.sigs.insert_all(
                    checked
                        .iter()
                        .zip(&todo_hashes)
                        .filter(|(c, _)| c.is_ok())
                        .map(|(_, h)| *h),
                );
                checked
            }
        };
        let any_invalid = checked.iter().any(|c| c.is_err());
        let mut admit: Vec<(usize, Verified<SignedTx>, Address)> = Vec::new();
        for (&i, c) in todo.iter().zip(checked) {
            match c {
                Err(e) => out[i] = Some(Err(e.into())),
                Ok(_) if origin == Origin::Gossip && any_invalid => {
                    out[i] = Some(Err(SubmitError::BatchRejected))
                }
                Ok(v) => {
                    let sender = v.inner().sender();
                    admit.push((i, v, sender));
                }
            }
        }
        // Accounts are read before the pool lock (sled reads).
        let accounts: Vec<_> = admit
            .iter()
            .map(|(_, _, s)| inner.chain.store.account(s))
            .collect();
        // Relay policy: only pending transactions travel (queued ones stay here until their
        // gap fills, then the announcer sends them); of a gossip message's own pending
        // transactions gossipsub relays the message on Accept, unless it also held a queued
        // one: then it is Ignored and the announcer sends its pending ones.
        let mut new = Vec::new();
        let mut new_hashes = Vec::new();
        {
            let mut pool = self.lock();
            for ((i, v, sender), account) in admit.into_iter().zip(accounts) {
                let r = pool.insert_keyed(v, hashes[i], sender, account);
                if let Ok(Inserted::New(h)) = r {
                    new_hashes.push(h);
                }
                out[i] = Some(r.map_err(SubmitError::from));
            }
            let newly: HashSet<Hash> = pool.take_newly_pending().into_iter().collect();
            let mut queued_any = false;
            for o in out.iter_mut() {
                if let Some(Ok(Inserted::New(h))) = o {
                    if !newly.contains(h) && !pool.is_pending(h) {
                        *o = Some(Ok(Inserted::Queued(*h)));
                        queued_any = true;
                    }
                }
            }
            let mut send: Vec<Hash> = newly.iter().copied().collect();
            match origin {
                // Gossipsub relays this message's pending transactions itself on Accept.
                Origin::Gossip if !queued_any => {
                    let own: HashSet<&Hash> = new_hashes.iter().collect();
                    send.retain(|h| !own.contains(h));
                }
                Origin::Gossip => {}
                // Replacements of pending nonces are pending but not newly so.
                Origin::Rpc | Origin::Reorg | Origin::Peer | Origin::Journal => send.extend(
                    new_hashes
                        .iter()
                        .filter(|h| !newly.contains(*h) && pool.is_pending(h)),
                ),
            }
            let by = std::time::Instant::now() + inner.announce_delay;
            new.extend(
                send.iter()
                    .filter_map(|h| pool.announce_by(h, by).map(|e| e.tx.clone())),
            );
        }
        in_chain_if_nonce_too_low(&inner.chain, &hashes, &mut out);
        if inner.new_txs.receiver_count() > 0 {
            for h in new_hashes {
                let _ = inner.new_txs.send(h);
            }
        }
        let outcomes = out
            .into_iter()
            .map(|o| o.expect("every transaction decided"))
            .collect();
        (outcomes, new)
    }

    /// Every check [`TxPool::add`] makes for `Origin::Rpc`, without admitting
    /// (`testmempoolaccept`): what admission would do, or why it would refuse.
    pub fn check(&self, tx: SignedTx) -> Result<Admission, SubmitError> {
        let inner = &*self.inner;
        let hash = tx.hash();
        let known = inner.sigs.contains(&hash);
        let v = validation::check_txs(vec![tx], inner.chain.spec.chain_id, 1, &[known])
            .pop()
            .expect("one in, one out")?;
        inner.sigs.insert_all([hash]);
        let account = inner.chain.store.account(&v.inner().sender());
        let checked = self.lock().check(v.inner(), account);
        match checked {
            Err(MempoolError::NonceTooLow { .. }) if in_chain(&inner.chain, &hash) => {
                Err(MempoolError::AlreadyInChain.into())
            }
            r => Ok(r?),
        }
    }

    /// Verifies the signatures of a burst of transactions together (ed25519 batches over every
    /// core) and remembers those that pass, so the [`TxPool::add`] calls that follow skip
    /// them. Pooled and already remembered transactions are skipped. CPU-bound: call from a
    /// blocking thread. Used for JSON-RPC batches and bursts of gossip messages.
    pub fn preverify(&self, txs: &[&SignedTx]) {
        let hashes: Vec<Hash> = txs.iter().map(|t| t.hash()).collect();
        let known = self.inner.sigs.contains_each(&hashes);
        let todo: Vec<(usize, &SignedTx)> = {
            let pool = self.lock();
            txs.iter()
                .enumerate()
                .filter(|(i, _)| !known[*i] && !pool.contains(&hashes[*i]))
                .map(|(i, t)| (i, *t))
                .collect()
        };
        let refs: Vec<&SignedTx> = todo.iter().map(|(_, t)| *t).collect();
        let ok = crate::crypto::verify_txs_parallel(&refs, self.inner.threads);
        self.inner.sigs.insert_all(
            todo.iter()
                .zip(ok)
                .filter(|(_, ok)| *ok)
                .map(|((i, _), _)| hashes[*i]),
        );
    }

    /// Rebuilds a compact block's transactions from the pool (BIP152): prefilled ones in
    /// place, each short id matched against every pooled transaction. Returns the block's
    /// transactions with `None` where nothing matched, and those positions.
    ///
    /// Errors: [`ShortIdCollision`] when two short ids of the block are equal or one matches
    /// two pooled transactions; BIP152's answer is to fetch the full block.
    pub fn rebuild(&self, cb: &CompactBlock) -> Result<Rebuilt, ShortIdCollision> {
        let keys = cb.keys();
        let n = cb.tx_count();
        let mut txs: Vec<Option<SignedTx>> = vec![None; n];
        let mut hashes: Vec<Option<Hash>> = vec![None; n];
        let mut slot_of: HashMap<ShortId, usize> = HashMap::with_capacity(cb.short_ids.len());
        let mut prefilled = cb.prefilled.iter().peekable();
        let mut sids = cb.short_ids.iter();
        for (i, (t, h)) in txs.iter_mut().zip(&mut hashes).enumerate() {
            if prefilled.peek().is_some_and(|p| p.index as usize == i) {
                *t = prefilled.next().map(|p| p.tx.clone());
                *h = t.as_ref().map(SignedTx::hash);
            } else if let Some(sid) = sids.next() {
                if slot_of.insert(*sid, i).is_some() {
                    return Err(ShortIdCollision);
                }
            }
        }
        {
            let pool = self.lock();
            for e in pool.entries() {
                if let Some(&i) = slot_of.get(&keys.short_id(&e.hash)) {
                    if txs[i].is_some() {
                        return Err(ShortIdCollision);
                    }
                    txs[i] = Some(e.tx.clone());
                    hashes[i] = Some(e.hash);
                }
            }
        }
        let missing = txs
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_none())
            .map(|(i, _)| i as u32)
            .collect();
        Ok(Rebuilt {
            txs,
            hashes,
            missing,
        })
    }

    /// Which of `hashes` have signatures verified here (pooled, or in the signature cache):
    /// a block's check skips those (`already_verified` of [`Chain::import`]).
    pub fn verified_among(&self, hashes: impl IntoIterator<Item = Hash>) -> HashSet<Hash> {
        let pool = self.lock();
        hashes
            .into_iter()
            .filter(|h| pool.contains(h) || self.inner.sigs.contains(h))
            .collect()
    }

    /// Read access to the pool (RPC views, block selection).
    pub fn read(&self) -> PoolRead<'_> {
        PoolRead(self.lock())
    }

    /// Hashes of transactions newly admitted from now on (geth's `newPendingTransactions`).
    /// A subscriber more than [`NEW_TX_EVENTS`] behind skips the oldest.
    pub fn subscribe_new(&self) -> broadcast::Receiver<Hash> {
        self.inner.new_txs.subscribe()
    }

    /// The chain this pool checks against.
    pub fn chain(&self) -> &Arc<Chain> {
        &self.inner.chain
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Mempool> {
        self.inner.pool.lock().expect("mempool lock poisoned")
    }
}

/// Whether the tx index (or the recent blocks held in memory) places `hash` in a block.
fn in_chain(chain: &Chain, hash: &Hash) -> bool {
    chain.store.tx_location(hash).ok().flatten().is_some()
}

/// Turns each `NonceTooLow` refusal in `out` into `AlreadyInChain` when the transaction is in
/// a block. A transaction in the canonical chain has a nonce below its sender's at the head, so
/// only these need the tx index (geth's txpool does not look at all and says "nonce too low");
/// looking up every arriving transaction instead cost a sled read each, about a tenth of a
/// node's CPU at 1,000 tx/s. Reads the store: call without the pool lock.
fn in_chain_if_nonce_too_low(chain: &Chain, hashes: &[Hash], out: &mut [Option<Outcome>]) {
    for (o, h) in out.iter_mut().zip(hashes) {
        if matches!(
            o,
            Some(Err(SubmitError::Mempool(MempoolError::NonceTooLow { .. })))
        ) && in_chain(chain, h)
        {
            *o = Some(Err(MempoolError::AlreadyInChain.into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::CanonNotification;
    use crate::crypto::Keypair;
    use crate::types::{Block, Signature, TxBody};
    use crate::validation::{ValidationError, Verdict};

    const CHAIN: u64 = 9;

    fn chain(dir: &std::path::Path) -> Arc<Chain> {
        Arc::new(Chain::open(dir, crate::genesis::test_spec(CHAIN, 1, 4, 1_000_000)).unwrap())
    }

    fn tx(from: u64, nonce: u64) -> SignedTx {
        let k = Keypair::dev_account(from);
        k.sign_tx(TxBody {
            chain_id: CHAIN,
            nonce,
            from: k.public(),
            to: Keypair::dev_account(3).address(),
            amount: 5,
            fee: 2,
            data: vec![],
        })
    }

    fn forged(from: u64, nonce: u64) -> SignedTx {
        let mut t = tx(from, nonce);
        t.signature = Signature([7; 64]);
        t
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        futures::executor::block_on(f)
    }

    #[test]
    fn rpc_origin_checks_everything_and_announces_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut announced) = TxPool::new(chain(dir.path()), TxPoolConfig::default());
        let mut new_events = pool.subscribe_new();
        let good = tx(0, 0);
        let out = block_on(pool.add(Origin::Rpc, vec![good.clone(), forged(1, 0)]));
        assert!(matches!(out[0], Ok(Inserted::New(h)) if h == good.hash()));
        assert!(matches!(
            out[1],
            Err(SubmitError::Invalid(ValidationError::BadTxSignature))
        ));
        assert_eq!(announced.try_recv().unwrap().hash(), good.hash());
        assert!(
            announced.try_recv().is_err(),
            "the invalid one is not announced"
        );
        assert_eq!(new_events.try_recv().unwrap(), good.hash());
        // Peers lack it until the announcer's batch goes out: a producer leaves it out of
        // its blocks until then, and prefills it for a window after that (BIP152).
        {
            let p = pool.read();
            let e = p.get(&good.hash()).unwrap();
            assert!(e.announced_by >= e.added + config::ANNOUNCE_DELAY);
            assert!(!e.announced_before(e.added));
            assert!(e.announced_before(e.announced_by));
            let window = std::time::Duration::from_millis(50); // a producer's prefill window
            assert!(e.announced_within(e.added + config::ANNOUNCE_DELAY, window));
            assert!(e.announced_within(e.added + config::ANNOUNCE_DELAY + window / 2, window));
            assert!(!e.announced_within(e.announced_by + window, window));
        }
        // Again: Known, nothing announced.
        let out = block_on(pool.add(Origin::Rpc, vec![good.clone()]));
        assert!(matches!(out[0], Ok(Inserted::Known(_))));
        assert!(announced.try_recv().is_err());
        assert_eq!(pool.read().len(), 1);
    }

    #[test]
    fn rebuild_takes_pooled_and_prefilled_transactions_with_their_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, _announced) = TxPool::new(chain(dir.path()), TxPoolConfig::default());
        let (a, b, c, d) = (tx(0, 0), tx(1, 0), tx(2, 0), tx(3, 0));
        let out = block_on(pool.add(Origin::Rpc, vec![a.clone(), c.clone()]));
        assert!(out.iter().all(|o| matches!(o, Ok(Inserted::New(_)))));
        let genesis = pool.chain().block_at(0).unwrap().unwrap();
        let block = Block {
            header: genesis.inner().header.clone(),
            signature: Signature([0; 64]),
            txs: vec![a.clone(), b.clone(), c.clone(), d.clone()],
        };
        // b prefilled; a and c in the pool; d nowhere.
        let cb = CompactBlock::from_block(&block, 7, |i, _| i == 1);
        let r = pool.rebuild(&cb).unwrap();
        assert_eq!(
            r.txs,
            vec![Some(a.clone()), Some(b.clone()), Some(c.clone()), None]
        );
        assert_eq!(
            r.hashes,
            vec![Some(a.hash()), Some(b.hash()), Some(c.hash()), None]
        );
        assert_eq!(r.missing, vec![3]);
    }

    #[test]
    fn gossip_origin_rejects_a_message_whole_and_never_announces() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut announced) = TxPool::new(chain(dir.path()), TxPoolConfig::default());
        let (a, b) = (tx(0, 0), tx(1, 0));
        let out = block_on(pool.add(Origin::Gossip, vec![a.clone(), forged(2, 0), b.clone()]));
        assert!(matches!(out[0], Err(SubmitError::BatchRejected)));
        assert!(matches!(
            out[1],
            Err(SubmitError::Invalid(ValidationError::BadTxSignature))
        ));
        assert!(matches!(out[2], Err(SubmitError::BatchRejected)));
        assert!(out
            .iter()
            .all(|o| o.as_ref().unwrap_err().verdict() == Verdict::Reject));
        assert!(
            pool.read().is_empty(),
            "nothing admitted from a rejected message"
        );
        let out = block_on(pool.add(Origin::Gossip, vec![a.clone(), b.clone()]));
        assert!(out.iter().all(|o| matches!(o, Ok(Inserted::New(_)))));
        assert_eq!(pool.read().len(), 2);
        // Travelling since it arrived: includable at once, prefilled only within a window
        // after its admission.
        {
            let p = pool.read();
            let e = p.get(&a.hash()).unwrap();
            let window = std::time::Duration::from_millis(50); // a producer's prefill window
            assert!(e.announced_before(e.added + std::time::Duration::from_millis(5)));
            assert!(e.announced_by < e.added + std::time::Duration::from_millis(5));
            assert!(e.announced_within(e.added, window));
            assert!(!e.announced_within(e.added + window + window / 5, window));
        }
        assert!(
            announced.try_recv().is_err(),
            "gossipsub relays gossip, not the announcer"
        );
        // Preverified signatures are remembered: a block carrying them needs no check.
        let c = tx(2, 0);
        pool.preverify(&[&c]);
        let v = pool.verified_among([a.hash(), c.hash(), tx(3, 0).hash()]);
        assert_eq!(v, HashSet::from([a.hash(), c.hash()]));
    }

    #[test]
    fn reorg_origin_skips_signature_checks_and_announces_again() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, mut announced) = TxPool::new(chain(dir.path()), TxPoolConfig::default());
        // A transaction out of a block this node verified: its signature is not checked again
        // (a forged one shows that no check runs).
        let t = forged(0, 0);
        let out = block_on(pool.add(Origin::Reorg, vec![t.clone()]));
        assert!(matches!(out[0], Ok(Inserted::New(_))), "{out:?}");
        assert_eq!(announced.try_recv().unwrap().hash(), t.hash());
        // Pool policy still applies: nonce 0 again with the same fee is a replacement that
        // is underpriced.
        let mut same_nonce = tx(0, 0);
        same_nonce.body.amount = 6;
        let out = block_on(pool.add(Origin::Reorg, vec![same_nonce]));
        assert!(matches!(
            out[0],
            Err(SubmitError::Mempool(MempoolError::ReplacementUnderpriced))
        ));
    }

    #[test]
    fn a_low_nonce_in_a_block_is_already_in_chain_and_otherwise_too_low() {
        let dir = tempfile::tempdir().unwrap();
        let c = chain(dir.path());
        let (pool, _announced) = TxPool::new(c.clone(), TxPoolConfig::default());
        let mined = tx(0, 0);
        c.produce(&Keypair::dev_validator(0), 1, |_| vec![mined.clone()])
            .unwrap()
            .unwrap();
        // Another transaction with the same (now spent) nonce: too low, not in a block.
        let mut other = tx(0, 0).body;
        other.amount = 6;
        let other = Keypair::dev_account(0).sign_tx(other);
        let out = block_on(pool.add(Origin::Rpc, vec![mined.clone(), other.clone()]));
        assert!(
            matches!(
                out[0],
                Err(SubmitError::Mempool(MempoolError::AlreadyInChain))
            ),
            "{:?}",
            out[0]
        );
        assert!(
            matches!(
                out[1],
                Err(SubmitError::Mempool(MempoolError::NonceTooLow {
                    expected: 1,
                    got: 0
                }))
            ),
            "{:?}",
            out[1]
        );
        assert!(matches!(
            pool.check(mined),
            Err(SubmitError::Mempool(MempoolError::AlreadyInChain))
        ));
        assert!(matches!(
            pool.check(other),
            Err(SubmitError::Mempool(MempoolError::NonceTooLow { .. }))
        ));
    }

    #[test]
    fn canonical_notifications_drop_included_and_return_undone() {
        // Block built on one node's chain; the pool of a second node with the same genesis.
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let producer_chain = chain(d1.path());
        let (pool, mut announced) = TxPool::new(chain(d2.path()), TxPoolConfig::default());
        let t = tx(0, 0);
        block_on(pool.add(Origin::Rpc, vec![t.clone()]));
        announced.try_recv().unwrap();
        let key = Keypair::dev_validator(0);
        let b = producer_chain
            .produce(&key, 1, |_| vec![t.clone()])
            .unwrap()
            .unwrap()
            .into_inner();
        let applied = CanonNotification {
            applied: vec![b.clone()],
            undone: vec![],
            committed_us: 1,
        };
        block_on(pool.on_canon(&applied));
        assert!(pool.read().is_empty(), "included transaction dropped");
        // The block leaves the chain (this pool's chain never stored it): its transaction
        // returns and is announced again.
        let undone = CanonNotification {
            applied: vec![],
            undone: vec![b],
            committed_us: 2,
        };
        let (_, returned, lost) = block_on(pool.on_canon(&undone));
        assert_eq!((returned, lost), (1, 0));
        assert!(pool.read().contains(&t.hash()));
        assert_eq!(announced.try_recv().unwrap().hash(), t.hash());
    }
}
