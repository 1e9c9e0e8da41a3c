//! The RPC server: method implementations over the node's context, and start-up.

use super::api::{
    AdminApiServer, BitcoinApiServer, EthApiServer, MeshnodeApiServer, NetApiServer, Web3ApiServer,
};
use super::error::{self, err, internal};
use super::types::{btc_block, eth_block, eth_tx, parse_qty, qty, TxPlace};
use crate::arrivals::Arrival;
use crate::mempool::Inserted;
use crate::node::{NodeContext, SubmitError};
use crate::state::StateView;
use crate::types::{Address, Block, Hash, SignedTx};
use crate::validation;
use jsonrpsee::core::{async_trait, RpcResult};
use jsonrpsee::server::{Server, ServerConfig, ServerHandle};
use jsonrpsee::RpcModule;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body, bytes.
pub const MAX_REQUEST_BODY: u32 = 5 * 1024 * 1024;
/// Most simultaneous connections.
pub const MAX_CONNECTIONS: u32 = 256;

/// A running server.
pub struct RpcServer {
    /// Bound address (the real port when started on port 0).
    pub local_addr: SocketAddr,
    /// Stop handle.
    pub handle: ServerHandle,
}

/// Starts JSON-RPC (HTTP and WebSocket on one port) on `addr`.
pub async fn start(addr: SocketAddr, ctx: Arc<NodeContext>) -> anyhow::Result<RpcServer> {
    let config = ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BODY)
        .max_response_body_size(64 * 1024 * 1024)
        .max_connections(MAX_CONNECTIONS)
        .build();
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(
            tower::ServiceBuilder::new().layer(super::compat::Rpc10Layer {
                max_body: MAX_REQUEST_BODY as usize,
            }),
        )
        .build(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind JSON-RPC on {addr}: {e}"))?;
    let local_addr = server.local_addr()?;
    let imp = RpcImpl { ctx };
    let mut module = RpcModule::new(());
    module.merge(BitcoinApiServer::into_rpc(imp.clone()))?;
    module.merge(EthApiServer::into_rpc(imp.clone()))?;
    module.merge(NetApiServer::into_rpc(imp.clone()))?;
    module.merge(AdminApiServer::into_rpc(imp.clone()))?;
    module.merge(Web3ApiServer::into_rpc(imp.clone()))?;
    module.merge(MeshnodeApiServer::into_rpc(imp))?;
    Ok(RpcServer {
        local_addr,
        handle: server.start(module),
    })
}

#[derive(Clone)]
struct RpcImpl {
    ctx: Arc<NodeContext>,
}

fn decode_tx_hex(s: &str) -> Result<SignedTx, SubmitError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let bytes = hex::decode(s).map_err(|e| {
        SubmitError::Invalid(validation::ValidationError::Decode(format!(
            "invalid hex: {e}"
        )))
    })?;
    Ok(validation::decode_tx(&bytes)?)
}

fn parse_hash(s: &str, code: i32) -> RpcResult<Hash> {
    s.parse()
        .map_err(|e| err(code, format!("invalid hash {s:?}: {e}")))
}

fn parse_multiaddr(s: &str, code: i32) -> RpcResult<libp2p::Multiaddr> {
    s.parse()
        .map_err(|e| err(code, format!("invalid multiaddr {s:?}: {e}")))
}

fn parse_address(s: &str) -> RpcResult<Address> {
    s.parse()
        .map_err(|e| err(error::INVALID_PARAMS, format!("invalid address {s:?}: {e}")))
}

impl RpcImpl {
    fn block_by_hash(&self, h: &Hash) -> RpcResult<Option<Block>> {
        self.ctx.chain.store.block(h).map_err(internal)
    }

    fn block_at(&self, height: u64) -> RpcResult<Option<Block>> {
        self.ctx.chain.store.block_at(height).map_err(internal)
    }

