//! Range sync: Status exchange, parallel download of missing blocks from every peer that has
//! them, and a step-back search for the fork point when a peer's chain branches below ours.
//!
//! The missing range is cut into segments of [`MAX_BLOCKS_PER_REQUEST`] blocks; at most
//! [`MAX_IN_FLIGHT`] BlocksByRange requests run at once, spread over the peers whose Status
//! claims the segment (fewest in flight first, at most [`PER_PEER`] each), and at most
//! [`MAX_IN_FLIGHT`] answered segments wait in memory. Segments are applied strictly in height
//! order. A failed, empty or invalid answer puts the segment back for another peer and drops
//! that peer's claim.

use crate::chain::ImportError;
use crate::node::NodeContext;
use crate::p2p::sync::{Status, SyncRequest, SyncResponse, MAX_BLOCKS_PER_REQUEST};
use crate::validation::{self, ValidationError};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

/// Most BlocksByRange requests in flight at once (and most answered segments buffered).
pub const MAX_IN_FLIGHT: usize = 8;
/// Most requests in flight to one peer.
pub const PER_PEER: usize = 2;

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

/// Our Status.
pub fn our_status(ctx: &NodeContext) -> Status {
    let head = ctx.chain.head();
    Status {
        genesis: ctx.chain.store.genesis_hash().unwrap_or_default(),
        head_height: head.height,
        head_hash: head.hash,
    }
}

/// Runs until `stop`: each trigger (a new connection, a block with an unknown parent) syncs
/// with that peer, and through it with every peer that has what we miss.
pub async fn sync_task(
    ctx: Arc<NodeContext>,
    mut rx: mpsc::Receiver<PeerId>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let peer = tokio::select! {
            p = rx.recv() => match p { Some(p) => p, None => return },
            _ = stop.changed() => return,
        };
        if let Err(e) = sync_with(&ctx, peer).await {
            // Whatever it claimed, this peer did not deliver: stop counting its height.
            ctx.set_peer_height(peer, None);
            debug!(%peer, cause = %e, "sync with peer stopped");
        }
    }
}

/// A new connection: learn the peer's Status; sync if its chain is preferred.
pub async fn on_connect(ctx: Arc<NodeContext>, peer: PeerId) {
    match status_of(&ctx, peer).await {
        Ok(status) => match better(&ctx, &status) {
            Ok(true) => {
                let _ = ctx.sync_trigger.try_send(peer);
            }
            Ok(false) => ctx.initial_sync_done.store(true, Ordering::Relaxed),
            Err(e) => debug!(%peer, cause = %e, "status check failed"),
        },
        Err(e) => {
            ctx.set_peer_height(peer, None);
            debug!(%peer, cause = %e, "no status from new peer");
        }
    }
}

/// Asks `peer` for its Status and records its claim; a peer on another genesis is
/// disconnected and not dialled again by us.
async fn status_of(ctx: &NodeContext, peer: PeerId) -> Result<Status, String> {
    let SyncResponse::Status(status) = ctx.net.request(peer, SyncRequest::Status).await? else {
        return Err("peer answered Status with something else".into());
    };
    if status.genesis != our_status(ctx).genesis {
        let _ = ctx.net.remove(peer).await;
        return Err(format!(
            "peer is on genesis {}; disconnected",
            status.genesis
        ));
    }
    ctx.set_peer_height(peer, Some(status.head_height));
    Ok(status)
}

/// Whether fork choice prefers the chain `status` describes over ours (and we lack its head).
fn better(ctx: &NodeContext, status: &Status) -> Result<bool, String> {
    let head = ctx.chain.head();
    let known = ctx
        .chain
        .store
        .has_block(&status.head_hash)
        .map_err(|e| e.to_string())?;
    Ok(!known && crate::chain::prefers(status.head_height, &status.head_hash, &head))
}

