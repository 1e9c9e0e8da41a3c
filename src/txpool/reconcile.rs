//! Mempool reconciliation with a new peer, after eth/68 (`NewPooledTransactionHashes` then
//! `GetPooledTransactions`), pulled by the side that connects: ask the peer for the hashes of
//! its pending transactions, fetch the ones we lack in batches, admit them as
//! [`Origin::Peer`] (every check; new pending ones announced to our other peers). Both sides
//! of a connection do it, so after a partition heals each pool holds the union of the pending
//! transactions at once instead of draining at gossip speed. Queued transactions are never
//! offered (they stay local).

use super::{Inserted, Origin, TxPool};
use crate::p2p::codec::{SyncRequest, SyncResponse, MAX_POOLED_HASHES, MAX_POOLED_TXS};
use crate::p2p::NetworkHandle;
use crate::types::{Hash, SignedTx};
use futures::StreamExt;
use libp2p::PeerId;
use std::collections::HashSet;
use tracing::{debug, info};

/// What one reconciliation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Hashes the peer offered.
    pub offered: usize,
    /// Of those, the ones we lacked and asked for.
    pub asked: usize,
    /// Transactions admitted to our pool.
    pub admitted: usize,
    /// Transactions refused as invalid, or sent without being asked for.
    pub invalid: usize,
}

/// The pending hashes `offered` that `pool` lacks and the chain does not hold.
fn missing(pool: &TxPool, offered: Vec<Hash>) -> Vec<Hash> {
    let lacking: Vec<Hash> = {
        let p = pool.read();
        offered.into_iter().filter(|h| !p.contains(h)).collect()
    };
    lacking
        .into_iter()
        .filter(|h| pool.chain().store.tx_location(h).ok().flatten().is_none())
        .collect()
}

/// Reconciles our pool with `peer`'s (see the module docs). A peer that sends transactions we
/// did not ask for, or invalid ones, is penalised (its gossipsub application score), as for
/// an invalid sync reply. Network errors end it quietly: the next connection tries again.
pub async fn with_peer(pool: &TxPool, net: &NetworkHandle, peer: PeerId) -> Reconciled {
    let mut r = Reconciled::default();
    let Ok(SyncResponse::Hashes(offered)) = net.request(peer, SyncRequest::PooledHashes).await
    else {
        return r;
    };
    r.offered = offered.len();
    // A peer may offer more than a reply should hold: take what an honest one sends.
    let want = missing(pool, offered.into_iter().take(MAX_POOLED_HASHES).collect());
    r.asked = want.len();
    if want.is_empty() {
        return r;
    }
    // At most 8 requests in flight, as range sync.
    let batches: Vec<Vec<Hash>> = want.chunks(MAX_POOLED_TXS).map(<[Hash]>::to_vec).collect();
    let replies: Vec<_> = futures::stream::iter(batches.into_iter().map(|batch| {
        let net = net.clone();
        async move { net.request(peer, SyncRequest::PooledTxs(batch)).await }
    }))
    .buffer_unordered(8)
    .collect()
    .await;
    let asked: HashSet<Hash> = want.iter().copied().collect();
    let mut txs: Vec<SignedTx> = Vec::new();
    for reply in replies {
        if let Ok(SyncResponse::Txs(t)) = reply {
            for tx in t {
                if asked.contains(&tx.hash()) {
                    txs.push(tx);
                } else {
                    r.invalid += 1;
                }
            }
        }
    }
    // Lowest nonce first per sender, so that each one's run arrives in order.
    txs.sort_by_key(|t| (t.sender(), t.body.nonce));
    let p = pool.clone();
    let outcomes =
        tokio::task::spawn_blocking(move || futures::executor::block_on(p.add(Origin::Peer, txs)))
            .await
            .unwrap_or_default();
    for o in &outcomes {
        match o {
            Ok(Inserted::New(_) | Inserted::Queued(_)) => r.admitted += 1,
            Err(e) if e.verdict() == crate::validation::Verdict::Reject => r.invalid += 1,
            _ => {}
        }
    }
    if r.invalid > 0 {
        net.penalize(peer, r.invalid as f64).await;
    }
    if r.admitted > 0 {
        info!(%peer, offered = r.offered, asked = r.asked, admitted = r.admitted, "mempool reconciled with a new peer");
    } else {
        debug!(%peer, offered = r.offered, asked = r.asked, "mempool reconciliation added nothing");
    }
    r
}

/// The answer to [`SyncRequest::PooledHashes`]: our pending transactions' hashes, at most
/// `max`.
pub fn pending_hashes(pool: &TxPool, max: usize) -> Vec<Hash> {
    pool.read().pending_hashes(max)
}

/// The answer to [`SyncRequest::PooledTxs`]: the pending ones of `hashes` we hold, at most
/// [`MAX_POOLED_TXS`], in request order.
pub fn pooled_txs(pool: &TxPool, hashes: &[Hash]) -> Vec<SignedTx> {
    let p = pool.read();
    hashes
        .iter()
        .take(MAX_POOLED_TXS)
        .filter(|h| p.is_pending(h))
        .filter_map(|h| p.get(h).map(|e| e.tx.clone()))
        .collect()
}
