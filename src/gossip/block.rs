//! The block worker: gossip block (a compact one is rebuilt first, [`super::compact`]) ->
//! first-seen record -> [`Chain::gossip_verify`] (no state;
//! signatures the pool verified are not verified again) -> verdict, so gossipsub relays an
//! accepted block at once -> [`Chain::import_verified`] (state transition, commit) after the
//! relay. An unknown parent asks the sync for the sender's chain.
//!
//! [`Chain::gossip_verify`]: crate::chain::Chain::gossip_verify
//! [`Chain::import_verified`]: crate::chain::Chain::import_verified

use super::Workers;
use crate::chain::ImportError;
use crate::p2p::{BlockPayload, GossipMessage};
use crate::types::{Block, TxHashes};
use crate::validation::{ValidationError, Verdict};
use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use std::sync::atomic::Ordering;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How often, at most, the block worker sets sled's I/O threads to its own priority again
/// (after a block, never while one waits): 10 s.
pub const STORE_IO_RENICE: std::time::Duration = std::time::Duration::from_secs(10);

/// How a block is relayed once its gossip verification passes.
#[derive(Clone, Debug)]
pub enum Relay {
    /// By gossipsub: report the verdict for this message.
    Gossip(MessageId),
    /// By flooding (`--relay flood`): push it to every other peer with this many hops left
    /// after this one (none at 0).
    Flood(u8),
}

impl Relay {
    /// Reports `verdict` to gossipsub for a gossip message; nothing for a flooded block.
    pub fn report(&self, net: &crate::p2p::NetworkHandle, source: PeerId, verdict: Verdict) {
        if let Relay::Gossip(id) = self {
            net.report_blocking(id.clone(), source, verdict);
        }
    }
}

