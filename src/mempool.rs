//! Pending transactions: per-sender nonce order, fee priority for block building, a bound on
//! the count with lowest-fee eviction, replacement by a higher fee (geth's 10 % price bump).

use crate::state::{Account, StateDiff, StateView};
use crate::types::{Address, Block, Hash, SignedTx};
use crate::validation::Verified;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::Instant;

/// Minimum fee increase, in percent, for a transaction to replace one with the same sender and
/// nonce (geth's `--txpool.pricebump`, default 10).
pub const PRICE_BUMP_PERCENT: u64 = 10;

/// Why the mempool refused a transaction (already signature-checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Nonce below the sender's next nonce in the chain.
    #[error("nonce too low: next nonce {expected}, transaction nonce {got}")]
    NonceTooLow {
        /// Next nonce at head.
        expected: u64,
        /// Transaction nonce.
        got: u64,
    },
    /// Balance at head does not cover amount + fee.
    #[error("insufficient funds for fee + amount: balance {balance}, cost {cost}")]
    InsufficientFunds {
        /// Balance at head.
        balance: u64,
        /// amount + fee.
        cost: u64,
    },
    /// Same sender and nonce already pending with a fee less than 10 % lower.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The mempool is full and this transaction's fee does not beat the lowest.
    #[error("mempool full: fee {fee} does not beat the lowest evictable fee {min}")]
    Full {
        /// Offered fee.
        fee: u64,
        /// Lowest fee that could be evicted.
        min: u64,
    },
    /// Already included in a block.
    #[error("transaction already in block chain")]
    AlreadyInChain,
}

/// Result of a successful [`Mempool::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// New transaction admitted.
    New(Hash),
    /// The same transaction was already in the mempool.
    Known(Hash),
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
    /// Most transactions held.
    pub max_txs: usize,
    /// Most bytes held.
    pub max_bytes: usize,
    /// Lowest fee (base units per transaction) a new transaction must pay to enter now.
    pub min_fee: u64,
}

/// What [`Mempool::check`] found admitting a transaction would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Already in the pool.
    Known(Hash),
    /// Added to a pool with room.
    Add,
    /// Replaces this same-sender, same-nonce transaction (fee bump met).
    Replace(Hash),
    /// Enters a full pool by evicting this lower-fee transaction.
    Evict(Hash),
}

/// One mempool entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The transaction (its signature was verified on admission).
    pub tx: SignedTx,
    /// Its hash.
    pub hash: Hash,
    /// Its encoded size, bytes.
    pub size: usize,
    /// When it was admitted.
    pub added: Instant,
    /// Admission time, ms since the Unix epoch (for RPC `time`).
    pub added_unix_ms: u64,
}

/// The transaction pool.
#[derive(Debug)]
pub struct Mempool {
    by_hash: HashMap<Hash, Entry>,
    by_sender: HashMap<Address, BTreeMap<u64, Hash>>,
    max_txs: usize,
    bytes: usize,
}

impl Mempool {
    /// An empty pool holding at most `max_txs` transactions.
    pub fn new(max_txs: usize) -> Mempool {
        Mempool {
            by_hash: HashMap::new(),
            by_sender: HashMap::new(),
            max_txs,
            bytes: 0,
        }
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

    /// All entries (no particular order).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.by_hash.values()
    }

    /// `sender`'s transactions in nonce order.
    pub fn sender_entries(&self, sender: &Address) -> Vec<&Entry> {
        self.by_sender
            .get(sender)
            .map(|q| q.values().map(|h| &self.by_hash[h]).collect())
            .unwrap_or_default()
    }

    /// Size, limits and the current minimum fee (`getmempoolinfo`).
    pub fn info(&self) -> MempoolInfo {
        let min_fee = if self.by_hash.len() >= self.max_txs {
            self.cheapest_evictable()
                .map_or(0, |(_, f)| f.saturating_add(1))
        } else {
            0
        };
        MempoolInfo {
            size: self.by_hash.len(),
            bytes: self.bytes,
            total_fee: self.by_hash.values().map(|e| e.tx.body.fee as u128).sum(),
            max_txs: self.max_txs,
            max_bytes: self.max_txs * crate::types::encoding::MAX_TX_BYTES,
            min_fee,
        }
    }

