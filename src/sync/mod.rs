//! Range sync: the manager (Status on every connection, triggers), the parallel range
//! download ([`download`]), the BlocksByRange/Status server ([`server`]), the peers' head
//! claims ([`SyncStatus`]), and [`SyncError`] with the blame that lowers a serving peer's
//! score.
//!
//! The wire protocol (`/meshnode/N/sync/1`, its codec and limits) is [`crate::p2p::codec`].

pub mod download;
pub mod server;

use crate::chain::{Chain, StoreError};
use crate::p2p::codec::{Status, SyncRequest, SyncResponse, MAX_BLOCKS_PER_REQUEST};
use crate::p2p::{NetworkError, NetworkEvent, NetworkHandle};
use crate::txpool::TxPool;
use crate::types::Hash;
use crate::validation::{ValidationError, Verdict};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::debug;

/// Range sync settings; each default is stated on its field.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyncConfig {
    /// Blocks asked per BlocksByRange request (a segment). Default 64, the server's cap
    /// ([`MAX_BLOCKS_PER_REQUEST`]).
    pub segment: u64,
    /// Most BlocksByRange requests in flight at once, and most answered segments buffered
    /// ahead of the chain. Default 8.
    pub max_in_flight: usize,
    /// Most requests in flight to one peer. Default 2.
    pub per_peer: usize,
    /// Sync triggers (new connections, unknown parents) queued, at most; more are dropped
    /// (a later trigger or block repeats them). Default 256.
    pub trigger_queue: usize,
    /// A node with bootnodes that hears no Status waits this many slots before it considers
    /// itself synced (and its producer starts). Default 3.
    pub initial_wait_slots: u64,
    /// Application-score penalty ([`NetworkHandle::penalize`]) for each blamed
    /// [`SyncError`]. Default 1.0 (×10 weight: one bad range costs a peer 10 points of score).
    pub penalty: f64,
}

impl Default for SyncConfig {
    fn default() -> SyncConfig {
        SyncConfig {
            segment: MAX_BLOCKS_PER_REQUEST,
            max_in_flight: 8,
            per_peer: 2,
            trigger_queue: 256,
            initial_wait_slots: 3,
            penalty: 1.0,
        }
    }
}

/// Why syncing with a peer stopped. [`SyncError::blames_peer`] says whether the peer served
/// something no honest peer serves; only then is its score lowered.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request failed or timed out. No blame: links are slow and peers restart; the
    /// peer's claim is dropped (a failed request costs a small penalty, see [`Sync::blame`]).
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// The peer answered with the wrong kind of response. Blame.
    #[error("peer answered {0} with something else")]
    WrongResponse(&'static str),
    /// The peer is on another chain (genesis). No blame: it is disconnected and not dialled
    /// again by us.
    #[error("peer is on genesis {0}; disconnected")]
    OtherGenesis(Hash),
    /// The peer claimed blocks from `start` on but served none. Blame.
    #[error("peer served no blocks from {start}")]
    Empty {
        /// First height asked.
        start: u64,
    },
    /// A served block is not at the height asked for. Blame.
    #[error("peer served height {got}, expected {expected}")]
    WrongHeight {
        /// Height asked for.
        expected: u64,
        /// Height served.
        got: u64,
    },
    /// A served block failed validation. Blame when the error's gossip verdict is Reject
    /// (the block is invalid); none when it is Ignore (e.g. a future slot: clocks differ).
    #[error("block {height}: {cause}")]
    Invalid {
        /// Its height.
        height: u64,
        /// Why (in the message; not also the error's `source()`, so it is printed once).
        cause: ValidationError,
    },
    /// Our store failed. No blame.
    #[error("store: {0}")]
    Store(StoreError),
    /// The peer's chain does not connect to our genesis. Blame.
    #[error("peer's chain does not connect to our genesis")]
    NoCommonAncestor,
    /// The peer's claimed head was not among the blocks it served. Blame.
    #[error("peer's claimed head was not among the blocks it served")]
    ClaimNotServed,
    /// Nobody left to serve the next height. No blame.
    #[error("no peer left that can serve height {0}")]
    NoPeerLeft(u64),
    /// A blocking import task failed (a bug). No blame.
    #[error("import task failed: {0}")]
    Task(String),
}