impl Workers {
    /// Handles gossip blocks (full or compact) one at a time. The chain's canonical
    /// notification carries the rest (pool maintenance, subscriptions, the imported time).
    /// Ends when the queue closes.
    pub(super) fn block_worker(
        self,
        rt: Handle,
        mut rx: mpsc::Receiver<GossipMessage<BlockPayload>>,
    ) {
        // sled's I/O pool at this thread's priority, again every STORE_IO_RENICE at most
        // (threads it starts later inherit their starter's value, not always this thread's).
        let nice = self.cfg.block_nice;
        super::set_threads_nice(super::STORE_IO_THREADS, nice);
        let mut reniced = std::time::Instant::now();
        while let Some(m) = rx.blocking_recv() {
            let source = m.source;
            let gossip_id =
                (!matches!(m.payload, BlockPayload::Flooded { .. })).then(|| m.id.clone());
            let handled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match m.payload {
                    BlockPayload::Full(b) => {
                        self.handle_block(m.id, m.source, b, m.bytes, m.received_us);
                    }
                    BlockPayload::Compact(cb) => {
                        self.handle_compact(&rt, m.id, m.source, cb, m.bytes, m.received_us);
                    }
                    BlockPayload::Flooded { block, ttl } => {
                        self.record_first_seen(&block, m.source, m.bytes, m.received_us);
                        self.relay_and_import(Relay::Flood(ttl), m.source, block, None);
                    }
                }));
            if handled.is_err() {
                // A bug, not the peer's fault: the worker survives and the message is dropped.
                tracing::error!(peer = %source, "block worker panicked; message ignored");
                if let Some(id) = gossip_id {
                    Relay::Gossip(id).report(&self.net, source, Verdict::Ignore);
                }
            }
            if reniced.elapsed() >= STORE_IO_RENICE {
                super::set_threads_nice(super::STORE_IO_THREADS, nice);
                reniced = std::time::Instant::now();
            }
        }
    }

    /// Records a full block's arrival, then [`Workers::relay_and_import`].
    pub fn handle_block(
        &self,
        id: MessageId,
        source: PeerId,
        block: Block,
        bytes: usize,
        received_us: u64,
    ) -> Verdict {
        self.record_first_seen(&block, source, bytes, received_us);
        self.relay_and_import(Relay::Gossip(id), source, block, None)
    }

    fn record_first_seen(&self, block: &Block, source: PeerId, bytes: usize, received_us: u64) {
        let hash = block.hash();
        self.arrivals.update(hash, |a| {
            a.height = block.header.height;
            if a.first_seen_us.is_none() {
                a.first_seen_us = Some(received_us);
                a.first_from = Some(source.to_string());
            }
            a.bytes = bytes as u64;
            a.txs = block.txs.len() as u64;
        });
    }

    /// Gossip-verifies a block, relays it if it passes (gossip: the verdict; flood: pushed on
    /// to every other peer while hops are left), then imports it. Returns the verdict.
    /// `tx_hashes`: the transactions' hashes and root when computed locally already (a
    /// rebuilt compact block; see [`crate::validation::check_block_stateless_hashed`]), else
    /// `None`.
    pub fn relay_and_import(
        &self,
        how: Relay,
        source: PeerId,
        block: Block,
        tx_hashes: Option<TxHashes>,
    ) -> Verdict {
        let hash = block.hash();
        let height = block.header.height;
        let producer = block.header.producer.address();
        let tx_hashes = match tx_hashes {
            Some(h) if h.hashes().len() == block.txs.len() => h,
            _ => TxHashes::of(&block),
        };
        let verified = self.pool.verified_among(tx_hashes.hashes().iter().copied());
        let txs = block.txs.len();
        let block = match self
            .chain
            .gossip_verify_hashed(block, Some(&tx_hashes), &verified)
        {
            Ok(b) => b,
            Err(e) => {
                let verdict = self.verdict_for(source, hash, e);
                how.report(&self.net, source, verdict);
                return verdict;
            }
        };
        if let Some(cost) = self.cfg.simulated_cost {
            std::thread::sleep(cost.relay(txs, txs.saturating_sub(verified.len())));
        }
        // Relay first: the state transition and the commit follow off the relay path.
        match how {
            Relay::Gossip(_) => how.report(&self.net, source, Verdict::Accept),
            Relay::Flood(ttl) if ttl > 0 => {
                self.net
                    .flood_blocking(hash, block.inner().to_bytes(), ttl - 1, Some(source))
            }
            Relay::Flood(_) => {}
        }
        let now = crate::now_us();
        self.arrivals.update(hash, |a| a.relayed_us = Some(now));
        // Peers rebuilding it from a compact block ask us for its transactions right away.
        self.chain
            .recent
            .insert(std::sync::Arc::new(block.inner().clone()));
        if let Some(cost) = self.cfg.simulated_cost {
            std::thread::sleep(cost.import(txs));
        }
        let t_pre = crate::now_us();
        let res = self.chain.import_verified(block);
        debug!(
            height,
            txs,
            pre_us = t_pre.saturating_sub(now),
            import_us = crate::now_us().saturating_sub(t_pre),
            "gossip import timing"
        );
        match res {
            Ok(imported) => {
                debug!(height, %hash, canonical = imported.applied.len(), "imported gossip block");
            }
            Err(ImportError::Invalid(ValidationError::Known)) => {}
            Err(ImportError::Invalid(e)) => {
                // Signed by its producer and valid without state: honest relays pass it on
                // too, so no peer is blamed; it is counted and never imported.
                self.stats.relayed_invalid.fetch_add(1, Ordering::Relaxed);
                warn!(%hash, height, %producer, cause = %e, "relayed block failed its state transition; not imported");
            }
            Err(ImportError::Store(e)) => warn!(%hash, cause = %e, "store error importing block"),
        }
        Verdict::Accept
    }

    pub(super) fn verdict_for(
        &self,
        source: PeerId,
        hash: crate::types::Hash,
        e: ImportError,
    ) -> Verdict {
        match e {
            ImportError::Invalid(e) => {
                if let ValidationError::UnknownParent(_) = e {
                    // The sync asks the peer's Status; the block's height alone is not trusted.
                    self.sync.sync_with(source);
                }
                if e.verdict() == Verdict::Reject {
                    warn!(peer = %source, %hash, cause = %e, "rejected gossip block");
                } else {
                    debug!(peer = %source, %hash, cause = %e, "ignored gossip block");
                }
                e.verdict()
            }
            ImportError::Store(e) => {
                warn!(%hash, cause = %e, "store error checking block");
                Verdict::Ignore
            }
        }
    }
}
