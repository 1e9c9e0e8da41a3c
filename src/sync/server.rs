//! The serving side of the sync protocol: Status and BlocksByRange from the canonical chain;
//! BlocksByHash and BlockTxs (BIP152 `getblocktxn`) from recent or stored blocks.

use super::Sync;
use crate::p2p::codec::{
    SyncRequest, SyncResponse, MAX_BLOCKS_BY_HASH, MAX_BLOCKS_PER_REQUEST, MAX_POOLED_HASHES,
    MAX_RESPONSE_BYTES,
};
use libp2p::PeerId;
use tracing::debug;

impl Sync {
    /// The answer to `request`: our Status, or up to [`MAX_BLOCKS_PER_REQUEST`] encoded
    /// canonical blocks from `start` (fewer at our head or when the response would pass
    /// [`MAX_RESPONSE_BYTES`]; none past our head).
    pub fn serve(&self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        match request {
            SyncRequest::Status => SyncResponse::Status(self.our_status()),
            SyncRequest::BlocksByRange { start, count } => {
                let store = &self.chain.store;
                let mut out = Vec::new();
                let mut total = 0usize;
                for h in start..start.saturating_add(count.min(MAX_BLOCKS_PER_REQUEST)) {
                    let Ok(Some(hash)) = store.hash_at(h) else {
                        break;
                    };
                    let Ok(Some(b)) = store.block_bytes(&hash) else {
                        break;
                    };
                    total += b.len() + 8;
                    if total > MAX_RESPONSE_BYTES - 1024 {
                        break;
                    }
                    out.push(b);
                }
                debug!(%peer, start, served = out.len(), "served BlocksByRange");
                SyncResponse::Blocks(out)
            }
            SyncRequest::BlocksByHash(hashes) => {
                let mut out = Vec::new();
                let mut total = 0usize;
                for h in hashes.iter().take(MAX_BLOCKS_BY_HASH) {
                    let Ok(Some(b)) = self.chain.block_by_hash(h) else {
                        continue;
                    };
                    let bytes = b.to_bytes();
                    total += bytes.len() + 8;
                    if total > MAX_RESPONSE_BYTES - 1024 {
                        break;
                    }
                    out.push(bytes);
                }
                debug!(%peer, asked = hashes.len(), served = out.len(), "served BlocksByHash");
                SyncResponse::Blocks(out)
            }
            SyncRequest::BlockTxs { block, indexes } => {
                let txs = match self.chain.block_by_hash(&block) {
                    Ok(Some(b)) => indexes
                        .iter()
                        .map(|&i| b.txs.get(i as usize).cloned())
                        .collect::<Option<Vec<_>>>()
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                debug!(%peer, %block, asked = indexes.len(), served = txs.len(), "served BlockTxs");
                SyncResponse::Txs(txs)
            }
            // The network task answers these itself (`--relay flood`).
            SyncRequest::NewBlock { .. } => SyncResponse::Ack,
            SyncRequest::PooledHashes => SyncResponse::Hashes(
                crate::txpool::reconcile::pending_hashes(&self.pool, MAX_POOLED_HASHES),
            ),
            SyncRequest::PooledTxs(hashes) => {
                SyncResponse::Txs(crate::txpool::reconcile::pooled_txs(&self.pool, &hashes))
            }
        }
    }
}
