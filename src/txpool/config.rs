//! Transaction pool settings: pool limits and announcement tuning, each default stated where
//! it is defined.

use std::time::Duration;

/// Pool limits. Defaults: 100,000 transactions, 64 MiB, 512 per sender of which 64 queued,
/// 25,000 queued in all, queued lifetime 3 h (geth's `--txpool.lifetime`), minimum relay fee
/// 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most transactions.
    pub max_txs: usize,
    /// Most encoded bytes.
    pub max_bytes: usize,
    /// Most transactions of one sender, pending and queued (geth's account slots + queue).
    pub max_per_sender: usize,
    /// Most queued transactions of one sender (geth's `--txpool.accountqueue`).
    pub max_queued_per_sender: usize,
    /// Most queued transactions in all (geth's `--txpool.globalqueue`).
    pub max_queued: usize,
    /// How long a queued transaction may wait for its gap to fill.
    pub queued_lifetime: Duration,
    /// Lowest fee admitted or relayed, base units per transaction (Bitcoin Core's
    /// `-minrelaytxfee`, geth's `--txpool.pricelimit`).
    pub min_relay_fee: u64,
}

impl Default for MempoolConfig {
    fn default() -> MempoolConfig {
        MempoolConfig {
            max_txs: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_per_sender: 512,
            max_queued_per_sender: 64,
            max_queued: 25_000,
            queued_lifetime: Duration::from_secs(3 * 3600),
            min_relay_fee: 1,
        }
    }
}

/// The admission service's settings: the pool limits plus the tuning of signature checks and
/// announcements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPoolConfig {
    /// Pool limits (see [`MempoolConfig`] for their defaults).
    pub pool: MempoolConfig,
    /// Announcements waiting for a batch, at most. Default 8,192. RPC submitters wait while it
    /// is full (backpressure); reorg returns beyond it are not announced (logged).
    pub announce_queue: usize,
    /// Most transactions in one `/txs/1` message. Default 512: 512 × ~156 bytes stays under
    /// glibc's 128 KiB mmap threshold, so gossipsub's copies of each message come from the
    /// heap, not fresh pages. Receivers accept up to [`crate::validation::MAX_TX_BATCH`].
    pub announce_batch: usize,
    /// How long the first transaction of a batch waits for company before the batch goes
    /// out. Default [`ANNOUNCE_DELAY`] (200 ms).
    pub announce_delay: Duration,
    /// Transaction hashes whose signatures are remembered as verified. Default 100,000
    /// (about 6 MiB).
    pub sig_cache: usize,
    /// How often queued transactions past their lifetime are dropped. Default 5 s.
    pub expiry_interval: Duration,
}

/// The announcer's default batch delay: a transaction this node announces itself (an RPC
/// submission, a reorg return, a newly executable one) waits up to 200 ms for others to share
/// its `/txs/1` message. Bitcoin Core trickles its transaction announcements the same way, on
/// a Poisson timer of 2 s per outbound and 5 s per inbound peer on average
/// (`OUTBOUND_INVENTORY_BROADCAST_INTERVAL`, `INBOUND_INVENTORY_BROADCAST_INTERVAL`,
/// `net_processing.cpp`); 200 ms keeps a transaction well inside a 1 s slot. Every gossip
/// message costs each node that receives or forwards it a wake-up, a noise frame and a
/// gossipsub timer, whatever it holds. `bench propagation --nodes 16 --tps 1000 --blocks 20`
/// (each transaction submitted to the next node: 62 per node per second), alternating runs,
/// the same 20 minutes (session 28): CPU per node per block 0.113–0.115 s with 5 ms,
/// 0.082–0.086 with 100 ms, 0.069–0.071 with 200 ms; t100 p95 91 and 87 ms, 58 and 54 ms,
/// 51 and 49 ms. A producer leaves out of its blocks what it has not announced yet
/// ([`super::Entry::announced_by`]), so compact blocks still rebuild without a round trip:
/// a transaction submitted to the producer in the last 200 ms waits for the next slot.
pub const ANNOUNCE_DELAY: Duration = Duration::from_millis(200);

impl Default for TxPoolConfig {
    fn default() -> TxPoolConfig {
        TxPoolConfig {
            pool: MempoolConfig::default(),
            announce_queue: 8_192,
            announce_batch: 512,
            announce_delay: ANNOUNCE_DELAY,
            sig_cache: 100_000,
            expiry_interval: Duration::from_secs(5),
        }
    }
}
