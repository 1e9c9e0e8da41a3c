//! Wiring and shutdown only: builds each service, hands it the narrow handles it needs, starts
//! its tasks, and on shutdown stops them in order and waits for every one (mini-redis
//! `server.rs`). Nothing imports this module.

use crate::arrivals::ArrivalLog;
use crate::chain::Chain;
use crate::config::{Config, NodeFile};
use crate::crypto::Keypair;
use crate::gossip::{GossipStats, Workers};
use crate::p2p::{self, NetworkConfig};
use crate::producer::Producer;
use crate::rpc::server::RpcContext;
use crate::sync::{Sync, SyncStatus};
use crate::txpool::TxPool;
use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Loads the node's libp2p key from `path`, creating it (mode 0600) on first start.
fn node_identity(path: &std::path::Path) -> anyhow::Result<libp2p::identity::Keypair> {
    let key = if path.exists() {
        Keypair::read_file(path)?
    } else {
        let k = Keypair::generate();
        k.write_file(path)?;
        k
    };
    Ok(libp2p::identity::Keypair::ed25519_from_bytes(
        key.secret_bytes(),
    )?)
}

/// The libp2p peer id of the node key in `path` (a `meshnode run --node-key` file).
///
/// Errors: the file is missing or is not a node key.
pub fn peer_id_of_key_file(path: &std::path::Path) -> anyhow::Result<libp2p::PeerId> {
    let key = Keypair::read_file(path)?;
    Ok(
        libp2p::identity::Keypair::ed25519_from_bytes(key.secret_bytes())?
            .public()
            .to_peer_id(),
    )
}

