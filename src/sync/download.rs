//! The range download: parallel BlocksByRange from every peer that claims the missing
//! blocks, applied in height order, and a step-back search for the fork point when a peer's
//! chain branches below ours.
//!
//! The missing range is cut into segments of [`SyncConfig::segment`] blocks; at most
//! [`SyncConfig::max_in_flight`] requests run at once, spread over the peers whose Status
//! claims the segment (fewest in flight first, at most [`SyncConfig::per_peer`] each), and at
//! most `max_in_flight` answered segments wait in memory. A failed, empty or invalid answer
//! puts the segment back for another peer, drops that peer's claim, and (when the peer is to
//! blame, [`SyncError::blames_peer`]) lowers its score.

use super::{Sync, SyncConfig, SyncError};
use crate::chain::ImportError;
use crate::p2p::codec::{Status, SyncRequest, SyncResponse};
use crate::p2p::NetworkError;
use crate::types::SignedTx;
use crate::validation::{self, ValidationError};
use futures::stream::{FuturesUnordered, StreamExt};
use libp2p::PeerId;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;
use tracing::{debug, info};

/// Downloads of at least this many blocks get a progress bar on a terminal.
const PROGRESS_BAR_BLOCKS: u64 = 64;

enum Download {
    Imported(u64),
    ForkBelow,
}

type Answer = (u64, u64, PeerId, Result<SyncResponse, NetworkError>);

impl Sync {
    /// Syncs with `peer` while its chain is preferred over ours: parallel download above our
    /// head from every peer that claims the blocks; if the chains fork below our head, a
    /// step-back search with `peer` alone.
    pub(super) async fn sync_with(&self, peer: PeerId) -> Result<(), SyncError> {
        loop {
            let status = self.status_of(peer).await?;
            if !self.better(&status)? {
                self.status.mark_initial_done();
                return Ok(());
            }
            let imported = match self.parallel_download().await? {
                Download::Imported(n) => n,
                Download::ForkBelow => 0,
            };
            if imported == 0 && !self.step_back(peer, &status).await? {
                return Err(SyncError::ClaimNotServed);
            }
        }
    }

    /// Imports encoded blocks that should start at height `start`. Returns (imported, next
    /// height, whether a block's parent was unknown: the chains fork below `start`). Runs on
    /// a blocking thread.
    pub fn import_encoded(
        &self,
        start: u64,
        blocks: Vec<Vec<u8>>,
    ) -> Result<(u64, u64, bool), SyncError> {
        let (mut n, mut next) = (0u64, start);
        for bytes in blocks {
            let block = validation::decode_block(&bytes).map_err(|cause| SyncError::Invalid {
                height: next,
                cause,
            })?;
            let height = block.header.height;
            if height != next {
                return Err(SyncError::WrongHeight {
                    expected: next,
                    got: height,
                });
            }
            let verified = self
                .pool
                .verified_among(block.txs.iter().map(SignedTx::hash));
            match self.chain.import(block, &verified) {
                Ok(_) => n += 1,
                Err(ImportError::Invalid(ValidationError::Known)) => {}
                Err(ImportError::Invalid(ValidationError::UnknownParent(_))) => {
                    return Ok((n, next, true))
                }
                Err(ImportError::Invalid(cause)) => {
                    return Err(SyncError::Invalid { height, cause })
                }
                Err(ImportError::Store(e)) => return Err(e.into()),
            }
            next = height + 1;
        }
        Ok((n, next, false))
    }