    /// Highest nonce + 1 of `sender`'s consecutive run starting at `account.nonce` (what
    /// `eth_getTransactionCount(addr, "pending")` answers).
    pub fn pending_nonce(&self, sender: &Address, account: Account) -> u64 {
        let mut n = account.nonce;
        if let Some(q) = self.by_sender.get(sender) {
            while q.contains_key(&n) {
                n += 1;
            }
        }
        n
    }

    /// What admitting `tx` would do, without changing the pool (also `testmempoolaccept`).
    ///
    /// Errors: nonce below the account's, balance short of amount + fee, an underpriced
    /// replacement, or a full pool whose cheapest evictable entry pays at least as much.
    pub fn check(&self, tx: &SignedTx, account: Account) -> Result<Admission, MempoolError> {
        let hash = tx.hash();
        if self.by_hash.contains_key(&hash) {
            return Ok(Admission::Known(hash));
        }
        let nonce = tx.body.nonce;
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
        let replaced = self
            .by_sender
            .get(&tx.sender())
            .and_then(|q| q.get(&nonce))
            .copied();
        if let Some(old) = replaced {
            let old_fee = self.by_hash[&old].tx.body.fee;
            let needed =
                old_fee.saturating_add(old_fee.saturating_mul(PRICE_BUMP_PERCENT).div_ceil(100));
            if tx.body.fee < needed || tx.body.fee <= old_fee {
                return Err(MempoolError::ReplacementUnderpriced);
            }
            return Ok(Admission::Replace(old));
        }
        if self.by_hash.len() >= self.max_txs {
            let (victim, min) = self.cheapest_evictable().expect("a full pool has entries");
            if tx.body.fee <= min {
                return Err(MempoolError::Full {
                    fee: tx.body.fee,
                    min,
                });
            }
            return Ok(Admission::Evict(victim));
        }
        Ok(Admission::Add)
    }

    /// Admits a verified transaction given its sender's account at head.
    ///
    /// Errors: as [`Mempool::check`].
    pub fn insert(
        &mut self,
        tx: Verified<SignedTx>,
        account: Account,
    ) -> Result<Inserted, MempoolError> {
        let tx = tx.into_inner();
        let hash = tx.hash();
        match self.check(&tx, account)? {
            Admission::Known(h) => return Ok(Inserted::Known(h)),
            Admission::Replace(old) | Admission::Evict(old) => {
                self.remove(&old);
            }
            Admission::Add => {}
        }
        let size = tx.encoded_len();
        self.bytes += size;
        self.by_sender
            .entry(tx.sender())
            .or_default()
            .insert(tx.body.nonce, hash);
        let added_unix_ms = crate::now_ms();
        self.by_hash.insert(
            hash,
            Entry {
                tx,
                hash,
                size,
                added: Instant::now(),
                added_unix_ms,
            },
        );
        Ok(Inserted::New(hash))
    }

    /// Splits the pool into geth's *pending* (each sender's consecutive run of nonces starting
    /// at its account nonce in `state`) and *queued* (behind a nonce gap); each list is sorted
    /// by sender, then nonce.
    pub fn pending_and_queued(&self, state: &dyn StateView) -> (Vec<&Entry>, Vec<&Entry>) {
        let (mut pending, mut queued) = (Vec::new(), Vec::new());
        let mut senders: Vec<_> = self.by_sender.iter().collect();
        senders.sort_by_key(|(a, _)| **a);
        for (sender, q) in senders {
            let mut next = state.account(sender).nonce;
            for (&nonce, h) in q {
                let e = &self.by_hash[h];
                if nonce == next {
                    pending.push(e);
                    next += 1;
                } else {
                    queued.push(e);
                }
            }
        }
        (pending, queued)
    }

    /// The lowest-fee entry among each sender's highest nonce (evicting it never leaves a
    /// later nonce of the same sender without its predecessor).
    fn cheapest_evictable(&self) -> Option<(Hash, u64)> {
        self.by_sender
            .values()
            .filter_map(|q| q.values().next_back())
            .map(|h| (*h, self.by_hash[h].tx.body.fee))
            .min_by_key(|(h, fee)| (*fee, std::cmp::Reverse(*h)))
    }

