//! The transaction worker: bursts of gossip transaction messages -> signatures verified
//! together -> [`TxPool::add`] as `Origin::Gossip` per message -> verdict.

use super::Workers;
use crate::p2p::GossipMessage;
use crate::txpool::{Inserted, Origin, TxPool};
use crate::types::SignedTx;
use crate::validation::Verdict;
use tokio::sync::mpsc;
use tracing::warn;

/// The verdict for one gossip message from its transactions' outcomes: Reject if any is
/// invalid (the sender is at fault); Ignore if any was queued behind a nonce gap (queued
/// transactions stay local, as in geth; the pool announces the message's pending ones itself);
/// Accept if any is new here; else Ignore.
pub fn message_verdict(pool: &TxPool, txs: Vec<SignedTx>) -> Verdict {
    let outcomes = futures::executor::block_on(pool.add(Origin::Gossip, txs));
    if outcomes
        .iter()
        .any(|o| matches!(o, Err(e) if e.verdict() == Verdict::Reject))
    {
        return Verdict::Reject;
    }
    if outcomes
        .iter()
        .any(|o| matches!(o, Ok(Inserted::Queued(_))))
    {
        return Verdict::Ignore;
    }
    if outcomes.iter().any(|o| matches!(o, Ok(Inserted::New(_)))) {
        return Verdict::Accept;
    }
    Verdict::Ignore
}

impl Workers {
    /// Validates gossip transactions in bursts: whatever has queued up (up to
    /// `cfg.tx_burst` transactions) has its signatures verified in one pass over every core,
    /// then each message is admitted and its verdict reported. Ends when the queue closes.
    pub(super) fn tx_worker(self, mut rx: mpsc::Receiver<GossipMessage<Vec<SignedTx>>>) {
        while let Some(first) = rx.blocking_recv() {
            let mut n = first.payload.len();
            let mut msgs = vec![first];
            while n < self.cfg.tx_burst {
                match rx.try_recv() {
                    Ok(m) => {
                        n += m.payload.len();
                        msgs.push(m);
                    }
                    Err(_) => break,
                }
            }
            let all: Vec<&SignedTx> = msgs.iter().flat_map(|m| m.payload.iter()).collect();
            self.pool.preverify(&all);
            for m in msgs {
                let verdict = message_verdict(&self.pool, m.payload);
                if verdict == Verdict::Reject {
                    warn!(peer = %m.source, "rejected gossip transaction");
                }
                self.net.report_blocking(m.id, m.source, verdict);
            }
        }
    }
}
