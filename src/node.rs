//! Wiring: store + mempool + network + validation tasks + producer + sync + RPC, and the
//! shutdown order (RPC first, then producer and sync, then the network, then the store flush).

use crate::arrivals::ArrivalLog;
use crate::chain::{Chain, ImportError, Imported};
use crate::config::Config;
use crate::crypto::Keypair;
use crate::mempool::{Admission, Inserted, Mempool, MempoolError};
use crate::p2p::sync::{SyncRequest, SyncResponse, MAX_BLOCKS_PER_REQUEST, MAX_RESPONSE_BYTES};
use crate::p2p::{self, GossipMessage, NetworkConfig, NetworkEvent, NetworkHandle, TopicKind};
use crate::state::{Account, StateView};
use crate::types::{Block, Hash, SignedTx};
use crate::validation::{self, ValidationError, Verdict, Verified};
use anyhow::Context;
use libp2p::PeerId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Shared state of a running node. The mempool uses a `std::sync::Mutex`: every section is
/// synchronous (insert, select, prune) and never spans an `.await`.
pub struct NodeContext {
    /// Chain store and head.
    pub chain: Arc<Chain>,
    /// Pending transactions.
    pub mempool: Arc<Mutex<Mempool>>,
    /// The network.
    pub net: NetworkHandle,
    /// Block arrival records.
    pub arrivals: Arc<ArrivalLog>,
    /// When the node started.
    pub started: Instant,
    /// Push events for subscriptions.
    pub events: crate::events::Events,
    /// Transactions to announce to peers, batched by [`announcer`].
    announce: mpsc::Sender<SignedTx>,
    /// Head height each connected peer claimed in its last Status. A claim is dropped when the
    /// peer disconnects or fails to serve the blocks it claims, so a lying peer cannot keep
    /// the producer idle. `std::sync::Mutex`: map updates only, never across `.await`.
    peer_heights: Mutex<HashMap<PeerId, u64>>,
    /// Range sync progress (`eth_syncing`, `meshnode_syncStatus`).
    pub sync: Mutex<crate::sync::SyncProgress>,
    /// Whether a first Status exchange has completed (or there was nobody to ask).
    pub initial_sync_done: AtomicBool,
    pub(crate) sync_trigger: mpsc::Sender<PeerId>,
    /// Hashes of RPC-submitted transactions whose signatures a batch verification already
    /// accepted ([`crate::rpc::preverify`]); each is taken out when its call runs.
    verified: Mutex<HashSet<Hash>>,
}

/// Most hashes [`NodeContext::preverify`] keeps waiting for their calls.
const VERIFIED_KEEP: usize = 100_000;

/// Why a submitted transaction was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Failed a stateless check (chain id, size, signature).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Refused by the mempool.
    #[error(transparent)]
    Mempool(#[from] MempoolError),
}

impl SubmitError {
    /// Verdict for a gossip transaction that failed with this error.
    pub fn verdict(&self) -> Verdict {
        match self {
            SubmitError::Invalid(e) => e.verdict(),
            SubmitError::Mempool(_) => Verdict::Ignore,
        }
    }
}

impl NodeContext {
    /// Stateless checks plus "already in a block"; returns the verified transaction and its
    /// sender's account at head.
    fn precheck(&self, tx: SignedTx) -> Result<(Verified<SignedTx>, Account), SubmitError> {
        let hash = tx.hash();
        if self.chain.store.tx_location(&hash).ok().flatten().is_some() {
            return Err(MempoolError::AlreadyInChain.into());
        }
        let pre = self
            .verified
            .lock()
            .expect("verified lock poisoned")
            .remove(&hash);
        let verified = if pre {
            validation::check_tx_fields(&tx, self.chain.spec.chain_id)?;
            validation::verified_tx(tx)
        } else {
            validation::check_tx(tx, self.chain.spec.chain_id)?
        };
        let account = self.chain.store.account(&verified.inner().sender());
        Ok((verified, account))
    }

