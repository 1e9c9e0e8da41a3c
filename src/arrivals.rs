//! Per-block arrival records: when gossip first delivered a block (the gossip worker), when it
//! became canonical here (from the chain's canonical notifications, [`follow`]), and on its
//! producer when it was published (the producer). Microseconds since the Unix epoch.
//!
//! With a journal ([`ArrivalLog::with_journal`]; the node keeps `DATA_DIR/arrivals.jsonl`),
//! each record is also appended as one JSON line ([`JournalLine`]) about
//! [`JOURNAL_SETTLE`]–[`JOURNAL_DELAY`] after its block was validated here, once the record
//! has settled (on a producer the publish time can follow the commit), so a run can be
//! measured after the fact: `meshnode bench propagation --from-dirs`. Records still pending
//! at shutdown are written then; a crash loses at most the last couple of seconds.

use crate::chain::CanonNotification;
use crate::types::Hash;
use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
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
    /// Encoded size of what delivered it (the compact block or the full block; on its
    /// producer, what it published), bytes.
    pub bytes: u64,
    /// Encoded size of the full block, bytes (0 until it is canonical here).
    #[serde(default)]
    pub block_bytes: u64,
    /// Number of transactions.
    pub txs: u64,
}

/// Records sent to `blockArrivals` subscribers, buffered for a slow one.
pub const CAPACITY: usize = 4096;

/// The journal's file name in the data dir.
pub const JOURNAL_FILE: &str = "arrivals.jsonl";

/// How long a record settles after its validation before it may be journaled (on a
/// producer the publish time can follow the commit by a few milliseconds).
pub const JOURNAL_SETTLE: Duration = Duration::from_millis(500);

/// Longest a settled record waits for the journal: records are written when the next
/// canonical block arrives, or this long after the last one when none follows. With blocks
/// every slot the follower then never wakes for the journal alone (an idle node's timer
/// wake-ups are part of its idle cost).
pub const JOURNAL_DELAY: Duration = Duration::from_secs(2);

/// One line of `arrivals.jsonl`: the block's hash (64 hex digits) and its [`Arrival`] record,
/// flattened (the fields of `meshnode_blockArrival`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct JournalLine {
    /// Block hash, 64 hex digits.
    pub hash: String,
    /// The record.
    #[serde(flatten)]
    pub arrival: Arrival,
}

/// The append-only journal file and the records waiting to be written.
struct Journal {
    file: std::io::BufWriter<std::fs::File>,
    /// Blocks validated here and when, oldest first.
    pending: VecDeque<(Hash, Instant)>,
}

/// The node's arrival log. Uses a `std::sync::Mutex`: every section is a map lookup, never
/// across `.await`.
#[derive(Default)]
pub struct ArrivalLog {
    inner: Mutex<(HashMap<Hash, Arrival>, VecDeque<Hash>)>,
    /// Where a record goes the moment its `validated_us` is first set
    /// (`meshnode_subscribe("blockArrivals")`).
    validated: Option<broadcast::Sender<(Hash, Arrival)>>,
    /// `arrivals.jsonl`, if journaling.
    journal: Option<Mutex<Journal>>,
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

