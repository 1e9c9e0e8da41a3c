//! Faults on demand for a running devnet (Jepsen's "nemesis"): partition groups of nodes and
//! heal them, kill nodes with SIGKILL and restart them, take the bootnodes away and bring them
//! back, damage a stopped node's store (it must refuse to start; `store repair` and sync bring
//! it back), and let a spamming peer loose on a node (it must be banned).
//!
//! On loopback a partition is enforced by the nodes themselves: each node bans (Bitcoin
//! Core's `setban`, by peer id) every node of the other groups, which disconnects and refuses
//! them; a node restarted during a partition gets its bans again. In a netns devnet the
//! partition is real: iptables in each node's namespace drops every packet across the cut
//! ([`super::netns::Netns::partition`]), and the nodes are told nothing. Heal lifts the bans and dials
//! across the old border. Every fault is recorded with its time and outcome
//! ([`FaultRecord`]), for the nemesis bench's timeline.
//!
//! `meshnode devnet` serves these over an admin JSON-RPC ([`DevnetAdminApiServer`], namespace
//! `devnet_`) on loopback; `meshnode fault` is its command-line client.

use super::{bootnode_count, Devnet};
use crate::rpc::api::BitcoinApiClient;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::{async_trait, RpcResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::rpc_params;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long partition bans last: longer than any devnet run; heal lifts them.
const PARTITION_BAN_SECS: u64 = 7 * 24 * 3600;
/// Invalid messages a spamming peer sends.
pub const SPAM_MESSAGES: u64 = 1_000;

/// The kinds of fault, as the timeline names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A partition (until healed).
    Partition,
    /// A partition lifted.
    Heal,
    /// A node killed with SIGKILL.
    Kill,
    /// A node started again.
    Restart,
    /// Every bootnode stopped.
    BootnodesDown,
    /// The bootnodes started again.
    BootnodesUp,
    /// A stopped node's store damaged, refused at start, repaired, restarted.
    DamageStore,
    /// A peer sending invalid gossip to a node until banned.
    Spam,
}

/// One fault as it happened.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FaultRecord {
    /// When it began, ms since the controller started.
    pub at_ms: u64,
    /// What.
    pub kind: FaultKind,
    /// Which nodes, groups, or figures.
    pub detail: Value,
    /// How long applying it took, ms.
    pub took_ms: u64,
}

/// The controller: a devnet plus the faults in force.
pub struct Faults {
    /// The devnet.
    pub net: Devnet,
    chain_id: u64,
    /// The groups of the partition in force.
    partition: Option<Vec<Vec<usize>>>,
    /// Nodes stopped by a fault (killed, bootnodes taken away).
    down: BTreeSet<usize>,
    /// Bootnodes stopped by [`Faults::bootnodes_down`].
    bootnodes_taken: Vec<usize>,
    /// Spam faults so far: each sends different messages (gossipsub drops a repeat of a
    /// message it has seen unvalidated, so a replayed flood would never be judged).
    spams: u64,
    t0: Instant,
    /// Every fault applied, in order.
    pub log: Vec<FaultRecord>,
}

fn rpc_err(e: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32000, e.to_string(), None::<()>)
}

/// Flips one byte among the last 5 % written of a sled log (`dir/chain/db`): recent writes,
/// where a torn write or a bad sector at power loss lands; returns the offset.
pub fn flip_store_byte(data_dir: &Path) -> anyhow::Result<u64> {
    let db = data_dir.join("chain").join("db");
    let mut bytes = std::fs::read(&db)?;
    let used = bytes.iter().rposition(|b| *b != 0).unwrap_or(0);
    let off = used - (crate::now_us() as usize % (used / 20).max(1));
    bytes[off] ^= 0xff;
    std::fs::write(&db, bytes)?;
    Ok(off as u64)
}

impl Faults {
    /// Takes control of `net`.
    pub fn new(net: Devnet) -> anyhow::Result<Faults> {
        let chain_id = crate::genesis::GenesisFile::read(&net.genesis)?.chain_id;
        Ok(Faults {
            net,
            chain_id,
            partition: None,
            down: BTreeSet::new(),
            bootnodes_taken: Vec::new(),
            spams: 0,
            t0: Instant::now(),
            log: Vec::new(),
        })
    }

    fn record(&mut self, kind: FaultKind, began: Instant, detail: Value) {
        self.log.push(FaultRecord {
            at_ms: began.duration_since(self.t0).as_millis() as u64,
            kind,
            detail,
            took_ms: began.elapsed().as_millis() as u64,
        });
    }