/// Syncs with `peer` while its chain is preferred over ours: parallel download above our head
/// from every peer that claims the blocks; if the chains fork below our head, a step-back search
/// with `peer` alone.
async fn sync_with(ctx: &Arc<NodeContext>, peer: PeerId) -> Result<(), String> {
    loop {
        let status = status_of(ctx, peer).await?;
        if !better(ctx, &status)? {
            ctx.initial_sync_done.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let imported = match parallel_download(ctx).await? {
            Download::Imported(n) => n,
            Download::ForkBelow => 0,
        };
        if imported == 0 && !step_back(ctx, peer, &status).await? {
            return Err("peer's claimed head was not among the blocks it served".into());
        }
    }
}

/// Imports encoded blocks that should start at height `start`. Returns (imported, next
/// height, whether a block's parent was unknown: the chains fork below `start`). Runs on a
/// blocking thread.
fn import_encoded(
    ctx: &NodeContext,
    start: u64,
    blocks: Vec<Vec<u8>>,
) -> Result<(u64, u64, bool), String> {
    let (mut n, mut next) = (0u64, start);
    for bytes in blocks {
        let block = validation::decode_block(&bytes).map_err(|e| e.to_string())?;
        let hash = block.hash();
        let height = block.header.height;
        if height != next {
            return Err(format!("peer served height {height}, expected {next}"));
        }
        let txs = block.txs.len() as u64;
        match ctx.import_block(block) {
            Ok(_) => {
                let now = crate::now_us();
                ctx.arrivals.update(hash, |a| {
                    a.height = height;
                    a.validated_us.get_or_insert(now);
                    a.bytes = bytes.len() as u64;
                    a.txs = txs;
                });
                n += 1;
            }
            Err(ImportError::Invalid(ValidationError::Known)) => {}
            Err(ImportError::Invalid(ValidationError::UnknownParent(_))) => {
                return Ok((n, next, true))
            }
            Err(e) => return Err(format!("block {height}: {e}")),
        }
        next = height + 1;
    }
    Ok((n, next, false))
}

enum Download {
    Imported(u64),
    ForkBelow,
}

/// Downloads everything above our head that connected peers claim, in parallel segments.
async fn parallel_download(ctx: &Arc<NodeContext>) -> Result<Download, String> {
    // Fresh claims from every connected peer.
    let peers = ctx.net.peers().await?;
    let statuses = futures::future::join_all(
        peers
            .iter()
            .filter_map(|p| p.peer_id.parse::<PeerId>().ok())
            .map(|p| async move { (p, status_of(ctx, p).await) }),
    )
    .await;
    for (p, r) in statuses {
        if r.is_err() {
            ctx.set_peer_height(p, None);
        }
    }
    let head = ctx.chain.head().height;
    let mut claims: HashMap<PeerId, u64> = ctx
        .peer_claims()
        .into_iter()
        .filter(|(_, h)| *h > head)
        .collect();
    let Some(&target) = claims.values().max() else {
        return Ok(Download::Imported(0));
    };
    let started = Instant::now();
    {
        let mut p = ctx.sync.lock().expect("sync lock poisoned");
        p.active = true;
        p.starting_block = head;
        p.highest_block = target;
    }
    let result = download_range(ctx, head + 1, target, &mut claims).await;
    let mut p = ctx.sync.lock().expect("sync lock poisoned");
    p.active = false;
    if let Ok(Download::Imported(n)) = &result {
        p.last_blocks = *n;
        p.last_seconds = started.elapsed().as_secs_f64();
        if *n > 0 {
            info!(
                blocks = n,
                seconds = p.last_seconds,
                per_second = *n as f64 / p.last_seconds.max(1e-9),
                peers = p.served_by.len(),
                "range sync done"
            );
        }
    }
    result
}

type Answer = (u64, u64, PeerId, Result<SyncResponse, String>);

async fn download_range(
    ctx: &Arc<NodeContext>,
    from: u64,
    target: u64,
    claims: &mut HashMap<PeerId, u64>,
) -> Result<Download, String> {
    let mut queue: VecDeque<(u64, u64)> = (from..=target)
        .step_by(MAX_BLOCKS_PER_REQUEST as usize)
        .map(|s| (s, MAX_BLOCKS_PER_REQUEST.min(target + 1 - s)))
        .collect();
    let mut in_flight = FuturesUnordered::new();
    let mut busy: HashMap<PeerId, usize> = HashMap::new();
    let mut ready: BTreeMap<u64, (PeerId, Vec<Vec<u8>>)> = BTreeMap::new();
    let (mut next_apply, mut imported) = (from, 0u64);
    let mut failed: HashSet<PeerId> = HashSet::new();
    loop {
        // Peers whose Status arrived meanwhile (new connections) join in.
        for (p, h) in ctx.peer_claims() {
            if h >= next_apply && !failed.contains(&p) {
                claims.insert(p, h);
            }
        }
        while in_flight.len() < MAX_IN_FLIGHT {
            let Some(&(start, count)) = queue.front() else {
                break;
            };
            // A full buffer stops read-ahead, but never the segment the chain continues with
            // (it may be back in the queue after a failure while later ones wait).
            if ready.len() >= MAX_IN_FLIGHT && start != next_apply {
                break;
            }
            let pick = claims
                .iter()
                .filter(|(p, h)| **h >= start && busy.get(*p).copied().unwrap_or(0) < PER_PEER)
                .min_by_key(|(p, _)| busy.get(*p).copied().unwrap_or(0))
                .map(|(p, _)| *p);
            let Some(peer) = pick else { break };
            queue.pop_front();
            *busy.entry(peer).or_default() += 1;
            let net = ctx.net.clone();
            in_flight.push(async move {
                let r = net
                    .request(peer, SyncRequest::BlocksByRange { start, count })
                    .await;
                (start, count, peer, r) as Answer
            });
        }
        if in_flight.is_empty() {
            if queue.is_empty() && ready.is_empty() {
                return Ok(Download::Imported(imported));
            }
            if ready.is_empty() || !ready.contains_key(&next_apply) {
                return Err(format!("no peer left that can serve height {next_apply}"));
            }
        } else {
            let (start, count, peer, r) = in_flight.next().await.expect("not empty");
            *busy.entry(peer).or_default() -= 1;
            match r {
                Ok(SyncResponse::Blocks(bs)) if !bs.is_empty() && bs.len() as u64 <= count => {
                    let got = bs.len() as u64;
                    if got < count {
                        queue.push_front((start + got, count - got));
                    }
                    ready.insert(start, (peer, bs));
                }
                other => {
                    debug!(%peer, start, answer = ?other.map(|_| "wrong answer"), "segment failed; retrying elsewhere");
                    failed.insert(peer);
                    claims.remove(&peer);
                    ctx.set_peer_height(peer, None);
                    queue.push_front((start, count));
                }
            }
        }
        // Apply every segment that continues the chain.
        while let Some((peer, bs)) = ready.remove(&next_apply) {
            let n = bs.len() as u64;
            let c = ctx.clone();
            let start = next_apply;
            let r = tokio::task::spawn_blocking(move || import_encoded(&c, start, bs))
                .await
                .map_err(|e| e.to_string())?;
            match r {
                Ok((_, _, true)) if imported == 0 => return Ok(Download::ForkBelow),
                Ok((got, next, false)) => {
                    imported += got;
                    next_apply = next;
                    let mut p = ctx.sync.lock().expect("sync lock poisoned");
                    *p.served_by.entry(peer.to_string()).or_default() += n;
                }
                failed_import => {
                    // The segment does not continue the chain (a fork in mid-range, or invalid
                    // blocks): drop the peer's claim and fetch the rest elsewhere, from the
                    // head as it now is (part of the segment may have been imported).
                    debug!(%peer, start, cause = ?failed_import.err(), "segment rejected; retrying elsewhere");
                    failed.insert(peer);
                    claims.remove(&peer);
                    ctx.set_peer_height(peer, None);
                    let resume = ctx.chain.head().height + 1;
                    if resume < start + n {
                        queue.push_front((resume, start + n - resume));
                    }
                    imported += resume.saturating_sub(start);
                    next_apply = resume;
                    break;
                }
            }
        }
    }
}

/// The chains fork below our head: walk the range start down a batch at a time until
/// `peer`'s blocks connect to ours, then import its chain up to its claim (the blocks form a
/// side branch that import turns into a reorg once fork choice prefers it). Returns whether
/// anything was imported.
async fn step_back(ctx: &Arc<NodeContext>, peer: PeerId, status: &Status) -> Result<bool, String> {
    let head = ctx.chain.head();
    let mut start = (head.height + 1).min(status.head_height).max(1);
    let mut imported = 0;
    while start <= status.head_height {
        let req = SyncRequest::BlocksByRange {
            start,
            count: MAX_BLOCKS_PER_REQUEST,
        };
        let SyncResponse::Blocks(blocks) = ctx.net.request(peer, req).await? else {
            return Err("peer answered BlocksByRange with something else".into());
        };
        if blocks.is_empty() {
            return Err(format!("peer served no blocks from {start}"));
        }
        let n = blocks.len() as u64;
        let c = ctx.clone();
        let (got, next, fork_below) =
            tokio::task::spawn_blocking(move || import_encoded(&c, start, blocks))
                .await
                .map_err(|e| e.to_string())??;
        if fork_below {
            if start == 1 {
                return Err("peer's chain does not connect to our genesis".into());
            }
            start = start.saturating_sub(MAX_BLOCKS_PER_REQUEST).max(1);
            debug!(%peer, start, "peer's chain forks lower: stepping back");
            continue;
        }
        *ctx.sync
            .lock()
            .expect("sync lock poisoned")
            .served_by
            .entry(peer.to_string())
            .or_default() += n;
        info!(%peer, from = start, imported = got, head = ctx.chain.head().height, "synced blocks");
        imported += got;
        start = next;
    }
    Ok(imported > 0)
}
