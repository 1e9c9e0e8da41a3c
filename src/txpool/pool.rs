//! The transaction pool, after geth's txpool and Bitcoin Core's mempool.
//!
//! - **Pending and queued** (geth's terms): per sender, the consecutive run of nonces starting
//!   at the account's nonce at head is *pending* (executable now, relayed, selectable for a
//!   block); transactions behind a nonce gap are *queued* and become pending when the gap
//!   fills. Queued transactions older than [`MempoolConfig::queued_lifetime`] are dropped.
//! - **Limits**: per sender (all, and queued), global queued, global count and global bytes.
//! - **Replacement**: same sender and nonce needs a fee at least [`PRICE_BUMP_PERCENT`] higher
//!   (geth's `--txpool.pricebump`).
//! - **Eviction**: when full, the lowest-fee *evictable* transaction goes: each sender's
//!   highest nonce, so no remaining transaction ever loses the one it depends on. Every
//!   eviction raises a rolling minimum fee to the evicted fee + [`INCREMENTAL_FEE`], as Bitcoin
//!   Core's `mempoolminfee`; it halves every 12 h (6 h below half full, 3 h below a quarter)
//!   once a block has arrived since the last rise, and reads 0 below half the increment.
//! - **New head**: [`Mempool::on_new_head`] drops what the new blocks include and re-checks the
//!   senders whose accounts may have changed (nonce and balance; signatures are never verified
//!   again: every entry was verified once on admission).
//!
//! Fees are per transaction in base units (meshnode has no per-byte fee rate).

use super::config::MempoolConfig;
use super::error::MempoolError;
use crate::state::{Account, StateDiff, StateView};
use crate::types::{Address, Block, Hash, SignedTx};
use crate::validation::Verified;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Minimum fee increase, in percent, for a transaction to replace one with the same sender and
/// nonce (geth's `--txpool.pricebump`, default 10).
pub const PRICE_BUMP_PERCENT: u64 = 10;

/// Added to an evicted transaction's fee to give the new minimum fee (Bitcoin Core's
/// `-incrementalrelayfee`, here per transaction), base units.
pub const INCREMENTAL_FEE: u64 = 1;

/// Half-life of the rolling minimum fee with the pool at least half full (Bitcoin Core's
/// `ROLLING_FEE_HALFLIFE`).
pub const ROLLING_FEE_HALFLIFE: Duration = Duration::from_secs(12 * 3600);

/// Result of a successful [`Mempool::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// New transaction admitted.
    New(Hash),
    /// New transaction admitted behind a nonce gap (queued): kept here and not relayed until
    /// the gap fills (geth keeps future-nonce transactions local). Set by
    /// [`super::TxPool::add`]; the mempool itself reports `New`.
    Queued(Hash),
    /// The same transaction was already in the mempool.
    Known(Hash),
}

/// What [`Mempool::check`] found admitting a transaction would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Already in the pool.
    Known(Hash),
    /// Added to a pool with room.
    Add,
    /// Replaces this same-sender, same-nonce transaction (fee bump met).
    Replace(Hash),
    /// Enters a full pool by evicting these lower-fee transactions.
    Evict(Vec<Hash>),
}

/// Pool size, limits and entry price, as `getmempoolinfo` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MempoolInfo {
    /// Transactions held.
    pub size: usize,
    /// Their encoded bytes.
    pub bytes: usize,
    /// Sum of their fees, base units.
    pub total_fee: u128,
    /// Pending (executable) transactions.
    pub pending: usize,
    /// Queued (behind a nonce gap) transactions.
    pub queued: usize,
    /// Most transactions held.
    pub max_txs: usize,
    /// Most bytes held.
    pub max_bytes: usize,
    /// Lowest fee (base units per transaction) a new transaction must pay to enter now.
    pub min_fee: u64,
    /// Transactions evicted for room since start.
    pub evicted: u64,
    /// Queued transactions dropped at the end of their lifetime since start.
    pub expired: u64,
}

/// One mempool entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The transaction (its signature was verified on admission).
    pub tx: SignedTx,
    /// Its hash.
    pub hash: Hash,
    /// Its sender (derived once).
    pub sender: Address,
    /// Its encoded size, bytes.
    pub size: usize,
    /// When it was admitted.
    pub added: Instant,
    /// Admission time, ms since the Unix epoch (for RPC `time`).
    pub added_unix_ms: u64,
    /// From when peers can be expected to be receiving it: its admission for a transaction
    /// that came by gossip (it is travelling already), and admission plus the announcer's
    /// batch delay for one this node announces itself ([`Mempool::announce_by`]). A producer
    /// leaves out the transactions whose `announced_by` is still ahead and prefills those
    /// whose `announced_by` is recent (`producer::prefill_window`).
    pub announced_by: Instant,
}

impl Entry {
    fn fee(&self) -> u64 {
        self.tx.body.fee
    }

    /// Whether peers may still lack it at `now`: its [`Entry::announced_by`] is less than
    /// `window` before `now`, or after it (BIP152: what a producer prefills).
    pub fn announced_within(&self, now: Instant, window: std::time::Duration) -> bool {
        now.saturating_duration_since(self.announced_by) < window
    }

    /// Whether its announcement has gone out by `now` ([`Entry::announced_by`] is not
    /// ahead): always for a transaction that came by gossip, for one this node announces
    /// itself once the announcer's batch delay has passed.
    pub fn announced_before(&self, now: Instant) -> bool {
        self.announced_by <= now
    }
}

/// One sender's transactions.
#[derive(Debug, Default)]
struct SenderQueue {
    /// Nonce -> hash.
    txs: BTreeMap<u64, Hash>,
    /// The account nonce at head when last checked.
    state_nonce: u64,
    /// Length of the consecutive run from `state_nonce` (the pending ones).
    pending: usize,
    /// Nonces below this have been handed out for relay ([`Mempool::take_newly_pending`]):
    /// a queued transaction is relayed once, when it becomes pending.
    relayed_below: u64,
}