    fn client(&self, i: usize) -> anyhow::Result<jsonrpsee::http_client::HttpClient> {
        crate::rpc::client::http(self.net.nodes[i].rpc_url())
    }

    fn peer_id(&self, i: usize) -> Option<String> {
        self.net.nodes[i].info.as_ref().map(|n| n.peer_id.clone())
    }

    /// Nodes up (not stopped by a fault).
    pub fn up(&self) -> Vec<usize> {
        (0..self.net.nodes.len())
            .filter(|i| !self.down.contains(i))
            .collect()
    }

    /// The partition in force, if any.
    pub fn partition(&self) -> Option<&Vec<Vec<usize>>> {
        self.partition.as_ref()
    }

    fn group_of(&self, i: usize) -> Option<usize> {
        self.partition
            .as_ref()
            .and_then(|g| g.iter().position(|g| g.contains(&i)))
    }

    /// Node `i` bans every node outside its group.
    async fn apply_bans(&self, i: usize) -> anyhow::Result<()> {
        if self.net.netns.is_some() {
            // The kernel's rules outlive the node.
            return Ok(());
        }
        let Some(mine) = self.group_of(i) else {
            return Ok(());
        };
        let c = self.client(i)?;
        for j in 0..self.net.nodes.len() {
            if self.group_of(j) == Some(mine) {
                continue;
            }
            if let Some(p) = self.peer_id(j) {
                let _: Value = c
                    .request("setban", rpc_params![p, "add", PARTITION_BAN_SECS, false])
                    .await
                    .or_else(|e| {
                        // Already banned: fine.
                        if e.to_string().contains("already banned") {
                            Ok(Value::Null)
                        } else {
                            Err(e)
                        }
                    })?;
            }
        }
        Ok(())
    }

    /// Splits the nodes into `groups` that cannot reach each other (nodes named in no group
    /// form one more group). A partition in force is healed first.
    ///
    /// Errors: a node index out of range or in two groups; a node's RPC failing.
    pub async fn partition_into(&mut self, groups: Vec<Vec<usize>>) -> anyhow::Result<Value> {
        let n = self.net.nodes.len();
        let mut seen = BTreeSet::new();
        for &i in groups.iter().flatten() {
            anyhow::ensure!(i < n, "node {i} does not exist ({n} nodes)");
            anyhow::ensure!(seen.insert(i), "node {i} is in two groups");
        }
        if self.partition.is_some() {
            self.heal().await?;
        }
        let began = Instant::now();
        let mut groups: Vec<Vec<usize>> = groups.into_iter().filter(|g| !g.is_empty()).collect();
        let rest: Vec<usize> = (0..n).filter(|i| !seen.contains(i)).collect();
        if !rest.is_empty() {
            groups.push(rest);
        }
        anyhow::ensure!(groups.len() >= 2, "a partition needs at least two groups");
        self.partition = Some(groups.clone());
        if let Some(ns) = &self.net.netns {
            ns.partition(&groups)?;
            let detail = json!({ "groups": groups, "enforced_by": "iptables" });
            self.record(FaultKind::Partition, began, detail.clone());
            return Ok(detail);
        }
        for i in self.up() {
            // A node that does not answer (stopping, in another fault) gets its bans when it
            // starts again.
            if let Err(e) = self.apply_bans(i).await {
                tracing::warn!(node = i, cause = %e, "partition bans not applied");
            }
        }
        let detail = json!({ "groups": groups });
        self.record(FaultKind::Partition, began, detail.clone());
        Ok(detail)
    }

    /// Lifts the partition in force (if any): every node lifts its partition bans and dials
    /// two nodes of each group it was cut from.
    pub async fn heal(&mut self) -> anyhow::Result<Value> {
        let began = Instant::now();
        let Some(groups) = self.partition.take() else {
            return Ok(json!({ "healed": false }));
        };
        let up = self.up();
        if let Some(ns) = &self.net.netns {
            ns.heal()?;
        }
        for &i in up.iter().filter(|_| self.net.netns.is_none()) {
            let Ok(c) = self.client(i) else { continue };
            for j in 0..self.net.nodes.len() {
                if groups.iter().any(|g| g.contains(&i) && g.contains(&j)) {
                    continue;
                }
                if let Some(p) = self.peer_id(j) {
                    // -30: not banned (the node restarted while partitioned and down).
                    let _ = c
                        .request::<Value, _>("setban", rpc_params![p, "remove"])
                        .await;
                }
            }
        }
        for &i in &up {
            let Ok(c) = self.client(i) else { continue };
            for g in groups.iter().filter(|g| !g.contains(&i)) {
                for &j in g.iter().filter(|j| up.contains(j)).take(2) {
                    if let Some(addr) = self.net.nodes[j]
                        .info
                        .as_ref()
                        .and_then(|n| n.listen_addrs.first().cloned())
                    {
                        let _ = c.addnode(addr, "onetry".into()).await;
                    }
                }
            }
        }
        let detail = json!({ "groups": groups });
        self.record(FaultKind::Heal, began, detail.clone());
        Ok(detail)
    }

