//! The transaction worker: bursts of gossip transaction messages -> signatures verified
//! together -> [`TxPool::add`] as `Origin::Gossip` per message -> verdict.

use super::Workers;
use crate::p2p::bans::REJECTS_TO_BAN;
use crate::p2p::GossipMessage;
use crate::txpool::{Inserted, Origin, TxPool};
use crate::types::SignedTx;
use crate::validation::Verdict;
use libp2p::PeerId;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tracing::warn;

/// Messages whose signatures are verified together (ed25519 batch verification gains little
/// beyond a few dozen).
pub const CHUNK: usize = 128;

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
    /// `cfg.tx_burst` transactions) is taken in order, in chunks of [`CHUNK`] messages whose
    /// signatures are verified in one pass over every core; then each message is admitted and
    /// its verdict reported. A source banned meanwhile, or with [`REJECTS_TO_BAN`] rejected
    /// messages in this burst (a flood that outran its ban), has the rest of its messages
    /// dropped unvalidated (Ignore): a spammer costs a few chunks, not its whole flood. Ends
    /// when the queue closes.
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
            let mut rejects: HashMap<PeerId, usize> = HashMap::new();
            let mut msgs = msgs.into_iter().peekable();
            while msgs.peek().is_some() {
                let mut chunk = Vec::with_capacity(CHUNK);
                for m in msgs.by_ref() {
                    let flooding = rejects.get(&m.source).copied().unwrap_or(0) >= REJECTS_TO_BAN;
                    if flooding || self.net.is_banned(&m.source) {
                        self.net.report_blocking(m.id, m.source, Verdict::Ignore);
                        continue;
                    }
                    chunk.push(m);
                    if chunk.len() == CHUNK {
                        break;
                    }
                }
                let all: Vec<&SignedTx> = chunk.iter().flat_map(|m| m.payload.iter()).collect();
                self.pool.preverify(&all);
                for m in chunk {
                    let verdict = message_verdict(&self.pool, m.payload);
                    if verdict == Verdict::Reject {
                        warn!(peer = %m.source, "rejected gossip transaction");
                        *rejects.entry(m.source).or_default() += 1;
                    }
                    self.net.report_blocking(m.id, m.source, verdict);
                }
            }
        }
    }
}