    /// Resolves an Ethereum block tag or quantity to a height.
    fn eth_height(&self, tag: &str) -> RpcResult<u64> {
        let head = self.ctx.chain.head().height;
        match tag {
            "latest" | "pending" | "safe" | "finalized" => Ok(head),
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
impl BitcoinApiServer for RpcImpl {
    async fn sendrawtransaction(&self, hexstring: String) -> RpcResult<String> {
        let tx = decode_tx_hex(&hexstring).map_err(|e| error::submit_btc(&e))?;
        match self.ctx.submit_tx(tx).await {
            Ok(Inserted::New(h) | Inserted::Known(h)) => Ok(h.to_string()),
            Err(e) => Err(error::submit_btc(&e)),
        }
    }

    fn getblockcount(&self) -> RpcResult<u64> {
        Ok(self.ctx.chain.head().height)
    }

    fn getbestblockhash(&self) -> RpcResult<String> {
        Ok(self.ctx.chain.head().hash.to_string())
    }

    fn getblockhash(&self, height: u64) -> RpcResult<String> {
        match self.ctx.chain.store.hash_at(height).map_err(internal)? {
            Some(h) => Ok(h.to_string()),
            None => Err(err(
                error::RPC_INVALID_PARAMETER,
                "Block height out of range",
            )),
        }
    }

    fn getblock(&self, blockhash: String, verbosity: Option<u8>) -> RpcResult<Value> {
        let h = parse_hash(&blockhash, error::RPC_INVALID_PARAMETER)?;
        let block = self
            .block_by_hash(&h)?
            .ok_or_else(|| err(error::RPC_INVALID_ADDRESS_OR_KEY, "Block not found"))?;
        let verbosity = verbosity.unwrap_or(1);
        if verbosity == 0 {
            return Ok(Value::String(hex::encode(block.to_bytes())));
        }
        if verbosity > 3 {
            // Bitcoin Core's 3 adds prevouts; there are none here, so 3 answers as 2.
            return Err(err(
                error::RPC_INVALID_PARAMETER,
                "verbosity must be 0, 1, 2 or 3",
            ));
        }
        let store = &self.ctx.chain.store;
        let next = store.hash_at(block.header.height + 1).map_err(internal)?;
        let canonical = store.hash_at(block.header.height).map_err(internal)? == Some(h);
        let mut v = btc_block(
            &block,
            self.ctx.chain.head().height,
            next.filter(|_| canonical),
            verbosity,
        );
        if !canonical {
            v["confirmations"] = json!(-1);
        }
        Ok(v)
    }

    fn getrawmempool(&self, verbose: Option<bool>) -> RpcResult<Value> {
        let m = self.ctx.mempool.lock().expect("mempool lock poisoned");
        if !verbose.unwrap_or(false) {
            return Ok(json!(m
                .entries()
                .map(|e| e.hash.to_string())
                .collect::<Vec<_>>()));
        }
        let mut obj = serde_json::Map::new();
        for e in m.entries() {
            obj.insert(
                e.hash.to_string(),
                json!({
                    "vsize": e.size,
                    "weight": e.size * 4,
                    "time": e.added_unix_ms / 1000,
                    "fees": { "base": e.tx.body.fee },
                    "fee": e.tx.body.fee,
                    "nonce": e.tx.body.nonce,
                    "from": e.tx.sender().to_string(),
                    "to": e.tx.body.to.to_string(),
                    "amount": e.tx.body.amount,
                }),
            );
        }
        Ok(Value::Object(obj))
    }

    fn getchaintips(&self) -> RpcResult<Vec<Value>> {
        let store = &self.ctx.chain.store;
        let head = self.ctx.chain.head();
        let mut out = Vec::new();
        for tip in store.tips().map_err(internal)? {
            let Some(b) = store.block(&tip).map_err(internal)? else {
                continue;
            };
            // Walk down to the canonical chain to measure the branch.
            let (mut h, mut cur, mut invalid) = (tip, b.header.clone(), false);
            while store.hash_at(cur.height).map_err(internal)? != Some(h) {
                invalid |= store.is_invalid(&h).map_err(internal)?;
                h = cur.parent;
                match store.block(&h).map_err(internal)? {
                    Some(p) => cur = p.header,
                    None => break,
                }
            }
            let status = if tip == head.hash {
                "active"
            } else if invalid {
                "invalid"
            } else {
                "valid-headers"
            };
            out.push(json!({
                "height": b.header.height,
                "hash": tip.to_string(),
                "branchlen": b.header.height - cur.height,
                "status": status,
            }));
        }
        out.sort_by_key(|t| std::cmp::Reverse(t["height"].as_u64()));
        Ok(out)
    }

    async fn addnode(&self, node: String, command: String) -> RpcResult<Value> {
        let addr = parse_multiaddr(&node, error::RPC_INVALID_PARAMETER)?;
        match command.as_str() {
            "add" | "onetry" => self
                .ctx
                .net
                .dial(addr)
                .await
                .map_err(|e| err(error::RPC_INVALID_PARAMETER, e))?,
            "remove" => {
                let peer = crate::p2p::peer_id_of(&addr).ok_or_else(|| {
                    err(
                        error::RPC_INVALID_PARAMETER,
                        "multiaddr has no /p2p/<peer id>",
                    )
                })?;
                self.ctx.net.remove(peer).await.map_err(internal)?;
            }
            other => {
                return Err(err(
                    error::RPC_INVALID_PARAMETER,
                    format!("command must be add, remove or onetry, not {other:?}"),
                ))
            }
        }
        Ok(Value::Null)
    }

    async fn getpeerinfo(&self) -> RpcResult<Vec<Value>> {
        let peers = self.ctx.net.peers().await.map_err(internal)?;
        Ok(peers
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "id": i,
                    "addr": p.addr,
                    "inbound": p.inbound,
                    "conntime": p.conntime,
                    "subver": p.agent.clone().unwrap_or_default(),
                    "pingtime": p.ping_ms.map(|ms| ms / 1e3),
                    "peer_id": p.peer_id,
                    "gossip_score": p.gossip_score,
                    "in_block_mesh": p.in_block_mesh,
                })
            })
            .collect())
    }
}