impl SenderQueue {
    fn queued(&self) -> usize {
        self.txs.len() - self.pending
    }

    fn recount(&mut self) {
        let mut n = self.state_nonce;
        for &k in self.txs.range(self.state_nonce..).map(|(k, _)| k) {
            if k != n {
                break;
            }
            n += 1;
        }
        self.pending = (n - self.state_nonce) as usize;
    }
}

/// The transaction pool. See the module docs for the policy.
#[derive(Debug)]
pub struct Mempool {
    cfg: MempoolConfig,
    by_hash: HashMap<Hash, Entry>,
    senders: HashMap<Address, SenderQueue>,
    /// (fee, hash) of each sender's highest-nonce transaction: the eviction candidates.
    evictable: BTreeSet<(u64, Hash)>,
    bytes: usize,
    total_fee: u128,
    queued: usize,
    rolling_min_fee: f64,
    rolling_updated: Instant,
    head_since_bump: bool,
    evicted: u64,
    expired: u64,
    /// Transactions that became pending (newly admitted in the pending run, or promoted from
    /// queued) since the last [`Mempool::take_newly_pending`].
    newly_pending: Vec<Hash>,
}

impl Mempool {
    /// An empty pool holding at most `max_txs` transactions, other limits at their defaults.
    pub fn new(max_txs: usize) -> Mempool {
        Mempool::with_config(MempoolConfig {
            max_txs,
            ..MempoolConfig::default()
        })
    }

    /// An empty pool with these limits.
    pub fn with_config(cfg: MempoolConfig) -> Mempool {
        Mempool {
            cfg,
            by_hash: HashMap::new(),
            senders: HashMap::new(),
            evictable: BTreeSet::new(),
            bytes: 0,
            total_fee: 0,
            queued: 0,
            rolling_min_fee: 0.0,
            rolling_updated: Instant::now(),
            head_since_bump: false,
            evicted: 0,
            expired: 0,
            newly_pending: Vec::new(),
        }
    }

    /// The limits.
    pub fn config(&self) -> &MempoolConfig {
        &self.cfg
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Total encoded bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether `hash` is in the pool.
    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    /// The entry for `hash`.
    pub fn get(&self, hash: &Hash) -> Option<&Entry> {
        self.by_hash.get(hash)
    }

    /// Records that this node announces `hash` itself, by `by` at the latest (the announcer
    /// waits that long for a batch: [`super::TxPoolConfig::announce_delay`]): sets the
    /// entry's [`Entry::announced_by`] and returns the entry. `None`: not pooled.
    pub fn announce_by(&mut self, hash: &Hash, by: Instant) -> Option<&Entry> {
        let e = self.by_hash.get_mut(hash)?;
        e.announced_by = by;
        Some(e)
    }

    /// All entries (no particular order).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.by_hash.values()
    }

    /// `sender`'s transactions in nonce order.
    pub fn sender_entries(&self, sender: &Address) -> Vec<&Entry> {
        self.senders
            .get(sender)
            .map(|q| q.txs.values().map(|h| &self.by_hash[h]).collect())
            .unwrap_or_default()
    }

    /// The current minimum fee to enter: the minimum relay fee, or the rolling minimum an
    /// eviction raised (after decay) when higher (Bitcoin Core's `mempoolminfee`).
    pub fn min_fee(&self) -> u64 {
        let v = self.decayed_rolling(Instant::now());
        let rolling = if v < INCREMENTAL_FEE as f64 / 2.0 {
            0
        } else {
            v.ceil() as u64
        };
        rolling.max(self.cfg.min_relay_fee)
    }

    /// The minimum relay fee (`getmempoolinfo.minrelaytxfee`).
    pub fn min_relay_fee(&self) -> u64 {
        self.cfg.min_relay_fee
    }

    fn decayed_rolling(&self, now: Instant) -> f64 {
        if !self.head_since_bump || self.rolling_min_fee == 0.0 {
            return self.rolling_min_fee;
        }
        let mut half = ROLLING_FEE_HALFLIFE.as_secs_f64();
        if self.len() < self.cfg.max_txs / 4 && self.bytes < self.cfg.max_bytes / 4 {
            half /= 4.0;
        } else if self.len() < self.cfg.max_txs / 2 && self.bytes < self.cfg.max_bytes / 2 {
            half /= 2.0;
        }
        let age = now.saturating_duration_since(self.rolling_updated);
        self.rolling_min_fee * 0.5f64.powf(age.as_secs_f64() / half)
    }

    /// Size, limits and the current minimum fee (`getmempoolinfo`, `txpool_status`).
    pub fn info(&self) -> MempoolInfo {
        MempoolInfo {
            size: self.by_hash.len(),
            bytes: self.bytes,
            total_fee: self.total_fee,
            pending: self.by_hash.len() - self.queued,
            queued: self.queued,
            max_txs: self.cfg.max_txs,
            max_bytes: self.cfg.max_bytes,
            min_fee: self.min_fee(),
            evicted: self.evicted,
            expired: self.expired,
        }
    }

    /// Highest nonce + 1 of `sender`'s consecutive run starting at `account.nonce` (what
    /// `eth_getTransactionCount(addr, "pending")` answers).
    pub fn pending_nonce(&self, sender: &Address, account: Account) -> u64 {
        let mut n = account.nonce;
        if let Some(q) = self.senders.get(sender) {
            while q.txs.contains_key(&n) {
                n += 1;
            }
        }
        n
    }

    /// What admitting `tx` would do, without changing the pool (also `testmempoolaccept`).
    ///
    /// Errors, in this order: nonce below the account's, balance short of amount + fee, a fee
    /// below the minimum relay fee, an underpriced replacement, a fee below the rolling minimum, the sender's limit, the
    /// queue limits (for a transaction behind a gap), and a full pool whose cheapest
    /// evictable transactions pay at least as much.
    pub fn check(&self, tx: &SignedTx, account: Account) -> Result<Admission, MempoolError> {
        self.check_keyed(tx, tx.hash(), tx.sender(), account)
    }

