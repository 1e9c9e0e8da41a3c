//! Per-block arrival records: when gossip first delivered a block, when validation finished,
//! and (on its producer) when it was published. Microseconds since the Unix epoch.

use crate::types::Hash;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;

/// How many blocks' records are kept (oldest dropped first).
pub const KEEP: usize = 100_000;

/// One block's record on this node (the `meshnode_blockArrival` result).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Arrival {
    /// Block height.
    pub height: u64,
    /// When gossip delivered it, before validation (None on its producer, or if it came by sync).
    pub first_seen_us: Option<u64>,
    /// When it was validated and committed here (on the producer: when it was committed).
    pub validated_us: Option<u64>,
    /// On the producer only: when it was handed to gossipsub.
    pub published_us: Option<u64>,
    /// Encoded size of the block, bytes.
    pub bytes: u64,
    /// Number of transactions.
    pub txs: u64,
}

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
    /// A log that sends each record to `validated` when the block is first validated.
    pub fn with_broadcast(validated: broadcast::Sender<(Hash, Arrival)>) -> ArrivalLog {
        ArrivalLog {
            validated: Some(validated),
            ..Default::default()
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
            (!was_validated && a.validated_us.is_some()).then_some(*a)
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
            .copied()
    }
}
