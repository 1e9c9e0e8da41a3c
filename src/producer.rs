//! The block producer task: in each slot this node's validator key owns, select from the pool,
//! build and commit through the chain, publish.

use crate::arrivals::ArrivalLog;
use crate::chain::{Chain, PRODUCER_MAX_BYTES, PRODUCER_MAX_TXS};
use crate::crypto::Keypair;
use crate::p2p::{NetworkHandle, TopicKind};
use crate::sync::SyncStatus;
use crate::txpool::TxPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// What the producer needs: narrow handles only.
#[derive(Clone)]
pub struct Producer {
    /// Where blocks are built and committed.
    pub chain: Arc<Chain>,
    /// Where transactions are selected.
    pub pool: TxPool,
    /// Where blocks are published.
    pub net: NetworkHandle,
    /// Whether a peer claims a better head (then we do not produce).
    pub sync: SyncStatus,
    /// Where the publish time is recorded.
    pub arrivals: Arc<ArrivalLog>,
    /// The validator key.
    pub key: Keypair,
}

impl Producer {
    /// Runs until `stop` turns true. A slot is produced only if the node is not behind any
    /// peer it knows of, and only in the first half of the slot (a late block would fork).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let me = self.key.public();
        loop {
            let spec = &self.chain.spec;
            let now = crate::now_ms();
            let slot = spec.slot_at(now);
            let in_time = now >= spec.slot_start_ms(slot)
                && now < spec.slot_start_ms(slot) + spec.slot_ms / 2;
            if now >= spec.genesis_time_ms && slot > 0 && spec.producer_of(slot) == me && in_time {
                if self.sync.is_behind(self.chain.head().height) {
                    debug!(slot, "not producing: behind a peer");
                } else {
                    self.produce(slot).await;
                }
            }
            let next = spec.slot_start_ms(slot + 1);
            let wait = Duration::from_millis(next.saturating_sub(crate::now_ms()).max(1));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn produce(&self, slot: u64) {
        let (chain, pool, key) = (self.chain.clone(), self.pool.clone(), self.key.clone());
        let res = tokio::task::spawn_blocking(move || {
            let me = key.address();
            chain.produce(&key, slot, |state| {
                pool.read()
                    .select(state, &me, PRODUCER_MAX_TXS, PRODUCER_MAX_BYTES)
            })
        })
        .await;
        let block = match res {
            Ok(Ok(Some(b))) => b.into_inner(),
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return warn!(slot, cause = %e, "block production failed"),
            Err(e) => return warn!(slot, cause = %e, "block production panicked"),
        };
        let hash = block.hash();
        let bytes = block.to_bytes();
        let now = crate::now_us();
        self.arrivals.update(hash, |a| {
            a.height = block.header.height;
            a.published_us = Some(now);
            a.bytes = bytes.len() as u64;
            a.txs = block.txs.len() as u64;
        });
        info!(height = block.header.height, slot, txs = block.txs.len(), %hash, "produced block");
        if let Err(e) = self.net.publish(TopicKind::Block, bytes).await {
            warn!(%hash, cause = %e, "publishing block failed");
        }
    }
}
