//! The block producer task: in each slot this node's validator key owns, select from the pool,
//! build and commit through the chain, publish (a compact block or the full block, per
//! [`RelayMode`]).

use crate::arrivals::ArrivalLog;
use crate::chain::{Chain, PRODUCER_MAX_BYTES, PRODUCER_MAX_TXS};
use crate::crypto::Keypair;
use crate::p2p::{NetworkHandle, TopicKind};
use crate::sync::SyncStatus;
use crate::txpool::TxPool;
use crate::types::{CompactBlock, SignedTx};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// How new blocks are published. Receivers accept both forms whatever their own mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RelayMode {
    /// Compact blocks on `/meshnode/N/cblock/1` (BIP152 after): header, short ids, and
    /// prefilled the transactions peers likely lack. The default.
    #[default]
    Compact,
    /// Full blocks on `/meshnode/N/block/1`.
    Gossip,
    /// Flood with duplicates dropped, as simple nodes do: the full block pushed to every
    /// connected peer (request-response `NewBlock`), each of which pushes it on after its
    /// gossip verification to every peer but the sender, for at most [`FLOOD_TTL`] hops.
    Flood,
}

/// Hops a flooded block may travel.
pub const FLOOD_TTL: u8 = 8;

impl std::str::FromStr for RelayMode {
    type Err = String;
    fn from_str(s: &str) -> Result<RelayMode, String> {
        match s {
            "compact" => Ok(RelayMode::Compact),
            "gossip" => Ok(RelayMode::Gossip),
            "flood" => Ok(RelayMode::Flood),
            other => Err(format!(
                "unknown relay mode {other:?} (compact, gossip, flood)"
            )),
        }
    }
}

/// The shortest prefill window ([`prefill_window`]): 1 ms.
pub const PREFILL_WINDOW_MIN: Duration = Duration::from_millis(1);
/// The longest prefill window ([`prefill_window`]): 250 ms.
pub const PREFILL_WINDOW_MAX: Duration = Duration::from_millis(250);

/// How recently a transaction may have come by gossip and still be prefilled in the
/// producer's compact block (BIP152 `PrefilledTransaction`: what the producer expects peers
/// to lack): half the median of the smallest ping round-trip times to the peers
/// (`min_rtts_ms`, ms), a one-way link delay, within [`PREFILL_WINDOW_MIN`]–
/// [`PREFILL_WINDOW_MAX`]. A prefilled transaction saves a receiver that lacks it a
/// `getblocktxn` round trip and costs every receiver its bytes in every copy of the compact
/// block: worth it where round trips are long, not on a LAN, where one costs a millisecond.
///
/// The window was a fixed 50 ms. On loopback at 1,000 tx/s that prefilled about 50
/// transactions of a 1,000-transaction block, and the compact block grew from 6 KB of short
/// ids to 13–16 KB, carried again by each duplicate. `bench propagation --nodes 16 --tps
/// 1000` with a 1 ms window: 100 % of compact blocks rebuilt without a round trip, as with
/// 50 ms (README, "Compact blocks without prefilled gossip").
pub fn prefill_window(min_rtts_ms: &[f64]) -> Duration {
    let mut rtts: Vec<f64> = min_rtts_ms
        .iter()
        .copied()
        .filter(|r| r.is_finite() && *r >= 0.0)
        .collect();
    if rtts.is_empty() {
        return PREFILL_WINDOW_MIN;
    }
    rtts.sort_by(f64::total_cmp);
    let one_way = Duration::from_secs_f64(rtts[rtts.len() / 2] / 2e3);
    one_way.clamp(PREFILL_WINDOW_MIN, PREFILL_WINDOW_MAX)
}

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
    /// Compact or full blocks.
    pub relay: RelayMode,
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
        let rtts: Vec<f64> = match self.net.peers().await {
            Ok(peers) => peers.iter().filter_map(|p| p.min_ping_ms).collect(),
            Err(_) => Vec::new(),
        };
        let window = prefill_window(&rtts);
        let res = tokio::task::spawn_blocking(move || {
            let me = key.address();
            // Only transactions whose announcement has gone out (this node's own RPC
            // submissions wait for the announcer's batch): peers cannot have the others, and
            // each would be prefilled in every copy of the compact block. Of those, the ones
            // that came by gossip within the prefill window are prefilled. Both decided under
            // the same pool lock as the selection.
            let mut fresh = HashSet::new();
            let b = chain.produce(&key, slot, |state| {
                let pool = pool.read();
                let now = std::time::Instant::now();
                let txs =
                    pool.select_where(state, &me, PRODUCER_MAX_TXS, PRODUCER_MAX_BYTES, |e| {
                        e.announced_before(now)
                    });
                fresh = txs
                    .iter()
                    .map(SignedTx::hash)
                    .filter(|h| pool.get(h).is_some_and(|e| e.announced_within(now, window)))
                    .collect();
                txs
            });
            b.map(|b| b.map(|b| (b, fresh)))
        })
        .await;
        let (block, fresh) = match res {
            Ok(Ok(Some((b, fresh)))) => (b.into_inner(), fresh),
            Ok(Ok(None)) => return,
            Ok(Err(e)) => return warn!(slot, cause = %e, "block production failed"),
            Err(e) => return warn!(slot, cause = %e, "block production panicked"),
        };
        let hash = block.hash();
        let block = Arc::new(block);
        self.chain.recent.insert(block.clone());
        let (topic, bytes) = match self.relay {
            RelayMode::Gossip | RelayMode::Flood => (TopicKind::Block, block.to_bytes()),
            RelayMode::Compact => {
                let mut nonce = [0u8; 8];
                getrandom::fill(&mut nonce).expect("the OS random source is available");
                let cb = CompactBlock::from_block(&block, u64::from_le_bytes(nonce), |_, tx| {
                    fresh.contains(&tx.hash())
                });
                (TopicKind::CompactBlock, crate::types::encoding::encode(&cb))
            }
        };
        let now = crate::now_us();
        self.arrivals.update(hash, |a| {
            a.height = block.header.height;
            a.published_us = Some(now);
            a.bytes = bytes.len() as u64;
            a.txs = block.txs.len() as u64;
        });
        info!(height = block.header.height, slot, txs = block.txs.len(), %hash, "produced block");
        if self.relay == RelayMode::Flood {
            self.net.flood(hash, bytes, FLOOD_TTL).await;
        } else if let Err(e) = self.net.publish(topic, bytes).await {
            warn!(%hash, cause = %e, "publishing block failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_window_is_half_the_median_round_trip_within_bounds() {
        // No peer measured yet: the shortest window.
        assert_eq!(prefill_window(&[]), PREFILL_WINDOW_MIN);
        assert_eq!(prefill_window(&[f64::NAN, -1.0]), PREFILL_WINDOW_MIN);
        // Loopback: a fraction of a millisecond.
        assert_eq!(prefill_window(&[0.2, 0.3, 0.1]), PREFILL_WINDOW_MIN);
        // Links of the `wan` profile: half the median round trip (80 of 40, 160, 240 ms).
        assert_eq!(
            prefill_window(&[240.0, 40.0, 160.0]),
            Duration::from_millis(80)
        );
        // Never beyond the longest window.
        assert_eq!(prefill_window(&[900.0, 1000.0]), PREFILL_WINDOW_MAX);
    }
}