impl From<StoreError> for SyncError {
    /// Its message includes the cause, so the cause is not also its `source()` (an error
    /// chain printed with `{:#}` names it once).
    fn from(e: StoreError) -> Self {
        SyncError::Store(e)
    }
}

impl SyncError {
    /// Whether the serving peer is at fault (and loses score).
    pub fn blames_peer(&self) -> bool {
        match self {
            SyncError::WrongResponse(_)
            | SyncError::Empty { .. }
            | SyncError::WrongHeight { .. }
            | SyncError::NoCommonAncestor
            | SyncError::ClaimNotServed => true,
            SyncError::Invalid { cause, .. } => cause.verdict() == Verdict::Reject,
            SyncError::Network(_)
            | SyncError::OtherGenesis(_)
            | SyncError::Store(_)
            | SyncError::NoPeerLeft(_)
            | SyncError::Task(_) => false,
        }
    }
}

/// What `eth_syncing` and `meshnode_syncStatus` report.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    /// Whether a range download is running.
    pub active: bool,
    /// Head height when the current (or last) download started.
    pub starting_block: u64,
    /// Highest head height claimed by a peer when it started.
    pub highest_block: u64,
    /// Blocks each peer served and we imported, over the node's life (peer id -> blocks).
    pub served_by: BTreeMap<String, u64>,
    /// Blocks imported by the last download.
    pub last_blocks: u64,
    /// Its duration, seconds.
    pub last_seconds: f64,
}

#[derive(Default)]
struct StatusInner {
    /// Head height each connected peer claimed in its last Status. A claim is dropped when
    /// the peer disconnects or fails to serve the blocks it claims, so a lying peer cannot
    /// keep the producer idle.
    claims: Mutex<HashMap<PeerId, u64>>,
    progress: Mutex<SyncProgress>,
    initial_done: AtomicBool,
}

/// The sync state others read: peers' claims, progress, whether the first Status exchange is
/// done. A cloneable handle; `std::sync::Mutex` inside, map updates only, never across
/// `.await`.
#[derive(Clone, Default)]
pub struct SyncStatus {
    inner: Arc<StatusInner>,
}

impl SyncStatus {
    /// A fresh status; `initial_done` when there is nobody to ask (no bootnodes).
    pub fn new(initial_done: bool) -> SyncStatus {
        let s = SyncStatus::default();
        s.inner.initial_done.store(initial_done, Ordering::Relaxed);
        s
    }

    /// Whether a connected peer claims a head above `our_height`, or the first Status
    /// exchange is pending.
    pub fn is_behind(&self, our_height: u64) -> bool {
        let best = self.claims().values().max().copied();
        !self.inner.initial_done.load(Ordering::Relaxed) || best.unwrap_or(0) > our_height
    }

    /// Connected peers' claimed head heights (from their last Status).
    pub fn claims(&self) -> HashMap<PeerId, u64> {
        self.inner
            .claims
            .lock()
            .expect("claims lock poisoned")
            .clone()
    }

    /// Records (`Some`) or drops (`None`) a peer's claim.
    pub fn set_claim(&self, peer: PeerId, height: Option<u64>) {
        let mut m = self.inner.claims.lock().expect("claims lock poisoned");
        match height {
            Some(h) => m.insert(peer, h),
            None => m.remove(&peer),
        };
    }

    /// The download progress.
    pub fn progress(&self) -> SyncProgress {
        self.inner
            .progress
            .lock()
            .expect("progress lock poisoned")
            .clone()
    }

    fn update_progress(&self, f: impl FnOnce(&mut SyncProgress)) {
        f(&mut self.inner.progress.lock().expect("progress lock poisoned"))
    }

