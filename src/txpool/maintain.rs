//! Pool maintenance: follows the chain's canonical notifications (drop what new blocks
//! include, re-check affected senders, return a reorg's undone transactions) and expires
//! queued transactions, after reth's `maintain_transaction_pool`.

use super::{Inserted, Origin, TxPool};
use crate::chain::CanonNotification;
use crate::types::{Hash, SignedTx};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

impl TxPool {
    /// Applies one canonical notification: drops every transaction `applied` includes,
    /// re-checks the senders whose accounts may have changed (no signature checks), then hands
    /// the undone blocks' transactions that the new chain does not include back to
    /// [`TxPool::add`] as `Origin::Reorg`, lowest block first so each sender's nonces return
    /// in order. Returns (dropped by the re-check, returned, not returned).
    pub async fn on_canon(&self, n: &CanonNotification) -> (usize, usize, usize) {
        let dropped = {
            let chain = self.chain().clone();
            self.lock().on_new_head(&n.applied, &n.undone, &chain.store)
        };
        if dropped > 0 {
            debug!(dropped, "mempool re-check after new head");
        }
        if n.undone.is_empty() {
            return (dropped, 0, 0);
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
            .filter(|o| matches!(o, Ok(Inserted::New(_)) | Ok(Inserted::Known(_))))
            .count();
        let lost = outcomes.len() - returned;
        info!(
            returned,
            dropped = lost,
            "reorg: undone transactions back in the mempool"
        );
        (dropped, returned, lost)
    }
}

/// Runs until `stop` turns true: applies each canonical notification in order, and every
/// `expiry_interval` drops queued transactions past their lifetime. A receiver that lagged
/// behind the broadcast re-checks every sender against the head instead.
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
                    pool.on_canon(&n).await;
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let chain = pool.chain().clone();
                    let dropped = pool.lock().recheck_all(&chain.store);
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
