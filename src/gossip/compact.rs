//! Compact block relay (BIP152 high-bandwidth mode over gossipsub): header checks first, then
//! the block rebuilt from the pool; missing transactions asked from the peer that delivered
//! the compact block (`getblocktxn`), then from other peers; a short-id collision, a body
//! that does not match the header, or nobody answering falls back to the full block by hash.
//! The rebuilt block then takes the full block's way ([`Workers::relay_and_import`]).

use super::Workers;
use crate::p2p::codec::{SyncRequest, SyncResponse};
use crate::types::{Block, CompactBlock, Hash, ShortId, SignedTx, TxHashes};
use crate::validation::{self, ValidationError, Verdict};
use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use tokio::runtime::Handle;
use tracing::debug;

/// How a compact block became a full block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RebuildOutcome {
    /// Transactions fetched with `getblocktxn`.
    pub fetched: u64,
    /// Whether any request was needed (`getblocktxn` or the full block).
    pub round_trip: bool,
    /// Whether the full block had to be fetched instead.
    pub full_fallback: bool,
}

impl Workers {
    /// Handles one compact block: header checks, rebuild, verdict, import. Returns the
    /// verdict.
    pub fn handle_compact(
        &self,
        rt: &Handle,
        id: MessageId,
        source: PeerId,
        cb: CompactBlock,
        bytes: usize,
        received_us: u64,
    ) -> Verdict {
        let hash = cb.hash();
        self.arrivals.update(hash, |a| {
            a.height = cb.header.height;
            if a.first_seen_us.is_none() {
                a.first_seen_us = Some(received_us);
                a.first_from = Some(source.to_string());
            }
            a.bytes = bytes as u64;
            a.txs = cb.tx_count() as u64;
        });
        if let Err(e) = self.chain.verify_header(&cb.header_block()) {
            let verdict = self.verdict_for(source, hash, e);
            self.net.report_blocking(id, source, verdict);
            return verdict;
        }
        let (block, tx_hashes, outcome) = match self.rebuild(rt, source, &cb) {
            Ok(r) => r,
            Err(verdict) => {
                debug!(peer = %source, %hash, ?verdict, "compact block not rebuilt");
                self.net.report_blocking(id, source, verdict);
                return verdict;
            }
        };
        let s = &self.stats;
        match (outcome.round_trip, outcome.full_fallback) {
            (false, _) => s.compact_without_roundtrip.fetch_add(1, Ordering::Relaxed),
            (true, false) => s.compact_fetched.fetch_add(1, Ordering::Relaxed),
            (true, true) => s.compact_full_fallback.fetch_add(1, Ordering::Relaxed),
        };
        self.arrivals.update(hash, |a| {
            a.rebuilt_without_roundtrip = Some(!outcome.round_trip);
            a.fetched_txs = outcome.fetched;
            a.full_block_fallback = outcome.full_fallback;
        });
        self.relay_and_import(super::block::Relay::Gossip(id), source, block, tx_hashes)
    }

    /// The full block `cb` stands for, gossip-verified... not yet: only assembled and checked
    /// against the header's `tx_root` and `tx_count`, with its transactions' hashes (the
    /// pool's, or computed here). Errors with the verdict for the compact block message.
    fn rebuild(
        &self,
        rt: &Handle,
        source: PeerId,
        cb: &CompactBlock,
    ) -> Result<(Block, Option<TxHashes>, RebuildOutcome), Verdict> {
        let hash = cb.hash();
        let mut outcome = RebuildOutcome::default();
        let Ok(rebuilt) = self.pool.rebuild(cb) else {
            return self.full_block(rt, source, hash, outcome);
        };
        let mut txs = rebuilt.txs;
        let mut hashes = rebuilt.hashes;
        if !rebuilt.missing.is_empty() {
            outcome.round_trip = true;
            let expected: HashMap<u32, ShortId> = cb.short_id_positions().into_iter().collect();
            let keys = cb.keys();
            let fetched = self.peers_to_ask(rt, source).into_iter().find_map(|peer| {
                let got = self.fetch_txs(rt, peer, hash, &rebuilt.missing)?;
                let got_hashes: Vec<Hash> = got.iter().map(SignedTx::hash).collect();
                let fits = got.len() == rebuilt.missing.len()
                    && got_hashes
                        .iter()
                        .zip(&rebuilt.missing)
                        .all(|(h, i)| expected.get(i) == Some(&keys.short_id(h)));
                if !fits {
                    debug!(%peer, %hash, "blocktxn answer does not fit the compact block");
                }
                fits.then_some((got, got_hashes))
            });
            let Some((got, got_hashes)) = fetched else {
                return self.full_block(rt, source, hash, outcome);
            };
            outcome.fetched = got.len() as u64;
            for ((tx, h), i) in got.into_iter().zip(got_hashes).zip(&rebuilt.missing) {
                txs[*i as usize] = Some(tx);
                hashes[*i as usize] = Some(h);
            }
        }
        let hashes = TxHashes::new(hashes.into_iter().flatten().collect());
        let block = Block {
            header: cb.header.clone(),
            signature: cb.signature,
            txs: txs.into_iter().flatten().collect(),
        };
        // A short id that matched the wrong pooled transaction shows here (BIP152: then
        // fetch the full block).
        if block.txs.len() != cb.tx_count()
            || hashes.hashes().len() != block.txs.len()
            || hashes.root() != block.header.tx_root
        {
            return self.full_block(rt, source, hash, outcome);
        }
        Ok((block, Some(hashes), outcome))
    }

