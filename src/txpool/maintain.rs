//! Pool maintenance, after reth's `maintain_transaction_pool`: on each commit, synchronously,
//! drop what the new blocks include and re-check the affected senders ([`on_commit`], a
//! [`crate::chain::Chain::observe`]r, so the pool never shows a transaction a committed block
//! includes); from the canonical broadcast, return a reorg's undone transactions; on a timer,
//! expire queued transactions.

use super::{Inserted, Origin, TxPool};
use crate::chain::CanonNotification;
use crate::types::{Hash, SignedTx};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

/// The synchronous part: drops every transaction `n.applied` includes and re-checks the
/// senders whose accounts may have changed against `store` (no signature checks). Returns how
/// many were dropped by the re-check.
pub fn on_commit(
    pool: &std::sync::Mutex<super::Mempool>,
    n: &CanonNotification,
    store: &crate::chain::ChainStore,
) -> usize {
    let dropped = pool
        .lock()
        .expect("mempool lock poisoned")
        .on_new_head(&n.applied, &n.undone, store);
    if dropped > 0 {
        debug!(dropped, "mempool re-check after new head");
    }
    dropped
}

impl TxPool {
    /// Applies one canonical notification whole: [`on_commit`], then
    /// [`TxPool::return_undone`]. (The node does the first at commit time and the second from
    /// the broadcast.) Returns (dropped by the re-check, returned, not returned).
    pub async fn on_canon(&self, n: &CanonNotification) -> (usize, usize, usize) {
        let dropped = on_commit(&self.inner.pool, n, &self.chain().store);
        let (returned, lost) = self.return_undone(n).await;
        (dropped, returned, lost)
    }

    /// Hands the undone blocks' transactions that the new chain does not include back to
    /// [`TxPool::add`] as `Origin::Reorg`, lowest block first so each sender's nonces return
    /// in order. Returns (returned, not returned).
    pub async fn return_undone(&self, n: &CanonNotification) -> (usize, usize) {
        if n.undone.is_empty() {
            return (0, 0);
        }
        let included: HashSet<Hash> = n
            .applied
            .iter()
            .flat_map(|b| b.txs.iter().map(SignedTx::hash))
            .collect();
        let back: Vec<SignedTx> = n
            .undone
            .iter()
            .rev()
            .flat_map(|b| b.txs.iter())
            .filter(|t| !included.contains(&t.hash()))
            .cloned()
            .collect();
        let outcomes = self.add(Origin::Reorg, back).await;
        let returned = outcomes
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Ok(Inserted::New(_) | Inserted::Queued(_) | Inserted::Known(_))
                )
            })
            .count();
        let lost = outcomes.len() - returned;
        info!(
            returned,
            dropped = lost,
            "reorg: undone transactions back in the mempool"
        );
        (returned, lost)
    }
}

/// Runs until `stop` turns true: returns each reorg's undone transactions (the rest of a
/// notification was applied at commit time by [`on_commit`]), and every `expiry_interval`
/// drops queued transactions past their lifetime. A receiver that lagged behind the broadcast
/// re-checks every sender against the head.
pub async fn run(
    pool: TxPool,
    mut canon: broadcast::Receiver<Arc<CanonNotification>>,
    expiry_interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(expiry_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = canon.recv() => match n {
                Ok(n) => {
                    pool.return_undone(&n).await;
                    // Queued transactions a new head made executable travel now.
                    pool.announce_promoted();
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let chain = pool.chain().clone();
                    let dropped = pool.lock().recheck_all(&chain.store);
                    pool.announce_promoted();
                    warn!(missed, dropped, "mempool missed head notifications; re-checked every sender");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                let n = pool.lock().expire(Instant::now());
                if n > 0 {
                    info!(dropped = n, "queued transactions expired");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