    /// Verifies the signatures of a burst of RPC submissions as ed25519 batches over every
    /// core and remembers the hashes that passed, so the calls that follow skip their own
    /// check. Call from a blocking thread.
    pub fn preverify(&self, txs: &[SignedTx]) {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let refs: Vec<&SignedTx> = txs.iter().collect();
        let ok = crate::crypto::verify_txs_parallel(&refs, threads);
        let mut v = self.verified.lock().expect("verified lock poisoned");
        if v.len() + txs.len() > VERIFIED_KEEP {
            v.clear();
        }
        v.extend(
            txs.iter()
                .zip(ok)
                .filter(|(_, ok)| *ok)
                .map(|(t, _)| t.hash()),
        );
    }

    /// Checks a transaction and admits it to the mempool (no publishing).
    pub fn admit_tx(&self, tx: SignedTx) -> Result<Inserted, SubmitError> {
        let (verified, account) = self.precheck(tx)?;
        let r = self
            .mempool
            .lock()
            .expect("mempool lock poisoned")
            .insert(verified, account)?;
        if let Inserted::New(h) = r {
            let _ = self.events.txs.send(h);
        }
        Ok(r)
    }

    /// Every check [`NodeContext::admit_tx`] makes, without admitting (`testmempoolaccept`).
    pub fn test_tx(&self, tx: SignedTx) -> Result<Admission, SubmitError> {
        let (verified, account) = self.precheck(tx)?;
        Ok(self
            .mempool
            .lock()
            .expect("mempool lock poisoned")
            .check(verified.inner(), account)?)
    }

    /// Admits a transaction from RPC and announces it to peers if new.
    pub async fn submit_tx(&self, tx: SignedTx) -> Result<Inserted, SubmitError> {
        let r = self.admit_tx(tx.clone())?;
        if let Inserted::New(_) = r {
            // Waits while [`ANNOUNCE_QUEUE`] announcements are queued: RPC submitters are
            // slowed to what the network carries instead of outrunning it.
            let _ = self.announce.send(tx).await;
        }
        Ok(r)
    }

    /// Queues a transaction for the next `/txs/1` batch without waiting (blocking threads). If
    /// [`ANNOUNCE_QUEUE`] announcements are already waiting, this one is dropped (with a log
    /// line): the transaction stays in our mempool and reaches peers inside a block.
    pub fn announce(&self, tx: SignedTx) {
        if self.announce.try_send(tx).is_err() {
            warn!("announcement queue full; a transaction is not announced");
        }
    }

    /// Whether a connected peer claims a head above ours, or the first Status exchange is
    /// pending.
    pub fn is_behind(&self) -> bool {
        let best = self
            .peer_heights
            .lock()
            .expect("peer heights lock poisoned")
            .values()
            .max()
            .copied();
        !self.initial_sync_done.load(Ordering::Relaxed)
            || best.unwrap_or(0) > self.chain.head().height
    }

    /// Connected peers' claimed head heights (from their last Status).
    pub fn peer_claims(&self) -> HashMap<PeerId, u64> {
        self.peer_heights
            .lock()
            .expect("peer heights lock poisoned")
            .clone()
    }

    pub(crate) fn set_peer_height(&self, peer: PeerId, height: Option<u64>) {
        let mut m = self
            .peer_heights
            .lock()
            .expect("peer heights lock poisoned");
        match height {
            Some(h) => m.insert(peer, h),
            None => m.remove(&peer),
        };
    }

    /// Admits a transaction whose signature was already verified (it came out of a block this
    /// node validated): the mempool checks only.
    fn admit_from_block(&self, tx: SignedTx) -> Result<Inserted, SubmitError> {
        let hash = tx.hash();
        if self.chain.store.tx_location(&hash).ok().flatten().is_some() {
            return Err(MempoolError::AlreadyInChain.into());
        }
        let account = self.chain.store.account(&tx.sender());
        let r = self
            .mempool
            .lock()
            .expect("mempool lock poisoned")
            .insert(validation::verified_tx(tx), account)?;
        if let Inserted::New(h) = r {
            let _ = self.events.txs.send(h);
        }
        Ok(r)
    }