    /// Removes one transaction; returns it if present.
    pub fn remove(&mut self, hash: &Hash) -> Option<Entry> {
        let e = self.by_hash.remove(hash)?;
        self.bytes -= e.size;
        let sender = e.tx.sender();
        if let Some(q) = self.by_sender.get_mut(&sender) {
            q.remove(&e.tx.body.nonce);
            if q.is_empty() {
                self.by_sender.remove(&sender);
            }
        }
        Some(e)
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
        // Heap of (fee, tie-break, sender): the best next transaction of each sender.
        let mut heap = BinaryHeap::new();
        for (sender, q) in &self.by_sender {
            let next = state.account(sender).nonce;
            if let Some(h) = q.get(&next) {
                let e = &self.by_hash[h];
                heap.push((e.tx.body.fee, std::cmp::Reverse(e.hash), *sender, next));
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
            if let Some(nh) = self.by_sender[&sender].get(&(nonce + 1)) {
                let ne = &self.by_hash[nh];
                heap.push((
                    ne.tx.body.fee,
                    std::cmp::Reverse(ne.hash),
                    sender,
                    nonce + 1,
                ));
            }
        }
        out
    }

    /// After a new head: drops the block's transactions and every transaction of the senders
    /// it touched whose nonce is now used.
    pub fn on_block(&mut self, block: &Block, state: &dyn StateView) {
        let mut senders = Vec::new();
        for tx in &block.txs {
            self.remove(&tx.hash());
            senders.push(tx.sender());
        }
        senders.sort();
        senders.dedup();
        for s in senders {
            let next = state.account(&s).nonce;
            let stale: Vec<Hash> = match self.by_sender.get(&s) {
                Some(q) => q.range(..next).map(|(_, h)| *h).collect(),
                None => continue,
            };
            for h in stale {
                self.remove(&h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Keypair;
    use crate::types::TxBody;
    use crate::validation::check_tx;

    fn tx(key: &Keypair, nonce: u64, fee: u64) -> Verified<SignedTx> {
        let body = TxBody {
            chain_id: 1,
            nonce,
            from: key.public(),
            to: Keypair::dev_account(99).address(),
            amount: 10,
            fee,
            data: vec![],
        };
        check_tx(key.sign_tx(body), 1).unwrap()
    }

    fn rich() -> Account {
        Account {
            balance: 1_000_000,
            nonce: 0,
        }
    }

    #[test]
    fn admission_rules() {
        let k = Keypair::dev_account(1);
        let mut m = Mempool::new(10);
        let t = tx(&k, 0, 5);
        assert!(matches!(m.insert(t.clone(), rich()), Ok(Inserted::New(_))));
        assert!(matches!(m.insert(t, rich()), Ok(Inserted::Known(_))));
        assert!(matches!(
            m.insert(
                tx(&k, 0, 1),
                Account {
                    balance: 1_000,
                    nonce: 1
                }
            ),
            Err(MempoolError::NonceTooLow { .. })
        ));
        assert!(matches!(
            m.insert(
                tx(&k, 1, 1),
                Account {
                    balance: 5,
                    nonce: 0
                }
            ),
            Err(MempoolError::InsufficientFunds { .. })
        ));
        // Replacement needs fee >= old * 110 %: 5 -> 6 passes (geth rounds 5.5 up the same way).
        assert_eq!(m.insert(tx(&k, 1, 100), rich()).map(|_| ()), Ok(()));
        assert_eq!(
            m.insert(tx(&k, 1, 109), rich()),
            Err(MempoolError::ReplacementUnderpriced)
        );
        assert!(matches!(
            m.insert(tx(&k, 1, 110), rich()),
            Ok(Inserted::New(_))
        ));
        assert_eq!(m.len(), 2);
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
    fn bound_evicts_lowest_fee_tail() {
        let mut m = Mempool::new(2);
        let a = Keypair::dev_account(1);
        let b = Keypair::dev_account(2);
        let c = Keypair::dev_account(3);
        m.insert(tx(&a, 0, 5), rich()).unwrap();
        m.insert(tx(&b, 0, 7), rich()).unwrap();
        assert!(matches!(
            m.insert(tx(&c, 0, 5), rich()),
            Err(MempoolError::Full { .. })
        ));
        let Inserted::New(h) = m.insert(tx(&c, 0, 6), rich()).unwrap() else {
            panic!()
        };
        assert_eq!(m.len(), 2);
        assert!(m.contains(&h));
        assert!(
            m.entries().all(|e| e.tx.sender() != a.address()),
            "fee 5 evicted"
        );
    }
}