    /// [`Mempool::check`] with the transaction's hash and sender already derived.
    fn check_keyed(
        &self,
        tx: &SignedTx,
        hash: Hash,
        sender: Address,
        account: Account,
    ) -> Result<Admission, MempoolError> {
        if self.by_hash.contains_key(&hash) {
            return Ok(Admission::Known(hash));
        }
        let nonce = tx.body.nonce;
        let fee = tx.body.fee;
        if nonce < account.nonce {
            return Err(MempoolError::NonceTooLow {
                expected: account.nonce,
                got: nonce,
            });
        }
        let cost = tx.cost().unwrap_or(u64::MAX);
        if cost > account.balance {
            return Err(MempoolError::InsufficientFunds {
                balance: account.balance,
                cost,
            });
        }
        if fee < self.cfg.min_relay_fee {
            return Err(MempoolError::BelowMinRelayFee {
                fee,
                min: self.cfg.min_relay_fee,
            });
        }
        let q = self.senders.get(&sender);
        if let Some(old) = q.and_then(|q| q.txs.get(&nonce)) {
            let old_fee = self.by_hash[old].fee();
            let needed =
                old_fee.saturating_add(old_fee.saturating_mul(PRICE_BUMP_PERCENT).div_ceil(100));
            if fee < needed || fee <= old_fee {
                return Err(MempoolError::ReplacementUnderpriced);
            }
            return Ok(Admission::Replace(*old));
        }
        let min = self.min_fee();
        if fee < min {
            return Err(MempoolError::FeeTooLow { fee, min });
        }
        let count = q.map_or(0, |q| q.txs.len());
        if count >= self.cfg.max_per_sender {
            return Err(MempoolError::SenderLimit {
                limit: self.cfg.max_per_sender,
            });
        }
        let pending_end = match q {
            Some(q) if q.state_nonce == account.nonce => account.nonce + q.pending as u64,
            _ => self.pending_nonce(&sender, account),
        };
        if nonce != pending_end {
            // Behind a gap: queued.
            if q.map_or(0, |q| q.queued()) >= self.cfg.max_queued_per_sender {
                return Err(MempoolError::QueueFull {
                    limit: self.cfg.max_queued_per_sender,
                });
            }
            if self.queued >= self.cfg.max_queued {
                return Err(MempoolError::QueueFull {
                    limit: self.cfg.max_queued,
                });
            }
        }
        let size = tx.encoded_len();
        let (mut n, mut b) = (self.by_hash.len() + 1, self.bytes + size);
        if n <= self.cfg.max_txs && b <= self.cfg.max_bytes {
            return Ok(Admission::Add);
        }
        let mut victims = Vec::new();
        for &(vfee, vh) in &self.evictable {
            if n <= self.cfg.max_txs && b <= self.cfg.max_bytes {
                break;
            }
            if vfee >= fee {
                return Err(MempoolError::Full { fee, min: vfee });
            }
            let v = &self.by_hash[&vh];
            if v.sender == sender {
                // Its predecessor may be what this transaction continues.
                continue;
            }
            n -= 1;
            b -= v.size;
            victims.push(vh);
        }
        if n > self.cfg.max_txs || b > self.cfg.max_bytes {
            let min = self.evictable.first().map_or(u64::MAX, |(f, _)| *f);
            return Err(MempoolError::Full { fee, min });
        }
        Ok(Admission::Evict(victims))
    }

    /// Admits a verified transaction given its sender's account at head.
    ///
    /// Errors: as [`Mempool::check`].
    pub fn insert(
        &mut self,
        tx: Verified<SignedTx>,
        account: Account,
    ) -> Result<Inserted, MempoolError> {
        let (hash, sender) = (tx.inner().hash(), tx.inner().sender());
        self.insert_keyed(tx, hash, sender, account)
    }

    /// [`Mempool::insert`] with the transaction's hash and sender already derived (the gossip
    /// path has them); they must be `tx`'s.
    pub fn insert_keyed(
        &mut self,
        tx: Verified<SignedTx>,
        hash: Hash,
        sender: Address,
        account: Account,
    ) -> Result<Inserted, MempoolError> {
        debug_assert_eq!(hash, tx.inner().hash());
        let tx = tx.into_inner();
        match self.check_keyed(&tx, hash, sender, account)? {
            Admission::Known(h) => return Ok(Inserted::Known(h)),
            Admission::Replace(old) => {
                self.remove(&old);
            }
            Admission::Evict(victims) => {
                for v in victims {
                    if let Some(e) = self.remove(&v) {
                        self.evicted += 1;
                        self.bump_rolling(e.fee());
                    }
                }
            }
            Admission::Add => {}
        }
        let size = tx.encoded_len();
        let nonce = tx.body.nonce;
        self.detach(&sender);
        let q = self.senders.entry(sender).or_default();
        let recount = q.txs.is_empty() || q.state_nonce != account.nonce;
        q.state_nonce = account.nonce;
        q.txs.insert(nonce, hash);
        if !recount && nonce == q.state_nonce + q.pending as u64 {
            // Extends the pending run, and promotes whatever queued nonces follow.
            q.pending += 1;
            while q.txs.contains_key(&(q.state_nonce + q.pending as u64)) {
                q.pending += 1;
            }
        }
        self.bytes += size;
        self.total_fee += tx.body.fee as u128;
        self.by_hash.insert(
            hash,
            Entry {
                tx,
                hash,
                sender,
                size,
                added: Instant::now(),
                added_unix_ms: crate::now_ms(),
                announced_by: Instant::now(),
            },
        );
        self.attach(&sender, recount);
        Ok(Inserted::New(hash))
    }

    fn bump_rolling(&mut self, evicted_fee: u64) {
        let now = Instant::now();
        let current = self.decayed_rolling(now);
        let candidate = evicted_fee.saturating_add(INCREMENTAL_FEE) as f64;
        self.rolling_min_fee = current.max(candidate);
        self.rolling_updated = now;
        self.head_since_bump = false;
    }