    /// Admits a burst of gossip transactions in one pass and returns a verdict per message:
    /// transactions already pooled are skipped, field checks run, the remaining signatures are
    /// verified in ed25519 batches over `threads` threads, then each is admitted under one
    /// mempool lock in arrival order. A message is Rejected if any of its transactions is
    /// invalid (the sender is at fault), Accepted if any is new, else Ignored.
    pub(crate) fn admit_gossip_batch(
        &self,
        msgs: &[Vec<SignedTx>],
        threads: usize,
    ) -> Vec<Verdict> {
        let chain_id = self.chain.spec.chain_id;
        let mut verdicts = vec![Verdict::Ignore; msgs.len()];
        // (message index, tx) still to decide.
        let mut todo: Vec<(usize, &SignedTx, Hash)> = Vec::new();
        {
            let m = self.mempool.lock().expect("mempool lock poisoned");
            for (i, txs) in msgs.iter().enumerate() {
                for tx in txs {
                    let h = tx.hash();
                    if !m.contains(&h) {
                        todo.push((i, tx, h));
                    }
                }
            }
        }
        todo.retain(|(i, tx, h)| {
            if validation::check_tx_fields(tx, chain_id).is_err() {
                verdicts[*i] = Verdict::Reject;
                return false;
            }
            self.chain.store.tx_location(h).ok().flatten().is_none()
        });
        let refs: Vec<&SignedTx> = todo.iter().map(|(_, tx, _)| *tx).collect();
        let ok = crate::crypto::verify_txs_parallel(&refs, threads);
        let mut admit = Vec::with_capacity(todo.len());
        for ((i, tx, hash), good) in todo.into_iter().zip(ok) {
            if !good {
                verdicts[i] = Verdict::Reject;
            } else {
                let sender = tx.sender();
                let account = self.chain.store.account(&sender);
                admit.push((i, tx, hash, sender, account));
            }
        }
        let mut new = Vec::new();
        {
            let mut m = self.mempool.lock().expect("mempool lock poisoned");
            for (i, tx, hash, sender, account) in admit {
                if verdicts[i] == Verdict::Reject {
                    continue;
                }
                let tx = validation::verified_tx(tx.clone());
                if let Ok(Inserted::New(h)) = m.insert_keyed(tx, hash, sender, account) {
                    verdicts[i] = Verdict::Accept;
                    new.push(h);
                }
            }
        }
        for h in new {
            let _ = self.events.txs.send(h);
        }
        verdicts
    }

    /// Imports a block (gossip or sync); then updates the mempool for the new head (drops what
    /// the new canonical blocks include, re-checks affected senders) and, after a reorg,
    /// returns the undone blocks' transactions that the new chain does not include and that
    /// are still valid on it (mempool admission, no second signature check), announcing them
    /// again. Call from a blocking thread (it may send to the network task).
    pub(crate) fn import_block(&self, block: Block) -> Result<Imported, ImportError> {
        let known: HashSet<Hash> = {
            let m = self.mempool.lock().expect("mempool lock poisoned");
            block
                .txs
                .iter()
                .map(SignedTx::hash)
                .filter(|h| m.contains(h))
                .collect()
        };
        let imported = self.chain.import(block, &known)?;
        let rechecked = self
            .mempool
            .lock()
            .expect("mempool lock poisoned")
            .on_new_head(&imported.applied, &imported.undone, &self.chain.store);
        if rechecked > 0 {
            debug!(dropped = rechecked, "mempool re-check after new head");
        }
        self.events.new_heads(&imported.applied);
        if !imported.undone.is_empty() {
            let included: HashSet<Hash> = imported
                .applied
                .iter()
                .flat_map(|b| b.txs.iter().map(SignedTx::hash))
                .collect();
            let (mut back, mut dropped) = (0, 0);
            // Lowest block first, so each sender's nonces return in order.
            for b in imported.undone.iter().rev() {
                for tx in b.txs.iter().filter(|t| !included.contains(&t.hash())) {
                    match self.admit_from_block(tx.clone()) {
                        Ok(Inserted::New(_)) => {
                            // Announce again: peers on the new chain may never have seen it.
                            self.announce(tx.clone());
                            back += 1
                        }
                        Ok(Inserted::Known(_)) => back += 1,
                        Err(_) => dropped += 1,
                    }
                }
            }
            info!(
                returned = back,
                dropped, "reorg: undone transactions back in the mempool"
            );
        }
        Ok(imported)
    }
}

