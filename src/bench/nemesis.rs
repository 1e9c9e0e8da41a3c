//! `meshnode bench nemesis`: a devnet under transaction load while a random schedule of faults
//! hits it (Jepsen's nemesis), then the checks a Jepsen test makes.
//!
//! Two lanes of faults run at once for `--minutes`, each fault applied through
//! [`crate::devnet::faults::Faults`] (one at a time; the time a fault is held runs outside
//! the controller, so the lanes interleave):
//! - network lane: a partition into two random groups, held 1–3 s, then healed; every bootnode
//!   stopped, held 1–2.5 s, then started again;
//! - node lane: a node killed with SIGKILL, down 0.3–1.5 s, then restarted; a peer spamming a
//!   node with 1,000 invalid transactions (banned within 10 s or the fault fails); a node
//!   stopped, a byte of its store flipped, refused at start, repaired and restarted.
//!
//! Meanwhile a load generator signs transfers from 50 dev accounts (`--tps` a second, each
//! sender's nonces in order) and submits each to a random node, the same signed transaction to
//! the next node while one is down, until one accepts it. After the last fault every fault is
//! lifted, and the checks are:
//! - **convergence**: all nodes report the same head within 10 s of the last fault, and 10 s
//!   after it no node's head is off the canonical chain of the majority (a node one block
//!   behind is not divergent);
//! - **no accepted transaction lost**: once the load stops and the network has had up to 60 s
//!   to mine, every transaction a node accepted is in the canonical chain or the mempool of
//!   every node;
//! - **`store check`** passes on every node after a clean stop.
//!
//! The report (`--out`, JSON) has the fault log, the counts by kind, the figures of each
//! check and a timeline (every node's height each second); the timeline is drawn next to it
//! (`<stem>.timeline.{svg,png}`).

use crate::cli::NemesisArgs;
use crate::devnet::faults::{FaultKind, FaultRecord, Faults};
use crate::devnet::{Devnet, DevnetOptions};
use crate::rpc::api::BitcoinApiClient;
use crate::types::TxBody;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Mutex as AsyncMutex;

/// Senders the load generator uses (dev accounts from [`FIRST_SENDER`]).
pub const SENDERS: u64 = 50;
/// First dev account the load signs with.
pub const FIRST_SENDER: u64 = 100;

/// Every node's height at a moment: (seconds since the start, heights; None while down).
pub type HeightSample = (f64, Vec<Option<u64>>);

/// A small seeded generator (splitmix64): the schedule is reproducible from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo + 1))
    }
}

/// One accepted transaction.
#[derive(Clone, Debug, Serialize)]
pub struct Accepted {
    /// Transaction hash.
    pub hash: String,
    /// Sender address.
    pub sender: String,
    /// Its nonce.
    pub nonce: u64,
    /// The node that accepted it.
    pub node: usize,
    /// Seconds since the start.
    pub at_s: f64,
}

/// What the transaction check found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TxCheck {
    /// Transactions signed and submitted (each until accepted or the load stopped).
    pub submitted: u64,
    /// Accepted by some node.
    pub accepted: u64,
    /// Of those, in the canonical chain of every node.
    pub mined_everywhere: u64,
    /// In the mempool of a node that has not mined it.
    pub pending_somewhere: u64,
    /// Accepted, but neither in the chain nor the mempool of at least one node.
    pub lost: u64,
    /// Up to 20 lost transactions: what was accepted where, the nodes that lack it, and each
    /// node's account nonce for its sender and its mempool entry where it has one.
    pub lost_examples: Vec<serde_json::Value>,
    /// Submissions a node refused for good (never counted as accepted).
    pub refused: u64,
}