#[async_trait]
impl EthApiServer for RpcImpl {
    async fn send_raw_transaction(&self, data: String) -> RpcResult<String> {
        let tx = decode_tx_hex(&data).map_err(|e| error::submit_eth(&e))?;
        match self.ctx.submit_tx(tx).await {
            Ok(Inserted::New(h)) => Ok(h.to_0x()),
            Ok(Inserted::Known(_)) => Err(err(error::GETH_SERVER_ERROR, "already known")),
            Err(e) => Err(error::submit_eth(&e)),
        }
    }

    fn chain_id(&self) -> RpcResult<String> {
        Ok(qty(self.ctx.chain.spec.chain_id))
    }

    fn block_number(&self) -> RpcResult<String> {
        Ok(qty(self.ctx.chain.head().height))
    }

    fn get_block_by_number(&self, block: String, full: bool) -> RpcResult<Option<Value>> {
        let height = self.eth_height(&block)?;
        Ok(self
            .block_at(height)?
            .map(|b| eth_block(&b, self.ctx.chain.spec.chain_id, full)))
    }

    fn get_block_by_hash(&self, hash: String, full: bool) -> RpcResult<Option<Value>> {
        let h = parse_hash(&hash, error::INVALID_PARAMS)?;
        Ok(self
            .block_by_hash(&h)?
            .map(|b| eth_block(&b, self.ctx.chain.spec.chain_id, full)))
    }

    fn get_balance(&self, address: String, block: Option<String>) -> RpcResult<String> {
        let a = parse_address(&address)?;
        self.eth_height(block.as_deref().unwrap_or("latest"))?;
        Ok(qty(self.ctx.chain.store.account(&a).balance))
    }

    fn get_transaction_count(&self, address: String, block: Option<String>) -> RpcResult<String> {
        let a = parse_address(&address)?;
        let acc = self.ctx.chain.store.account(&a);
        if block.as_deref() == Some("pending") {
            let m = self.ctx.mempool.lock().expect("mempool lock poisoned");
            return Ok(qty(m.pending_nonce(&a, acc)));
        }
        self.eth_height(block.as_deref().unwrap_or("latest"))?;
        Ok(qty(acc.nonce))
    }