    /// Kills node `i` with SIGKILL.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<Value> {
        anyhow::ensure!(i < self.net.nodes.len(), "node {i} does not exist");
        let began = Instant::now();
        tokio::task::block_in_place(|| {
            self.net
                .stop_node_with(i, nix::sys::signal::Signal::SIGKILL, Duration::from_secs(5))
        });
        self.down.insert(i);
        let detail = json!({ "node": i });
        self.record(FaultKind::Kill, began, detail.clone());
        Ok(detail)
    }

    async fn start(&mut self, i: usize) -> anyhow::Result<()> {
        self.net.start_node(i)?;
        self.net.wait_ready(i, Duration::from_secs(60)).await?;
        self.down.remove(&i);
        self.apply_bans(i).await
    }

    /// Starts node `i` again (after a kill or a stop), with its partition bans if one is in
    /// force.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<Value> {
        anyhow::ensure!(i < self.net.nodes.len(), "node {i} does not exist");
        anyhow::ensure!(self.down.contains(&i), "node {i} is running");
        let began = Instant::now();
        self.start(i).await?;
        let detail = json!({ "node": i });
        self.record(FaultKind::Restart, began, detail.clone());
        Ok(detail)
    }

    /// Stops every running bootnode (SIGTERM).
    pub async fn bootnodes_down(&mut self) -> anyhow::Result<Value> {
        let began = Instant::now();
        let boots: Vec<usize> = (0..bootnode_count(self.net.nodes.len()))
            .filter(|i| !self.down.contains(i))
            .collect();
        for &i in &boots {
            tokio::task::block_in_place(|| self.net.stop_node(i));
            self.down.insert(i);
        }
        self.bootnodes_taken.extend(&boots);
        let detail = json!({ "nodes": boots });
        self.record(FaultKind::BootnodesDown, began, detail.clone());
        Ok(detail)
    }

    /// Starts the bootnodes [`Faults::bootnodes_down`] stopped.
    pub async fn bootnodes_up(&mut self) -> anyhow::Result<Value> {
        let began = Instant::now();
        let boots: Vec<usize> = std::mem::take(&mut self.bootnodes_taken)
            .into_iter()
            .filter(|i| self.down.contains(i))
            .collect();
        for &i in &boots {
            self.start(i).await?;
        }
        let detail = json!({ "nodes": boots });
        self.record(FaultKind::BootnodesUp, began, detail.clone());
        Ok(detail)
    }

    /// Stops node `i`, flips a byte in the middle of its store's log, and starts it: it must
    /// refuse, naming the damage; then `meshnode store repair` and a start bring it back, and
    /// sync refills what repair could not keep. Returns whether the damage was refused and
    /// the height repair kept.
    pub async fn damage_store(&mut self, i: usize) -> anyhow::Result<Value> {
        anyhow::ensure!(i < self.net.nodes.len(), "node {i} does not exist");
        anyhow::ensure!(!self.down.contains(&i), "node {i} is stopped");
        let began = Instant::now();
        tokio::task::block_in_place(|| self.net.stop_node(i));
        self.down.insert(i);
        let dir = self.net.nodes[i].dir.clone();
        let offset = flip_store_byte(&dir)?;
        self.net.start_node(i)?;
        let refused = match self.net.wait_ready(i, Duration::from_secs(60)).await {
            Ok(()) => {
                // The flipped byte was one sled no longer reads: the store is whole.
                tokio::task::block_in_place(|| self.net.stop_node(i));
                false
            }
            Err(_) => {
                let log = std::fs::read_to_string(dir.join("node.log")).unwrap_or_default();
                anyhow::ensure!(
                    log.contains("is damaged") && log.contains("store repair"),
                    "node {i} exited on a damaged store without naming the damage"
                );
                true
            }
        };
        let out = tokio::task::block_in_place(|| {
            std::process::Command::new(self.net.exe())
                .args(["store", "repair", "--data-dir"])
                .arg(&dir)
                .arg("--genesis")
                .arg(&self.net.genesis)
                .output()
        })?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        anyhow::ensure!(
            out.status.success(),
            "store repair of node {i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kept: Option<u64> = text
            .split("up to height ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|h| h.parse().ok())
            .or(text.contains("cleared to genesis").then_some(0));
        self.start(i).await?;
        let detail =
            json!({ "node": i, "offset": offset, "refused": refused, "kept_height": kept });
        self.record(FaultKind::DamageStore, began, detail.clone());
        Ok(detail)
    }

    /// A peer dials node `i` and publishes [`SPAM_MESSAGES`] transactions with broken
    /// signatures; returns how long the node took to ban it (error if not within 10 s).
    pub async fn spam(&mut self, i: usize) -> anyhow::Result<Value> {
        anyhow::ensure!(!self.down.contains(&i), "node {i} is stopped");
        let began = Instant::now();
        let info = self.net.nodes[i]
            .info
            .clone()
            .ok_or_else(|| anyhow::anyhow!("node {i} has not started"))?;
        self.spams += 1;
        let (peer_id, banned_after) =
            spam_node(self.chain_id, &info, self.spams * SPAM_MESSAGES).await?;
        let detail = json!({ "node": i, "peer": peer_id, "messages": SPAM_MESSAGES, "banned_after_ms": banned_after.as_millis() as u64 });
        self.record(FaultKind::Spam, began, detail.clone());
        Ok(detail)
    }

    /// Every node: up or not, RPC URL, peer id, height, peers; the partition in force.
    pub async fn status(&self) -> Value {
        let mut nodes = Vec::new();
        for (i, n) in self.net.nodes.iter().enumerate() {
            let up = !self.down.contains(&i);
            let (height, peers) = match (up, self.client(i)) {
                (true, Ok(c)) => (
                    c.getblockcount().await.ok(),
                    c.getconnectioncount().await.ok(),
                ),
                _ => (None, None),
            };
            nodes.push(json!({
                "index": i,
                "up": up,
                "rpc_url": n.rpc_url(),
                "peer_id": n.info.as_ref().map(|i| i.peer_id.clone()),
                "height": height,
                "peers": peers,
            }));
        }
        json!({ "nodes": nodes, "partition": self.partition, "faults": self.log.len() })
    }
}

/// The devnet's admin JSON-RPC (namespace `devnet_`), served on loopback by `meshnode devnet`.
#[rpc(server, client, namespace = "devnet")]
pub trait DevnetAdminApi {
    /// `devnet_status` -> `{nodes: [{index, up, rpc_url, peer_id, height, peers}], partition,
    /// faults}`.
    #[method(name = "status")]
    async fn status(&self) -> RpcResult<Value>;
    /// `devnet_partition(groups)`: `[[0,1,2],[3,4]]`; nodes in no group form one more.
    #[method(name = "partition")]
    async fn partition(&self, groups: Vec<Vec<usize>>) -> RpcResult<Value>;
    /// `devnet_heal`: lifts the partition.
    #[method(name = "heal")]
    async fn heal(&self) -> RpcResult<Value>;
    /// `devnet_kill(node)`: SIGKILL.
    #[method(name = "kill")]
    async fn kill(&self, node: usize) -> RpcResult<Value>;
    /// `devnet_restart(node)`: starts a killed or stopped node.
    #[method(name = "restart")]
    async fn restart(&self, node: usize) -> RpcResult<Value>;
    /// `devnet_bootnodes(up)`: `false` stops every bootnode, `true` starts them again.
    #[method(name = "bootnodes")]
    async fn bootnodes(&self, up: bool) -> RpcResult<Value>;
    /// `devnet_damageStore(node)`: stop, flip a byte of the store, watch the refusal, repair,
    /// start.
    #[method(name = "damageStore")]
    async fn damage_store(&self, node: usize) -> RpcResult<Value>;
    /// `devnet_spam(node)`: a peer floods node with invalid transactions until banned.
    #[method(name = "spam")]
    async fn spam(&self, node: usize) -> RpcResult<Value>;
}

/// The admin server's state: the controller behind a lock (one fault at a time).
pub struct Admin(pub Arc<tokio::sync::Mutex<Faults>>);

#[async_trait]
impl DevnetAdminApiServer for Admin {
    async fn status(&self) -> RpcResult<Value> {
        Ok(self.0.lock().await.status().await)
    }
    async fn partition(&self, groups: Vec<Vec<usize>>) -> RpcResult<Value> {
        self.0
            .lock()
            .await
            .partition_into(groups)
            .await
            .map_err(rpc_err)
    }
    async fn heal(&self) -> RpcResult<Value> {
        self.0.lock().await.heal().await.map_err(rpc_err)
    }
    async fn kill(&self, node: usize) -> RpcResult<Value> {
        self.0.lock().await.kill(node).await.map_err(rpc_err)
    }
    async fn restart(&self, node: usize) -> RpcResult<Value> {
        self.0.lock().await.restart(node).await.map_err(rpc_err)
    }
    async fn bootnodes(&self, up: bool) -> RpcResult<Value> {
        let mut f = self.0.lock().await;
        if up {
            f.bootnodes_up().await
        } else {
            f.bootnodes_down().await
        }
        .map_err(rpc_err)
    }
    async fn damage_store(&self, node: usize) -> RpcResult<Value> {
        self.0
            .lock()
            .await
            .damage_store(node)
            .await
            .map_err(rpc_err)
    }
    async fn spam(&self, node: usize) -> RpcResult<Value> {
        self.0.lock().await.spam(node).await.map_err(rpc_err)
    }
}

/// Serves the admin RPC on `addr` (loopback); returns the bound address and the server
/// handle (stop it when the devnet stops).
pub async fn serve_admin(
    addr: std::net::SocketAddr,
    faults: Arc<tokio::sync::Mutex<Faults>>,
) -> anyhow::Result<(std::net::SocketAddr, jsonrpsee::server::ServerHandle)> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the devnet admin RPC serves loopback only (it can kill nodes)"
    );
    let server = jsonrpsee::server::Server::builder().build(addr).await?;
    let local = server.local_addr()?;
    let handle = server.start(Admin(faults).into_rpc());
    Ok((local, handle))
}