    /// The peer that delivered the compact block first, then up to two other connected peers.
    fn peers_to_ask(&self, rt: &Handle, source: PeerId) -> Vec<PeerId> {
        let mut peers = vec![source];
        if let Ok(list) = rt.block_on(self.net.peers()) {
            peers.extend(
                list.iter()
                    .filter_map(|p| p.peer_id.parse::<PeerId>().ok())
                    .filter(|p| *p != source)
                    .take(2),
            );
        }
        peers
    }

    /// One request to `peer`, waited for at most `cfg.fetch_timeout` (the timer is made
    /// inside the runtime: this runs on the worker's OS thread).
    fn ask(
        &self,
        rt: &Handle,
        peer: PeerId,
        req: SyncRequest,
    ) -> Result<Result<SyncResponse, crate::p2p::NetworkError>, tokio::time::error::Elapsed> {
        let (net, limit) = (&self.net, self.cfg.fetch_timeout);
        rt.block_on(async move { tokio::time::timeout(limit, net.request(peer, req)).await })
    }

    /// BIP152 `getblocktxn` to `peer`, with the configured timeout.
    fn fetch_txs(
        &self,
        rt: &Handle,
        peer: PeerId,
        block: Hash,
        indexes: &[u32],
    ) -> Option<Vec<SignedTx>> {
        let req = SyncRequest::BlockTxs {
            block,
            indexes: indexes.to_vec(),
        };
        match self.ask(rt, peer, req) {
            Ok(Ok(SyncResponse::Txs(txs))) => Some(txs),
            other => {
                debug!(%peer, %block, answer = ?other.map(|r| r.map(|_| "wrong answer")), "getblocktxn failed");
                None
            }
        }
    }

    /// The fallback: the full block by hash from the delivering peer, then others. A block
    /// whose header is not the compact block's is not taken; one whose body does not match
    /// its header makes the compact block's sender at fault only if it served it.
    fn full_block(
        &self,
        rt: &Handle,
        source: PeerId,
        hash: Hash,
        mut outcome: RebuildOutcome,
    ) -> Result<(Block, Option<TxHashes>, RebuildOutcome), Verdict> {
        outcome.round_trip = true;
        outcome.full_fallback = true;
        for peer in self.peers_to_ask(rt, source) {
            let req = SyncRequest::BlocksByHash(vec![hash]);
            let Ok(Ok(SyncResponse::Blocks(mut bs))) = self.ask(rt, peer, req) else {
                continue;
            };
            let Some(bytes) = bs.pop() else { continue };
            let block = match validation::decode_block(&bytes) {
                Ok(b) if b.hash() == hash => b,
                _ => continue,
            };
            if block.computed_tx_root() != block.header.tx_root {
                if peer == source {
                    return Err(ValidationError::TxRootMismatch.verdict());
                }
                continue;
            }
            return Ok((block, None, outcome));
        }
        // Nobody could give the body: not provably anyone's fault.
        Err(Verdict::Ignore)
    }
}