    /// The first Status exchange is done (or there was nobody to ask in time).
    pub fn mark_initial_done(&self) {
        self.inner.initial_done.store(true, Ordering::Relaxed);
    }
}

/// Asks for a sync with a peer (a new connection, a block whose parent is unknown). Full
/// queue: dropped.
#[derive(Clone)]
pub struct SyncTrigger(mpsc::Sender<PeerId>);

impl SyncTrigger {
    /// Queues a sync with `peer`; the peer's Status decides whether anything is downloaded
    /// (a gossip block's height alone is not trusted).
    pub fn sync_with(&self, peer: PeerId) {
        let _ = self.0.try_send(peer);
    }
}

/// The sync service: narrow handles plus its settings.
#[derive(Clone)]
pub struct Sync {
    /// Where blocks are imported.
    pub chain: Arc<Chain>,
    /// Which transaction signatures are already verified here.
    pub pool: TxPool,
    /// Requests, responses, penalties.
    pub net: NetworkHandle,
    /// Claims and progress.
    pub status: SyncStatus,
    /// Settings.
    pub cfg: SyncConfig,
    trigger: SyncTrigger,
}

/// Receivers the sync tasks consume (from [`Sync::new`]).
pub struct SyncInputs {
    triggers: mpsc::Receiver<PeerId>,
}

impl Sync {
    /// The service and its trigger queue's receiver.
    pub fn new(
        chain: Arc<Chain>,
        pool: TxPool,
        net: NetworkHandle,
        status: SyncStatus,
        cfg: SyncConfig,
    ) -> (Sync, SyncInputs) {
        let (tx, triggers) = mpsc::channel(cfg.trigger_queue.max(1));
        (
            Sync {
                chain,
                pool,
                net,
                status,
                cfg,
                trigger: SyncTrigger(tx),
            },
            SyncInputs { triggers },
        )
    }

    /// A handle that queues syncs.
    pub fn trigger(&self) -> SyncTrigger {
        self.trigger.clone()
    }

    /// Our Status.
    pub fn our_status(&self) -> Status {
        let head = self.chain.head();
        Status {
            genesis: self.chain.store.genesis_hash().unwrap_or_default(),
            head_height: head.height,
            head_hash: head.hash,
        }
    }

    /// Lowers `peer`'s score if `e` blames it (a fault, by [`SyncConfig::penalty`]) or is a
    /// request it left unanswered (timed out, or its stream closed without an answer: a
    /// failure, [`crate::p2p::score::FAILURE_PENALTY`]); drops its claim in any case.
    pub async fn blame(&self, peer: PeerId, e: &SyncError) {
        self.status.set_claim(peer, None);
        if e.blames_peer() {
            debug!(%peer, cause = %e, "sync: peer blamed");
            self.net.penalize(peer, self.cfg.penalty).await;
        } else if matches!(
            e,
            SyncError::Network(NetworkError::Timeout | NetworkError::NoAnswer(_))
        ) {
            debug!(%peer, cause = %e, "sync: request unanswered");
            self.net.request_failed(peer).await;
        } else {
            debug!(%peer, cause = %e, "sync with peer stopped");
        }
    }

    /// Runs until `stop` turns true: each trigger syncs with that peer, and through it with
    /// every peer that has what we miss. A download in progress is dropped at `stop`.
    pub async fn run_downloads(self, inputs: SyncInputs, mut stop: watch::Receiver<bool>) {
        let mut rx = inputs.triggers;
        let wait = Duration::from_millis(self.cfg.initial_wait_slots * self.chain.spec.slot_ms);
        let initial = tokio::time::sleep(wait);
        tokio::pin!(initial);
        let mut initial_pending = true;
        loop {
            let peer = tokio::select! {
                p = rx.recv() => match p { Some(p) => p, None => return },
                _ = &mut initial, if initial_pending => {
                    // Bootnodes but nobody answering a Status: produce anyway.
                    initial_pending = false;
                    self.status.mark_initial_done();
                    continue;
                }
                _ = stop.changed() => return,
            };
            let r = tokio::select! {
                r = self.sync_with(peer) => r,
                _ = stop.changed() => return,
            };
            if let Err(e) = r {
                // Whatever it claimed, this peer did not deliver: stop counting its height.
                self.blame(peer, &e).await;
            }
        }
    }

