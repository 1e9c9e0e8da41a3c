//! The Ethereum-style method families (`eth_`, `net_`, `web3_`, `txpool_`, `admin_`).

use super::api::{AdminApiServer, EthApiServer, NetApiServer, TxpoolApiServer, Web3ApiServer};
use super::error::{self, err, internal};
use super::server::{decode_tx_hex, parse_address, parse_hash, parse_multiaddr, RpcImpl};
use super::types::{eth_block, eth_tx, qty, TxPlace};
use crate::state::StateView;
use crate::txpool::Inserted;
use jsonrpsee::core::{async_trait, RpcResult};
use serde_json::{json, Value};

#[async_trait]
impl EthApiServer for RpcImpl {
    async fn send_raw_transaction(&self, data: String) -> RpcResult<String> {
        let tx = decode_tx_hex(&data).map_err(|e| error::submit_eth(&e))?;
        match self.ctx.submit(tx).await {
            Ok(Inserted::New(h) | Inserted::Queued(h)) => Ok(h.to_0x()),
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

    fn get_block_transaction_count_by_number(&self, block: String) -> RpcResult<Option<String>> {
        let height = self.eth_height(&block)?;
        Ok(self.block_at(height)?.map(|b| qty(b.txs.len() as u64)))
    }

    fn get_block_transaction_count_by_hash(&self, hash: String) -> RpcResult<Option<String>> {
        let h = parse_hash(&hash, error::INVALID_PARAMS)?;
        Ok(self.block_by_hash(&h)?.map(|b| qty(b.txs.len() as u64)))
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
            let m = self.ctx.txpool.read();
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
        let p = self.ctx.sync.progress();
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
        let m = self.ctx.txpool.read();
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
            .map_err(|e| err(error::INVALID_PARAMS, e.to_string()))?;
        Ok(true)
    }

    async fn admin_peers(&self) -> RpcResult<Vec<Value>> {
        let peers = self.ctx.net.peers().await.map_err(internal)?;
        let local = self.ctx.net.info().await.map_err(internal)?;
        let local_addr = local.listen_addrs.first().cloned().unwrap_or_default();
        Ok(peers
            .into_iter()
            .map(|p| {
                json!({
                    "id": p.peer_id,
                    "name": p.agent.clone().unwrap_or_default(),
                    "enode": format!("{}/p2p/{}", p.addr, p.peer_id),
                    "caps": [format!("meshnode/{}", self.ctx.chain.spec.chain_id)],
                    "network": {
                        "localAddress": local_addr,
                        "remoteAddress": p.addr,
                        "inbound": p.inbound,
                        "trusted": false,
                        "static": false,
                    },
                    "protocols": {
                        "meshnode": {
                            "gossipScore": p.gossip_score,
                            "inBlockMesh": p.in_block_mesh,
                            "inCompactBlockMesh": p.in_compact_block_mesh,
                            "nearby": p.nearby,
                            "pingMs": p.ping_ms,
                        }
                    },
                })
            })
            .collect())
    }

    async fn admin_node_info(&self) -> RpcResult<Value> {
        let info = self.ctx.net.info().await.map_err(internal)?;
        let head = self.ctx.chain.head();
        let first = info.listen_addrs.first().cloned().unwrap_or_default();
        let (ip, port) = multiaddr_ip_port(&first);
        Ok(json!({
            "id": info.peer_id,
            "name": super::server::client_version(),
            "enode": first,
            "enr": Value::Null,
            "ip": ip,
            "listenAddr": format!("{ip}:{port}"),
            "listenAddrs": info.listen_addrs,
            "ports": { "discovery": port, "listener": port },
            "protocols": {
                "meshnode": {
                    "network": self.ctx.chain.spec.chain_id,
                    "genesis": self.ctx.chain.store.genesis_hash().map_err(internal)?.to_0x(),
                    "head": head.hash.to_0x(),
                    "height": head.height,
                }
            },
        }))
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
        Ok(super::server::client_version())
    }
}

/// IP and TCP port of a `/ip4/…/tcp/…` multiaddr ("" and 0 when absent).
fn multiaddr_ip_port(addr: &str) -> (String, u16) {
    use libp2p::multiaddr::Protocol;
    let (mut ip, mut port) = (String::new(), 0);
    if let Ok(m) = addr.parse::<libp2p::Multiaddr>() {
        for p in m.iter() {
            match p {
                Protocol::Ip4(a) => ip = a.to_string(),
                Protocol::Ip6(a) => ip = a.to_string(),
                Protocol::Tcp(p) => port = p,
                _ => {}
            }
        }
    }
    (ip, port)
}

impl TxpoolApiServer for RpcImpl {
    fn status(&self) -> RpcResult<Value> {
        let info = self.ctx.txpool.read().info();
        Ok(json!({ "pending": qty(info.pending as u64), "queued": qty(info.queued as u64) }))
    }

    fn content(&self) -> RpcResult<Value> {
        let chain_id = self.ctx.chain.spec.chain_id;
        Ok(self.txpool_tree(|e| eth_tx(&e.tx, chain_id, None)))
    }

    fn inspect(&self) -> RpcResult<Value> {
        Ok(self.txpool_tree(|e| {
            Value::String(format!(
                "{}: {} wei + 21000 gas × {} wei",
                e.tx.body.to, e.tx.body.amount, e.tx.body.fee
            ))
        }))
    }
}

impl RpcImpl {
    /// geth's txpool tree `{pending: {address: {nonce: f(entry)}}, queued: {…}}`.
    fn txpool_tree(&self, f: impl Fn(&crate::txpool::Entry) -> Value) -> Value {
        let m = self.ctx.txpool.read();
        let (pending, queued) = m.pending_and_queued();
        let tree = |entries: Vec<&crate::txpool::Entry>| {
            let mut out = serde_json::Map::new();
            for e in entries {
                let by_nonce = out
                    .entry(e.tx.sender().to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
                by_nonce[e.tx.body.nonce.to_string()] = f(e);
            }
            Value::Object(out)
        };
        json!({ "pending": tree(pending), "queued": tree(queued) })
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