/// Loads the node's libp2p key from `path`, creating it (mode 0600) on first start.
fn node_identity(path: &std::path::Path) -> anyhow::Result<libp2p::identity::Keypair> {
    let key = if path.exists() {
        Keypair::read_file(path)?
    } else {
        let k = Keypair::generate();
        k.write_file(path)?;
        k
    };
    Ok(libp2p::identity::Keypair::ed25519_from_bytes(
        key.secret_bytes(),
    )?)
}

/// What a running node writes to `DATA_DIR/node.json` once it listens (for devnet tooling
/// and tests that start nodes on port 0).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeFile {
    /// libp2p peer id.
    pub peer_id: String,
    /// Listen multiaddrs with `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
    /// JSON-RPC URL (HTTP; the same port serves WebSocket).
    pub rpc_url: String,
    /// Process id.
    pub pid: u32,
}

/// Runs a node until `shutdown` resolves, then stops every task and flushes the store.
pub async fn run(
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let node_file = cfg.data_dir.join("node.json");
    let _ = std::fs::remove_file(&node_file);
    let chain = Arc::new(Chain::open(&cfg.data_dir.join("chain"), cfg.spec.clone())?);
    let head = chain.head();
    info!(chain_id = cfg.spec.chain_id, height = head.height, hash = %head.hash, "chain opened");
    let identity = node_identity(&cfg.node_key)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut net_stop = stop_rx.clone();
    let net_cfg = NetworkConfig {
        chain_id: cfg.spec.chain_id,
        listen: cfg.listen.clone(),
        bootnodes: cfg.bootnodes.clone(),
        target_peers: cfg.target_peers,
        queue_len: 4096,
    };
    let (net, chans, net_task) = p2p::start(identity, net_cfg, async move {
        let _ = net_stop.changed().await;
    })?;
    let (sync_trigger, sync_rx) = mpsc::channel(256);
    let events = crate::events::Events::default();
    let (announce, announce_rx) = mpsc::channel(ANNOUNCE_QUEUE);
    let ctx = Arc::new(NodeContext {
        chain,
        mempool: Arc::new(Mutex::new(Mempool::with_config(cfg.mempool))),
        net: net.clone(),
        arrivals: Arc::new(ArrivalLog::with_broadcast(events.arrivals.clone())),
        started: Instant::now(),
        events,
        announce,
        peer_heights: Mutex::new(HashMap::new()),
        sync: Mutex::new(Default::default()),
        initial_sync_done: AtomicBool::new(cfg.bootnodes.is_empty()),
        sync_trigger,
        verified: Mutex::new(HashSet::new()),
    });

    let mut tasks = Vec::new();
    let threads = vec![
        spawn_thread("tx-validation", {
            let ctx = ctx.clone();
            let rx = chans.txs;
            move || tx_validation(ctx, rx)
        })?,
        spawn_thread("block-validation", {
            let ctx = ctx.clone();
            let rx = chans.blocks;
            move || block_validation(ctx, rx)
        })?,
    ];
    tasks.push(tokio::spawn(announcer(
        net.clone(),
        announce_rx,
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(events_task(
        ctx.clone(),
        chans.events,
        stop_rx.clone(),
    )));
    tasks.push(tokio::spawn(crate::sync::sync_task(
        ctx.clone(),
        sync_rx,
        stop_rx.clone(),
    )));
    if let Some(key) = cfg.validator_key.clone() {
        if !ctx.chain.spec.validators.contains(&key.public()) {
            warn!(address = %key.address(), "validator key is not in the genesis validator set; it will never produce");
        }
        tasks.push(tokio::spawn(crate::chain::producer::run(
            ctx.clone(),
            key,
            stop_rx.clone(),
        )));
    }
    {
        // Queued transactions past their lifetime leave the mempool.
        let ctx = ctx.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let n = ctx
                    .mempool
                    .lock()
                    .expect("mempool lock poisoned")
                    .expire(Instant::now());
                if n > 0 {
                    info!(dropped = n, "queued transactions expired");
                }
            }
        }));
    }
    {
        // A node with bootnodes but nobody answering a Status still produces after 3 slots.
        let ctx = ctx.clone();
        let wait = std::time::Duration::from_millis(3 * ctx.chain.spec.slot_ms);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            ctx.initial_sync_done.store(true, Ordering::Relaxed);
        }));
    }

    // Bitcoin Core's scheme: a fresh cookie each start unless a user and password are set;
    // credentials required off loopback or when configured.
    let (credential, cookie) = match &cfg.rpc_user_pass {
        Some(up) => (up.clone(), None),
        None => {
            let (path, line) = crate::rpc::auth::write_cookie(&cfg.data_dir)
                .context("writing the RPC cookie file")?;
            (line, Some(path))
        }
    };
    let auth_required = !cfg.rpc_addr.ip().is_loopback() || cfg.rpc_user_pass.is_some();
    let auth = crate::rpc::auth::AuthLayer::new(&[credential], auth_required);
    let rpc = crate::rpc::server::start(cfg.rpc_addr, ctx.clone(), auth).await?;
    let mut rpc_addr = rpc.local_addr;
    if rpc_addr.ip().is_unspecified() {
        // Local tooling reaches a wildcard bind through loopback.
        rpc_addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    info!(url = %format!("http://{rpc_addr}"), "JSON-RPC listening (HTTP and WebSocket)");

    // Wait for the listen addresses, then tell tooling where we are.
    let mut info = net.info().await.map_err(anyhow::Error::msg)?;
    for _ in 0..100 {
        if !info.listen_addrs.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        info = net.info().await.map_err(anyhow::Error::msg)?;
    }
    let nf = NodeFile {
        peer_id: info.peer_id.clone(),
        listen_addrs: info.listen_addrs.clone(),
        rpc_url: format!("http://{rpc_addr}"),
        pid: std::process::id(),
    };
    let tmp = cfg.data_dir.join("node.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&nf)?)?;
    std::fs::rename(&tmp, &node_file)?;
    info!(peer_id = %info.peer_id, addrs = ?info.listen_addrs, "node started");

    shutdown.await;
    info!("shutting down");
    rpc.handle.stop().ok();
    rpc.handle.stopped().await;
    let _ = stop_tx.send(true);
    for t in tasks {
        t.abort();
        let _ = t.await;
    }
    let _ = net_task.await;
    // The validation threads end when the network's senders are dropped with its task.
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    ctx.chain.store.flush()?;
    let _ = std::fs::remove_file(&node_file);
    if let Some(c) = cookie {
        let _ = std::fs::remove_file(c);
    }
    info!("stopped");
    Ok(())
}

fn spawn_thread(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    Ok(std::thread::Builder::new().name(name.into()).spawn(f)?)
}

/// Most gossip transactions validated in one pass.
const TX_BATCH: usize = 2048;

/// Validates gossip transactions in bursts: whatever has queued up (up to [`TX_BATCH`]) is
/// checked in one pass with batch signature verification over every core, then each
/// message's verdict is reported.
fn tx_validation(ctx: Arc<NodeContext>, mut rx: mpsc::Receiver<GossipMessage<Vec<SignedTx>>>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    while let Some(first) = rx.blocking_recv() {
        let mut n = first.payload.len();
        let mut msgs = vec![first];
        while n < TX_BATCH {
            match rx.try_recv() {
                Ok(m) => {
                    n += m.payload.len();
                    msgs.push(m);
                }
                Err(_) => break,
            }
        }
        let payloads: Vec<Vec<SignedTx>> = msgs
            .iter_mut()
            .map(|m| std::mem::take(&mut m.payload))
            .collect();
        let verdicts = ctx.admit_gossip_batch(&payloads, threads);
        for (m, verdict) in msgs.into_iter().zip(verdicts) {
            if verdict == Verdict::Reject {
                warn!(peer = %m.source, "rejected gossip transaction");
            }
            ctx.net.report_blocking(m.id, m.source, verdict);
        }
    }
}

/// Validates gossip blocks, records arrival times, and reports each verdict.
fn block_validation(ctx: Arc<NodeContext>, mut rx: mpsc::Receiver<GossipMessage<Block>>) {
    while let Some(m) = rx.blocking_recv() {
        let hash = m.payload.hash();
        let height = m.payload.header.height;
        ctx.arrivals.update(hash, |a| {
            a.height = height;
            a.first_seen_us.get_or_insert(m.received_us);
            a.bytes = m.bytes as u64;
            a.txs = m.payload.txs.len() as u64;
        });
        let verdict = match ctx.import_block(m.payload) {
            Ok(imported) => {
                let now = crate::now_us();
                ctx.arrivals.update(hash, |a| a.validated_us = Some(now));
                debug!(height, %hash, canonical = imported.applied.len(), "imported gossip block");
                Verdict::Accept
            }
            Err(ImportError::Invalid(e)) => {
                if let ValidationError::UnknownParent(_) = e {
                    // The sync asks the peer's Status; the block's height alone is not trusted.
                    let _ = ctx.sync_trigger.try_send(m.source);
                }
                if e.verdict() == Verdict::Reject {
                    warn!(peer = %m.source, %hash, cause = %e, "rejected gossip block");
                } else {
                    debug!(peer = %m.source, %hash, cause = %e, "ignored gossip block");
                }
                e.verdict()
            }
            Err(ImportError::Store(e)) => {
                warn!(%hash, cause = %e, "store error importing block");
                Verdict::Ignore
            }
        };
        ctx.net.report_blocking(m.id, m.source, verdict);
    }
}

/// Announcements waiting for a batch, at most.
pub const ANNOUNCE_QUEUE: usize = 8_192;
/// Most transactions we put in one `/txs/1` message (receivers accept up to
/// [`validation::MAX_TX_BATCH`]): 512 × ~156 bytes stays under glibc's 128 KiB mmap threshold,
/// so the copies gossipsub makes of each message come from the heap, not fresh pages.
pub const ANNOUNCE_BATCH: usize = 512;
/// How long the first transaction of a batch waits for company before the batch goes out.
pub const ANNOUNCE_DELAY: std::time::Duration = std::time::Duration::from_millis(5);

/// Publishes our new transactions (RPC submissions, reorg returns) in `/txs/1` batches: the
/// first waits up to [`ANNOUNCE_DELAY`] for more, up to [`ANNOUNCE_BATCH`] per
/// message. Transactions from gossip are relayed by gossipsub itself, not announced again.
async fn announcer(
    net: NetworkHandle,
    mut rx: mpsc::Receiver<SignedTx>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            t = rx.recv() => match t { Some(t) => t, None => return },
            _ = stop.changed() => return,
        };
        let deadline = tokio::time::Instant::now() + ANNOUNCE_DELAY;
        let mut batch = vec![first];
        while batch.len() < ANNOUNCE_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(t)) => batch.push(t),
                _ => break,
            }
        }
        let n = batch.len();
        let bytes = crate::types::encoding::encode(&batch);
        if let Err(e) = net.publish(TopicKind::TxBatch, bytes).await {
            // InsufficientPeers before the mesh forms: the txs are still pooled here.
            debug!(txs = n, cause = %e, "publishing a transaction batch failed");
        }
    }
}

