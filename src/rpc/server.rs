//! The RPC server: start-up, the handles methods are served from ([`RpcContext`]),
//! subscriptions and the meshnode namespace.

use super::api::{
    AdminApiServer, BitcoinApiServer, EthApiServer, EthPubSubApiServer, MeshnodeApiServer,
    MeshnodePubSubApiServer, NetApiServer, TxpoolApiServer, Web3ApiServer,
};
use super::error::{self, err, internal};
use super::types::{eth_block, parse_qty};
use crate::arrivals::{Arrival, ArrivalLog};
use crate::chain::Chain;
use crate::p2p::NetworkHandle;
use crate::sync::SyncStatus;
use crate::txpool::{Inserted, Origin, SubmitError, TxPool};
use crate::types::{Address, Block, Hash, SignedTx};
use crate::validation;
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::server::{
    BatchRequestConfig, IdProvider, PendingSubscriptionSink, Server, ServerConfig, ServerHandle,
    SubscriptionSink,
};
use jsonrpsee::types::SubscriptionId;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;
use tracing::warn;

/// Largest request body, bytes.
pub const MAX_REQUEST_BODY: u32 = 5 * 1024 * 1024;

/// A running server.
pub struct RpcServer {
    /// Bound address (the real port when started on port 0).
    pub local_addr: SocketAddr,
    /// Stop handle.
    pub handle: ServerHandle,
}

/// Most requests in one batch (a larger batch gets error -32010, "The batch request was too
/// large").
pub const MAX_BATCH: u32 = 1000;
/// Most subscriptions per WebSocket connection.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: u32 = 1024;

/// What the methods are served from: the node's narrow handles, nothing else.
#[derive(Clone)]
pub struct RpcContext {
    /// Blocks, state, head, canonical notifications (`newHeads`).
    pub chain: Arc<Chain>,
    /// Submission ([`TxPool::add`] as `Origin::Rpc`), pool views, `newPendingTransactions`.
    pub txpool: TxPool,
    /// Peers, dialling, our identity.
    pub net: NetworkHandle,
    /// `eth_syncing`, `meshnode_syncStatus`.
    pub sync: SyncStatus,
    /// `meshnode_blockArrival`, `blockArrivals`.
    pub arrivals: Arc<ArrivalLog>,
    /// Gossip worker counters (`meshnode_nodeInfo`).
    pub gossip: Arc<crate::gossip::GossipStats>,
    /// When the node started (`uptime`).
    pub started: Instant,
    /// Default `setban` length (`--bantime`).
    pub ban_time: std::time::Duration,
    /// This node's link shaping (`--link-profile`), reported by `meshnode_nodeInfo`.
    pub link: Option<crate::p2p::shaping::LinkInfo>,
    /// Call durations by method (`meshnode_rpc_request_duration_seconds`).
    pub rpc_duration: prometheus_client::metrics::family::Family<
        crate::metrics::MethodLabel,
        prometheus_client::metrics::histogram::Histogram,
        crate::metrics::HistogramFn,
    >,
}

impl RpcContext {
    /// Submits one transaction from RPC.
    pub async fn submit(&self, tx: SignedTx) -> Result<Inserted, SubmitError> {
        self.txpool
            .add(Origin::Rpc, vec![tx])
            .await
            .pop()
            .expect("one outcome per transaction")
    }
}

/// Starts JSON-RPC (HTTP and WebSocket on one port) on `addr`, behind `auth`, within
/// `limits`.
pub async fn start(
    addr: SocketAddr,
    ctx: RpcContext,
    auth: super::auth::AuthLayer,
    limits: crate::config::RpcLimits,
) -> anyhow::Result<RpcServer> {
    let ctx = Arc::new(ctx);
    let config = ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BODY)
        .max_response_body_size(64 * 1024 * 1024)
        // Our own limits ([`super::limits`]) refuse first; jsonrpsee's shared one is their sum.
        .max_connections((limits.http_requests + limits.ws_connections) as u32)
        .max_subscriptions_per_connection(MAX_SUBSCRIPTIONS_PER_CONNECTION)
        .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH))
        .set_id_provider(HexIdProvider)
        .build();
    let txpool = ctx.txpool.clone();
    let durations = ctx.rpc_duration.clone();
    let server = Server::builder()
        .set_config(config)
        .set_rpc_middleware(
            jsonrpsee::server::middleware::rpc::RpcServiceBuilder::new()
                .layer_fn(move |inner| super::timing::Timing {
                    inner,
                    durations: durations.clone(),
                })
                .layer_fn(|inner| super::params::TooManyParams { inner })
                .layer_fn(move |inner| super::preverify::PreVerify {
                    inner,
                    txpool: txpool.clone(),
                }),
        )
        .set_http_middleware(
            tower::ServiceBuilder::new()
                .layer(super::limits::LimitsLayer::new(
                    limits.http_requests,
                    limits.ws_connections,
                ))
                .layer(auth)
                .layer(super::compat::Rpc10Layer {
                    max_body: MAX_REQUEST_BODY as usize,
                }),
        )
        .build(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind JSON-RPC on {addr}: {e}"))?;
    let local_addr = server.local_addr()?;
    let module = module(RpcImpl { ctx })?;
    Ok(RpcServer {
        local_addr,
        handle: server.start(module),
    })
}