    /// Runs until `stop` turns true: answers sync requests, asks every new peer its Status
    /// (those exchanges run inside this task and are dropped at `stop`), forgets the claims
    /// of peers that leave.
    pub async fn run_events(
        self,
        mut events: mpsc::Receiver<NetworkEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut greetings = FuturesUnordered::new();
        loop {
            let ev = tokio::select! {
                ev = events.recv() => match ev { Some(ev) => ev, None => return },
                Some(()) = greetings.next(), if !greetings.is_empty() => continue,
                _ = stop.changed() => return,
            };
            match ev {
                NetworkEvent::PeerConnected(peer) => {
                    // Status right away (not behind a running download), so a sync in
                    // progress can spread its segments over this peer too.
                    let s = self.clone();
                    greetings.push(async move { s.on_connect(peer).await });
                }
                NetworkEvent::PeerDisconnected(peer) => self.status.set_claim(peer, None),
                NetworkEvent::SyncRequest {
                    peer,
                    request,
                    channel,
                } => {
                    let resp = self.serve(peer, request);
                    self.net.respond(channel, resp).await;
                }
            }
        }
    }

    /// A new connection: learn the peer's Status, sync if its chain is preferred; meanwhile
    /// reconcile mempools with it ([`crate::txpool::reconcile`]).
    async fn on_connect(&self, peer: PeerId) {
        let reconcile = crate::txpool::reconcile::with_peer(&self.pool, &self.net, peer);
        tokio::join!(self.greet(peer), reconcile);
    }

    /// Status exchange with a new peer; sync if its chain is preferred.
    async fn greet(&self, peer: PeerId) {
        match self.status_of(peer).await {
            Ok(status) => match self.better(&status) {
                Ok(true) => self.trigger.sync_with(peer),
                Ok(false) => self.status.mark_initial_done(),
                Err(e) => debug!(%peer, cause = %e, "status check failed"),
            },
            Err(e) => {
                debug!(%peer, cause = %e, "no status from new peer");
                // A wrong answer loses score as in range sync; a timeout a little.
                self.blame(peer, &e).await;
            }
        }
    }

    /// Asks `peer` for its Status and records its claim; a peer on another genesis is
    /// disconnected and not dialled again by us.
    async fn status_of(&self, peer: PeerId) -> Result<Status, SyncError> {
        let SyncResponse::Status(status) = self
            .net
            .request(peer, SyncRequest::Status)
            .await
            .map_err(SyncError::Network)?
        else {
            return Err(SyncError::WrongResponse("Status"));
        };
        if status.genesis != self.our_status().genesis {
            let _ = self.net.remove(peer).await;
            return Err(SyncError::OtherGenesis(status.genesis));
        }
        self.status.set_claim(peer, Some(status.head_height));
        Ok(status)
    }