    /// This log, also appending each settled record to `path` ([`JournalLine`]s; created if
    /// missing, appended to if not).
    ///
    /// Errors: the file cannot be opened for appending.
    pub fn with_journal(mut self, path: &Path) -> std::io::Result<ArrivalLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        self.journal = Some(Mutex::new(Journal {
            file: std::io::BufWriter::new(file),
            pending: VecDeque::new(),
        }));
        Ok(self)
    }

    /// Appends to the journal every record validated at least `age` ago (all of them with
    /// `Duration::ZERO`) and flushes it. Without a journal, does nothing.
    ///
    /// Errors: writing the file failed (the records stay pending).
    pub fn write_journal(&self, age: Duration) -> std::io::Result<usize> {
        let Some(j) = &self.journal else {
            return Ok(0);
        };
        let mut j = j.lock().expect("arrival journal lock poisoned");
        let now = Instant::now();
        let mut lines = Vec::new();
        while let Some((hash, at)) = j.pending.front().copied() {
            if now.saturating_duration_since(at) < age {
                break;
            }
            if let Some(a) = self.get(&hash) {
                let line = JournalLine {
                    hash: hash.to_string(),
                    arrival: a,
                };
                lines.push(serde_json::to_string(&line).map_err(std::io::Error::other)?);
            }
            j.pending.pop_front();
        }
        for l in &lines {
            writeln!(j.file, "{l}")?;
        }
        j.file.flush()?;
        Ok(lines.len())
    }

    /// Whether records wait to be journaled (never without a journal).
    pub fn journal_pending(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| {
            !j.lock()
                .expect("arrival journal lock poisoned")
                .pending
                .is_empty()
        })
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
                a.block_bytes = b.to_bytes().len() as u64;
                if a.bytes == 0 {
                    a.bytes = a.block_bytes;
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
        if let (Some(_), Some(j)) = (&record, &self.journal) {
            j.lock()
                .expect("arrival journal lock poisoned")
                .pending
                .push_back((hash, Instant::now()));
        }
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

/// Runs until `stop` turns true: records every canonical notification in `log` and then
/// journals the records that have settled ([`JOURNAL_SETTLE`]; [`ArrivalLog::write_journal`]);
/// [`JOURNAL_DELAY`] after the last notification, if records are still pending, journals
/// them all; at stop, journals the rest. Notifications missed by a lagging receiver leave
/// those blocks without a validated time (logged).
pub async fn follow(
    log: Arc<ArrivalLog>,
    mut canon: broadcast::Receiver<Arc<CanonNotification>>,
    mut stop: watch::Receiver<bool>,
) {
    let journal = |age| {
        if let Err(e) = log.write_journal(age) {
            tracing::warn!(cause = %e, "cannot append to the arrival journal");
        }
    };
    let quiet = tokio::time::sleep(JOURNAL_DELAY);
    tokio::pin!(quiet);
    loop {
        tokio::select! {
            n = canon.recv() => match n {
                Ok(n) => {
                    log.on_canon(&n);
                    journal(JOURNAL_SETTLE);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "arrival log missed canonical notifications");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            // Armed only while records wait: no timer wake-ups while blocks keep coming.
            _ = &mut quiet, if log.journal_pending() => journal(Duration::ZERO),
            _ = stop.changed() => break,
        }
        quiet
            .as_mut()
            .reset(tokio::time::Instant::now() + JOURNAL_DELAY);
    }
    journal(Duration::ZERO);
}

/// Reads a journal written by [`ArrivalLog::with_journal`]: one [`JournalLine`] per line; a
/// later line for the same hash replaces an earlier one (a node restarted with the same data
/// dir). A torn last line (a crash mid-write) is skipped.
///
/// Errors: the file cannot be read, or a line other than the last is not a journal line
/// (named by its number).
pub fn read_journal(path: &Path) -> anyhow::Result<Vec<JournalLine>> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out: Vec<JournalLine> = Vec::with_capacity(lines.len());
    let mut at: HashMap<String, usize> = HashMap::new();
    for (i, l) in lines.iter().enumerate() {
        let line: JournalLine = match serde_json::from_str(l) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => anyhow::bail!("{} line {}: {e}", path.display(), i + 1),
        };
        match at.get(&line.hash) {
            Some(&k) => out[k] = line,
            None => {
                at.insert(line.hash.clone(), out.len());
                out.push(line);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Block, BlockHeader};

    fn block(height: u64) -> Block {
        Block {
            header: BlockHeader {
                chain_id: 1,
                height,
                slot: height,
                parent: Hash::ZERO,
                timestamp_ms: 0,
                producer: crate::crypto::Keypair::dev_validator(0).public(),
                tx_root: Hash::ZERO,
                tx_count: 0,
            },
            signature: crate::types::Signature([0; 64]),
            txs: vec![],
        }
    }

    fn applied(b: Block) -> Arc<CanonNotification> {
        Arc::new(CanonNotification {
            undone: vec![],
            applied: vec![b],
            committed_us: crate::now_us(),
        })
    }

    /// A record goes to the journal with the next block once settled, or on its own
    /// `JOURNAL_DELAY` after the last block when no block follows.
    #[tokio::test]
    async fn journal_written_with_the_next_block_or_after_a_quiet_spell() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let log = Arc::new(ArrivalLog::default().with_journal(&path).unwrap());
        let (tx, rx) = broadcast::channel(8);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(follow(log.clone(), rx, stop_rx));
        let lines = || read_journal(&path).unwrap();

        tx.send(applied(block(1))).unwrap();
        tokio::time::sleep(JOURNAL_SETTLE + Duration::from_millis(100)).await;
        assert!(lines().is_empty(), "block 1 journaled before block 2 came");
        assert!(log.journal_pending());

        tx.send(applied(block(2))).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got: Vec<u64> = lines().iter().map(|l| l.arrival.height).collect();
        assert_eq!(
            got,
            vec![1],
            "block 2 arrived: block 1 (settled) journaled, 2 waits"
        );

        tokio::time::sleep(JOURNAL_DELAY + Duration::from_millis(500)).await;
        let got: Vec<u64> = lines().iter().map(|l| l.arrival.height).collect();
        assert_eq!(
            got,
            vec![1, 2],
            "no block followed: block 2 journaled on its own"
        );
        assert!(!log.journal_pending());

        stop.send(true).unwrap();
        task.await.unwrap();
    }
}