    /// Takes `sender`'s counts out of the global tallies before its queue changes.
    fn detach(&mut self, sender: &Address) {
        if let Some(q) = self.senders.get(sender) {
            self.queued -= q.queued();
            if let Some(h) = q.txs.values().next_back() {
                self.evictable.remove(&(self.by_hash[h].fee(), *h));
            }
        }
    }

    /// Puts `sender`'s counts back (drops an empty queue); `recount` recomputes its pending
    /// run from scratch (after its state nonce changed), otherwise the caller kept it current.
    fn attach(&mut self, sender: &Address, recount: bool) {
        let Some(q) = self.senders.get_mut(sender) else {
            return;
        };
        if q.txs.is_empty() {
            self.senders.remove(sender);
            return;
        }
        if recount {
            q.recount();
        }
        // Relay policy (geth keeps future-nonce transactions local): what entered the pending
        // run since last time is handed out for relay, once.
        let end = q.state_nonce + q.pending as u64;
        let from = q.relayed_below.max(q.state_nonce);
        if from < end {
            self.newly_pending
                .extend(q.txs.range(from..end).map(|(_, h)| *h));
            q.relayed_below = end;
        }
        self.queued += q.queued();
        let h = *q.txs.values().next_back().expect("non-empty");
        self.evictable.insert((self.by_hash[&h].fee(), h));
    }

    /// Hashes of pending transactions, at most `max`, each sender's in nonce order.
    pub fn pending_hashes(&self, max: usize) -> Vec<Hash> {
        let mut out = Vec::new();
        for q in self.senders.values() {
            let end = q.state_nonce + q.pending as u64;
            for (_, h) in q.txs.range(q.state_nonce..end) {
                if out.len() >= max {
                    return out;
                }
                out.push(*h);
            }
        }
        out
    }

    /// Whether `hash` is pooled and pending (executable now; not behind a nonce gap).
    pub fn is_pending(&self, hash: &Hash) -> bool {
        let Some(e) = self.by_hash.get(hash) else {
            return false;
        };
        self.senders.get(&e.sender).is_some_and(|q| {
            let n = e.tx.body.nonce;
            n >= q.state_nonce && n < q.state_nonce + q.pending as u64
        })
    }

    /// The transactions that became pending since the last call, each once: admitted into a
    /// sender's pending run, or promoted from queued when a gap filled or a block advanced the
    /// sender's nonce. Queued transactions are never in it (they are not relayed); a
    /// replacement of an already pending nonce is not either (its admitter relays it).
    pub fn take_newly_pending(&mut self) -> Vec<Hash> {
        let mut v = std::mem::take(&mut self.newly_pending);
        v.retain(|h| self.by_hash.contains_key(h));
        v
    }

    /// Removes one transaction; returns it if present. Later nonces of its sender become
    /// queued.
    pub fn remove(&mut self, hash: &Hash) -> Option<Entry> {
        let sender = self.by_hash.get(hash)?.sender;
        self.detach(&sender);
        let e = self.by_hash.remove(hash).expect("present");
        self.bytes -= e.size;
        self.total_fee -= e.fee() as u128;
        if let Some(q) = self.senders.get_mut(&sender) {
            let nonce = e.tx.body.nonce;
            q.txs.remove(&nonce);
            // A later transaction at this nonce is relayed when it becomes pending.
            q.relayed_below = q.relayed_below.min(nonce);
            if nonce >= q.state_nonce && nonce < q.state_nonce + q.pending as u64 {
                // The run now ends before it; what followed is queued.
                q.pending = (nonce - q.state_nonce) as usize;
            }
        }
        self.attach(&sender, false);
        Some(e)
    }

    /// geth's split: each sender's pending run and its queued rest, each list sorted by
    /// sender, then nonce.
    pub fn pending_and_queued(&self) -> (Vec<&Entry>, Vec<&Entry>) {
        let (mut pending, mut queued) = (Vec::new(), Vec::new());
        let mut senders: Vec<_> = self.senders.iter().collect();
        senders.sort_by_key(|(a, _)| **a);
        for (_, q) in senders {
            let run = q.state_nonce..q.state_nonce + q.pending as u64;
            for (nonce, h) in &q.txs {
                if run.contains(nonce) {
                    pending.push(&self.by_hash[h]);
                } else {
                    queued.push(&self.by_hash[h]);
                }
            }
        }
        (pending, queued)
    }

    /// Picks transactions for a block on top of `state`: highest fee first among each
    /// sender's next executable nonce, so every sender's nonces stay in order and every picked
    /// transaction applies (balance included). At most `max_txs` and `max_bytes`.
    pub fn select(
        &self,
        state: &dyn StateView,
        fee_recipient: &Address,
        max_txs: usize,
        max_bytes: usize,
    ) -> Vec<SignedTx> {
        self.select_where(state, fee_recipient, max_txs, max_bytes, |_| true)
    }

    /// [`Mempool::select`] among the entries `include` accepts: a sender's transaction it
    /// refuses ends that sender's run (its later nonces could not apply without it). The
    /// producer passes "announced already" ([`Entry::announced_before`]).
    pub fn select_where(
        &self,
        state: &dyn StateView,
        fee_recipient: &Address,
        max_txs: usize,
        max_bytes: usize,
        include: impl Fn(&Entry) -> bool,
    ) -> Vec<SignedTx> {
        // Heap of (fee, tie-break, sender): the best next transaction of each sender.
        let mut heap = BinaryHeap::new();
        for (sender, q) in &self.senders {
            if q.pending == 0 {
                continue;
            }
            let next = state.account(sender).nonce;
            if let Some(e) = q.txs.get(&next).map(|h| &self.by_hash[h]) {
                if include(e) {
                    heap.push((e.fee(), std::cmp::Reverse(e.hash), *sender, next));
                }
            }
        }
        let mut diff = StateDiff::default();
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some((_, std::cmp::Reverse(h), sender, nonce)) = heap.pop() {
            if out.len() >= max_txs {
                break;
            }
            let e = &self.by_hash[&h];
            if bytes + e.size > max_bytes {
                continue;
            }
            if diff.apply_tx(state, &e.tx, fee_recipient).is_err() {
                continue; // this sender cannot pay: skip the rest of its queue
            }
            bytes += e.size;
            out.push(e.tx.clone());
            if let Some(ne) = self.senders[&sender].txs.get(&(nonce + 1)) {
                let ne = &self.by_hash[ne];
                if include(ne) {
                    heap.push((ne.fee(), std::cmp::Reverse(ne.hash), sender, nonce + 1));
                }
            }
        }
        out
    }