    /// Whether fork choice prefers the chain `status` describes over ours (and we lack its
    /// head).
    fn better(&self, status: &Status) -> Result<bool, SyncError> {
        let head = self.chain.head();
        let known = self.chain.store.has_block(&status.head_hash)?;
        Ok(!known && crate::chain::prefers(status.head_height, &status.head_hash, &head))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::p2p::handle::Command;
    use crate::p2p::PeerSummary;
    use crate::txpool::TxPoolConfig;

    /// A sync service over a real chain whose network is this test: it gets the commands the
    /// network task would get.
    fn service(dir: &std::path::Path) -> (Sync, mpsc::Receiver<Command>) {
        let chain = Arc::new(Chain::open(dir, crate::genesis::test_spec(4, 1, 2, 1_000)).unwrap());
        let (pool, _announce) = TxPool::new(chain.clone(), TxPoolConfig::default());
        let (tx, rx) = mpsc::channel(64);
        let net = NetworkHandle {
            tx,
            banned: Default::default(),
        };
        let (sync, _inputs) = Sync::new(
            chain,
            pool,
            net,
            SyncStatus::new(true),
            SyncConfig::default(),
        );
        (sync, rx)
    }

    #[tokio::test]
    async fn a_peer_serving_a_bad_range_loses_score_and_its_claim() {
        let dir = tempfile::tempdir().unwrap();
        let (sync, mut rx) = service(dir.path());
        let peer = PeerId::random();
        let genesis = sync.our_status().genesis;
        let s = sync.clone();
        let mut run = tokio::spawn(async move { s.sync_with(peer).await });
        let mut penalties = Vec::new();
        // Answer as the network task would, until the sync gives up on the peer.
        let r = loop {
            let cmd = tokio::select! {
                r = &mut run => break r.unwrap(),
                cmd = tokio::time::timeout(Duration::from_secs(10), rx.recv()) => cmd
                    .expect("the sync keeps asking until it gives up")
                    .expect("handle alive"),
            };
            match cmd {
                Command::Request { req, reply, .. } => {
                    let resp = match req {
                        SyncRequest::Status => SyncResponse::Status(Status {
                            genesis,
                            head_height: 5,
                            head_hash: Hash([9; 32]),
                        }),
                        // Garbage where blocks should be.
                        SyncRequest::BlocksByRange { .. } => {
                            SyncResponse::Blocks(vec![vec![0xde, 0xad]])
                        }
                        _ => SyncResponse::Txs(vec![]),
                    };
                    let _ = reply.send(Ok(resp));
                }
                Command::Peers { reply } => {
                    let _ = reply.send(vec![PeerSummary {
                        peer_id: peer.to_string(),
                        addr: "/ip4/127.0.0.1/tcp/1".into(),
                        inbound: false,
                        connection_type: "outbound-full-relay",
                        conntime: 0,
                        agent: None,
                        gossip_score: None,
                        score_state: "healthy",
                        app_score: 0.0,
                        traffic: Default::default(),
                        ping_ms: None,
                        min_ping_ms: None,
                        in_block_mesh: false,
                        in_compact_block_mesh: false,
                        nearby: false,
                    }]);
                }
                Command::Penalize { peer: p, by } => penalties.push((p, by)),
                _ => {}
            }
        };
        // The range failed with "no peer left" (the only peer was dropped), which is not the
        // peer's fault in itself; the blame came when its segment was rejected.
        assert!(matches!(r, Err(SyncError::NoPeerLeft(1))), "{r:?}");
        // Drain what was sent before the sync returned.
        while let Ok(cmd) = rx.try_recv() {
            if let Command::Penalize { peer: p, by } = cmd {
                penalties.push((p, by));
            }
        }
        assert_eq!(
            penalties,
            [(peer, SyncConfig::default().penalty)],
            "blamed once"
        );
        assert!(sync.status.claims().is_empty(), "its claim is dropped");
        assert_eq!(sync.chain.head().height, 0, "nothing imported");
    }

    #[test]
    fn blame_follows_the_error() {
        assert!(SyncError::Empty { start: 1 }.blames_peer());
        assert!(SyncError::WrongHeight {
            expected: 1,
            got: 3
        }
        .blames_peer());
        assert!(SyncError::Invalid {
            height: 1,
            cause: ValidationError::BadBlockSignature
        }
        .blames_peer());
        assert!(!SyncError::Invalid {
            height: 1,
            cause: ValidationError::FutureSlot(9)
        }
        .blames_peer());
        assert!(!SyncError::Network(NetworkError::Request("timeout".into())).blames_peer());
        assert!(!SyncError::NoPeerLeft(3).blames_peer());
    }
}
