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
#[derive(Clone, Copy, Debug, PartialEq)]
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
    /// CPU time the workers spend as (simulated) time, for runs under Shadow. Default none.
    pub simulated_cost: Option<SimulatedCost>,
    /// Nice value of the block-validation thread (`--block-nice`; 0 leaves it alone).
    /// Default [`DEFAULT_BLOCK_NICE`].
    pub block_nice: i32,
}

/// The block-validation thread's default nice value: -10, a weight about 9× the default's
/// under Linux's fair scheduler, so a block waits for a core about as briefly as if the
/// node's other threads were idle. Measured with `bench propagation --nodes 16 --tps 1000`
/// (README, "Block work first"): relay decision p50 13–22 ms at 0, 4 ms at -10.
pub const DEFAULT_BLOCK_NICE: i32 = -10;

/// A model of validation CPU time, spent by sleeping in the validation workers
/// (`meshnode run --simulated-cost`), for the Shadow simulator: Shadow runs the real code but
/// charges it no simulated time (every clock a process reads, CPU-time clocks included, is the
/// simulated clock), so without a model a block is verified, relayed and imported in zero time
/// at every hop. Sleeping in the worker thread stands for a busy core: one block or one
/// transaction chunk at a time, as the workers run, so a node that receives more work than it
/// can do queues it.
///
/// Linear in the work, with figures measured outside the simulator (README, "Thousands of
/// nodes under Shadow", says how): text form `sig_us=N,relay_us=N,relay_tx_us=N,import_us=N,
/// import_tx_us=N` (any subset; the rest 0), microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SimulatedCost {
    /// One ed25519 signature verified (a gossip transaction, or a block transaction the
    /// mempool had not verified).
    pub sig_us: f64,
    /// Gossip verification of a block before its verdict (decode, header, producer
    /// signature, `tx_root`), per block.
    pub relay_us: f64,
    /// The same, per transaction of the block (hashing, mempool lookup).
    pub relay_tx_us: f64,
    /// Import after relay (state transition and commit), per block.
    pub import_us: f64,
    /// The same, per transaction.
    pub import_tx_us: f64,
}

impl SimulatedCost {
    /// Time to spend before a block's verdict: `txs` transactions, of which `unverified` had
    /// their signatures checked here.
    pub fn relay(&self, txs: usize, unverified: usize) -> std::time::Duration {
        Self::us(self.relay_us + self.relay_tx_us * txs as f64 + self.sig_us * unverified as f64)
    }

    /// Time to spend importing a block of `txs` transactions.
    pub fn import(&self, txs: usize) -> std::time::Duration {
        Self::us(self.import_us + self.import_tx_us * txs as f64)
    }

    /// Time to spend verifying `sigs` transaction signatures.
    pub fn sigs(&self, sigs: usize) -> std::time::Duration {
        Self::us(self.sig_us * sigs as f64)
    }

    fn us(v: f64) -> std::time::Duration {
        std::time::Duration::from_secs_f64(v.max(0.0) / 1e6)
    }
}

impl std::str::FromStr for SimulatedCost {
    type Err = String;

    /// Parses `sig_us=55,relay_us=300,…` (see [`SimulatedCost`]).
    fn from_str(s: &str) -> Result<SimulatedCost, String> {
        let mut c = SimulatedCost::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=microseconds"))?;
            let v: f64 = v
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{part:?}: the value must be microseconds ≥ 0"))?;
            let slot = match k.trim() {
                "sig_us" => &mut c.sig_us,
                "relay_us" => &mut c.relay_us,
                "relay_tx_us" => &mut c.relay_tx_us,
                "import_us" => &mut c.import_us,
                "import_tx_us" => &mut c.import_tx_us,
                other => {
                    return Err(format!(
                        "unknown cost {other:?} (sig_us, relay_us, relay_tx_us, import_us, \
                         import_tx_us)"
                    ))
                }
            };
            *slot = v;
        }
        Ok(c)
    }
}

