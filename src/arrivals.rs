//! Per-block arrival records: when gossip first delivered a block (the gossip worker), when it
//! became canonical here (from the chain's canonical notifications, [`follow`]), and on its
//! producer when it was published (the producer). Microseconds since the Unix epoch.

use crate::chain::CanonNotification;
use crate::types::Hash;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// How many blocks' records are kept (oldest dropped first).
pub const KEEP: usize = 100_000;

/// One block's record on this node (the `meshnode_blockArrival` result).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Arrival {
    /// Block height.
    pub height: u64,
    /// The producer's timestamp in the header, ms since the Unix epoch (0 until the block is
    /// canonical here).
    #[serde(default)]
    pub timestamp_ms: u64,
    /// When gossip delivered it, before validation (None on its producer, or if it came by sync).
    pub first_seen_us: Option<u64>,
    /// The peer whose message delivered it first (libp2p peer id), from which the bench
    /// rebuilds the delivery tree.
    #[serde(default)]
    pub first_from: Option<String>,
    /// When gossip verification accepted it and it was handed back to gossipsub for relay,
    /// before its state transition and commit (None if it did not come by gossip).
    pub relayed_us: Option<u64>,
    /// When it was validated and committed to the canonical chain here (on the producer: when
    /// it was committed; after a reorg: when the reorg was committed).
    pub validated_us: Option<u64>,
    /// For a compact block: whether it was rebuilt from the pool alone (None for a full
    /// block).
    #[serde(default)]
    pub rebuilt_without_roundtrip: Option<bool>,
    /// For a compact block: transactions fetched with `getblocktxn`.
    #[serde(default)]
    pub fetched_txs: u64,
    /// For a compact block: whether the full block had to be fetched instead.
    #[serde(default)]
    pub full_block_fallback: bool,
    /// On the producer only: when it was handed to gossipsub.
    pub published_us: Option<u64>,
    /// Encoded size of the block, bytes.
    pub bytes: u64,
    /// Number of transactions.
    pub txs: u64,
}

/// Records sent to `blockArrivals` subscribers, buffered for a slow one.
pub const CAPACITY: usize = 4096;

/// The node's arrival log. Uses a `std::sync::Mutex`: every section is a map lookup, never
/// across `.await`.
#[derive(Default)]
pub struct ArrivalLog {
    inner: Mutex<(HashMap<Hash, Arrival>, VecDeque<Hash>)>,
    /// Where a record goes the moment its `validated_us` is first set
    /// (`meshnode_subscribe("blockArrivals")`).
    validated: Option<broadcast::Sender<(Hash, Arrival)>>,
}

impl ArrivalLog {
    /// A log that broadcasts each record when the block is first validated
    /// ([`ArrivalLog::subscribe`]).
    pub fn with_broadcast() -> ArrivalLog {
        ArrivalLog {
            validated: Some(broadcast::channel(CAPACITY).0),
            ..Default::default()
        }
    }

    /// Each record from now on, the moment its block is first validated
    /// (`meshnode_subscribe("blockArrivals")`); a log made without a broadcast never sends.
    pub fn subscribe(&self) -> broadcast::Receiver<(Hash, Arrival)> {
        match &self.validated {
            Some(tx) => tx.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// Records the canonical blocks of one notification as validated at its commit time.
    pub fn on_canon(&self, n: &CanonNotification) {
        for b in &n.applied {
            self.update(b.hash(), |a| {
                a.height = b.header.height;
                a.timestamp_ms = b.header.timestamp_ms;
                a.validated_us.get_or_insert(n.committed_us);
                a.txs = b.txs.len() as u64;
                if a.bytes == 0 {
                    a.bytes = b.to_bytes().len() as u64;
                }
            });
        }
    }

    /// Updates (or creates) the record for `hash`.
    pub fn update(&self, hash: Hash, f: impl FnOnce(&mut Arrival)) {
        let record = {
            let mut g = self.inner.lock().expect("arrivals lock poisoned");
            let (map, order) = &mut *g;
            if !map.contains_key(&hash) {
                order.push_back(hash);
                if order.len() > KEEP {
                    if let Some(old) = order.pop_front() {
                        map.remove(&old);
                    }
                }
            }
            let a = map.entry(hash).or_default();
            let was_validated = a.validated_us.is_some();
            f(a);
            (!was_validated && a.validated_us.is_some()).then(|| a.clone())
        };
        if let (Some(a), Some(tx)) = (record, &self.validated) {
            let _ = tx.send((hash, a));
        }
    }

    /// The record for `hash`.
    pub fn get(&self, hash: &Hash) -> Option<Arrival> {
        self.inner
            .lock()
            .expect("arrivals lock poisoned")
            .0
            .get(hash)
            .cloned()
    }
}

/// Runs until `stop` turns true: records every canonical notification in `log`. Notifications
/// missed by a lagging receiver leave those blocks without a validated time (logged).
pub async fn follow(
    log: Arc<ArrivalLog>,
    mut canon: broadcast::Receiver<Arc<CanonNotification>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            n = canon.recv() => match n {
                Ok(n) => log.on_canon(&n),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "arrival log missed canonical notifications");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = stop.changed() => return,
        }
    }
}