    fn get_transaction_receipt(&self, hash: String) -> RpcResult<Option<Value>> {
        let h = parse_hash(&hash, error::INVALID_PARAMS)?;
        let Some(loc) = self.ctx.chain.store.tx_location(&h).map_err(internal)? else {
            return Ok(None);
        };
        let Some(b) = self.block_by_hash(&loc.block)? else {
            return Ok(None);
        };
        Ok(b.txs.get(loc.index as usize).map(|tx| {
            super::types::eth_receipt(
                tx,
                TxPlace {
                    block: loc.block,
                    height: loc.height,
                    index: loc.index,
                },
            )
        }))
    }

    fn syncing(&self) -> RpcResult<Value> {
        let p = self.ctx.sync.lock().expect("sync lock poisoned").clone();
        if !p.active {
            return Ok(Value::Bool(false));
        }
        Ok(json!({
            "startingBlock": qty(p.starting_block),
            "currentBlock": qty(self.ctx.chain.head().height),
            "highestBlock": qty(p.highest_block),
        }))
    }

    fn get_transaction_by_hash(&self, hash: String) -> RpcResult<Option<Value>> {
        let h = parse_hash(&hash, error::INVALID_PARAMS)?;
        let chain_id = self.ctx.chain.spec.chain_id;
        if let Some(loc) = self.ctx.chain.store.tx_location(&h).map_err(internal)? {
            if let Some(b) = self.block_by_hash(&loc.block)? {
                if let Some(tx) = b.txs.get(loc.index as usize) {
                    let place = TxPlace {
                        block: loc.block,
                        height: loc.height,
                        index: loc.index,
                    };
                    return Ok(Some(eth_tx(tx, chain_id, Some(place))));
                }
            }
        }
        let m = self.ctx.mempool.lock().expect("mempool lock poisoned");
        Ok(m.get(&h).map(|e| eth_tx(&e.tx, chain_id, None)))
    }
}

#[async_trait]
impl AdminApiServer for RpcImpl {
    async fn add_peer(&self, url: String) -> RpcResult<bool> {
        let addr = parse_multiaddr(&url, error::INVALID_PARAMS)?;
        self.ctx
            .net
            .dial(addr)
            .await
            .map_err(|e| err(error::INVALID_PARAMS, e))?;
        Ok(true)
    }

    async fn remove_peer(&self, url: String) -> RpcResult<bool> {
        let addr = parse_multiaddr(&url, error::INVALID_PARAMS)?;
        let peer = crate::p2p::peer_id_of(&addr)
            .ok_or_else(|| err(error::INVALID_PARAMS, "multiaddr has no /p2p/<peer id>"))?;
        self.ctx.net.remove(peer).await.map_err(internal)
    }
}

impl Web3ApiServer for RpcImpl {
    fn client_version(&self) -> RpcResult<String> {
        Ok(format!(
            "meshnode/v{}/{}-{}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH
        ))
    }
}

#[async_trait]
impl NetApiServer for RpcImpl {
    fn version(&self) -> RpcResult<String> {
        Ok(self.ctx.chain.spec.chain_id.to_string())
    }

    fn listening(&self) -> RpcResult<bool> {
        Ok(true)
    }

    async fn peer_count(&self) -> RpcResult<String> {
        Ok(qty(
            self.ctx.net.peers().await.map_err(internal)?.len() as u64
        ))
    }
}

#[async_trait]
impl MeshnodeApiServer for RpcImpl {
    fn block_arrival(&self, hash: String) -> RpcResult<Option<Arrival>> {
        let h = parse_hash(&hash, error::INVALID_PARAMS)?;
        Ok(self.ctx.arrivals.get(&h))
    }

    fn sync_status(&self) -> RpcResult<Value> {
        let p = self.ctx.sync.lock().expect("sync lock poisoned").clone();
        let mut v = serde_json::to_value(&p).map_err(internal)?;
        v["currentBlock"] = json!(self.ctx.chain.head().height);
        Ok(v)
    }

    async fn node_info(&self) -> RpcResult<Value> {
        let info = self.ctx.net.info().await.map_err(internal)?;
        let head = self.ctx.chain.head();
        let (mempool_size, mempool_bytes) = {
            let m = self.ctx.mempool.lock().expect("mempool lock poisoned");
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
            },
            "uptime": self.ctx.started.elapsed().as_secs(),
        }))
    }
}