    /// After one block extends the head: as [`Mempool::on_new_head`] with no undone blocks.
    pub fn on_block(&mut self, block: &Block, state: &dyn StateView) -> usize {
        self.on_new_head(std::slice::from_ref(block), &[], state)
    }

    /// After the head moved: `applied` became canonical (in order) and `undone` left the
    /// chain (a reorg). Drops every transaction `applied` includes, then re-checks each sender
    /// whose account may have changed against `state` (the new head's): the senders of both
    /// sets, and the recipients and producers of `undone` (their balances may have dropped).
    /// A re-check drops nonces below the account's and transactions the balance no longer
    /// covers, and re-splits pending/queued; signatures are not verified again. Returns how
    /// many transactions were dropped besides the included ones.
    pub fn on_new_head(
        &mut self,
        applied: &[Block],
        undone: &[Block],
        state: &dyn StateView,
    ) -> usize {
        let mut affected: HashSet<Address> = HashSet::new();
        for b in applied {
            for tx in &b.txs {
                affected.insert(
                    self.remove(&tx.hash())
                        .map_or_else(|| tx.sender(), |e| e.sender),
                );
            }
        }
        for b in undone {
            affected.insert(b.header.producer.address());
            for tx in &b.txs {
                affected.insert(tx.sender());
                affected.insert(tx.body.to);
            }
        }
        let mut dropped = 0;
        for sender in affected {
            dropped += self.recheck(&sender, state.account(&sender));
        }
        self.head_since_bump = true;
        dropped
    }

    /// Re-checks one sender against its account at head; returns how many were dropped.
    fn recheck(&mut self, sender: &Address, account: Account) -> usize {
        let Some(q) = self.senders.get(sender) else {
            return 0;
        };
        let doomed: Vec<Hash> = q
            .txs
            .iter()
            .filter(|(nonce, h)| {
                **nonce < account.nonce
                    || self.by_hash[*h]
                        .tx
                        .cost()
                        .is_none_or(|c| c > account.balance)
            })
            .map(|(_, h)| *h)
            .collect();
        for h in &doomed {
            self.remove(h);
        }
        self.detach(sender);
        if let Some(q) = self.senders.get_mut(sender) {
            q.state_nonce = account.nonce;
        }
        self.attach(sender, true);
        doomed.len()
    }

    /// Re-checks every sender against `state` (after missed head notifications: the caller
    /// fell behind the chain's broadcast). Returns how many transactions were dropped.
    pub fn recheck_all(&mut self, state: &dyn StateView) -> usize {
        let senders: Vec<Address> = self.senders.keys().copied().collect();
        let dropped = senders
            .iter()
            .map(|s| self.recheck(s, state.account(s)))
            .sum();
        self.head_since_bump = true;
        dropped
    }

    /// Drops queued transactions older than the queued lifetime (call periodically). Returns
    /// how many were dropped.
    pub fn expire(&mut self, now: Instant) -> usize {
        let lifetime = self.cfg.queued_lifetime;
        let old: Vec<Hash> = self
            .senders
            .values()
            .filter(|q| q.queued() > 0)
            .flat_map(|q| {
                let run = q.state_nonce..q.state_nonce + q.pending as u64;
                q.txs
                    .iter()
                    .filter(move |(n, _)| !run.contains(n))
                    .map(|(_, h)| *h)
            })
            .filter(|h| now.saturating_duration_since(self.by_hash[h].added) > lifetime)
            .collect();
        for h in &old {
            self.remove(h);
        }
        self.expired += old.len() as u64;
        old.len()
    }

