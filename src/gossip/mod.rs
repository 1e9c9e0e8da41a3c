//! The gossip router's validation workers (Lighthouse `network/src/router.rs` +
//! `network_beacon_processor`): the network task decodes each message at the edge and queues
//! it; a worker per topic family checks it through the service that owns the answer (txpool
//! for transactions, chain for blocks) and reports the verdict, which is also the peer action
//! (gossipsub relays on Accept, penalises the sender on Reject).

pub mod block;
pub mod compact;
pub mod tx;

use crate::arrivals::ArrivalLog;
use crate::chain::Chain;
use crate::p2p::{BlockPayload, GossipMessage, NetworkHandle};
use crate::sync::SyncTrigger;
use crate::txpool::TxPool;
use crate::types::SignedTx;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Worker settings; each default is stated on its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// Capacity of each validation queue between the network task and a worker (a full queue
    /// answers Ignore and counts the drop). Default 4,096 (blocks: at most 256).
    pub queue_len: usize,
    /// Most transactions the transaction worker takes in one pass (their signatures are
    /// verified together over every core). Default 2,048.
    pub tx_burst: usize,
    /// How long one `getblocktxn` or full-block request of compact relay may take before the
    /// next peer is asked. Default 1 s.
    pub fetch_timeout: std::time::Duration,
    /// gossipsub v1.2 IDONTWANT for large messages. Default on (`--idontwant off` turns it
    /// off, to measure what it saves).
    pub idontwant: bool,
}

impl Default for GossipConfig {
    fn default() -> GossipConfig {
        GossipConfig {
            queue_len: 4096,
            tx_burst: 2048,
            fetch_timeout: std::time::Duration::from_secs(1),
            idontwant: true,
        }
    }
}

/// Counters the workers keep (read by `meshnode_nodeInfo`).
#[derive(Debug, Default)]
pub struct GossipStats {
    /// Blocks that passed gossip verification and were relayed, then failed their state
    /// transition and were not imported.
    pub relayed_invalid: std::sync::atomic::AtomicU64,
    /// Compact blocks rebuilt from the pool alone (no round trip).
    pub compact_without_roundtrip: std::sync::atomic::AtomicU64,
    /// Compact blocks completed with `getblocktxn`.
    pub compact_fetched: std::sync::atomic::AtomicU64,
    /// Compact blocks completed by fetching the full block.
    pub compact_full_fallback: std::sync::atomic::AtomicU64,
}

/// What the workers need: narrow handles only.
#[derive(Clone)]
pub struct Workers {
    /// Blocks are imported here.
    pub chain: Arc<Chain>,
    /// Transactions are admitted here.
    pub pool: TxPool,
    /// Verdicts go here.
    pub net: NetworkHandle,
    /// First-seen times are recorded here.
    pub arrivals: Arc<ArrivalLog>,
    /// A block with an unknown parent asks for a sync with its sender.
    pub sync: SyncTrigger,
    /// Counters.
    pub stats: Arc<GossipStats>,
    /// Settings.
    pub cfg: GossipConfig,
}

impl Workers {
    /// Starts one OS thread per worker. Each ends when its queue's sender (the network task)
    /// is gone.
    pub fn spawn(
        self,
        txs: mpsc::Receiver<GossipMessage<Vec<SignedTx>>>,
        blocks: mpsc::Receiver<GossipMessage<BlockPayload>>,
    ) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
        let t = self.clone();
        let b = self;
        // The block worker waits on compact-relay requests through the runtime.
        let rt = tokio::runtime::Handle::current();
        Ok(vec![
            std::thread::Builder::new()
                .name("tx-validation".into())
                .spawn(move || t.tx_worker(txs))?,
            std::thread::Builder::new()
                .name("block-validation".into())
                .spawn(move || b.block_worker(rt, blocks))?,
        ])
    }
}