/// The report `--out` receives.
#[derive(Clone, Debug, Serialize)]
pub struct NemesisReport {
    /// Nodes.
    pub nodes: usize,
    /// Minutes of faults.
    pub minutes: f64,
    /// The schedule's seed.
    pub seed: u64,
    /// Load, transactions per second.
    pub tps: u64,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// Faults applied, by kind (recoveries included).
    pub counts: BTreeMap<String, usize>,
    /// Faults that failed to apply (with why).
    pub failed: Vec<String>,
    /// Seconds from the last fault until every node reported the same head (None: not
    /// within 30 s).
    pub one_head_after_s: Option<f64>,
    /// Nodes whose head was off the majority's canonical chain 10 s after the last fault.
    pub divergent_heads_after_10s: usize,
    /// The transaction check.
    pub txs: TxCheck,
    /// `store check` after a clean stop: nodes that passed, of all.
    pub store_check_ok: usize,
    /// The `store check` failures.
    pub store_check_errors: Vec<String>,
    /// Spam bans: ms from the first invalid message to the ban, per spam fault.
    pub spam_ban_ms: Vec<u64>,
    /// Damaged stores: whether each was refused at start, and the height repair kept.
    pub damaged_stores: Vec<serde_json::Value>,
    /// Every fault, in order.
    pub log: Vec<FaultRecord>,
    /// Every node's height each second: (seconds, heights; None while down).
    pub heights: Vec<HeightSample>,
    /// Whether every check passed.
    pub passed: bool,
}

fn client(url: &str) -> anyhow::Result<jsonrpsee::http_client::HttpClient> {
    crate::rpc::client::http(url)
}

async fn with_timeout<T>(
    ms: u64,
    f: impl std::future::Future<Output = Result<T, jsonrpsee::core::client::Error>>,
) -> Option<Result<T, String>> {
    match tokio::time::timeout(Duration::from_millis(ms), f).await {
        Ok(Ok(v)) => Some(Ok(v)),
        Ok(Err(e)) => Some(Err(e.to_string())),
        Err(_) => None,
    }
}

/// The load generator: runs until `stop`; returns (accepted, submitted, refused for good).
async fn load(
    urls: Vec<String>,
    chain_id: u64,
    tps: u64,
    t0: Instant,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> (Vec<Accepted>, u64, u64) {
    let keys: Vec<crate::crypto::Keypair> = (0..SENDERS)
        .map(|i| crate::crypto::Keypair::dev_account(FIRST_SENDER + i))
        .collect();
    let clients: Vec<_> = urls.iter().filter_map(|u| client(u).ok()).collect();
    let mut nonces = vec![0u64; keys.len()];
    // A sender's transaction not accepted yet (retried before a new one is signed).
    let mut unaccepted: Vec<Option<crate::types::SignedTx>> = vec![None; keys.len()];
    let mut rng = Rng(seed ^ 0x5eed);
    let mut accepted = Vec::new();
    let (mut submitted, mut refused) = (0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / tps.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut s = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        s = (s + 1) % keys.len();
        let tx = match unaccepted[s].take() {
            Some(tx) => tx,
            None => {
                submitted += 1;
                let k = &keys[s];
                k.sign_tx(TxBody {
                    chain_id,
                    nonce: nonces[s],
                    from: k.public(),
                    to: crate::crypto::Keypair::dev_account(FIRST_SENDER + SENDERS + s as u64)
                        .address(),
                    amount: 1,
                    fee: 1,
                    data: vec![],
                })
            }
        };
        let raw = hex::encode(tx.to_bytes());
        let first = rng.below(clients.len());
        let mut done = false;
        for k in 0..clients.len() {
            let node = (first + k) % clients.len();
            let hash =
                match with_timeout(3_000, clients[node].sendrawtransaction(raw.clone())).await {
                    Some(Ok(hash)) => Some(hash),
                    // Accepted earlier by a node that died before answering, and since mined.
                    Some(Err(e))
                        if e.contains("already in block chain") || e.contains("nonce too low") =>
                    {
                        Some(tx.hash().to_string())
                    }
                    // A node down, or busy: the next one.
                    None | Some(Err(_)) => None,
                };
            if let Some(hash) = hash {
                accepted.push(Accepted {
                    hash,
                    sender: tx.sender().to_string(),
                    nonce: tx.body.nonce,
                    node,
                    at_s: t0.elapsed().as_secs_f64(),
                });
                done = true;
                break;
            }
        }
        if done {
            nonces[s] += 1;
        } else {
            unaccepted[s] = Some(tx);
        }
    }
    refused += unaccepted.iter().filter(|t| t.is_some()).count() as u64;
    (accepted, submitted, refused)
}

/// Heights of every node each second until `stop`.
async fn sample_heights(
    urls: Vec<String>,
    t0: Instant,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<HeightSample>>>,
) {
    let clients: Vec<_> = urls.iter().filter_map(|u| client(u).ok()).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let mut hs = Vec::new();
        for c in &clients {
            hs.push(
                with_timeout(500, c.getblockcount())
                    .await
                    .and_then(|r| r.ok()),
            );
        }
        out.lock()
            .expect("heights lock")
            .push((t0.elapsed().as_secs_f64(), hs));
    }
}