/// The method implementations (split over `server.rs`, `btc.rs` and `eth.rs`).
/// Every method family in one module, plus `rpc.discover` listing them all.
fn module(imp: RpcImpl) -> anyhow::Result<RpcModule<()>> {
    let mut module = RpcModule::new(());
    module.merge(BitcoinApiServer::into_rpc(imp.clone()))?;
    module.merge(EthApiServer::into_rpc(imp.clone()))?;
    module.merge(EthPubSubApiServer::into_rpc(imp.clone()))?;
    module.merge(TxpoolApiServer::into_rpc(imp.clone()))?;
    module.merge(NetApiServer::into_rpc(imp.clone()))?;
    module.merge(AdminApiServer::into_rpc(imp.clone()))?;
    module.merge(Web3ApiServer::into_rpc(imp.clone()))?;
    module.merge(MeshnodeApiServer::into_rpc(imp.clone()))?;
    module.merge(MeshnodePubSubApiServer::into_rpc(imp))?;
    let mut names: Vec<&str> = module.method_names().collect();
    names.push("rpc.discover");
    let doc = super::discover::openrpc(&names);
    module.register_method("rpc.discover", move |_, _, _| doc.clone())?;
    Ok(module)
}

/// `web3_clientVersion` / `admin_nodeInfo` name: `meshnode/v<version>/<os>-<arch>`, geth's
/// format.
pub(super) fn client_version() -> String {
    format!(
        "meshnode/v{}/{}-{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Subscription ids as geth makes them: `0x` + 32 random hex digits.
#[derive(Debug, Clone, Copy)]
struct HexIdProvider;

impl IdProvider for HexIdProvider {
    fn next_id(&self) -> SubscriptionId<'static> {
        let mut b = [0u8; 16];
        getrandom::fill(&mut b).expect("the OS random source is available");
        SubscriptionId::Str(format!("0x{}", hex::encode(b)).into())
    }
}

/// Forwards broadcast events to a subscription (each event as zero or more notifications)
/// until the client unsubscribes or disconnects. A subscriber further behind than the
/// channel's capacity skips the oldest.
async fn forward<T: Clone>(
    sink: SubscriptionSink,
    mut rx: broadcast::Receiver<T>,
    f: impl Fn(T) -> Vec<Value>,
) -> SubscriptionResult {
    loop {
        let item = tokio::select! {
            _ = sink.closed() => return Ok(()),
            r = rx.recv() => r,
        };
        match item {
            Ok(item) => {
                for v in f(item) {
                    let msg = serde_json::value::to_raw_value(&v)?;
                    if sink.send(msg).await.is_err() {
                        return Ok(());
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(
                    skipped = n,
                    method = sink.method_name(),
                    "slow subscriber skipped events"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

#[async_trait]
impl EthPubSubApiServer for RpcImpl {
    async fn subscribe_eth(
        &self,
        pending: PendingSubscriptionSink,
        kind: String,
        _filter: Option<Value>,
    ) -> SubscriptionResult {
        let chain_id = self.ctx.chain.spec.chain_id;
        match kind.as_str() {
            "newHeads" => {
                // Every block that becomes canonical, in chain order (after a reorg: each
                // block of the new branch above the fork point), as geth's `newHeads`.
                let rx = self.ctx.chain.subscribe();
                forward(pending.accept().await?, rx, move |n| {
                    n.applied
                        .iter()
                        .map(|b| {
                            let mut v = eth_block(b, chain_id, false);
                            if let Value::Object(o) = &mut v {
                                o.remove("transactions");
                                o.remove("uncles");
                            }
                            v
                        })
                        .collect()
                })
                .await
            }
            "newPendingTransactions" => {
                let rx = self.ctx.txpool.subscribe_new();
                forward(pending.accept().await?, rx, |h| {
                    vec![Value::String(h.to_0x())]
                })
                .await
            }
            other => {
                pending
                    .reject(err(
                        error::INVALID_PARAMS,
                        format!("no {other:?} subscription in eth namespace (newHeads, newPendingTransactions)"),
                    ))
                    .await;
                Ok(())
            }
        }
    }
}

#[async_trait]
impl MeshnodePubSubApiServer for RpcImpl {
    async fn subscribe_meshnode(
        &self,
        pending: PendingSubscriptionSink,
        kind: String,
    ) -> SubscriptionResult {
        if kind != "blockArrivals" {
            pending
                .reject(err(
                    error::INVALID_PARAMS,
                    format!("no {kind:?} subscription in meshnode namespace (blockArrivals)"),
                ))
                .await;
            return Ok(());
        }
        let rx = self.ctx.arrivals.subscribe();
        forward(pending.accept().await?, rx, |(hash, a)| {
            let mut v = serde_json::to_value(a).unwrap_or_default();
            v["hash"] = Value::String(hash.to_string());
            vec![v]
        })
        .await
    }
}

#[derive(Clone)]
pub(super) struct RpcImpl {
    pub(super) ctx: Arc<RpcContext>,
}

pub(super) fn decode_tx_hex(s: &str) -> Result<SignedTx, SubmitError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let bytes = hex::decode(s).map_err(|e| {
        SubmitError::Invalid(validation::ValidationError::Decode(format!(
            "invalid hex: {e}"
        )))
    })?;
    Ok(validation::decode_tx(&bytes)?)
}

pub(super) fn parse_hash(s: &str, code: i32) -> RpcResult<Hash> {
    s.parse()
        .map_err(|e| err(code, format!("invalid hash {s:?}: {e}")))
}

pub(super) fn parse_multiaddr(s: &str, code: i32) -> RpcResult<libp2p::Multiaddr> {
    s.parse()
        .map_err(|e| err(code, format!("invalid multiaddr {s:?}: {e}")))
}

pub(super) fn parse_address(s: &str) -> RpcResult<Address> {
    s.parse()
        .map_err(|e| err(error::INVALID_PARAMS, format!("invalid address {s:?}: {e}")))
}

impl RpcImpl {
    pub(super) fn block_by_hash(&self, h: &Hash) -> RpcResult<Option<Block>> {
        self.ctx.chain.store.block(h).map_err(internal)
    }

    pub(super) fn block_at(&self, height: u64) -> RpcResult<Option<Block>> {
        self.ctx.chain.store.block_at(height).map_err(internal)
    }

    /// Resolves an Ethereum block tag or quantity to a height.
    pub(super) fn eth_height(&self, tag: &str) -> RpcResult<u64> {
        let head = self.ctx.chain.head().height;
        match tag {
            "latest" | "pending" => Ok(head),
            // No finality in meshnode's fork choice: geth's answer on a chain without it.
            "safe" | "finalized" => Err(err(
                error::GETH_SERVER_ERROR,
                format!("{tag} block not found"),
            )),
            "earliest" => Ok(0),
            q => parse_qty(q).ok_or_else(|| {
                err(
                    error::INVALID_PARAMS,
                    format!("invalid block tag or number {q:?}"),
                )
            }),
        }
    }
}

#[async_trait]
impl MeshnodeApiServer for RpcImpl {
    fn clock(&self) -> RpcResult<Value> {
        Ok(json!({ "unixMicros": crate::now_us() }))
    }

    fn block_arrival(&self, hash: String) -> RpcResult<Option<Arrival>> {
        let h = parse_hash(&hash, error::INVALID_PARAMS)?;
        Ok(self.ctx.arrivals.get(&h))
    }

    fn sync_status(&self) -> RpcResult<Value> {
        let p = self.ctx.sync.progress();
        let mut v = serde_json::to_value(&p).map_err(internal)?;
        v["currentBlock"] = json!(self.ctx.chain.head().height);
        Ok(v)
    }

    async fn node_info(&self) -> RpcResult<Value> {
        let info = self.ctx.net.info().await.map_err(internal)?;
        let head = self.ctx.chain.head();
        let (mempool_size, mempool_bytes) = {
            let m = self.ctx.txpool.read();
            (m.len(), m.bytes())
        };
        Ok(json!({
            "peerId": info.peer_id,
            "listenAddrs": info.listen_addrs,
            "chainId": self.ctx.chain.spec.chain_id,
            "genesisHash": self.ctx.chain.store.genesis_hash().map_err(internal)?.to_string(),
            "head": { "height": head.height, "hash": head.hash.to_string(), "slot": head.slot },
            "mempool": { "size": mempool_size, "bytes": mempool_bytes },
            "gossip": {
                "accepted": info.verdicts[0],
                "rejected": info.verdicts[1],
                "ignored": info.verdicts[2],
                "droppedQueueFull": info.dropped_queue_full,
                "relayedNotImported": self.ctx.gossip.relayed_invalid.load(std::sync::atomic::Ordering::Relaxed),
                "topics": info.traffic,
                "mesh": info.mesh,
            },
            "peers": info.peers,
            "uptime": self.ctx.started.elapsed().as_secs(),
            "link": self.ctx.link,
        }))
    }
}