/// Runs a node until `shutdown` resolves, then stops every task, waits for each to finish
/// and flushes the store.
///
/// Shutdown order: JSON-RPC (no new submissions), then the service tasks (producer, sync,
/// announcer, pool maintenance, arrival log: each returns at the stop signal), then the network
/// task (which drops the validation queues, so the gossip workers finish what they hold and
/// end), then the `tx-index` thread (after indexing what is queued), then the store flush. No
/// task is aborted.
pub async fn run(
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let node_file = cfg.data_dir.join("node.json");
    let _ = std::fs::remove_file(&node_file);
    let opening = Instant::now();
    let chain = Arc::new(Chain::open(&cfg.data_dir.join("chain"), cfg.spec.clone())?);
    let head = chain.head();
    info!(
        chain_id = cfg.spec.chain_id,
        height = head.height,
        hash = %head.hash,
        ms = opening.elapsed().as_millis() as u64,
        "chain opened (head marker and every stored value verified)"
    );
    // Transactions' index entries are written behind the head, off the import path, in the
    // second half of a slot (after the block's propagation).
    let tx_indexer = chain
        .store
        .spawn_tx_indexer(crate::chain::txindex::tx_index_delay(cfg.spec.slot_ms))
        .context("starting the tx-index thread")?;
    let identity = node_identity(&cfg.node_key)?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let (net_stop_tx, mut net_stop) = watch::channel(false);
    let net_cfg = NetworkConfig {
        chain_id: cfg.spec.chain_id,
        listen: cfg.listen.clone(),
        bootnodes: cfg.bootnodes.clone(),
        peers: cfg.peers,
        queue_len: cfg.gossip.queue_len,
        idontwant: cfg.gossip.idontwant,
        ban_time: cfg.ban_time,
        shape: cfg.link_shape.clone(),
        port_reuse: cfg.port_reuse,
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = crate::metrics::NodeMetrics::new(&mut registry);
    let (net, chans, net_task) = p2p::start_with_registry(
        identity,
        net_cfg,
        cfg.metrics_addr.is_some().then_some(registry),
        async move {
            let _ = net_stop.changed().await;
        },
    )?;

    let (pool, announce_rx) = TxPool::new(chain.clone(), cfg.txpool);
    if cfg.mempool_journal {
        let path = cfg.data_dir.join(crate::txpool::journal::JOURNAL_FILE);
        let (admitted, refused) = pool
            .attach_journal(&path)
            .await
            .with_context(|| format!("reading the transaction journal {}", path.display()))?;
        if admitted + refused > 0 {
            info!(admitted, refused, "local transactions reloaded from the journal (refused ones were mined or replaced meanwhile)");
        }
    }
    let journal = cfg.data_dir.join(crate::arrivals::JOURNAL_FILE);
    let arrivals = Arc::new(
        ArrivalLog::with_broadcast()
            .with_journal(&journal)
            .with_context(|| format!("opening the arrival journal {}", journal.display()))?,
    );
    let status = SyncStatus::new(cfg.bootnodes.is_empty());
    let (sync, sync_inputs) = Sync::new(
        chain.clone(),
        pool.clone(),
        net.clone(),
        status.clone(),
        cfg.sync,
    );

    let mut tasks: Vec<(&'static str, JoinHandle<()>)> = vec![
        (
            "announcer",
            tokio::spawn(crate::txpool::announce::run(
                net.clone(),
                announce_rx,
                cfg.txpool,
                stop_rx.clone(),
            )),
        ),
        (
            "txpool-journal",
            tokio::spawn(rejournal(pool.clone(), stop_rx.clone())),
        ),
        (
            "txpool-maintenance",
            tokio::spawn(crate::txpool::maintain::run(
                pool.clone(),
                chain.subscribe(),
                cfg.txpool.expiry_interval,
                stop_rx.clone(),
            )),
        ),
        (
            "arrival-log",
            tokio::spawn(crate::arrivals::follow(
                arrivals.clone(),
                chain.subscribe(),
                stop_rx.clone(),
            )),
        ),
        (
            "metrics",
            tokio::spawn(crate::metrics::follow(
                metrics.clone(),
                arrivals.subscribe(),
                stop_rx.clone(),
            )),
        ),
        (
            "sync-events",
            tokio::spawn(sync.clone().run_events(chans.events, stop_rx.clone())),
        ),
        (
            "sync-downloads",
            tokio::spawn(sync.clone().run_downloads(sync_inputs, stop_rx.clone())),
        ),
    ];
    if let Some(key) = cfg.validator_key.clone() {
        if !chain.spec.validators.contains(&key.public()) {
            warn!(address = %key.address(), "validator key is not in the genesis validator set; it will never produce");
        }
        let producer = Producer {
            chain: chain.clone(),
            pool: pool.clone(),
            net: net.clone(),
            sync: status.clone(),
            arrivals: arrivals.clone(),
            key,
            relay: cfg.relay,
        };
        tasks.push(("producer", tokio::spawn(producer.run(stop_rx.clone()))));
    }
    let gossip_stats = Arc::new(GossipStats::default());
    let workers = Workers {
        stats: gossip_stats.clone(),
        chain: chain.clone(),
        pool: pool.clone(),
        net: net.clone(),
        arrivals: arrivals.clone(),
        sync: sync.trigger(),
        cfg: cfg.gossip,
    }
    .spawn(chans.txs, chans.blocks)?;

    // Bitcoin Core's scheme: a fresh cookie each start unless a user and password are set;
    // credentials required off loopback or when configured.
    let (credential, cookie) = match &cfg.rpc_user_pass {
        Some(up) => (up.clone(), None),
        None => {
            let (path, line) = crate::rpc::auth::write_cookie(&cfg.data_dir)
                .context("writing the RPC cookie file")?;
            (line, Some(path))
        }
    };
    let auth_required = !cfg.rpc_addr.ip().is_loopback() || cfg.rpc_user_pass.is_some();
    let auth = crate::rpc::auth::AuthLayer::new(&[credential], auth_required);
    let rpc_ctx = RpcContext {
        chain: chain.clone(),
        txpool: pool.clone(),
        net: net.clone(),
        sync: status.clone(),
        arrivals: arrivals.clone(),
        gossip: gossip_stats,
        started: Instant::now(),
        ban_time: cfg.ban_time,
        link: cfg.link_shape.as_ref().map(|s| s.info()),
        rpc_duration: metrics.rpc_duration.clone(),
    };
    let rpc = crate::rpc::server::start(cfg.rpc_addr, rpc_ctx, auth, cfg.rpc_limits).await?;
    let mut rpc_addr = rpc.local_addr;
    if rpc_addr.ip().is_unspecified() {
        // Local tooling reaches a wildcard bind through loopback.
        rpc_addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    info!(url = %format!("http://{rpc_addr}"), "JSON-RPC listening (HTTP and WebSocket)");
    let metrics_url = match cfg.metrics_addr {
        Some(addr) => {
            let sources = crate::metrics::Sources {
                chain: chain.clone(),
                txpool: pool.clone(),
                net: net.clone(),
                sync: status.clone(),
            };
            let server = crate::metrics::serve(
                addr,
                chans.registry.clone(),
                metrics.clone(),
                sources,
                stop_rx.clone(),
            )
            .await?;
            let mut a = server.local_addr;
            if a.ip().is_unspecified() {
                a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            tasks.push(("metrics-server", server.task));
            let url = format!("http://{a}/metrics");
            info!(%url, "Prometheus metrics listening");
            Some(url)
        }
        None => None,
    };

    // Wait for the listen addresses, then tell tooling where we are.
    let mut info = net.info().await.map_err(anyhow::Error::msg)?;
    for _ in 0..100 {
        if !info.listen_addrs.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        info = net.info().await.map_err(anyhow::Error::msg)?;
    }
    let nf = NodeFile {
        peer_id: info.peer_id.clone(),
        listen_addrs: info.listen_addrs.clone(),
        rpc_url: format!("http://{rpc_addr}"),
        pid: std::process::id(),
        metrics_url,
    };
    let tmp = cfg.data_dir.join("node.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&nf)?)?;
    std::fs::rename(&tmp, &node_file)?;
    info!(peer_id = %info.peer_id, addrs = ?info.listen_addrs, "node started");

    // A damaged store found while running stops the node (Bitcoin Core's `AbortNode`): the
    // store refuses writes from then on, and the error names the damage and the remedy.
    let damage = {
        let store = chain.store.clone();
        async move { store.damage_found().await }
    };
    let damaged = tokio::select! {
        _ = shutdown => None,
        what = damage => Some(what),
    };
    let t0 = Instant::now();
    info!("shutting down");
    rpc.handle.stop().ok();
    rpc.handle.stopped().await;
    let _ = stop_tx.send(true);
    let n_tasks = tasks.len() + workers.len() + 1;
    for (name, t) in tasks {
        if let Err(e) = t.await {
            warn!(task = name, cause = %e, "task ended abnormally");
        }
    }
    let _ = net_stop_tx.send(true);
    if let Err(e) = net_task.await {
        warn!(task = "network", cause = %e, "task ended abnormally");
    }
    // The gossip workers end once the network task has dropped their queues' senders.
    for t in workers {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    drop(pool);
    tx_indexer.stop();
    chain.store.flush()?;
    let _ = std::fs::remove_file(&node_file);
    if let Some(c) = cookie {
        let _ = std::fs::remove_file(c);
    }
    info!(
        tasks = n_tasks,
        ms = t0.elapsed().as_millis() as u64,
        "stopped: every task finished"
    );
    if let Some(what) = damaged {
        return Err(crate::chain::StoreError::Damaged {
            dir: cfg.data_dir.join("chain"),
            what,
        }
        .into());
    }
    Ok(())
}

/// How often the transaction journal is rewritten with what is still pending (geth's
/// `--txpool.rejournal`, 1 h there; shorter here, where devnets live minutes).
pub const REJOURNAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Rotates the transaction journal every [`REJOURNAL_INTERVAL`] and once more at stop.
async fn rejournal(pool: TxPool, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(REJOURNAL_INTERVAL);
    tick.tick().await;
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.changed() => true,
        };
        let p = pool.clone();
        match tokio::task::spawn_blocking(move || p.rotate_journal()).await {
            Ok(Ok(n)) => tracing::debug!(kept = n, "transaction journal rotated"),
            Ok(Err(e)) => warn!(cause = %e, "rotating the transaction journal failed"),
            Err(_) => {}
        }
        if stopping {
            return;
        }
    }
}