async fn apply(
    faults: &AsyncMutex<Faults>,
    failed: &Mutex<Vec<String>>,
    what: &str,
    f: impl for<'a> FnOnce(
        &'a mut Faults,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = anyhow::Result<serde_json::Value>> + Send + 'a>,
    >,
) -> bool {
    let mut g = faults.lock().await;
    match f(&mut g).await {
        Ok(_) => true,
        Err(e) => {
            let msg = format!("{what}: {e:#}");
            tracing::warn!("{msg}");
            failed.lock().expect("failed lock").push(msg);
            false
        }
    }
}

/// The network lane: partitions and bootnode loss, alternately, until `end`.
async fn network_lane(
    faults: Arc<AsyncMutex<Faults>>,
    failed: Arc<Mutex<Vec<String>>>,
    n: usize,
    end: Instant,
    mut rng: Rng,
) {
    let mut k = 0;
    while Instant::now() < end {
        if k % 2 == 0 {
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                order.swap(i, rng.below(i + 1));
            }
            let cut = 1 + rng.below(n - 1);
            let groups = vec![order[..cut].to_vec(), order[cut..].to_vec()];
            if apply(&faults, &failed, "partition", |f| {
                Box::pin(f.partition_into(groups))
            })
            .await
            {
                tokio::time::sleep(rng.ms(1_000, 3_000)).await;
            }
            apply(&faults, &failed, "heal", |f| Box::pin(f.heal())).await;
        } else {
            if apply(&faults, &failed, "bootnodes down", |f| {
                Box::pin(f.bootnodes_down())
            })
            .await
            {
                tokio::time::sleep(rng.ms(1_000, 2_500)).await;
            }
            apply(&faults, &failed, "bootnodes up", |f| {
                Box::pin(f.bootnodes_up())
            })
            .await;
        }
        k += 1;
        tokio::time::sleep(rng.ms(100, 500)).await;
    }
}

/// The node lane: kill + restart, spam, damaged store, in a random order each round, until
/// `end`.
async fn node_lane(
    faults: Arc<AsyncMutex<Faults>>,
    failed: Arc<Mutex<Vec<String>>>,
    end: Instant,
    mut rng: Rng,
) {
    while Instant::now() < end {
        let mut kinds = [0, 1, 2];
        for i in (1..3).rev() {
            kinds.swap(i, rng.below(i + 1));
        }
        for kind in kinds {
            let up = faults.lock().await.up();
            if up.is_empty() {
                break;
            }
            let node = up[rng.below(up.len())];
            match kind {
                0 => {
                    if apply(&faults, &failed, "kill", |f| Box::pin(f.kill(node))).await {
                        tokio::time::sleep(rng.ms(300, 1_500)).await;
                        apply(&faults, &failed, "restart", |f| Box::pin(f.restart(node))).await;
                    }
                }
                1 => {
                    apply(&faults, &failed, "spam", |f| Box::pin(f.spam(node))).await;
                }
                _ => {
                    apply(&faults, &failed, "damage store", |f| {
                        Box::pin(f.damage_store(node))
                    })
                    .await;
                }
            }
            tokio::time::sleep(rng.ms(100, 500)).await;
        }
    }
}

