//! The Bitcoin Core-style method family (`BitcoinApiServer`).

use super::api::BitcoinApiServer;
use super::error::{self, err, internal};
use super::server::{decode_tx_hex, parse_hash, parse_multiaddr, RpcImpl};
use super::types::btc_block;
use crate::txpool::{Admission, Entry, Inserted, Mempool};
use jsonrpsee::core::{async_trait, RpcResult};
use serde_json::{json, Value};

#[async_trait]
impl BitcoinApiServer for RpcImpl {
    async fn sendrawtransaction(&self, hexstring: String) -> RpcResult<String> {
        let tx = decode_tx_hex(&hexstring).map_err(|e| error::submit_btc(&e))?;
        match self.ctx.submit(tx).await {
            Ok(Inserted::New(h) | Inserted::Queued(h) | Inserted::Known(h)) => Ok(h.to_string()),
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
        let m = self.ctx.txpool.read();
        if !verbose.unwrap_or(false) {
            return Ok(json!(m
                .entries()
                .map(|e| e.hash.to_string())
                .collect::<Vec<_>>()));
        }
        let height = self.ctx.chain.head().height;
        let mut obj = serde_json::Map::new();
        for e in m.entries() {
            obj.insert(e.hash.to_string(), mempool_entry(&m, e, height));
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
                .map_err(|e| err(error::RPC_INVALID_PARAMETER, e.to_string()))?,
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

    async fn setban(
        &self,
        target: String,
        command: String,
        bantime: Option<u64>,
        absolute: Option<bool>,
    ) -> RpcResult<Value> {
        let t: crate::p2p::bans::BanTarget = target
            .parse()
            .map_err(|e: String| err(error::RPC_INVALID_PARAMETER, e))?;
        match command.as_str() {
            "add" => {
                let now = crate::now_ms() / 1000;
                let secs = match (bantime, absolute.unwrap_or(false)) {
                    (Some(until), true) => until.saturating_sub(now),
                    (Some(s), false) if s > 0 => s,
                    _ => self.ctx.ban_time.as_secs(),
                };
                if secs == 0 {
                    return Err(err(
                        error::RPC_INVALID_PARAMETER,
                        "Error: Absolute timestamp is in the past",
                    ));
                }
                let listed = self.ctx.net.list_banned().await.map_err(internal)?;
                if listed.iter().any(|b| b.address == t.to_string()) {
                    return Err(err(
                        error::RPC_CLIENT_NODE_ALREADY_ADDED,
                        "Error: Node already banned",
                    ));
                }
                let done = self
                    .ctx
                    .net
                    .ban(
                        t,
                        std::time::Duration::from_secs(secs),
                        "manual (setban)".into(),
                    )
                    .await
                    .map_err(internal)?;
                if !done {
                    return Err(err(
                        error::RPC_INVALID_PARAMETER,
                        "Error: a loopback address is never banned (ban the peer id)",
                    ));
                }
                Ok(Value::Null)
            }
            "remove" => {
                if !self.ctx.net.unban(t).await.map_err(internal)? {
                    return Err(err(error::RPC_CLIENT_INVALID_IP_OR_SUBNET, "Error: Unban failed. Requested address/subnet was not previously manually banned."));
                }
                Ok(Value::Null)
            }
            other => Err(err(
                error::RPC_INVALID_PARAMETER,
                format!("command must be add or remove, not {other:?}"),
            )),
        }
    }

    async fn listbanned(&self) -> RpcResult<Value> {
        let list = self.ctx.net.list_banned().await.map_err(internal)?;
        Ok(serde_json::to_value(list).map_err(internal)?)
    }

    async fn clearbanned(&self) -> RpcResult<Value> {
        self.ctx.net.clear_banned().await.map_err(internal)?;
        Ok(Value::Null)
    }

    fn getblockheader(&self, blockhash: String, verbose: Option<bool>) -> RpcResult<Value> {
        let h = parse_hash(&blockhash, error::RPC_INVALID_PARAMETER)?;
        let block = self
            .block_by_hash(&h)?
            .ok_or_else(|| err(error::RPC_INVALID_ADDRESS_OR_KEY, "Block not found"))?;
        if !verbose.unwrap_or(true) {
            return Ok(Value::String(hex::encode(crate::types::encoding::encode(
                &block.header,
            ))));
        }
        let store = &self.ctx.chain.store;
        let hd = &block.header;
        let canonical = store.hash_at(hd.height).map_err(internal)? == Some(h);
        let head = self.ctx.chain.head().height;
        let mut v = json!({
            "hash": h.to_string(),
            "confirmations": if canonical { json!(head.saturating_sub(hd.height) + 1) } else { json!(-1) },
            "height": hd.height,
            "version": 1,
            "versionHex": "00000001",
            "merkleroot": hd.tx_root.to_string(),
            "time": hd.timestamp_ms / 1000,
            "mediantime": hd.timestamp_ms / 1000,
            "nonce": 0,
            "bits": "00000000",
            "difficulty": 0,
            "chainwork": format!("{:064x}", hd.height),
            "nTx": block.txs.len(),
            "slot": hd.slot,
            "producer": hd.producer.address().to_string(),
        });
        if hd.height > 0 {
            v["previousblockhash"] = json!(hd.parent.to_string());
        }
        if canonical {
            if let Some(n) = store.hash_at(hd.height + 1).map_err(internal)? {
                v["nextblockhash"] = json!(n.to_string());
            }
        }
        Ok(v)
    }

    fn getrawtransaction(
        &self,
        txid: String,
        verbose: Option<Value>,
        blockhash: Option<String>,
    ) -> RpcResult<Value> {
        let h = parse_hash(&txid, error::RPC_INVALID_PARAMETER)?;
        let verbose = match verbose {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 2) => n.as_u64() != Some(0),
            Some(other) => {
                return Err(err(
                    error::RPC_INVALID_PARAMETER,
                    format!("verbosity must be a boolean or 0, 1, 2, not {other}"),
                ))
            }
        };
        let not_found = || {
            err(
                error::RPC_INVALID_ADDRESS_OR_KEY,
                "No such mempool or blockchain transaction. Use gettransaction for wallet transactions.",
            )
        };
        let store = &self.ctx.chain.store;
        let mut found = None;
        if let Some(loc) = store.tx_location(&h).map_err(internal)? {
            if let Some(b) = self.block_by_hash(&loc.block)? {
                if let Some(tx) = b.txs.get(loc.index as usize) {
                    found = Some((tx.clone(), Some((b.header.clone(), loc.block))));
                }
            }
        }
        if let Some(bh) = blockhash {
            let bh = parse_hash(&bh, error::RPC_INVALID_PARAMETER)?;
            let block = self
                .block_by_hash(&bh)?
                .ok_or_else(|| err(error::RPC_INVALID_ADDRESS_OR_KEY, "Block hash not found"))?;
            let tx = block.txs.iter().find(|t| t.hash() == h).ok_or_else(|| {
                err(
                    error::RPC_INVALID_ADDRESS_OR_KEY,
                    "No such transaction found in the provided block. Use gettransaction for wallet transactions.",
                )
            })?;
            found = Some((tx.clone(), Some((block.header.clone(), bh))));
        }
        if found.is_none() {
            let m = self.ctx.txpool.read();
            found = m.get(&h).map(|e| (e.tx.clone(), None));
        }
        let (tx, place) = found.ok_or_else(not_found)?;
        if !verbose {
            return Ok(Value::String(hex::encode(tx.to_bytes())));
        }
        let mut v = super::types::btc_tx(&tx);
        if let Some((hd, bh)) = place {
            let canonical = store.hash_at(hd.height).map_err(internal)? == Some(bh);
            let head = self.ctx.chain.head().height;
            v["blockhash"] = json!(bh.to_string());
            v["confirmations"] = if canonical {
                json!(head.saturating_sub(hd.height) + 1)
            } else {
                json!(0)
            };
            v["in_active_chain"] = json!(canonical);
            v["time"] = json!(hd.timestamp_ms / 1000);
            v["blocktime"] = json!(hd.timestamp_ms / 1000);
        }
        Ok(v)
    }

    fn testmempoolaccept(
        &self,
        rawtxs: Vec<String>,
        _maxfeerate: Option<Value>,
    ) -> RpcResult<Vec<Value>> {
        if rawtxs.is_empty() || rawtxs.len() > MAX_PACKAGE_COUNT {
            return Err(err(
                error::RPC_INVALID_PARAMETER,
                format!("Array must contain between 1 and {MAX_PACKAGE_COUNT} transactions."),
            ));
        }
        let mut txs = Vec::with_capacity(rawtxs.len());
        for raw in &rawtxs {
            txs.push(decode_tx_hex(raw).map_err(|e| error::submit_btc(&e))?);
        }
        Ok(txs
            .into_iter()
            .map(|tx| {
                let txid = tx.hash().to_string();
                let (vsize, fee) = (tx.encoded_len(), tx.body.fee);
                match self.ctx.txpool.check(tx) {
                    Ok(Admission::Known(_)) => json!({
                        "txid": txid, "wtxid": txid, "allowed": false,
                        "reject-reason": "txn-already-in-mempool",
                    }),
                    Ok(_) => json!({
                        "txid": txid, "wtxid": txid, "allowed": true,
                        "vsize": vsize, "fees": { "base": fee },
                    }),
                    Err(e) => json!({
                        "txid": txid, "wtxid": txid, "allowed": false,
                        "reject-reason": error::submit_btc(&e).message(),
                    }),
                }
            })
            .collect())
    }

    fn getmempoolinfo(&self) -> RpcResult<Value> {
        let m = self.ctx.txpool.read();
        let info = m.info();
        Ok(json!({
            "loaded": true,
            "size": info.size,
            "bytes": info.bytes,
            "usage": info.bytes,
            "total_fee": info.total_fee,
            "maxmempool": info.max_bytes,
            "maxmempooltxs": info.max_txs,
            "mempoolminfee": info.min_fee,
            "minrelaytxfee": m.min_relay_fee(),
            "incrementalrelayfee": crate::txpool::pool::PRICE_BUMP_PERCENT,
            "unbroadcastcount": 0,
            "fullrbf": true,
            "pending": info.pending,
            "queued": info.queued,
            "evicted": info.evicted,
            "expired": info.expired,
        }))
    }

    fn getmempoolentry(&self, txid: String) -> RpcResult<Value> {
        let h = parse_hash(&txid, error::RPC_INVALID_PARAMETER)?;
        let m = self.ctx.txpool.read();
        let e = m.get(&h).ok_or_else(|| {
            err(
                error::RPC_INVALID_ADDRESS_OR_KEY,
                "Transaction not in mempool",
            )
        })?;
        Ok(mempool_entry(&m, e, self.ctx.chain.head().height))
    }

    async fn getnetworkinfo(&self) -> RpcResult<Value> {
        let peers = self.ctx.net.peers().await.map_err(internal)?;
        let info = self.ctx.net.info().await.map_err(internal)?;
        let inbound = peers.iter().filter(|p| p.inbound).count();
        Ok(json!({
            "version": version_number(),
            "subversion": format!("/meshnode:{}/", env!("CARGO_PKG_VERSION")),
            "protocolversion": 1,
            "localservices": "0000000000000000",
            "localservicesnames": [],
            "localrelay": true,
            "timeoffset": 0,
            "networkactive": true,
            "connections": peers.len(),
            "connections_in": inbound,
            "connections_out": peers.len() - inbound,
            "networks": [],
            "relayfee": self.ctx.txpool.read().min_relay_fee(),
            "incrementalfee": crate::txpool::pool::PRICE_BUMP_PERCENT,
            "localaddresses": info.listen_addrs,
            "warnings": "",
        }))
    }

    async fn getconnectioncount(&self) -> RpcResult<usize> {
        Ok(self.ctx.net.peers().await.map_err(internal)?.len())
    }

    async fn getnodeaddresses(&self, count: Option<i64>) -> RpcResult<Value> {
        let count = count.unwrap_or(1);
        if count < 0 {
            return Err(err(
                error::RPC_INVALID_PARAMETER,
                "Address count out of range",
            ));
        }
        let known = self.ctx.net.known_peers().await.map_err(internal)?;
        let take = if count == 0 {
            known.len()
        } else {
            count as usize
        };
        Ok(Value::Array(
            known
                .into_iter()
                .take(take)
                .map(|k| {
                    json!({
                        "peer_id": k.peer_id,
                        "address": k.addrs.first(),
                        "addresses": k.addrs,
                        "connected": k.connected,
                    })
                })
                .collect(),
        ))
    }

    fn uptime(&self) -> RpcResult<u64> {
        Ok(self.ctx.started.elapsed().as_secs())
    }

    fn help(&self, command: Option<String>) -> RpcResult<String> {
        Ok(super::discover::help(command.as_deref()))
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
                    // Bitcoin Core 23+: "outbound-full-relay" | "inbound" | …
                    "connection_type": p.connection_type,
                    "conntime": p.conntime,
                    "subver": p.agent.clone().unwrap_or_default(),
                    "pingtime": p.ping_ms.map(|ms| ms / 1e3),
                    "minping": p.min_ping_ms.map(|ms| ms / 1e3),
                    "bytessent": p.traffic.bytes_sent,
                    "bytesrecv": p.traffic.bytes_received,
                    "lastsend": p.traffic.last_send_ms / 1000,
                    "lastrecv": p.traffic.last_recv_ms / 1000,
                    "peer_id": p.peer_id,
                    "gossip_score": p.gossip_score,
                    "app_score": p.app_score,
                    "score_state": p.score_state,
                    "in_block_mesh": p.in_block_mesh,
                    "in_compact_block_mesh": p.in_compact_block_mesh,
                    "nearby": p.nearby,
                })
            })
            .collect())
    }
}

