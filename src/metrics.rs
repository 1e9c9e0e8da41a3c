//! Prometheus metrics (`meshnode run --metrics ADDR`): the node's own (`meshnode_*`, this
//! module, prometheus-client) in one registry with rust-libp2p's (`gossipsub_*` from the
//! gossipsub behaviour, `libp2p_*` from libp2p-metrics: swarm, Kademlia, identify, ping,
//! bandwidth), served as OpenMetrics text on `GET /metrics`.
//!
//! Gossip verdicts by topic are gossipsub's own `gossipsub_{accepted,rejected,ignored}_messages_per_topic`
//! (labelled by topic `hash`, the names rust-libp2p and Lighthouse use); this module does not
//! count them again. Names follow Prometheus conventions: base units (seconds, bytes),
//! `_total` for counters, one unit per name.
//!
//! What changes with each block (arrival, relay and import times) is observed as it happens
//! ([`follow`]); what is a level (head, mempool, peers, sync) is read at scrape time from the
//! node's handles ([`Sources`]), so nothing polls between scrapes.

use crate::arrivals::Arrival;
use crate::chain::Chain;
use crate::p2p::NetworkHandle;
use crate::sync::SyncStatus;
use crate::txpool::TxPool;
use crate::types::Hash;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// `Content-Type` of the `/metrics` reply (OpenMetrics 1.0 text, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label set with one label, `kind` (mempool: `pending` / `queued`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: &'static str,
}

/// A label set with one label, `direction` (peers: `inbound` / `outbound` / `manual` /
/// `addr_fetch`, Bitcoin Core's connection types).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// The direction.
    pub direction: &'static str,
}

/// A label set with one label, `method` (a JSON-RPC method name from the node's method
/// table, `batch`, or `other`, so that callers cannot create unbounded label values).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// The method.
    pub method: String,
}

/// A histogram family constructor (prometheus-client needs a nameable type).
pub type HistogramFn = fn() -> Histogram;

fn rpc_histogram() -> Histogram {
    // 0.1 ms to 3.3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The node's metrics. Cloning shares them (every metric is an `Arc` inside).
#[derive(Clone)]
pub struct NodeMetrics {
    head_height: Gauge,
    head_slot: Gauge,
    arrival_latency: Histogram,
    relay_time: Histogram,
    import_time: Histogram,
    block_bytes: Counter,
    mempool_txs: Family<KindLabel, Gauge>,
    mempool_bytes: Gauge,
    mempool_evicted: Counter,
    mempool_min_fee: Gauge,
    sync_active: Gauge,
    sync_highest: Gauge,
    peers: Family<DirectionLabel, Gauge>,
    /// JSON-RPC call durations by method, seconds (observed by the RPC server's middleware).
    pub rpc_duration: Family<MethodLabel, Histogram, HistogramFn>,
}

impl NodeMetrics {
    /// Creates the metrics and registers them in `registry` under the `meshnode_` prefix.
    pub fn new(registry: &mut Registry) -> NodeMetrics {
        let m = NodeMetrics {
            head_height: Gauge::default(),
            head_slot: Gauge::default(),
            // 5 ms to 41 s.
            arrival_latency: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            // 0.5 ms to 16 s.
            relay_time: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            import_time: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            block_bytes: Counter::default(),
            mempool_txs: Family::default(),
            mempool_bytes: Gauge::default(),
            mempool_evicted: Counter::default(),
            mempool_min_fee: Gauge::default(),
            sync_active: Gauge::default(),
            sync_highest: Gauge::default(),
            peers: Family::default(),
            rpc_duration: Family::new_with_constructor(rpc_histogram as HistogramFn),
        };
        let r = registry.sub_registry_with_prefix("meshnode");
        r.register(
            "head_height",
            "Height of the canonical head",
            m.head_height.clone(),
        );
        r.register(
            "head_slot",
            "Slot of the canonical head",
            m.head_slot.clone(),
        );
        r.register(
            "block_arrival_latency_seconds",
            "Time from a block's production (its header timestamp) to its first delivery here by gossip, \
             one observation per block that arrived by gossip and became canonical",
            m.arrival_latency.clone(),
        );
        r.register(
            "block_relay_seconds",
            "Time from a block's first delivery to its relay (gossip verification, before import)",
            m.relay_time.clone(),
        );
        r.register(
            "block_import_seconds",
            "Time from a block's relay to its commit (state transition and store write)",
            m.import_time.clone(),
        );
        r.register(
            "block_received_bytes",
            "Encoded bytes of the blocks that arrived by gossip and became canonical",
            m.block_bytes.clone(),
        );
        r.register(
            "mempool_transactions",
            "Transactions in the mempool by kind (pending: executable now; queued: behind a nonce gap)",
            m.mempool_txs.clone(),
        );
        r.register(
            "mempool_bytes",
            "Encoded bytes of the mempool's transactions",
            m.mempool_bytes.clone(),
        );
        r.register(
            "mempool_evictions",
            "Transactions evicted from the full mempool since start",
            m.mempool_evicted.clone(),
        );
        r.register(
            "mempool_min_fee",
            "Fee a new transaction must beat to enter the full mempool (getmempoolinfo mempoolminfee), base units",
            m.mempool_min_fee.clone(),
        );
        r.register(
            "sync_active",
            "1 while a range sync download runs",
            m.sync_active.clone(),
        );
        r.register(
            "sync_highest_block",
            "Highest head height a peer claimed when the last sync download started",
            m.sync_highest.clone(),
        );
        r.register(
            "peers",
            "Connected peers by connection type",
            m.peers.clone(),
        );
        r.register(
            "rpc_request_duration_seconds",
            "JSON-RPC call durations by method (a batch counts once, as `batch`)",
            m.rpc_duration.clone(),
        );
        m
    }

    /// Records one block's arrival record, taken when the block first became canonical here
    /// ([`crate::arrivals::ArrivalLog::subscribe`]). Blocks that did not arrive by gossip
    /// (produced here, or synced) add nothing.
    pub fn observe_arrival(&self, a: &Arrival) {
        let Some(seen) = a.first_seen_us else {
            return;
        };
        let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
        self.arrival_latency
            .observe(secs(a.timestamp_ms.saturating_mul(1000), seen));
        self.block_bytes.inc_by(a.bytes);
        if let Some(relayed) = a.relayed_us {
            self.relay_time.observe(secs(seen, relayed));
            if let Some(validated) = a.validated_us {
                self.import_time.observe(secs(relayed, validated));
            }
        }
    }
}

/// The node handles the level metrics are read from at scrape time.
#[derive(Clone)]
pub struct Sources {
    /// Head.
    pub chain: Arc<Chain>,
    /// Mempool.
    pub txpool: TxPool,
    /// Peers.
    pub net: NetworkHandle,
    /// Sync progress.
    pub sync: SyncStatus,
}

impl Sources {
    /// Sets the level metrics of `m` from the node's current state.
    pub async fn refresh(&self, m: &NodeMetrics) {
        let head = self.chain.head();
        m.head_height.set(head.height as i64);
        m.head_slot.set(head.slot as i64);
        let info = self.txpool.read().info();
        m.mempool_txs
            .get_or_create(&KindLabel { kind: "pending" })
            .set(info.pending as i64);
        m.mempool_txs
            .get_or_create(&KindLabel { kind: "queued" })
            .set(info.queued as i64);
        m.mempool_bytes.set(info.bytes as i64);
        m.mempool_min_fee.set(info.min_fee as i64);
        let evicted = info.evicted;
        let counted = m.mempool_evicted.get();
        if evicted > counted {
            m.mempool_evicted.inc_by(evicted - counted);
        }
        let p = self.sync.progress();
        m.sync_active.set(p.active as i64);
        m.sync_highest.set(p.highest_block as i64);
        if let Ok(net) = self.net.info().await {
            for (direction, n) in [
                ("inbound", net.peers.inbound),
                ("outbound", net.peers.outbound),
                ("manual", net.peers.manual),
                ("addr_fetch", net.peers.addr_fetch),
            ] {
                m.peers
                    .get_or_create(&DirectionLabel { direction })
                    .set(n as i64);
            }
        }
    }
}

/// Runs until `stop` turns true: observes every arrival record the moment its block is first
/// canonical here. A lagging receiver skips records (counted in the log).
pub async fn follow(
    m: NodeMetrics,
    mut arrivals: broadcast::Receiver<(Hash, Arrival)>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = arrivals.recv() => match r {
                Ok((_, a)) => m.observe_arrival(&a),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "metrics skipped arrival records");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = stop.changed() => return,
        }
    }
}

