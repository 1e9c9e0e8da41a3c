//! The announcer: the one subscriber of the pool's announcement queue; publishes new
//! transactions that gossipsub does not relay by itself (RPC submissions, reorg returns) in
//! `/txs/1` batches.

use super::config::TxPoolConfig;
use crate::p2p::{NetworkHandle, TopicKind};
use crate::types::SignedTx;
use tokio::sync::{mpsc, watch};
use tracing::debug;

/// Runs until `stop` turns true or every [`super::TxPool`] is dropped: the first transaction
/// of a batch waits up to `cfg.announce_delay` for more, up to `cfg.announce_batch` per
/// message.
pub async fn run(
    net: NetworkHandle,
    mut rx: mpsc::Receiver<SignedTx>,
    cfg: TxPoolConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            t = rx.recv() => match t { Some(t) => t, None => return },
            _ = stop.changed() => return,
        };
        let deadline = tokio::time::Instant::now() + cfg.announce_delay;
        let mut batch = vec![first];
        while batch.len() < cfg.announce_batch {
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