/// Bitcoin Core's limit on transactions per `testmempoolaccept` call (its package limit).
pub const MAX_PACKAGE_COUNT: usize = 25;

/// The crate version as Bitcoin Core's integer form (1.2.3 -> 10203).
fn version_number() -> u64 {
    env!("CARGO_PKG_VERSION")
        .split('.')
        .take(3)
        .map(|p| p.parse::<u64>().unwrap_or(0))
        .fold(0, |acc, p| acc * 100 + p)
}

/// A mempool entry in Bitcoin Core's `getmempoolentry` / `getrawmempool true` shape. The
/// ancestor/descendant relation is the sender's nonce chain: a transaction depends on the
/// same sender's transaction with the previous nonce. Fees are base units (`fees.base`), plus
/// account fields (from, to, amount, nonce).
fn mempool_entry(m: &Mempool, e: &Entry, height: u64) -> Value {
    let chain = m.sender_entries(&e.tx.sender());
    let pos = chain.iter().position(|x| x.hash == e.hash).unwrap_or(0);
    let nonce = e.tx.body.nonce;
    // Consecutive nonces around this one: its ancestors below, descendants above.
    let below = chain[..pos]
        .iter()
        .rev()
        .zip(1..)
        .take_while(|(x, d)| x.tx.body.nonce + d == nonce)
        .count();
    let above = chain[pos + 1..]
        .iter()
        .zip(1..)
        .take_while(|(x, d)| x.tx.body.nonce == nonce + d)
        .count();
    let fee_sum = |xs: &[&Entry]| xs.iter().map(|x| x.tx.body.fee as u128).sum::<u128>();
    let size_sum = |xs: &[&Entry]| xs.iter().map(|x| x.size).sum::<usize>();
    let anc = &chain[pos - below..=pos];
    let desc = &chain[pos..=pos + above];
    let depends: Vec<String> = (below > 0)
        .then(|| chain[pos - 1].hash.to_string())
        .into_iter()
        .collect();
    let spentby: Vec<String> = (above > 0)
        .then(|| chain[pos + 1].hash.to_string())
        .into_iter()
        .collect();
    json!({
        "vsize": e.size,
        "weight": e.size * 4,
        "time": e.added_unix_ms / 1000,
        "height": height,
        "descendantcount": desc.len(),
        "descendantsize": size_sum(desc),
        "ancestorcount": anc.len(),
        "ancestorsize": size_sum(anc),
        "wtxid": e.hash.to_string(),
        "fees": {
            "base": e.tx.body.fee,
            "modified": e.tx.body.fee,
            "ancestor": fee_sum(anc),
            "descendant": fee_sum(desc),
        },
        "fee": e.tx.body.fee,
        "depends": depends,
        "spentby": spentby,
        "bip125-replaceable": true,
        "unbroadcast": false,
        "nonce": nonce,
        "from": e.tx.sender().to_string(),
        "to": e.tx.body.to.to_string(),
        "amount": e.tx.body.amount,
    })
}
