//! The block worker: gossip block -> first-seen record -> [`crate::chain::Chain::import`]
//! (signatures the pool verified are not verified again) -> verdict; an unknown parent asks
//! the sync for the sender's chain.

use super::Workers;
use crate::chain::ImportError;
use crate::p2p::GossipMessage;
use crate::types::{Block, SignedTx};
use crate::validation::{ValidationError, Verdict};
use tokio::sync::mpsc;
use tracing::{debug, warn};

impl Workers {
    /// Validates gossip blocks one at a time and reports each verdict. The chain's canonical
    /// notification carries the rest (pool maintenance, subscriptions, the validated time).
    /// Ends when the queue closes.
    pub(super) fn block_worker(self, mut rx: mpsc::Receiver<GossipMessage<Block>>) {
        while let Some(m) = rx.blocking_recv() {
            let verdict = self.import(m.source, m.payload, m.bytes, m.received_us);
            self.net.report_blocking(m.id, m.source, verdict);
        }
    }

    /// Records the block's arrival, imports it and returns the gossip verdict.
    pub fn import(
        &self,
        source: libp2p::PeerId,
        block: Block,
        bytes: usize,
        received_us: u64,
    ) -> Verdict {
        let hash = block.hash();
        let height = block.header.height;
        self.arrivals.update(hash, |a| {
            a.height = height;
            a.first_seen_us.get_or_insert(received_us);
            a.bytes = bytes as u64;
            a.txs = block.txs.len() as u64;
        });
        let verified = self
            .pool
            .verified_among(block.txs.iter().map(SignedTx::hash));
        match self.chain.import(block, &verified) {
            Ok(imported) => {
                debug!(height, %hash, canonical = imported.applied.len(), "imported gossip block");
                Verdict::Accept
            }
            Err(ImportError::Invalid(e)) => {
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
            Err(ImportError::Store(e)) => {
                warn!(%hash, cause = %e, "store error importing block");
                Verdict::Ignore
            }
        }
    }
}