    /// Checks the internal indexes against each other (tests and debug assertions).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut bytes = 0;
        let mut queued = 0;
        let mut evictable = BTreeSet::new();
        let mut n = 0;
        for (sender, q) in &self.senders {
            if q.txs.is_empty() {
                return Err(format!("empty queue for {sender}"));
            }
            let mut want = q.state_nonce;
            while q.txs.contains_key(&want) {
                want += 1;
            }
            if q.pending as u64 != want - q.state_nonce {
                return Err(format!("pending count of {sender} is {}", q.pending));
            }
            queued += q.queued();
            for (nonce, h) in &q.txs {
                let e = self.by_hash.get(h).ok_or("queue names a missing entry")?;
                if e.sender != *sender || e.tx.body.nonce != *nonce {
                    return Err("entry filed under the wrong sender or nonce".into());
                }
                bytes += e.size;
                n += 1;
            }
            let last = q.txs.values().next_back().expect("non-empty");
            evictable.insert((self.by_hash[last].fee(), *last));
        }
        if n != self.by_hash.len() {
            return Err(format!(
                "{n} queued entries, {} by hash",
                self.by_hash.len()
            ));
        }
        let fees: u128 = self.by_hash.values().map(|e| e.fee() as u128).sum();
        if bytes != self.bytes || queued != self.queued || fees != self.total_fee {
            return Err(format!(
                "tallies: bytes {bytes} vs {}, queued {queued} vs {}",
                self.bytes, self.queued
            ));
        }
        if evictable != self.evictable {
            return Err("evictable index differs from each sender's last nonce".into());
        }
        if self.by_hash.len() > self.cfg.max_txs || self.bytes > self.cfg.max_bytes {
            return Err("over the global limits".into());
        }
        Ok(())
    }

    #[cfg(test)]
    fn age(&mut self, d: Duration) {
        self.rolling_updated -= d;
        for e in self.by_hash.values_mut() {
            e.added -= d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::types::TxBody;
    use crate::validation::check_tx;
    use proptest::prelude::*;

    fn tx_to(key: &Keypair, nonce: u64, fee: u64, amount: u64) -> Verified<SignedTx> {
        let body = TxBody {
            chain_id: 1,
            nonce,
            from: key.public(),
            to: Keypair::dev_account(99).address(),
            amount,
            fee,
            data: vec![],
        };
        check_tx(key.sign_tx(body), 1).unwrap()
    }

    fn tx(key: &Keypair, nonce: u64, fee: u64) -> Verified<SignedTx> {
        tx_to(key, nonce, fee, 10)
    }

    fn rich() -> Account {
        Account {
            balance: 1_000_000,
            nonce: 0,
        }
    }

    /// An unsigned block carrying `txs` (the mempool reads only the txs and the producer).
    fn test_block(producer: crate::types::PublicKey, txs: Vec<SignedTx>) -> Block {
        Block {
            header: crate::types::BlockHeader {
                chain_id: 1,
                height: 1,
                slot: 1,
                parent: Hash::ZERO,
                timestamp_ms: 0,
                producer,
                tx_root: Hash::ZERO,
                tx_count: txs.len() as u32,
            },
            signature: crate::types::Signature([0; 64]),
            txs,
        }
    }

    fn counts(m: &Mempool) -> (usize, usize) {
        let i = m.info();
        (i.pending, i.queued)
    }

    #[test]
    fn admission_rules() {
        let k = Keypair::dev_account(1);
        let mut m = Mempool::new(100);
        let acc = Account {
            balance: 1000,
            nonce: 3,
        };
        assert_eq!(
            m.insert(tx(&k, 2, 1), acc),
            Err(MempoolError::NonceTooLow {
                expected: 3,
                got: 2
            })
        );
        let poor = Account {
            balance: 5,
            nonce: 0,
        };
        assert!(matches!(
            m.insert(tx(&k, 1, 1), poor),
            Err(MempoolError::InsufficientFunds { .. })
        ));
        // Replacement needs fee >= old * 110 %: 100 -> 110 passes, 109 does not.
        assert!(m.insert(tx(&k, 1, 100), rich()).is_ok());
        assert_eq!(
            m.insert(tx(&k, 1, 109), rich()),
            Err(MempoolError::ReplacementUnderpriced)
        );
        // Small fees round the bump up (5 -> 6), as geth.
        assert!(m.insert(tx(&k, 0, 5), rich()).is_ok());
        assert_eq!(
            m.insert(tx(&k, 0, 5), rich()).unwrap(),
            Inserted::Known(tx(&k, 0, 5).inner().hash())
        );
        assert!(m.insert(tx(&k, 0, 6), rich()).is_ok());
        assert!(matches!(
            m.insert(tx(&k, 1, 110), rich()),
            Ok(Inserted::New(_))
        ));
        assert_eq!(m.len(), 2);
        m.check_invariants().unwrap();
    }

    #[test]
    fn gap_is_queued_and_promoted_when_filled() {
        let k = Keypair::dev_account(1);
        let mut m = Mempool::new(100);
        m.insert(tx(&k, 0, 1), rich()).unwrap();
        m.insert(tx(&k, 2, 1), rich()).unwrap();
        m.insert(tx(&k, 3, 1), rich()).unwrap();
        assert_eq!(
            counts(&m),
            (1, 2),
            "nonce 0 pending, 2 and 3 behind the gap"
        );
        let (p, q) = m.pending_and_queued();
        assert_eq!(p.iter().map(|e| e.tx.body.nonce).collect::<Vec<_>>(), [0]);
        assert_eq!(
            q.iter().map(|e| e.tx.body.nonce).collect::<Vec<_>>(),
            [2, 3]
        );
        m.insert(tx(&k, 1, 1), rich()).unwrap();
        assert_eq!(counts(&m), (4, 0), "filling nonce 1 promotes 2 and 3");
        // Removing nonce 1 again (e.g. evicted) demotes 2 and 3.
        m.remove(&tx(&k, 1, 1).inner().hash());
        assert_eq!(counts(&m), (1, 2));
        m.check_invariants().unwrap();
    }

    #[test]
    fn per_sender_and_queue_limits() {
        let k = Keypair::dev_account(1);
        let mut m = Mempool::with_config(MempoolConfig {
            max_per_sender: 4,
            max_queued_per_sender: 2,
            max_queued: 3,
            ..MempoolConfig::default()
        });
        m.insert(tx(&k, 0, 1), rich()).unwrap();
        m.insert(tx(&k, 5, 1), rich()).unwrap();
        m.insert(tx(&k, 6, 1), rich()).unwrap();
        assert_eq!(
            m.insert(tx(&k, 7, 1), rich()),
            Err(MempoolError::QueueFull { limit: 2 })
        );
        // Continuing the pending run is not limited by the queue.
        m.insert(tx(&k, 1, 1), rich()).unwrap();
        assert_eq!(
            m.insert(tx(&k, 2, 1), rich()),
            Err(MempoolError::SenderLimit { limit: 4 })
        );
        // A replacement is fine at the limit.
        assert!(m.insert(tx(&k, 1, 2), rich()).is_ok());
        // The global queue limit: another sender's gapped tx fits once (2 + 1 = 3), then not.
        let o = Keypair::dev_account(2);
        m.insert(tx(&o, 3, 1), rich()).unwrap();
        assert_eq!(
            m.insert(tx(&o, 4, 1), rich()),
            Err(MempoolError::QueueFull { limit: 3 })
        );
        m.check_invariants().unwrap();
    }

    #[test]
    fn queued_transactions_expire_pending_ones_do_not() {
        let k = Keypair::dev_account(1);
        let mut m = Mempool::with_config(MempoolConfig {
            queued_lifetime: Duration::from_secs(60),
            ..MempoolConfig::default()
        });
        m.insert(tx(&k, 0, 1), rich()).unwrap();
        m.insert(tx(&k, 4, 1), rich()).unwrap();
        assert_eq!(m.expire(Instant::now()), 0);
        m.age(Duration::from_secs(61));
        assert_eq!(m.expire(Instant::now()), 1);
        assert_eq!(counts(&m), (1, 0));
        assert_eq!(m.info().expired, 1);
        m.check_invariants().unwrap();
    }

    #[test]
    fn select_keeps_nonce_order_and_prefers_fees() {
        let a = Keypair::dev_account(1);
        let b = Keypair::dev_account(2);
        let mut m = Mempool::new(100);
        // a: nonces 0 (fee 1), 1 (fee 100); b: nonce 0 (fee 50).
        m.insert(tx(&a, 1, 100), rich()).unwrap();
        m.insert(tx(&a, 0, 1), rich()).unwrap();
        m.insert(tx(&b, 0, 50), rich()).unwrap();
        let mut st = HashMap::new();
        st.insert(a.address(), rich());
        st.insert(b.address(), rich());
        let sel = m.select(&st, &Address::default(), 10, usize::MAX);
        let order: Vec<(Address, u64)> = sel.iter().map(|t| (t.sender(), t.body.nonce)).collect();
        assert_eq!(
            order,
            vec![(b.address(), 0), (a.address(), 0), (a.address(), 1)]
        );
        // A gap stops a sender: a's nonce 3 without 2 is never selected.
        m.insert(tx(&a, 3, 1000), rich()).unwrap();
        assert_eq!(m.select(&st, &Address::default(), 10, usize::MAX).len(), 3);
        assert_eq!(m.select(&st, &Address::default(), 2, usize::MAX).len(), 2);
    }

    #[test]
    fn select_where_ends_a_sender_run_at_the_first_refused_transaction() {
        let a = Keypair::dev_account(1);
        let b = Keypair::dev_account(2);
        let mut m = Mempool::new(100);
        for n in 0..3 {
            m.insert(tx(&a, n, 10), rich()).unwrap();
        }
        m.insert(tx(&b, 0, 5), rich()).unwrap();
        m.insert(tx(&b, 1, 5), rich()).unwrap();
        let mut st = HashMap::new();
        st.insert(a.address(), rich());
        st.insert(b.address(), rich());
        // a's nonce 1 not announced yet: a's 0 only (its 2 needs 1); b's 0 refused: none of b.
        let refused = [tx(&a, 1, 10).inner().hash(), tx(&b, 0, 5).inner().hash()];
        let sel = m.select_where(&st, &Address::default(), 10, usize::MAX, |e| {
            !refused.contains(&e.hash)
        });
        let picked: Vec<(Address, u64)> = sel.iter().map(|t| (t.sender(), t.body.nonce)).collect();
        assert_eq!(picked, vec![(a.address(), 0)]);
        // Nothing refused: everything, as `select`.
        let all = m.select_where(&st, &Address::default(), 10, usize::MAX, |_| true);
        assert_eq!(all, m.select(&st, &Address::default(), 10, usize::MAX));
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn full_pool_evicts_lowest_fee_tail_and_raises_min_fee() {
        let mut m = Mempool::new(3);
        let a = Keypair::dev_account(1);
        let b = Keypair::dev_account(2);
        let c = Keypair::dev_account(3);
        // a: nonce 0 fee 1 (not evictable: a's nonce 1 depends on it), nonce 1 fee 9.
        m.insert(tx(&a, 0, 1), rich()).unwrap();
        m.insert(tx(&a, 1, 9), rich()).unwrap();
        m.insert(tx(&b, 0, 5), rich()).unwrap();
        // Before any eviction the minimum is the minimum relay fee.
        assert_eq!(m.min_fee(), 1);
        // Fee 5 does not beat the lowest evictable (b's 5).
        assert_eq!(
            m.insert(tx(&c, 0, 5), rich()),
            Err(MempoolError::Full { fee: 5, min: 5 })
        );
        // Fee 6 evicts b's 5 — not a's fee-1 nonce 0, which a's nonce 1 depends on.
        let Inserted::New(h) = m.insert(tx(&c, 0, 6), rich()).unwrap() else {
            panic!()
        };
        assert!(m.contains(&h) && m.len() == 3);
        assert!(m.sender_entries(&b.address()).is_empty(), "fee 5 evicted");
        assert_eq!(m.sender_entries(&a.address()).len(), 2);
        // The minimum fee rose to the evicted fee + the increment.
        assert_eq!(m.min_fee(), 6);
        assert_eq!(m.info().evicted, 1);
        let d = Keypair::dev_account(4);
        assert_eq!(
            m.insert(tx(&d, 0, 5), rich()),
            Err(MempoolError::FeeTooLow { fee: 5, min: 6 })
        );
        // It decays only after a block: a block and 12 h later it has halved (pool < 1/4 full
        // would decay faster; this one is full).
        m.age(Duration::from_secs(12 * 3600));
        assert_eq!(m.min_fee(), 6, "no block since the bump");
        m.on_new_head(&[], &[], &HashMap::new());
        assert_eq!(m.min_fee(), 3);
        m.check_invariants().unwrap();
    }

    #[test]
    fn a_fee_below_the_minimum_relay_fee_is_refused_first() {
        let mut m = Mempool::new(10);
        let a = Keypair::dev_account(1);
        assert_eq!(
            m.insert(tx(&a, 0, 0), rich()),
            Err(MempoolError::BelowMinRelayFee { fee: 0, min: 1 })
        );
        m.insert(tx(&a, 0, 1), rich()).unwrap();
        let mut free = Mempool::with_config(MempoolConfig {
            min_relay_fee: 0,
            ..MempoolConfig::default()
        });
        free.insert(tx(&a, 0, 0), rich()).unwrap();
        assert_eq!(free.min_fee(), 0);
    }

    #[test]
    fn only_transactions_that_become_pending_are_handed_out_for_relay_once() {
        let mut m = Mempool::new(100);
        let a = Keypair::dev_account(1);
        let h2 = tx(&a, 2, 1).inner().hash();
        m.insert(tx(&a, 2, 1), rich()).unwrap();
        assert!(!m.is_pending(&h2));
        assert!(m.take_newly_pending().is_empty(), "queued: not relayed");
        let h0 = tx(&a, 0, 1).inner().hash();
        m.insert(tx(&a, 0, 1), rich()).unwrap();
        assert_eq!(m.take_newly_pending(), vec![h0]);
        let h1 = tx(&a, 1, 1).inner().hash();
        m.insert(tx(&a, 1, 1), rich()).unwrap();
        // The gap filled: nonce 1 and the promoted nonce 2, once.
        assert_eq!(m.take_newly_pending(), vec![h1, h2]);
        assert!(m.is_pending(&h2));
        assert!(m.take_newly_pending().is_empty());
        m.check_invariants().unwrap();
    }

    #[test]
    fn byte_limit_evicts_as_many_as_needed() {
        let size = tx(&Keypair::dev_account(1), 0, 1).inner().encoded_len();
        let mut m = Mempool::with_config(MempoolConfig {
            max_bytes: size * 3,
            ..MempoolConfig::default()
        });
        for i in 0..3 {
            m.insert(tx(&Keypair::dev_account(i), 0, 10 + i), rich())
                .unwrap();
        }
        // A bigger transaction (data) needs two victims.
        let k = Keypair::dev_account(9);
        let mut body = tx(&k, 0, 50).into_inner().body;
        body.data = vec![0; size];
        let big = check_tx(k.sign_tx(body), 1).unwrap();
        m.insert(big, rich()).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m.bytes() <= size * 3);
        assert!(m.sender_entries(&Keypair::dev_account(2).address()).len() == 1);
        m.check_invariants().unwrap();
    }

    #[test]
    fn new_head_drops_included_and_rechecks_after_a_reorg() {
        let a = Keypair::dev_account(1);
        let b = Keypair::dev_account(2);
        let producer = Keypair::dev_validator(0);
        let mut m = Mempool::new(100);
        for n in 0..3 {
            m.insert(tx(&a, n, 1), rich()).unwrap();
        }
        // b spends 10 + 1 per tx from a balance of 25: two fit.
        let b_acc = Account {
            balance: 25,
            nonce: 0,
        };
        m.insert(tx(&b, 0, 1), b_acc).unwrap();
        m.insert(tx(&b, 1, 1), b_acc).unwrap();
        // A block includes a's nonce 0 (and an unknown tx of a's nonce 1 with another fee).
        let block = |txs: Vec<SignedTx>| test_block(producer.public(), txs);
        let other_a1 = tx(&a, 1, 7).into_inner();
        let b1 = block(vec![tx(&a, 0, 1).into_inner(), other_a1]);
        let mut st = HashMap::new();
        st.insert(
            a.address(),
            Account {
                balance: 1_000_000,
                nonce: 2,
            },
        );
        st.insert(b.address(), b_acc);
        let dropped = m.on_new_head(std::slice::from_ref(&b1), &[], &st);
        assert_eq!(dropped, 1, "a's pooled nonce 1 is stale now");
        assert_eq!(m.sender_entries(&a.address()).len(), 1);
        assert_eq!(counts(&m), (3, 0));
        // A reorg undoes a block that had paid b 0 — but b's balance on the new branch is only
        // 11: b's nonce 1 is no longer covered... only nonce 0's own cost (11) is, so nonce 1
        // (also 11) stays: the check is per transaction, as geth's. Make b poorer: 10.
        st.insert(
            b.address(),
            Account {
                balance: 10,
                nonce: 0,
            },
        );
        // The undone block paid b (b is a recipient there) and a's nonce went back to 1.
        let mut pay_b = tx(&a, 1, 1).into_inner();
        pay_b.body.to = b.address();
        st.insert(
            a.address(),
            Account {
                balance: 1_000_000,
                nonce: 1,
            },
        );
        let dropped = m.on_new_head(&[], &[block(vec![pay_b])], &st);
        assert_eq!(dropped, 2, "both of b's transactions cost 11 > 10");
        // a's nonce 2 is now behind a gap (nonce 1 is back in play): queued.
        assert_eq!(counts(&m), (0, 1));
        m.check_invariants().unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Random inserts, removals and new heads over a tiny pool keep every index consistent
        /// and every limit respected, and never evict a transaction another one depends on.
        #[test]
        fn random_operations_keep_invariants(ops in proptest::collection::vec((0u8..4, 0usize..4, 0u64..6, 1u64..50), 1..80)) {
            let keys: Vec<Keypair> = (0..4).map(Keypair::dev_account).collect();
            let mut m = Mempool::with_config(MempoolConfig {
                max_txs: 6,
                max_per_sender: 4,
                max_queued_per_sender: 2,
                max_queued: 4,
                ..MempoolConfig::default()
            });
            let mut nonces = [0u64; 4];
            for (op, who, nonce, fee) in ops {
                let acc = Account { balance: 1_000_000, nonce: nonces[who] };
                match op {
                    0 | 1 => { let _ = m.insert(tx(&keys[who], nonces[who] + nonce, fee), acc); }
                    2 => {
                        let hs: Vec<Hash> = m.sender_entries(&keys[who].address()).iter().map(|e| e.hash).collect();
                        if let Some(h) = hs.get(nonce as usize % hs.len().max(1)) { m.remove(h); }
                    }
                    _ => {
                        // A block includes the sender's next pooled tx (if any).
                        let next = m.sender_entries(&keys[who].address()).first().map(|e| e.tx.clone());
                        if let Some(t) = next.filter(|t| t.body.nonce == nonces[who]) {
                            nonces[who] += 1;
                            let st: HashMap<Address, Account> = keys.iter().enumerate()
                                .map(|(i, k)| (k.address(), Account { balance: 1_000_000, nonce: nonces[i] }))
                                .collect();
                            let b = test_block(Keypair::dev_validator(0).public(), vec![t]);
                            m.on_new_head(&[b], &[], &st);
                        }
                    }
                }
                prop_assert_eq!(m.check_invariants(), Ok(()));
            }
        }
    }
}
