//! The serving side of range sync: answers Status and BlocksByRange from the canonical chain.

use super::Sync;
use crate::p2p::codec::{SyncRequest, SyncResponse, MAX_BLOCKS_PER_REQUEST, MAX_RESPONSE_BYTES};
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
        }
    }
}
