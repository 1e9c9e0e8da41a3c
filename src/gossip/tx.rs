//! The transaction worker: bursts of gossip transaction messages -> signatures verified
//! together -> [`TxPool::add`] as `Origin::Gossip` per message -> verdict.

use super::Workers;
use crate::p2p::GossipMessage;
use crate::txpool::{Inserted, Origin, TxPool};
use crate::types::SignedTx;
use crate::validation::Verdict;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet, VecDeque};
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

/// Messages of a source with no accepted transaction yet (a new peer, or a spammer) taken
/// into one chunk; the rest of its burst waits for later chunks. A spammer's first chunk
/// then costs a handful of signature checks, not [`CHUNK`].
pub const PROBATION: usize = 8;

/// Rejected messages of one source within a burst after which the rest of its burst is
/// dropped unvalidated (answered Ignore). By then its gossipsub score is far below the
/// graylist threshold (8 invalid transaction messages cost 5 × 8² = 320; see
/// [`crate::p2p::behaviour`]), so the network task has banned it.
pub const REJECTS_TO_DROP: usize = 8;

/// Sources remembered as having sent an accepted transaction (forgotten all at once beyond
/// this many).
const GOOD_SOURCES: usize = 4096;

impl Workers {
    /// Validates gossip transactions in bursts: whatever has queued up (up to
    /// `cfg.tx_burst` transactions) is taken in order, in chunks of [`CHUNK`] messages whose
    /// signatures are verified in one pass over every core; then each message is admitted and
    /// its verdict reported. A source that has never had a transaction accepted gets at most
    /// [`PROBATION`] messages per chunk (the rest wait for the next chunks). A source banned
    /// meanwhile, or with [`REJECTS_TO_DROP`] rejected messages in this burst (a flood that
    /// outran its ban), has the rest of its messages dropped unvalidated (Ignore): a spammer
    /// costs a few signature checks, not its whole flood. Ends when the queue closes.
    pub(super) fn tx_worker(self, mut rx: mpsc::Receiver<GossipMessage<Vec<SignedTx>>>) {
        let mut good: HashSet<PeerId> = HashSet::new();
        while let Some(first) = rx.blocking_recv() {
            let mut n = first.payload.len();
            let mut queue = VecDeque::from([first]);
            while n < self.cfg.tx_burst {
                match rx.try_recv() {
                    Ok(m) => {
                        n += m.payload.len();
                        queue.push_back(m);
                    }
                    Err(_) => break,
                }
            }
            let mut rejects: HashMap<PeerId, usize> = HashMap::new();
            let mut dropped: HashMap<PeerId, usize> = HashMap::new();
            while !queue.is_empty() {
                let mut chunk = Vec::with_capacity(CHUNK);
                let mut taken: HashMap<PeerId, usize> = HashMap::new();
                let mut deferred = VecDeque::new();
                while let Some(m) = queue.pop_front() {
                    let flooding = rejects.get(&m.source).copied().unwrap_or(0) >= REJECTS_TO_DROP;
                    if flooding || self.net.is_banned(&m.source) {
                        *dropped.entry(m.source).or_default() += 1;
                        self.net.report_blocking(m.id, m.source, Verdict::Ignore);
                        continue;
                    }
                    let t = taken.entry(m.source).or_default();
                    if *t >= PROBATION && !good.contains(&m.source) {
                        deferred.push_back(m);
                        continue;
                    }
                    *t += 1;
                    chunk.push(m);
                    if chunk.len() == CHUNK {
                        break;
                    }
                }
                // What waited keeps its place ahead of what was not reached.
                deferred.append(&mut queue);
                queue = deferred;
                let all: Vec<&SignedTx> = chunk.iter().flat_map(|m| m.payload.iter()).collect();
                self.pool.preverify(&all);
                if let Some(cost) = self.cfg.simulated_cost {
                    std::thread::sleep(cost.sigs(all.len()));
                }
                for m in chunk {
                    let verdict = message_verdict(&self.pool, m.payload);
                    match verdict {
                        Verdict::Reject => *rejects.entry(m.source).or_default() += 1,
                        Verdict::Accept => {
                            if good.len() >= GOOD_SOURCES {
                                good.clear();
                            }
                            good.insert(m.source);
                        }
                        Verdict::Ignore => {}
                    }
                    self.net.report_blocking(m.id, m.source, verdict);
                }
            }
            for (peer, n) in rejects {
                let d = dropped.get(&peer).copied().unwrap_or(0);
                warn!(%peer, rejected = n, dropped_unvalidated = d, "invalid gossip transactions");
            }
        }
    }
}