/// A spamming peer: a fresh libp2p identity dials `target` (meshnode's real protocols), waits
/// until it is connected, publishes [`SPAM_MESSAGES`] distinct transactions with
/// broken signatures (nonces from `first_nonce`, so no two floods repeat a message), and
/// watches the node's `listbanned` until it is banned. Returns its peer id and the time from
/// its first message to the ban.
///
/// Errors: it cannot connect (20 s), or the node does not ban it within 10 s.
pub async fn spam_node(
    chain_id: u64,
    target: &crate::config::NodeFile,
    first_nonce: u64,
) -> anyhow::Result<(String, Duration)> {
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = crate::p2p::NetworkConfig {
        chain_id,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        bootnodes: vec![target.listen_addrs[0].parse()?],
        peers: crate::p2p::PeerConfig::static_only(),
        queue_len: 64,
        idontwant: true,
        ban_time: crate::p2p::bans::DEFAULT_BAN_TIME,
        shape: None,
        port_reuse: false,
    };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let peer_id = key.public().to_peer_id().to_string();
    let (handle, _chans, task) = crate::p2p::start(key, cfg, async move {
        let _ = stop_rx.await;
    })?;
    let result = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        // Connected is enough: gossipsub publishes to every peer subscribed to the topic
        // (flood publishing), mesh or not; the loop below waits for the subscription.
        while !handle
            .peers()
            .await?
            .iter()
            .any(|p| p.peer_id == target.peer_id)
        {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the spammer could not connect to {}",
                target.peer_id
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent_at = Instant::now();
        // One signature, then a new nonce per message: every message is distinct and its
        // signature no longer matches (the attacker spends no CPU signing).
        let k = crate::crypto::Keypair::dev_account(900);
        let mut tx = k.sign_tx(crate::types::TxBody {
            chain_id,
            nonce: u64::MAX,
            from: k.public(),
            to: k.address(),
            amount: 1,
            fee: 1,
            data: vec![],
        });
        let mut n = 0;
        while n < SPAM_MESSAGES {
            tx.body.nonce = first_nonce + n;
            match handle
                .publish(crate::p2p::TopicKind::Tx, tx.to_bytes())
                .await
            {
                Ok(()) => n += 1,
                // Not subscribed to the node's tx topic yet, or already cut off.
                Err(_) if sent_at.elapsed() < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(_) => break,
            }
        }
        let c = crate::rpc::client::http(&target.rpc_url)?;
        loop {
            let banned = c.listbanned().await?;
            if banned
                .as_array()
                .is_some_and(|b| b.iter().any(|e| e["address"] == peer_id.as_str()))
            {
                return Ok(sent_at.elapsed());
            }
            anyhow::ensure!(
                sent_at.elapsed() < Duration::from_secs(10),
                "{} did not ban the spammer within 10 s",
                target.peer_id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    .await;
    let _ = stop.send(());
    let _ = task.await;
    Ok((peer_id, result?))
}