impl Default for GossipConfig {
    fn default() -> GossipConfig {
        GossipConfig {
            queue_len: 4096,
            tx_burst: 2048,
            fetch_timeout: std::time::Duration::from_secs(1),
            idontwant: true,
            simulated_cost: None,
            block_nice: DEFAULT_BLOCK_NICE,
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
                .spawn(move || {
                    set_thread_nice(b.cfg.block_nice);
                    b.block_worker(rt, blocks)
                })?,
        ])
    }
}

/// Sets the calling thread's nice value to `nice` (Linux: `setpriority(PRIO_PROCESS, 0)`
/// acts on the calling thread only), unless it is 0. A refusal (no CAP_SYS_NICE and no
/// RLIMIT_NICE to go below the process's value) is logged once and the thread runs on at the
/// process's priority: the node works the same, only blocks may wait longer for a core.
/// Returns the thread's nice value afterwards.
pub fn set_thread_nice(nice: i32) -> Option<i32> {
    use rustix::process::{getpriority_process, setpriority_process};
    if nice != 0 {
        match setpriority_process(None, nice) {
            Ok(()) => {
                tracing::debug!(thread = ?std::thread::current().name(), nice, "thread priority set")
            }
            Err(e) => tracing::info!(
                thread = ?std::thread::current().name(),
                nice,
                cause = %e,
                "cannot set this thread's nice value (going below the process's needs CAP_SYS_NICE or RLIMIT_NICE); it runs at the process's priority"
            ),
        }
    }
    getpriority_process(None).ok()
}

/// sled's I/O pool threads (`sled-io-N`): they write the log buffers a block's flush waits
/// for, and a commit hands them work under their queue's lock.
pub const STORE_IO_THREADS: &str = "sled-io";

/// Sets every thread of this process whose name starts with `prefix` to `nice` (Linux:
/// `setpriority(PRIO_PROCESS, tid)` acts on that one thread), unless `nice` is 0. Threads a
/// pool starts later inherit the nice value of the thread that starts them, so callers
/// repeat this now and then. A refusal is logged at debug level and the thread keeps its
/// value. Returns how many threads now run at `nice`.
///
/// Used for sled's I/O pool ([`STORE_IO_THREADS`]) at the block thread's value: at the
/// default priority, a pool thread that was preempted while holding the pool's queue lock,
/// or that had a log buffer to write, kept a block's commit waiting. Measured with `bench
/// propagation --nodes 32 --profile wan --relay compact` (README, "Block work first").
pub fn set_threads_nice(prefix: &str, nice: i32) -> usize {
    use rustix::process::{setpriority_process, Pid};
    if nice == 0 {
        return 0;
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    let mut n = 0;
    for task in tasks.flatten() {
        let Some(pid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        let named = std::fs::read_to_string(task.path().join("comm"))
            .is_ok_and(|c| c.trim_end().starts_with(prefix));
        if !named {
            continue;
        }
        match setpriority_process(Some(pid), nice) {
            Ok(()) => n += 1,
            Err(e) => {
                tracing::debug!(tid = pid.as_raw_nonzero().get(), nice, cause = %e, "cannot set a thread's nice value")
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::SimulatedCost;
    use std::time::Duration;

    #[test]
    fn simulated_cost_parses_and_scales_with_the_work() {
        let c: SimulatedCost =
            "sig_us=50, relay_us=300,relay_tx_us=2,import_us=1000,import_tx_us=40"
                .parse()
                .unwrap();
        assert_eq!(c.relay(100, 10), Duration::from_micros(300 + 200 + 500));
        assert_eq!(c.import(100), Duration::from_micros(1000 + 4000));
        assert_eq!(c.sigs(3), Duration::from_micros(150));
        let partial: SimulatedCost = "import_us=7".parse().unwrap();
        assert_eq!(partial.relay(1000, 1000), Duration::ZERO);
        for bad in ["sig_us", "sig_us=-1", "sig_us=x", "cpu_us=3", "sig_us=inf"] {
            assert!(bad.parse::<SimulatedCost>().is_err(), "{bad}");
        }
    }
}