/// Lifts every fault: heal, bootnodes up, every stopped node restarted.
async fn recover(faults: &AsyncMutex<Faults>, failed: &Mutex<Vec<String>>) {
    apply(faults, failed, "final heal", |f| Box::pin(f.heal())).await;
    apply(faults, failed, "final bootnodes up", |f| {
        Box::pin(f.bootnodes_up())
    })
    .await;
    let n = faults.lock().await.net.nodes.len();
    for i in 0..n {
        let down = !faults.lock().await.up().contains(&i);
        if down {
            apply(faults, failed, "final restart", |f| Box::pin(f.restart(i))).await;
        }
    }
}

/// Best block hash of every node (None where it does not answer).
async fn heads(urls: &[String]) -> Vec<Option<String>> {
    // All at once: a snapshot taken node after node straddles blocks in flight.
    futures::future::join_all(urls.iter().map(|u| async move {
        match client(u) {
            Ok(c) => with_timeout(1_000, c.getbestblockhash())
                .await
                .and_then(|r| r.ok()),
            Err(_) => None,
        }
    }))
    .await
}

/// Nodes whose head is not on the canonical chain of the most common head.
async fn divergent(urls: &[String]) -> anyhow::Result<usize> {
    let hs = heads(urls).await;
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for h in hs.iter().flatten() {
        *counts.entry(h).or_default() += 1;
    }
    let Some((major, _)) = counts.iter().max_by_key(|(_, c)| **c) else {
        return Ok(urls.len());
    };
    let judge = urls[hs
        .iter()
        .position(|h| h.as_ref() == Some(*major))
        .unwrap_or(0)]
    .clone();
    let c = client(&judge)?;
    let mut off = 0;
    for h in &hs {
        let on_chain = match h {
            Some(h) if h == *major => true,
            // Behind but on the same chain: the majority's node has it, canonical.
            Some(h) => c
                .getblockheader(h.clone(), Some(true))
                .await
                .ok()
                .and_then(|v| v["confirmations"].as_i64())
                .is_some_and(|c| c >= 1),
            None => false,
        };
        if !on_chain {
            off += 1;
        }
    }
    Ok(off)
}

/// Every transaction id in node `url`'s canonical chain, and its mempool.
async fn chain_and_pool(url: &str) -> anyhow::Result<(HashSet<String>, HashSet<String>)> {
    let c = client(url)?;
    let head = c.getblockcount().await?;
    let mut chain = HashSet::new();
    for h in 1..=head {
        let hash = c.getblockhash(h).await?;
        let b = c.getblock(hash, Some(1)).await?;
        for t in b["tx"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str() {
                chain.insert(t.to_string());
            }
        }
    }
    let pool = c
        .getrawmempool(None)
        .await?
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    Ok((chain, pool))
}