/// Answers sync requests and turns new connections into sync triggers.
async fn events_task(
    ctx: Arc<NodeContext>,
    mut rx: mpsc::Receiver<NetworkEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => match ev { Some(ev) => ev, None => return },
            _ = stop.changed() => return,
        };
        match ev {
            NetworkEvent::PeerConnected(peer) => {
                // Status right away (not behind a running download), so a sync in progress
                // can spread its segments over this peer too.
                tokio::spawn(crate::sync::on_connect(ctx.clone(), peer));
            }
            NetworkEvent::PeerDisconnected(peer) => ctx.set_peer_height(peer, None),
            NetworkEvent::SyncRequest {
                peer,
                request,
                channel,
            } => {
                let resp = match request {
                    SyncRequest::Status => SyncResponse::Status(crate::sync::our_status(&ctx)),
                    SyncRequest::BlocksByRange { start, count } => {
                        let mut out = Vec::new();
                        let mut total = 0usize;
                        for h in start..start.saturating_add(count.min(MAX_BLOCKS_PER_REQUEST)) {
                            let Ok(Some(hash)) = ctx.chain.store.hash_at(h) else {
                                break;
                            };
                            let Ok(Some(b)) = ctx.chain.store.block_bytes(&hash) else {
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
                };
                ctx.net.respond(channel, resp).await;
            }
        }
    }
}
