//! Node events for push subscribers (`eth_subscribe`, `meshnode_subscribe`): new canonical
//! heads, newly admitted transactions and block arrival records, each a `tokio::sync::broadcast`
//! channel. Nobody listening costs nothing; a subscriber that falls more than [`CAPACITY`]
//! events behind skips the oldest (the RPC layer logs how many).

use crate::arrivals::Arrival;
use crate::types::{Block, Hash};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events buffered per channel for a slow subscriber.
pub const CAPACITY: usize = 4096;

/// The node's event channels.
#[derive(Clone, Debug)]
pub struct Events {
    /// Every block that becomes canonical, in chain order (after a reorg: each block of the
    /// new branch above the fork point), as geth's `newHeads`.
    pub heads: broadcast::Sender<Arc<Block>>,
    /// Hash of every transaction newly admitted to the mempool (RPC, gossip, or back from a
    /// reorg), as geth's `newPendingTransactions`.
    pub txs: broadcast::Sender<Hash>,
    /// A block's arrival record the moment it is validated (or produced) here.
    pub arrivals: broadcast::Sender<(Hash, Arrival)>,
}

impl Default for Events {
    fn default() -> Events {
        Events {
            heads: broadcast::channel(CAPACITY).0,
            txs: broadcast::channel(CAPACITY).0,
            arrivals: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    /// Announces canonical blocks (no-op without subscribers).
    pub fn new_heads<'a>(&self, blocks: impl IntoIterator<Item = &'a Block>) {
        if self.heads.receiver_count() == 0 {
            return;
        }
        for b in blocks {
            let _ = self.heads.send(Arc::new(b.clone()));
        }
    }
}