/// Runs the bench, prints the figures, writes the report and the timeline.
pub async fn run_cli(args: NemesisArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 4, "need at least 4 nodes (3 are bootnodes)");
    let seed = args.seed.unwrap_or_else(crate::now_us);
    let (dir, _tmp) = crate::devnet::work_dir(&args.dir, "meshnode-nemesis-")?;
    let opts = DevnetOptions {
        nodes: args.nodes,
        validators: args.nodes,
        slot_ms: args.slot_ms,
        dir,
        template: args.genesis.clone(),
        exe: std::env::current_exe()?,
        rpc_base_port: 0,
        log: std::env::var("MESHNODE_NODE_LOG").unwrap_or_else(|_| "info".into()),
        dev_accounts: Some(FIRST_SENDER + 2 * SENDERS),
        produce: true,
        extra_args: Vec::new(),
        profile: None,
        netns: false,
        loss: None,
    };
    println!(
        "nemesis: {} nodes, {} min of faults, {} tx/s, seed {seed}",
        args.nodes, args.minutes, args.tps
    );
    let devnet = Devnet::start(&opts).await?;
    let urls = devnet.rpc_urls();
    let chain_id = crate::genesis::GenesisFile::read(&devnet.genesis)?.chain_id;
    let faults = Arc::new(AsyncMutex::new(Faults::new(devnet)?));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let t0 = Instant::now();
    let stop_load = Arc::new(AtomicBool::new(false));
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let heights = Arc::new(Mutex::new(Vec::new()));
    let load_task = tokio::spawn(load(
        urls.clone(),
        chain_id,
        args.tps,
        t0,
        stop_load.clone(),
        seed,
    ));
    let sampler = tokio::spawn(sample_heights(
        urls.clone(),
        t0,
        stop_sampling.clone(),
        heights.clone(),
    ));
    let end = t0 + Duration::from_secs_f64(args.minutes * 60.0);
    let bar = super::progress::TimedBar::start((args.minutes * 60.0) as u64, "faults");
    let mut rng = Rng(seed);
    let lanes = (
        tokio::spawn(network_lane(
            faults.clone(),
            failed.clone(),
            args.nodes,
            end,
            Rng(rng.next()),
        )),
        tokio::spawn(node_lane(
            faults.clone(),
            failed.clone(),
            end,
            Rng(rng.next()),
        )),
    );
    let _ = lanes.0.await;
    let _ = lanes.1.await;
    recover(&faults, &failed).await;
    bar.finish();
    let last_fault = Instant::now();
    stop_load.store(true, Ordering::Relaxed);
    let (accepted, submitted, refused) = load_task.await?;
    println!(
        "faults over after {:.0} s; {} transactions accepted; checking …",
        t0.elapsed().as_secs_f64(),
        accepted.len()
    );

    // Convergence.
    let mut one_head_after_s = None;
    while last_fault.elapsed() < Duration::from_secs(30) {
        let hs = heads(&urls).await;
        if hs.iter().all(|h| h.is_some() && *h == hs[0]) {
            one_head_after_s = Some(last_fault.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ten = last_fault + Duration::from_secs(10);
    if let Some(wait) = ten.checked_duration_since(Instant::now()) {
        tokio::time::sleep(wait).await;
    }
    let divergent_heads = divergent(&urls).await?;

    // Transactions: give the network up to 60 s to mine what it accepted.
    let want: HashSet<String> = accepted.iter().map(|a| a.hash.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut views = Vec::new();
    loop {
        views.clear();
        for u in &urls {
            views.push(chain_and_pool(u).await?);
        }
        let all_mined = views
            .iter()
            .all(|(chain, _)| want.iter().all(|h| chain.contains(h)));
        if all_mined || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    stop_sampling.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let mut txs = TxCheck {
        submitted,
        accepted: want.len() as u64,
        refused,
        ..Default::default()
    };
    let by_hash: HashMap<&str, &Accepted> = accepted.iter().map(|a| (a.hash.as_str(), a)).collect();
    for h in &want {
        let lacking: Vec<usize> = views
            .iter()
            .enumerate()
            .filter(|(_, (chain, pool))| !chain.contains(h) && !pool.contains(h))
            .map(|(i, _)| i)
            .collect();
        if !lacking.is_empty() {
            txs.lost += 1;
            if txs.lost_examples.len() < 20 {
                let a = by_hash[h.as_str()];
                let mut nonces = Vec::new();
                let mut entries = Vec::new();
                for u in &urls {
                    let c = client(u)?;
                    nonces.push(
                        crate::rpc::api::EthApiClient::get_transaction_count(
                            &c,
                            a.sender.clone(),
                            None,
                        )
                        .await
                        .ok(),
                    );
                    entries.push(c.getmempoolentry(h.clone()).await.ok());
                }
                txs.lost_examples.push(serde_json::json!({
                    "accepted": a, "lacking": lacking, "account_nonces": nonces, "mempool": entries,
                }));
            }
        } else if views.iter().all(|(chain, _)| chain.contains(h)) {
            txs.mined_everywhere += 1;
        } else {
            txs.pending_somewhere += 1;
        }
    }

    // Stop cleanly, then `store check` every node.
    let (log, nodes_dirs, exe) = {
        let mut f = faults.lock().await;
        tokio::task::block_in_place(|| f.net.stop());
        (
            f.log.clone(),
            f.net
                .nodes
                .iter()
                .map(|n| n.dir.clone())
                .collect::<Vec<_>>(),
            f.net.exe().to_path_buf(),
        )
    };
    let mut store_check_ok = 0;
    let mut store_check_errors = Vec::new();
    for (i, d) in nodes_dirs.iter().enumerate() {
        let out = std::process::Command::new(&exe)
            .args(["store", "check", "--data-dir"])
            .arg(d)
            .output()?;
        if out.status.success() {
            store_check_ok += 1;
        } else {
            store_check_errors.push(format!(
                "node{i}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }

    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &log {
        *counts
            .entry(
                serde_json::to_value(r.kind)?
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_default() += 1;
    }
    let spam_ban_ms = log
        .iter()
        .filter(|r| r.kind == FaultKind::Spam)
        .filter_map(|r| r.detail["banned_after_ms"].as_u64())
        .collect();
    let damaged_stores = log
        .iter()
        .filter(|r| r.kind == FaultKind::DamageStore)
        .map(|r| r.detail.clone())
        .collect();
    let failed = failed.lock().expect("failed lock").clone();
    let passed = txs.lost == 0
        && one_head_after_s.is_some_and(|s| s <= 10.0)
        && divergent_heads == 0
        && store_check_ok == args.nodes
        && failed.is_empty();
    let report = NemesisReport {
        nodes: args.nodes,
        minutes: args.minutes,
        seed,
        tps: args.tps,
        slot_ms: args.slot_ms,
        counts,
        failed,
        one_head_after_s,
        divergent_heads_after_10s: divergent_heads,
        txs,
        store_check_ok,
        store_check_errors,
        spam_ban_ms,
        damaged_stores,
        log,
        heights: heights.lock().expect("heights lock").clone(),
        passed,
    };
    print_report(&report);
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)?;
    println!("report: {}", args.out.display());
    match super::plot::write_timeline(&args.out, &report) {
        Ok(paths) => {
            for p in paths {
                println!("timeline: {}", p.display());
            }
        }
        Err(e) => println!("timeline not drawn: {e:#}"),
    }
    anyhow::ensure!(report.passed, "nemesis checks failed (see the report)");
    Ok(())
}

fn print_report(r: &NemesisReport) {
    println!("faults applied:");
    for (k, v) in &r.counts {
        println!("  {k:<16} {v}");
    }
    for f in &r.failed {
        println!("  FAILED: {f}");
    }
    let mut bans = r.spam_ban_ms.clone();
    bans.sort_unstable();
    if let (Some(lo), Some(hi)) = (bans.first(), bans.last()) {
        println!(
            "spammers banned after {lo}..{hi} ms (median {} ms)",
            bans[bans.len() / 2]
        );
    }
    let refused = r
        .damaged_stores
        .iter()
        .filter(|d| d["refused"] == true)
        .count();
    println!(
        "damaged stores: {} ({refused} refused at start, all repaired)",
        r.damaged_stores.len()
    );
    match r.one_head_after_s {
        Some(s) => println!(
            "one head on all {} nodes {s:.2} s after the last fault",
            r.nodes
        ),
        None => println!("NO single head within 30 s of the last fault"),
    }
    println!(
        "divergent heads 10 s after the last fault: {}",
        r.divergent_heads_after_10s
    );
    println!(
        "transactions: {} submitted, {} accepted, {} mined on every node, {} still pending, {} LOST",
        r.txs.submitted, r.txs.accepted, r.txs.mined_everywhere, r.txs.pending_somewhere, r.txs.lost
    );
    println!(
        "store check ok on {} of {} nodes",
        r.store_check_ok, r.nodes
    );
    println!("{}", if r.passed { "PASSED" } else { "FAILED" });
}