    /// [`Sync::import_encoded`] on a blocking thread.
    async fn import_blocking(
        &self,
        start: u64,
        blocks: Vec<Vec<u8>>,
    ) -> Result<(u64, u64, bool), SyncError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.import_encoded(start, blocks))
            .await
            .map_err(|e| SyncError::Task(e.to_string()))?
    }

    /// Downloads everything above our head that connected peers claim, in parallel segments.
    async fn parallel_download(&self) -> Result<Download, SyncError> {
        // Fresh claims from every connected peer.
        let peers = self.net.peers().await.map_err(SyncError::Network)?;
        let statuses = futures::future::join_all(
            peers
                .iter()
                .filter_map(|p| p.peer_id.parse::<PeerId>().ok())
                .map(|p| async move { (p, self.status_of(p).await) }),
        )
        .await;
        for (p, r) in statuses {
            if r.is_err() {
                self.status.set_claim(p, None);
            }
        }
        let head = self.chain.head().height;
        let mut claims: HashMap<PeerId, u64> = self
            .status
            .claims()
            .into_iter()
            .filter(|(_, h)| *h > head)
            .collect();
        let Some(&target) = claims.values().max() else {
            return Ok(Download::Imported(0));
        };
        let started = Instant::now();
        self.status.update_progress(|p| {
            p.active = true;
            p.starting_block = head;
            p.highest_block = target;
        });
        // A progress bar on a terminal for a long download (main's tracing-indicatif layer);
        // the "synced blocks" lines otherwise.
        let long = target - head >= PROGRESS_BAR_BLOCKS;
        let span = if long {
            tracing::info_span!("range sync", "indicatif.pb_show" = tracing::field::Empty)
        } else {
            tracing::info_span!("range sync")
        };
        if long {
            use tracing_indicatif::span_ext::IndicatifSpanExt;
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "range sync {bar:40} {pos}/{len} blocks ({per_sec}, eta {eta})",
            ) {
                span.pb_set_style(&style);
            }
            span.pb_set_length(target - head);
        }
        let result = tracing::Instrument::instrument(
            self.download_range(head + 1, target, &mut claims),
            span,
        )
        .await;
        self.status.update_progress(|p| {
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
        });
        result
    }

    async fn download_range(
        &self,
        from: u64,
        target: u64,
        claims: &mut HashMap<PeerId, u64>,
    ) -> Result<Download, SyncError> {
        let SyncConfig {
            segment,
            max_in_flight,
            per_peer,
            ..
        } = self.cfg;
        let segment = segment.max(1);
        let mut queue: VecDeque<(u64, u64)> = (from..=target)
            .step_by(segment as usize)
            .map(|s| (s, segment.min(target + 1 - s)))
            .collect();
        let mut in_flight = FuturesUnordered::new();
        let mut busy: HashMap<PeerId, usize> = HashMap::new();
        let mut ready: BTreeMap<u64, (PeerId, Vec<Vec<u8>>)> = BTreeMap::new();
        let (mut next_apply, mut imported) = (from, 0u64);
        let mut failed: HashSet<PeerId> = HashSet::new();
        loop {
            // Peers whose Status arrived meanwhile (new connections) join in.
            for (p, h) in self.status.claims() {
                if h >= next_apply && !failed.contains(&p) {
                    claims.insert(p, h);
                }
            }
            while in_flight.len() < max_in_flight {
                let Some(&(start, count)) = queue.front() else {
                    break;
                };
                // A full buffer stops read-ahead, but never the segment the chain continues
                // with (it may be back in the queue after a failure while later ones wait).
                if ready.len() >= max_in_flight && start != next_apply {
                    break;
                }
                let pick = claims
                    .iter()
                    .filter(|(p, h)| **h >= start && busy.get(*p).copied().unwrap_or(0) < per_peer)
                    .min_by_key(|(p, _)| busy.get(*p).copied().unwrap_or(0))
                    .map(|(p, _)| *p);
                let Some(peer) = pick else { break };
                queue.pop_front();
                *busy.entry(peer).or_default() += 1;
                let net = self.net.clone();
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
                    return Err(SyncError::NoPeerLeft(next_apply));
                }
            } else {
                let (start, count, peer, r) = in_flight.next().await.expect("not empty");
                *busy.entry(peer).or_default() -= 1;
                let err = match r {
                    Ok(SyncResponse::Blocks(bs)) if !bs.is_empty() && bs.len() as u64 <= count => {
                        let got = bs.len() as u64;
                        if got < count {
                            queue.push_front((start + got, count - got));
                        }
                        ready.insert(start, (peer, bs));
                        None
                    }
                    Ok(SyncResponse::Blocks(bs)) if bs.is_empty() => {
                        Some(SyncError::Empty { start })
                    }
                    Ok(_) => Some(SyncError::WrongResponse("BlocksByRange")),
                    Err(e) => Some(SyncError::Network(e)),
                };
                if let Some(e) = err {
                    debug!(%peer, start, cause = %e, "segment failed; retrying elsewhere");
                    failed.insert(peer);
                    claims.remove(&peer);
                    self.blame(peer, &e).await;
                    queue.push_front((start, count));
                }
            }
            // Apply every segment that continues the chain.
            while let Some((peer, bs)) = ready.remove(&next_apply) {
                let n = bs.len() as u64;
                let start = next_apply;
                match self.import_blocking(start, bs).await {
                    Ok((_, _, true)) if imported == 0 => return Ok(Download::ForkBelow),
                    Ok((got, next, false)) => {
                        imported += got;
                        next_apply = next;
                        tracing_indicatif::span_ext::IndicatifSpanExt::pb_inc(
                            &tracing::Span::current(),
                            got,
                        );
                        self.status.update_progress(|p| {
                            *p.served_by.entry(peer.to_string()).or_default() += n
                        });
                    }
                    failed_import => {
                        // The segment does not continue the chain (a fork in mid-range, or
                        // invalid blocks): drop the peer's claim (blame it if its blocks are
                        // invalid) and fetch the rest elsewhere, from the head as it now is
                        // (part of the segment may have been imported).
                        let e = failed_import.err().unwrap_or(SyncError::ClaimNotServed);
                        debug!(%peer, start, cause = %e, "segment rejected; retrying elsewhere");
                        failed.insert(peer);
                        claims.remove(&peer);
                        self.blame(peer, &e).await;
                        let resume = self.chain.head().height + 1;
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

    /// The chains fork below our head: walk the range start down a segment at a time until
    /// `peer`'s blocks connect to ours, then import its chain up to its claim (the blocks form
    /// a side branch that import turns into a reorg once fork choice prefers it). Returns
    /// whether anything was imported.
    async fn step_back(&self, peer: PeerId, status: &Status) -> Result<bool, SyncError> {
        let segment = self.cfg.segment.max(1);
        let head = self.chain.head();
        let mut start = (head.height + 1).min(status.head_height).max(1);
        let mut imported = 0;
        while start <= status.head_height {
            let req = SyncRequest::BlocksByRange {
                start,
                count: segment,
            };
            let SyncResponse::Blocks(blocks) = self
                .net
                .request(peer, req)
                .await
                .map_err(SyncError::Network)?
            else {
                return Err(SyncError::WrongResponse("BlocksByRange"));
            };
            if blocks.is_empty() {
                return Err(SyncError::Empty { start });
            }
            let n = blocks.len() as u64;
            let (got, next, fork_below) = self.import_blocking(start, blocks).await?;
            if fork_below {
                if start == 1 {
                    return Err(SyncError::NoCommonAncestor);
                }
                start = start.saturating_sub(segment).max(1);
                debug!(%peer, start, "peer's chain forks lower: stepping back");
                continue;
            }
            self.status
                .update_progress(|p| *p.served_by.entry(peer.to_string()).or_default() += n);
            info!(%peer, from = start, imported = got, head = self.chain.head().height, "synced blocks");
            imported += got;
            start = next;
        }
        Ok(imported > 0)
    }
}