/// Binds `addr` and serves `GET /metrics` (anything else: 404) until `stop` turns true. Each
/// scrape refreshes the level metrics, then encodes `registry`.
///
/// Errors: the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    metrics: NodeMetrics,
    sources: Sources,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<crate::httpd::HttpServer> {
    crate::httpd::serve(
        "--metrics",
        addr,
        move |req| {
            let (registry, metrics, sources) = (registry.clone(), metrics.clone(), sources.clone());
            async move { scrape(req, &registry, &metrics, &sources).await }
        },
        stop,
    )
    .await
}

async fn scrape(
    req: hyper::Request<hyper::body::Incoming>,
    registry: &Registry,
    metrics: &NodeMetrics,
    sources: &Sources,
) -> hyper::Response<crate::httpd::Body> {
    use crate::httpd::reply;
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.uri().path() != "/metrics" {
        return reply(404, TEXT, "not found: metrics are served at /metrics\n");
    }
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return reply(405, TEXT, "method not allowed: use GET\n");
    }
    sources.refresh(metrics).await;
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        return reply(500, TEXT, format!("encoding metrics failed: {e}\n"));
    }
    reply(200, CONTENT_TYPE, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_arrival_by_gossip_is_observed_and_one_without_is_not() {
        let mut r = Registry::default();
        let m = NodeMetrics::new(&mut r);
        m.observe_arrival(&Arrival {
            height: 1,
            timestamp_ms: 1_000,
            first_seen_us: Some(1_020_000),
            relayed_us: Some(1_023_000),
            validated_us: Some(1_030_000),
            bytes: 500,
            ..Default::default()
        });
        // Produced here: no first delivery.
        m.observe_arrival(&Arrival {
            height: 2,
            validated_us: Some(2_000_000),
            ..Default::default()
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
        assert!(
            text.contains("meshnode_block_arrival_latency_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("meshnode_block_arrival_latency_seconds_sum 0.02\n"),
            "{text}"
        );
        assert!(text.contains("meshnode_block_relay_seconds_count 1\n"));
        assert!(text.contains("meshnode_block_import_seconds_sum 0.007\n"));
        assert!(text.contains("meshnode_block_received_bytes_total 500\n"));
    }
}
