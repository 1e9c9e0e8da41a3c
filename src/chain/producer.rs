//! The block producer: in each slot this node's validator key owns, build, commit, publish.

use crate::crypto::Keypair;
use crate::node::NodeContext;
use crate::p2p::TopicKind;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Runs until `stop` turns true. A slot is produced only if the node is not behind any peer it
/// knows of, and only in the first half of the slot (a late block would fork).
pub async fn run(ctx: Arc<NodeContext>, key: Keypair, mut stop: watch::Receiver<bool>) {
    let me = key.public();
    loop {
        let spec = &ctx.chain.spec;
        let now = crate::now_ms();
        let slot = spec.slot_at(now);
        let in_time =
            now >= spec.slot_start_ms(slot) && now < spec.slot_start_ms(slot) + spec.slot_ms / 2;
        if now >= spec.genesis_time_ms && slot > 0 && spec.producer_of(slot) == me && in_time {
            if ctx.is_behind() {
                debug!(slot, "not producing: behind a peer");
            } else {
                produce(&ctx, &key, slot).await;
            }
        }
        let next = spec.slot_start_ms(slot + 1);
        let wait = Duration::from_millis(next.saturating_sub(crate::now_ms()).max(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn produce(ctx: &Arc<NodeContext>, key: &Keypair, slot: u64) {
    let c = ctx.clone();
    let k = key.clone();
    let res = tokio::task::spawn_blocking(move || c.chain.produce(&k, slot, &c.mempool)).await;
    let block = match res {
        Ok(Ok(Some(b))) => b.into_inner(),
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return warn!(slot, cause = %e, "block production failed"),
        Err(e) => return warn!(slot, cause = %e, "block production panicked"),
    };
    let hash = block.hash();
    let bytes = block.to_bytes();
    ctx.mempool
        .lock()
        .expect("mempool lock poisoned")
        .on_new_head(std::slice::from_ref(&block), &[], &ctx.chain.store);
    ctx.events.new_heads([&block]);
    let now = crate::now_us();
    ctx.arrivals.update(hash, |a| {
        a.height = block.header.height;
        a.validated_us = Some(now);
        a.published_us = Some(now);
        a.bytes = bytes.len() as u64;
        a.txs = block.txs.len() as u64;
    });
    info!(height = block.header.height, slot, txs = block.txs.len(), %hash, "produced block");
    if let Err(e) = ctx.net.publish(TopicKind::Block, bytes).await {
        warn!(%hash, cause = %e, "publishing block failed");
    }
}
