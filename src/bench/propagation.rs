//! `meshnode bench propagation`: start a devnet, drive signed transactions through JSON-RPC,
//! wait for B blocks, collect every node's arrival records and report, per block, the time from
//! publish to 50 %, 95 % and 100 % of nodes.
//!
//! Definitions. For a block, each node's time is `validatedUs - publishedUs` (µs since the
//! producer handed it to gossipsub until that node had validated and committed it; the producer
//! counts as 0). `tX` is the smallest time by which ceil(X % × N) of the N nodes had it (None if
//! fewer nodes did). Over blocks, p50/p95/max use the nearest-rank method. All nodes run on
//! one machine and share its clock, so differences are exact.

use crate::arrivals::Arrival;
use crate::cli::PropagationArgs;
use crate::crypto::Keypair;
use crate::devnet::{Devnet, DevnetOptions};
use crate::p2p::shaping::LinkInfo;
use crate::rpc::api::{BitcoinApiClient, EthApiClient, MeshnodeApiClient};
use crate::rpc::client::http;
use crate::rpc::types::parse_qty;
use crate::types::TxBody;
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One block's propagation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockReport {
    /// Height.
    pub height: u64,
    /// Hash (hex).
    pub hash: String,
    /// Transactions.
    pub txs: u64,
    /// Encoded size of the full block, bytes.
    pub bytes: u64,
    /// Mean over receiving nodes of the gossip message bytes that delivered it first (a
    /// compact block or the full block), plus the transactions fetched for it; duplicates and
    /// control traffic are not counted.
    #[serde(default)]
    pub received_bytes: f64,
    /// ms from publish until every node had verified and relayed it (the producer: published).
    #[serde(default)]
    pub t100_relayed_ms: Option<f64>,
    /// Per node that had it: ms from publish until it had verified and relayed it (the
    /// producer: published), ascending.
    #[serde(default)]
    pub relayed_ms: Vec<f64>,
    /// Hop depth of each node in the block's delivery tree (who delivered it first to whom;
    /// the producer is 0), None where the first deliverer is not a devnet node.
    #[serde(default)]
    pub hops: Vec<Option<u64>>,
    /// The delivery tree itself: per node (in the order of the bench's node list), the index
    /// of the node that delivered the block to it first; None for the producer, a node that
    /// never saw it, or a first deliverer outside the devnet.
    #[serde(default)]
    pub delivered_by: Vec<Option<usize>>,
    /// Mean over receiving nodes of the gossip message bytes that delivered it first.
    #[serde(default)]
    pub first_delivery_bytes: f64,
    /// Per node (in the order of the bench's node list): ms from publish until it first saw
    /// the block (0 for the producer; None: never, or no publish time), clocks corrected.
    #[serde(default)]
    pub first_seen_ms: Vec<Option<f64>>,
    /// The hop bound: over nodes, the most any delivery path takes at the links' physical
    /// limit, ms (see [`hop_bounds`]).
    #[serde(default)]
    pub hop_bound_ms: Option<f64>,
    /// Per node (in the order of the bench's node list): its last hop's cost beyond the
    /// link, ms ([`hop_excess`]).
    #[serde(default)]
    pub hop_excess_ms: Vec<Option<f64>>,
    /// Receiving nodes that got it as a compact block, and of those, how many rebuilt it
    /// without a round trip.
    #[serde(default)]
    pub compact: (usize, usize),
    /// The node that produced it (index in the bench's node list: the one whose record has a
    /// publish time); None if no node recorded publishing it.
    #[serde(default)]
    pub producer: Option<usize>,
    /// Nodes that imported it (including the producer).
    pub reached: usize,
    /// ms from publish until 50 % of nodes had validated it.
    pub t50_ms: Option<f64>,
    /// … 95 % of nodes.
    pub t95_ms: Option<f64>,
    /// … 100 % of nodes.
    pub t100_ms: Option<f64>,
    /// Median over receiving nodes of gossip delivery time (publish -> first seen), ms.
    pub delivery_median_ms: Option<f64>,
    /// Median over receiving nodes of validation time (first seen -> validated), ms.
    pub validation_median_ms: Option<f64>,
}

/// Percentiles of one quantity over blocks.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

/// Summary over all measured blocks.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Blocks measured.
    pub blocks: usize,
    /// Blocks that reached every node.
    pub blocks_reaching_all: usize,
    /// Over blocks: time to 50 % of nodes, ms.
    pub t50_ms: Percentiles,
    /// Over blocks: time to 95 % of nodes, ms.
    pub t95_ms: Percentiles,
    /// Over blocks: time to 100 % of nodes, ms.
    pub t100_ms: Percentiles,
    /// Over all (block, receiving node) pairs: publish -> first seen, ms.
    pub delivery_ms: Percentiles,
    /// Over all (block, receiving node) pairs: first seen -> validated, ms.
    pub validation_ms: Percentiles,
    /// Over all (block, receiving node) pairs: first seen -> relayed (gossip verdict given),
    /// ms: the relay decision each hop adds.
    #[serde(default)]
    pub relay_ms: Percentiles,
    /// Over all (block, receiving node) pairs: relayed -> imported (state transition and
    /// commit, off the relay path), ms.
    #[serde(default)]
    pub import_ms: Percentiles,
    /// Transactions submitted and accepted by RPC during the run.
    pub txs_submitted: u64,
    /// Transactions included in the measured blocks.
    pub txs_in_blocks: u64,
    /// Mean block size, bytes.
    pub mean_block_bytes: f64,
    /// Over blocks: ms from publish until every node had verified and relayed it.
    #[serde(default)]
    pub t100_relayed_ms: Percentiles,
    /// Mean bytes a node received per block (first delivery plus fetched transactions).
    #[serde(default)]
    pub bytes_per_node_per_block: f64,
    /// Over all (block, receiving node) pairs: hop depth in the delivery tree.
    #[serde(default)]
    pub hops: Percentiles,
    /// Over blocks: the hop bound ([`hop_bounds`]), ms.
    #[serde(default)]
    pub hop_bound_ms: Percentiles,
    /// Over all (block, receiving node) pairs: the node's last hop's cost beyond its link
    /// ([`hop_excess`]), ms.
    #[serde(default)]
    pub hop_excess_ms: Percentiles,
    /// Over blocks: t100 ÷ the block's hop bound (how far the network is from the limit
    /// of its links, its delivery tree and its nodes' relay time; 1 = at the limit).
    #[serde(default)]
    pub t100_over_hop_bound: Percentiles,
    /// `bytes_per_node_per_block` ÷ the mean full block size.
    #[serde(default)]
    pub bytes_ratio: f64,
    /// Of the (block, node) pairs delivered as compact blocks, the fraction rebuilt from the
    /// pool alone (None when no compact block was delivered).
    #[serde(default)]
    pub rebuilt_without_roundtrip: Option<f64>,
    /// Per node per block on the block topics (`block`, `cblock`), from gossipsub's own
    /// counters: messages received again after the first (duplicates).
    #[serde(default)]
    pub duplicates_per_node: f64,
    /// Per node per block on the block topics: message bytes received, duplicates included
    /// (gossipsub's counters; control messages are not counted), plus fetched transactions.
    #[serde(default)]
    pub bytes_with_duplicates_per_node_per_block: f64,
    /// `bytes_with_duplicates_per_node_per_block` ÷ the mean full block size: what a node's
    /// links carried per block against sending it the block once.
    #[serde(default)]
    pub bytes_with_duplicates_ratio: f64,
}

/// What the run cost the machine, and the peer graph it ran on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MachineLoad {
    /// CPU seconds of the node processes (`/proc/PID/stat` utime + stime, every thread) per
    /// node per block, over the measured blocks.
    pub cpu_seconds_per_node_per_block: f64,
    /// Cores the node processes used together on average over the measured blocks.
    pub node_cores: f64,
    /// Fraction of the machine's CPU time that was busy (every process, `/proc/stat`) over
    /// the measured blocks.
    pub machine_busy: f64,
    /// Cores of the machine.
    pub cores: usize,
    /// `machine_busy ≥ 0.9`: the machine itself was the limit, and the times measure CPU
    /// queueing as much as the network.
    pub cpu_saturated: bool,
    /// Connected peers per node at the end of the run (every connection type).
    pub peers_per_node: Percentiles,
    /// Smallest gossipsub mesh (block and compact-block topics) of any node at the end.
    pub min_mesh: usize,
    /// Nodes still outside the settle bounds ([`wait_settled`]) when the wait timed out and
    /// the run went on anyway (0: every node had settled).
    #[serde(default)]
    pub unsettled_nodes: usize,
    /// Where the node processes' CPU went over the measured blocks: their threads grouped by
    /// name (`/proc/PID/task/TID`, as `bench idle` reads them), most CPU first. Empty for a
    /// network the bench did not start (`--attach`, `--from-dirs`).
    #[serde(default)]
    pub threads: Vec<super::idle::ThreadUse>,
}

/// Machine busy fraction at or above which a run is reported as CPU-saturated.
pub const SATURATED: f64 = 0.9;

/// Sum of utime + stime of `pids` in clock ticks (threads included); exited ones count 0.
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| Some(parse_stat(&s)?.1))
        .sum()
}

/// (comm, utime + stime in clock ticks) from a `/proc/PID/stat` or `/proc/PID/task/TID/stat`
/// line; `None` if it is not one. The comm may hold spaces and parentheses, so the fields are
/// read after its last `)`: state is field 3, utime 14, stime 15 (proc(5)).
pub fn parse_stat(s: &str) -> Option<(String, u64)> {
    let (head, rest) = s.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        name,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

/// The machine's (busy, total) CPU ticks from the first line of `/proc/stat` (idle and
/// iowait count as not busy).
pub fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// Clock ticks per second for [`cpu_ticks`] (`sysconf(_SC_CLK_TCK)`, 100 when unknown).
pub fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64
}

/// Connected peers and the smallest block-topic mesh of every node.
async fn peer_graph(urls: &[String]) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut peers = Vec::new();
    let mut min_mesh = usize::MAX;
    for u in urls {
        let info = http(u)?.node_info().await?;
        let p = &info["peers"];
        let n: u64 = ["inbound", "outbound", "addrFetch", "manual"]
            .iter()
            .filter_map(|k| p[*k].as_u64())
            .sum();
        peers.push(n as f64);
        for t in ["block", "cblock"] {
            min_mesh = min_mesh.min(info["gossip"]["mesh"][t].as_u64().unwrap_or(0) as usize);
        }
    }
    Ok((peers, if urls.is_empty() { 0 } else { min_mesh }))
}

fn one() -> u64 {
    1
}

/// The report `--out` receives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    /// Node count.
    pub nodes: usize,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// Target transactions per second.
    pub tps: u64,
    /// Transactions submitted together to one node (`--tx-batch`; 1: each to the next node).
    #[serde(default = "one")]
    pub tx_batch: u64,
    /// How blocks were published (`--relay`).
    #[serde(default)]
    pub relay: String,
    /// Validators of the devnet the bench started: the first `validators` nodes
    /// ([`validator_count`]); 0 when it measured nodes it did not start.
    #[serde(default)]
    pub validators: usize,
    /// Per block.
    pub blocks: Vec<BlockReport>,
    /// Over blocks.
    pub summary: Summary,
    /// CPU and peers over the measured blocks.
    #[serde(default)]
    pub machine: MachineLoad,
    /// With `--spam`: the quiet and the spam phase compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spam: Option<SpamPhases>,
    /// With `--profile`: which link profile, and how it was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Links>,
    /// Each node's clock offset, as estimated and subtracted from its arrival times.
    #[serde(default)]
    pub clocks: Vec<ClockOffset>,
    /// Whether the bench measured running nodes (`--attach`) instead of its own devnet.
    #[serde(default)]
    pub attached: bool,
    /// With `--from-dirs`: the data dirs whose journals were read (node `i` is `from_dirs[i]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_dirs: Vec<String>,
}

/// The link profile a run used and how it was applied.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Links {
    /// Profile name (`wan`, `lan`, a file's `name`).
    pub profile: String,
    /// How: in the node (`--link-profile`) or in the kernel (netns).
    pub applied: String,
}

/// `--spam`: the first half of the measured blocks quiet, the second under spamming peers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SpamPhases {
    /// Heights of the quiet phase (first, last).
    pub quiet_heights: (u64, u64),
    /// Heights of the spam phase (first, last).
    pub spam_heights: (u64, u64),
    /// t100 (imported at every node), quiet phase, ms.
    pub quiet_t100_ms: Percentiles,
    /// t100, spam phase, ms.
    pub spam_t100_ms: Percentiles,
    /// t100 verified and relayed, quiet phase, ms.
    pub quiet_relayed_ms: Percentiles,
    /// t100 verified and relayed, spam phase, ms.
    pub spam_relayed_ms: Percentiles,
    /// spam t100 p95 ÷ quiet t100 p95.
    pub t100_p95_ratio: Option<f64>,
    /// spam ÷ quiet, verified-and-relayed t100 p95.
    pub relayed_p95_ratio: Option<f64>,
    /// Spamming peers that flooded a node during the spam phase.
    pub spammers: usize,
    /// ms from each spammer's first message to its ban.
    pub ban_ms: Percentiles,
    /// Spammers that were not banned within 10 s, or failed otherwise.
    pub failures: Vec<String>,
}

/// One spammer's outcome, a line of `bench spammers`' output.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpammerOutcome {
    /// Banned this many ms after its first invalid message.
    BannedMs(f64),
    /// Not banned within 10 s, or failed otherwise.
    Failure(String),
}

/// `bench spammers`: spammers one after another, each at the next target, until stdin
/// closes; one [`SpammerOutcome`] per line on stdout.
pub async fn run_spammers(args: crate::cli::SpammersArgs) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    let targets: Vec<crate::config::NodeFile> = serde_json::from_slice(
        &std::fs::read(&args.targets)
            .with_context(|| format!("reading {}", args.targets.display()))?,
    )
    .with_context(|| format!("{} is not a list of node records", args.targets.display()))?;
    anyhow::ensure!(!targets.is_empty(), "no targets");
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let mut stdin = tokio::io::stdin();
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        s.store(true, Ordering::Relaxed);
    });
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t = &targets[k as usize % targets.len()];
        k += 1;
        let nonce = k * crate::devnet::faults::SPAM_MESSAGES;
        let outcome = match crate::devnet::faults::spam_node(args.chain_id, t, nonce).await {
            Ok((_, d)) => SpammerOutcome::BannedMs(d.as_secs_f64() * 1e3),
            Err(e) => SpammerOutcome::Failure(format!("{e:#}")),
        };
        println!("{}", serde_json::to_string(&outcome)?);
    }
    Ok(())
}

/// `bench load`: waits until every node answers JSON-RPC (up to `--wait` s), then drives
/// `--tps` signed transfers per second from `--senders` dev accounts for `--seconds`, spread
/// round-robin over the nodes, and prints `{"tps", "seconds", "accepted"}` as one JSON line.
///
/// Errors: a node that never answers, a network that does not fund `dev:0`.
pub async fn run_load(args: crate::cli::LoadArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let ask = |url: String| async move {
        let c = http(&url)?;
        loop {
            match c.chain_id().await {
                Ok(id) => return parse_qty(&id).context("eth_chainId"),
                Err(e) if Instant::now() > deadline => {
                    bail!(
                        "{} did not answer within {} s: {e}",
                        crate::rpc::client::split_userinfo(&url).0,
                        args.wait
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    };
    let ids = futures::future::join_all(args.rpc.iter().cloned().map(ask))
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<u64>>>()?;
    let chain_id = *ids.first().context("no --rpc")?;
    anyhow::ensure!(
        ids.iter().all(|i| *i == chain_id),
        "the nodes are on different chains: {ids:?}"
    );
    let bal = http(&args.rpc[0])?
        .get_balance(Keypair::dev_account(0).address().to_string(), None)
        .await?;
    if parse_qty(&bal).unwrap_or(0) == 0 {
        bail!("the network does not fund dev:0 (use genesis/devnet.json's dev accounts)");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn(drive_load(
        args.rpc.clone(),
        args.tps,
        1,
        args.senders.max(1),
        chain_id,
        stop.clone(),
        accepted.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    load.await??;
    println!(
        "{}",
        serde_json::json!({
            "tps": args.tps,
            "seconds": args.seconds,
            "accepted": accepted.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

/// The spam phase: `bench spammers` in a child process under Linux's `SCHED_IDLE` policy
/// (`chrt --idle 0`), until `stop`; returns the ban times (ms) and the failures.
///
/// The attackers run apart from the bench and below every other process because on a real
/// network their CPU is their own: sharing this machine's cores at equal priority, they would
/// slow the honest nodes by taking the CPU they need, which measures the machine, not the
/// nodes' defences. Under `SCHED_IDLE` they run only on what the nodes leave idle, and a node
/// thread that wakes up takes the core from them at once (at nice 19 it may wait a few
/// scheduler ticks).
async fn spam_phase(
    chain_id: u64,
    targets: Vec<crate::config::NodeFile>,
    stop: Arc<AtomicBool>,
) -> (Vec<f64>, Vec<String>) {
    match spam_child(chain_id, &targets, &stop).await {
        Ok(r) => r,
        Err(e) => (Vec::new(), vec![format!("spammer process: {e:#}")]),
    }
}

async fn spam_child(
    chain_id: u64,
    targets: &[crate::config::NodeFile],
    stop: &AtomicBool,
) -> anyhow::Result<(Vec<f64>, Vec<String>)> {
    use tokio::io::AsyncBufReadExt;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(targets)?)?;
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new("chrt")
        .args(["--idle", "0"])
        .arg(&exe)
        .args(["--log", "warn", "bench", "spammers", "--chain-id"])
        .arg(chain_id.to_string())
        .arg("--targets")
        .arg(file.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting `chrt --idle 0 meshnode bench spammers` (chrt: util-linux)")?;
    let stdin = child.stdin.take();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let (mut bans, mut failures) = (Vec::new(), Vec::new());
    let mut record = |line: String| match serde_json::from_str::<SpammerOutcome>(&line) {
        Ok(SpammerOutcome::BannedMs(ms)) => bans.push(ms),
        Ok(SpammerOutcome::Failure(f)) => failures.push(f),
        Err(_) => failures.push(format!("unreadable spammer line {line:?}")),
    };
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(100), lines.next_line()).await {
            Ok(Ok(Some(line))) => record(line),
            Ok(_) => break,
            Err(_) => {}
        }
    }
    // Closing stdin stops it after the spammer in flight (at most 10 s more).
    drop(stdin);
    let rest = async {
        while let Ok(Some(line)) = lines.next_line().await {
            record(line);
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(15), rest).await;
    let _ = child.kill().await;
    Ok((bans, failures))
}

/// Prints the summary's percentile lines (t50 … import), one per figure.
fn print_percentiles(s: &Summary) {
    for (name, p) in [
        ("t50", &s.t50_ms),
        ("t95", &s.t95_ms),
        ("t100", &s.t100_ms),
        ("t100 verified and relayed", &s.t100_relayed_ms),
        ("hops in the delivery tree", &s.hops),
        ("hop bound (links + relay, per block)", &s.hop_bound_ms),
        ("t100 ÷ hop bound", &s.t100_over_hop_bound),
        ("hop excess (beyond the link, per hop)", &s.hop_excess_ms),
        ("gossip delivery (per hop set)", &s.delivery_ms),
        ("validation", &s.validation_ms),
        ("relay decision (first seen -> relayed)", &s.relay_ms),
        ("import (relayed -> imported)", &s.import_ms),
    ] {
        let unit = if name.starts_with("hops") || name.contains('÷') {
            ""
        } else {
            " ms"
        };
        println!(
            "{name:>40}: p50 {}{unit}  p95 {}{unit}  max {}{unit}",
            fmt_ms(p.p50),
            fmt_ms(p.p95),
            fmt_ms(p.max)
        );
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    v.sort_by(f64::total_cmp);
    Percentiles {
        p50: percentile(&v, 50.0),
        p95: percentile(&v, 95.0),
        max: v.last().copied(),
    }
}

/// Time (ms) by which `ceil(frac × n)` nodes had the block, from per-node times in ms.
pub fn time_to_fraction(sorted_ms: &[f64], n: usize, frac: f64) -> Option<f64> {
    let need = ((frac * n as f64).ceil() as usize).max(1);
    sorted_ms.get(need - 1).copied()
}

/// Waits until the peer graph has settled: every node has at least `min_peers` peers, a
/// gossipsub mesh on each block topic of at least `min_mesh` or that topic's own D_lo if
/// lower ([`crate::p2p::behaviour::mesh_degree`]: 2 for full blocks), and no short-lived
/// `addr-fetch` connections remain. Nodes are checked in turn; once `timeout` has passed,
/// each node still outside these bounds is described in the result (empty: every node
/// settled) instead of being waited for. Errors: a node's RPC fails.
pub async fn wait_settled(
    urls: &[String],
    min_peers: u64,
    min_mesh: u64,
    timeout: Duration,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    let mut unsettled = Vec::new();
    let bar = super::progress::bar(
        urls.len() as u64,
        "  peer graph {bar:40} {pos}/{len} nodes within bounds ({elapsed})",
    );
    for url in urls {
        if let Some(b) = &bar {
            b.inc(1);
        }
        let c = http(url)?;
        loop {
            let info = c.node_info().await?;
            let p = &info["peers"];
            let get = |k: &str| p[k].as_u64().unwrap_or(0);
            let n = get("inbound") + get("outbound") + get("manual");
            let meshes = [
                ("block", crate::p2p::TopicKind::Block),
                ("cblock", crate::p2p::TopicKind::CompactBlock),
            ]
            .map(|(t, kind)| {
                let lo = crate::p2p::behaviour::mesh_degree(kind).0 as u64;
                let have = info["gossip"]["mesh"][t].as_u64().unwrap_or(0);
                (t, have, min_mesh.min(lo))
            });
            let meshes_ok = meshes.iter().all(|(_, have, want)| have >= want);
            if n >= min_peers && meshes_ok && get("addrFetch") == 0 {
                break;
            }
            if Instant::now() > deadline {
                let mesh_text: Vec<String> = meshes
                    .iter()
                    .map(|(t, have, want)| format!("{t} mesh {have} (wanted {want})"))
                    .collect();
                unsettled.push(format!(
                    "{url}: {n} peers (wanted {min_peers}), {}, {}",
                    mesh_text.join(", "),
                    info["peers"]
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(unsettled)
}

/// How many of `due` transfers may go out now: whole groups of `batch` (0 treated as 1).
fn whole_groups(due: u64, batch: u64) -> u64 {
    due - due % batch.max(1)
}

/// The node (index among `nodes`) that receives the `i`-th transfer: groups of `batch`
/// consecutive transfers to one node, the groups round-robin over the nodes.
fn group_node(i: usize, batch: u64, nodes: usize) -> usize {
    (i / batch.max(1) as usize) % nodes.max(1)
}

/// Submits signed transfers at `tps` per second, round-robin over dev accounts, in groups
/// of `batch` consecutive transfers to one node, the groups round-robin over the nodes,
/// until `stop`. A group goes out once all of it is due (at least every 20 ms tick: with
/// `batch` 1, each transfer as soon as it is due). Returns how many the nodes accepted.
async fn drive_load(
    urls: Vec<String>,
    tps: u64,
    batch: u64,
    senders: u64,
    chain_id: u64,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    if tps == 0 {
        return Ok(());
    }
    let clients = urls
        .iter()
        .map(|u| http(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keys: Vec<Keypair> = (0..senders).map(Keypair::dev_account).collect();
    // All at once: over a wide-area link each is a round trip.
    let mut nonces = Vec::new();
    for n in
        futures::future::join_all(keys.iter().map(|k| {
            clients[0].get_transaction_count(k.address().to_string(), Some("pending".into()))
        }))
        .await
    {
        nonces.push(parse_qty(&n?).unwrap_or(0));
    }
    let recipient = Keypair::dev_account(senders + 1_000).address();
    let tick = Duration::from_millis(20);
    let mut interval = tokio::time::interval(tick);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        interval.tick().await;
        let due = whole_groups((start.elapsed().as_secs_f64() * tps as f64) as u64, batch);
        let mut out = Vec::new();
        while sent < due {
            let s = i % keys.len();
            let k = &keys[s];
            let body = TxBody {
                chain_id,
                nonce: nonces[s],
                from: k.public(),
                to: recipient,
                amount: 1,
                fee: 1 + (sent % 10),
                data: vec![],
            };
            nonces[s] += 1;
            out.push((
                group_node(i, batch, clients.len()),
                hex::encode(k.sign_tx(body).to_bytes()),
            ));
            sent += 1;
            i += 1;
        }
        let futs = out.into_iter().map(|(c, hex)| {
            let client = &clients[c];
            async move { client.sendrawtransaction(hex).await }
        });
        for r in futures::future::join_all(futs).await {
            match r {
                Ok(_) => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(cause = %e, "bench transaction refused"),
            }
        }
    }
    Ok(())
}

/// The CPU per thread name (`MachineLoad::threads`), each as cores, milliseconds of CPU per
/// node per block and wake-ups per node per second; nothing when there is no breakdown.
fn print_threads(m: &MachineLoad) {
    if m.threads.is_empty() {
        return;
    }
    println!(
        "  where it went (threads of one name, all nodes; wake-ups: voluntary context switches):"
    );
    for t in &m.threads {
        let per_block_ms = if m.node_cores > 0.0 {
            t.cores / m.node_cores * m.cpu_seconds_per_node_per_block * 1e3
        } else {
            0.0
        };
        println!(
            "    {:<18} {:>5} threads  {:.3} cores  {:>7.2} ms per node per block  {:>7.1} wake-ups per node per s",
            t.name, t.threads, t.cores, per_block_ms, t.wakeups_per_node_per_s
        );
    }
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

/// What [`collect`] gathers: per-block reports and, over every (block, receiving node) pair,
/// gossip delivery and validation times in ms.
#[derive(Default)]
pub struct Collected {
    /// Per block.
    pub blocks: Vec<BlockReport>,
    /// publish -> first seen, ms.
    pub delivery: Vec<f64>,
    /// first seen -> validated, ms.
    pub validation: Vec<f64>,
    /// first seen -> relayed, ms.
    pub relay: Vec<f64>,
    /// relayed -> imported, ms.
    pub import: Vec<f64>,
}

/// Collects arrival records for heights `from..=to` from every node and computes the report.
///
/// `clocks` (one per node, or empty) are subtracted from each node's times first, so that
/// times from different machines compare.
pub async fn collect(
    urls: &[String],
    from: u64,
    to: u64,
    clocks: &[ClockOffset],
) -> anyhow::Result<Collected> {
    let clients = urls
        .iter()
        .map(|u| http(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut peer_index = std::collections::HashMap::new();
    let mut links = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let info = c.node_info().await?;
        if let Some(p) = info["peerId"].as_str() {
            peer_index.insert(p.to_string(), i);
        }
        links.push(serde_json::from_value::<LinkInfo>(info["link"].clone()).ok());
    }
    let mut acc = Collected::default();
    for height in from..=to {
        let hash = clients[0]
            .getblockhash(height)
            .await
            .with_context(|| format!("getblockhash {height}"))?;
        let mut records = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            let mut a = c.block_arrival(hash.clone()).await?;
            if let (Some(a), Some(off)) = (a.as_mut(), clocks.get(i)) {
                correct_clock(a, off);
            }
            records.push(a);
        }
        let full: Value = clients[0].getblock(hash.clone(), Some(0)).await?;
        let bytes = full.as_str().map_or(0, |h| h.len() as u64 / 2);
        let block = BlockId {
            height,
            hash,
            bytes,
        };
        block_report(block, &records, &peer_index, &links, &mut acc);
    }
    Ok(acc)
}

/// A block as [`block_report`] needs it.
pub struct BlockId {
    /// Height.
    pub height: u64,
    /// Hash, hex.
    pub hash: String,
    /// Encoded size of the full block, bytes.
    pub bytes: u64,
}

/// Adds block `b`'s report to `acc`, from each node's record of it (`records[i]`: node `i`'s,
/// `None` if it has none; times on one clock). `peer_index` maps peer ids to node indexes
/// (for the delivery tree), `links` gives each node's link shape if known (for the hop bound).
pub fn block_report(
    b: BlockId,
    records: &[Option<Arrival>],
    peer_index: &std::collections::HashMap<String, usize>,
    links: &[Option<LinkInfo>],
    acc: &mut Collected,
) {
    let BlockId {
        height,
        hash,
        bytes,
    } = b;
    let n = records.len();
    let published = records.iter().flatten().find_map(|a| a.published_us);
    let producer = records
        .iter()
        .position(|r| r.as_ref().is_some_and(|a| a.published_us.is_some()));
    let (mut times, mut delivery, mut validation) = (Vec::new(), Vec::new(), Vec::new());
    let mut relayed_times = Vec::new();
    let (mut txs, mut received, mut receivers) = (0, 0.0, 0usize);
    let mut first_delivery = 0.0;
    let mut compact = (0usize, 0usize);
    for a in records.iter().flatten() {
        txs = a.txs;
        if a.published_us.is_none() && a.first_seen_us.is_some() {
            receivers += 1;
            first_delivery += a.bytes as f64;
            received += a.bytes as f64 + a.fetched_txs as f64 * bytes as f64 / a.txs.max(1) as f64;
            if let Some(no_trip) = a.rebuilt_without_roundtrip {
                compact.0 += 1;
                compact.1 += no_trip as usize;
            }
        }
        if let Some(p) = published {
            if let Some(r) = a.relayed_us.or(a.published_us).or(a.validated_us) {
                relayed_times.push(r.saturating_sub(p) as f64 / 1e3);
            }
        }
        let (Some(p), Some(v)) = (published, a.validated_us) else {
            continue;
        };
        times.push(v.saturating_sub(p) as f64 / 1e3);
        if let Some(f) = a.first_seen_us {
            delivery.push(f.saturating_sub(p) as f64 / 1e3);
            validation.push(v.saturating_sub(f) as f64 / 1e3);
            if let Some(r) = a.relayed_us {
                acc.relay.push(r.saturating_sub(f) as f64 / 1e3);
                acc.import.push(v.saturating_sub(r) as f64 / 1e3);
            }
        }
    }
    acc.delivery.extend_from_slice(&delivery);
    acc.validation.extend_from_slice(&validation);
    let hops = delivery_tree(records, peer_index);
    let delivered_by = first_deliverers(records, peer_index);
    let first_seen_ms = records
        .iter()
        .map(|r| {
            let a = r.as_ref()?;
            let p = published?;
            match (a.published_us, a.first_seen_us) {
                (Some(_), _) => Some(0.0),
                (None, Some(f)) => Some((f as f64 - p as f64) / 1e3),
                _ => None,
            }
        })
        .collect();
    let hop_bound = hop_bounds(records, peer_index, links)
        .into_iter()
        .flatten()
        .reduce(f64::max);
    times.sort_by(f64::total_cmp);
    relayed_times.sort_by(f64::total_cmp);
    delivery.sort_by(f64::total_cmp);
    validation.sort_by(f64::total_cmp);
    acc.blocks.push(BlockReport {
        height,
        hash,
        txs,
        bytes,
        received_bytes: if receivers == 0 {
            0.0
        } else {
            received / receivers as f64
        },
        t100_relayed_ms: time_to_fraction(&relayed_times, n, 1.0),
        relayed_ms: relayed_times,
        hops,
        delivered_by,
        first_delivery_bytes: if receivers == 0 {
            0.0
        } else {
            first_delivery / receivers as f64
        },
        hop_bound_ms: hop_bound,
        hop_excess_ms: hop_excess(records, peer_index, links),
        first_seen_ms,
        compact,
        producer,
        reached: times.len(),
        t50_ms: time_to_fraction(&times, n, 0.5),
        t95_ms: time_to_fraction(&times, n, 0.95),
        t100_ms: time_to_fraction(&times, n, 1.0),
        delivery_median_ms: percentile(&delivery, 50.0),
        validation_median_ms: percentile(&validation, 50.0),
    });
}

/// Moves an arrival record's times from its node's clock to the bench's.
pub fn correct_clock(a: &mut Arrival, clock: &ClockOffset) {
    let off = (clock.offset_ms * 1e3).round() as i64;
    for t in [
        &mut a.first_seen_us,
        &mut a.relayed_us,
        &mut a.validated_us,
        &mut a.published_us,
    ] {
        if let Some(v) = t.as_mut() {
            *v = (*v as i64 - off).max(0) as u64;
        }
    }
}

/// Builds the summary from per-block reports and the per-pair samples.
pub fn summarize(blocks: &[BlockReport], nodes: usize, c: Collected, submitted: u64) -> Summary {
    Summary {
        blocks: blocks.len(),
        blocks_reaching_all: blocks.iter().filter(|b| b.reached == nodes).count(),
        t50_ms: percentiles(blocks.iter().filter_map(|b| b.t50_ms).collect()),
        t95_ms: percentiles(blocks.iter().filter_map(|b| b.t95_ms).collect()),
        t100_ms: percentiles(blocks.iter().filter_map(|b| b.t100_ms).collect()),
        delivery_ms: percentiles(c.delivery),
        validation_ms: percentiles(c.validation),
        relay_ms: percentiles(c.relay),
        import_ms: percentiles(c.import),
        txs_submitted: submitted,
        txs_in_blocks: blocks.iter().map(|b| b.txs).sum(),
        mean_block_bytes: mean(blocks.iter().map(|b| b.bytes as f64)),
        t100_relayed_ms: percentiles(blocks.iter().filter_map(|b| b.t100_relayed_ms).collect()),
        hops: percentiles(
            blocks
                .iter()
                .flat_map(|b| b.hops.iter().flatten().filter(|h| **h > 0))
                .map(|h| *h as f64)
                .collect(),
        ),
        bytes_per_node_per_block: mean(blocks.iter().map(|b| b.received_bytes)),
        hop_bound_ms: percentiles(blocks.iter().filter_map(|b| b.hop_bound_ms).collect()),
        hop_excess_ms: percentiles(
            blocks
                .iter()
                .flat_map(|b| b.hop_excess_ms.iter().flatten().copied())
                .collect(),
        ),
        t100_over_hop_bound: percentiles(
            blocks
                .iter()
                .filter_map(|b| match (b.t100_ms, b.hop_bound_ms) {
                    (Some(t), Some(h)) if h > 0.0 => Some(t / h),
                    _ => None,
                })
                .collect(),
        ),
        bytes_ratio: {
            let full = mean(blocks.iter().map(|b| b.bytes as f64));
            if full > 0.0 {
                mean(blocks.iter().map(|b| b.received_bytes)) / full
            } else {
                0.0
            }
        },
        rebuilt_without_roundtrip: {
            let (c, ok) = blocks
                .iter()
                .fold((0, 0), |(c, ok), b| (c + b.compact.0, ok + b.compact.1));
            (c > 0).then(|| ok as f64 / c as f64)
        },
        // Filled from gossipsub's counters by the caller.
        duplicates_per_node: 0.0,
        bytes_with_duplicates_per_node_per_block: 0.0,
        bytes_with_duplicates_ratio: 0.0,
    }
}

/// Each node's hop depth in a block's delivery tree: the producer (the record with
/// `published_us`) is 0, every other node is one more than the node that delivered the block
/// to it first. None where the chain of first deliverers leaves the devnet or loops.
pub fn delivery_tree(
    records: &[Option<Arrival>],
    peer_index: &std::collections::HashMap<String, usize>,
) -> Vec<Option<u64>> {
    let parent = first_deliverers(records, peer_index);
    (0..records.len())
        .map(|mut i| {
            let mut depth = 0u64;
            for _ in 0..=records.len() {
                match &records[i] {
                    Some(a) if a.published_us.is_some() => return Some(depth),
                    Some(_) => {
                        i = parent[i]?;
                        depth += 1;
                    }
                    None => return None,
                }
            }
            None
        })
        .collect()
}

/// Per node, the index of the node that delivered the block to it first (its
/// `meshnode_blockArrival.firstFrom`, looked up in `peer_index`); None for the producer (no
/// deliverer), a node without a record, or a deliverer outside the devnet.
pub fn first_deliverers(
    records: &[Option<Arrival>],
    peer_index: &std::collections::HashMap<String, usize>,
) -> Vec<Option<usize>> {
    records
        .iter()
        .map(|r| {
            r.as_ref()
                .filter(|a| a.published_us.is_none())
                .and_then(|a| a.first_from.as_ref())
                .and_then(|p| peer_index.get(p).copied())
        })
        .collect()
}

/// Per node, the hop bound of a block: along the node's delivery path (who delivered it
/// first, back to the producer), the sum over hops `u → v` of the one-way delay from `u`'s
/// region to `v`'s, the bytes that delivered it to `v` ÷ the slower of `u`'s upload and `v`'s
/// download, and `v`'s relay time (first seen → verified and relayed, as measured). What the
/// path would take if nothing but the links' physics and the nodes' own relay decisions
/// cost time; links come from each node's `meshnode_nodeInfo.link` (none: no delay, no cap).
/// In ms; None where the path leaves the devnet or loops; 0 for the producer.
pub fn hop_bounds(
    records: &[Option<Arrival>],
    peer_index: &std::collections::HashMap<String, usize>,
    links: &[Option<LinkInfo>],
) -> Vec<Option<f64>> {
    let edge = |u: usize, v: usize, a: &Arrival| -> f64 {
        let relay = match (a.first_seen_us, a.relayed_us) {
            (Some(f), Some(r)) => r.saturating_sub(f) as f64 / 1e3,
            _ => 0.0,
        };
        link_time(links, u, v, a.bytes) + relay
    };
    (0..records.len())
        .map(|start| {
            let mut total = 0.0;
            let mut v = start;
            for _ in 0..=records.len() {
                let a = records[v].as_ref()?;
                if a.published_us.is_some() {
                    return Some(total);
                }
                let u = *peer_index.get(a.first_from.as_ref()?)?;
                total += edge(u, v, a);
                v = u;
            }
            None
        })
        .collect()
}

/// What the link `u → v` alone takes to carry `bytes`, ms: the one-way delay from `u`'s
/// region to `v`'s plus `bytes` ÷ the slower of `u`'s upload and `v`'s download (0 without
/// links).
fn link_time(links: &[Option<LinkInfo>], u: usize, v: usize, bytes: u64) -> f64 {
    let link = |i: usize| links.get(i).and_then(|l| l.as_ref());
    let delay = link(u).map_or(0.0, |l| {
        l.delay_to(link(v).and_then(|lv| lv.region.as_deref()))
    });
    let up = link(u).and_then(|l| l.up_bytes_per_s);
    let down = link(v).and_then(|l| l.down_bytes_per_s);
    let bw = match (up, down) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    delay + bw.map_or(0.0, |bw| bytes as f64 / bw * 1e3)
}

/// Per node, what its last hop cost beyond the link's physics: from the moment its first
/// deliverer `u` had the block verified and relayed (or published it) until this node first
/// saw it, less [`link_time`] for the bytes that delivered it. What is left is the sender's
/// queue (the copies it sent to other peers first, at its upload rate), the transports and
/// the two hosts' scheduling. In ms (clocks corrected); None for the producer, a node whose
/// deliverer is outside the devnet, or a record without the times.
pub fn hop_excess(
    records: &[Option<Arrival>],
    peer_index: &std::collections::HashMap<String, usize>,
    links: &[Option<LinkInfo>],
) -> Vec<Option<f64>> {
    let deliverers = first_deliverers(records, peer_index);
    records
        .iter()
        .zip(deliverers)
        .enumerate()
        .map(|(v, (rec, u))| {
            let (a, u) = (rec.as_ref()?, u?);
            let up = records.get(u)?.as_ref()?;
            let sent = up.published_us.or(up.relayed_us)?;
            let seen = a.first_seen_us?;
            Some((seen as f64 - sent as f64) / 1e3 - link_time(links, u, v, a.bytes))
        })
        .collect()
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// What `--out` receives with `--compare`: one report per mode, and each figure's ratio to the
/// first mode's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// Per relay mode, in the order run.
    pub modes: std::collections::BTreeMap<String, Report>,
    /// Per mode: `{figure: value ÷ the first mode's value}`.
    pub ratios: std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>,
}

/// The figures compared between modes: (name, value).
fn figures(s: &Summary) -> Vec<(&'static str, Option<f64>)> {
    vec![
        ("t100_relayed_p50_ms", s.t100_relayed_ms.p50),
        ("t100_relayed_p95_ms", s.t100_relayed_ms.p95),
        ("t100_p50_ms", s.t100_ms.p50),
        ("t100_p95_ms", s.t100_ms.p95),
        ("relay_p50_ms", s.relay_ms.p50),
        ("hops_p50", s.hops.p50),
        ("hops_max", s.hops.max),
        ("hop_bound_p95_ms", s.hop_bound_ms.p95),
        ("t100_over_hop_bound_p50", s.t100_over_hop_bound.p50),
        ("t100_over_hop_bound_p95", s.t100_over_hop_bound.p95),
        ("hop_excess_p50_ms", s.hop_excess_ms.p50),
        ("hop_excess_p95_ms", s.hop_excess_ms.p95),
        ("import_p50_ms", s.import_ms.p50),
        ("bytes_per_node_per_block", Some(s.bytes_per_node_per_block)),
        ("bytes_ratio", Some(s.bytes_ratio)),
        ("rebuilt_without_roundtrip", s.rebuilt_without_roundtrip),
        ("duplicates_per_node", Some(s.duplicates_per_node)),
        (
            "bytes_with_duplicates_per_node_per_block",
            Some(s.bytes_with_duplicates_per_node_per_block),
        ),
        (
            "bytes_with_duplicates_ratio",
            Some(s.bytes_with_duplicates_ratio),
        ),
    ]
}

/// `meshnode bench propagation`: one relay mode (`--relay`), or several one after another on
/// the same devnet size and load (`--compare`).
pub async fn run_cli(args: PropagationArgs) -> anyhow::Result<()> {
    if !args.from_dirs.is_empty() {
        return run_from_dirs(&args);
    }
    if args.nodes < 2 || args.blocks == 0 {
        bail!("need at least 2 nodes and 1 block");
    }
    if args.compare.is_some() && (!args.attach.is_empty() || args.attach_file.is_some()) {
        bail!("--compare starts a devnet per relay mode; it cannot --attach");
    }
    let started = Instant::now();
    let modes: Vec<String> = match &args.compare {
        Some(list) => list.split(',').map(|m| m.trim().to_string()).collect(),
        None => vec![args.relay.clone()],
    };
    for m in &modes {
        m.trim_end_matches(NO_IDONTWANT)
            .parse::<crate::producer::RelayMode>()
            .map_err(|e| anyhow::anyhow!("--compare/--relay: {e}"))?;
    }
    let mut reports = Vec::new();
    for m in &modes {
        println!("== relay mode {m}");
        reports.push((m.clone(), run_mode(&args, m).await?));
    }
    let series: Vec<super::plot::Series> = reports
        .iter()
        .map(|(m, r)| super::plot::Series {
            name: m.clone(),
            arrival_ms: r
                .blocks
                .iter()
                .flat_map(|b| b.relayed_ms.iter().copied().filter(|t| *t > 0.0))
                .collect(),
            bytes: r.summary.bytes_per_node_per_block,
            bytes_with_duplicates: r.summary.bytes_with_duplicates_per_node_per_block,
        })
        .collect();
    let nodes = reports.first().map_or(args.nodes, |(_, r)| r.nodes);
    match super::plot::write(&args.out, nodes, &series) {
        Ok(paths) => {
            for p in paths {
                println!("picture written to {}", p.display());
            }
        }
        Err(e) => println!("no pictures: {e:#}"),
    }
    if reports.len() == 1 {
        let (_, report) = reports.pop().expect("one");
        std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", args.out.display()))?;
    } else {
        println!();
        print!("{:>28}", "figure");
        for (m, _) in &reports {
            print!(" {m:>12}");
        }
        for (m, _) in reports.iter().skip(1) {
            print!(" {:>14}", format!("{m}/{}", reports[0].0));
        }
        println!();
        let base = figures(&reports[0].1.summary);
        let mut ratios = std::collections::BTreeMap::new();
        for (i, (name, b)) in base.iter().enumerate() {
            print!("{name:>28}");
            for (_, r) in &reports {
                print!(" {:>12}", fmt_ms(figures(&r.summary)[i].1));
            }
            for (m, r) in reports.iter().skip(1) {
                let v = figures(&r.summary)[i].1;
                let ratio = match (v, b) {
                    (Some(v), Some(b)) if *b != 0.0 => Some(v / b),
                    _ => None,
                };
                print!(" {:>14}", fmt_ms(ratio));
                if let Some(x) = ratio {
                    ratios
                        .entry(m.clone())
                        .or_insert_with(std::collections::BTreeMap::new)
                        .insert(name.to_string(), x);
                }
            }
            println!();
        }
        let cmp = Comparison {
            modes: reports.into_iter().collect(),
            ratios,
        };
        std::fs::write(&args.out, serde_json::to_vec_pretty(&cmp)?)
            .with_context(|| format!("writing {}", args.out.display()))?;
    }
    println!(
        "report written to {} ({:.1} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A mode name ending in this runs its nodes with `--idontwant off`.
pub const NO_IDONTWANT: &str = "-noidontwant";

/// Block-topic counters summed over nodes: (received, with duplicates, bytes with duplicates).
async fn block_traffic(urls: &[String]) -> anyhow::Result<(u64, u64, u64)> {
    let infos = futures::future::join_all(
        urls.iter()
            .map(|u| async move { anyhow::Ok(http(u)?.node_info().await?) }),
    )
    .await;
    let mut t = (0, 0, 0);
    for info in infos {
        let info = info?;
        for topic in ["block", "cblock", "flood"] {
            let v = &info["gossip"]["topics"][topic];
            t.0 += v["received"].as_u64().unwrap_or(0);
            t.1 += v["receivedWithDuplicates"].as_u64().unwrap_or(0);
            t.2 += v["bytesWithDuplicates"].as_u64().unwrap_or(0);
        }
    }
    Ok(t)
}

/// How long a devnet of `nodes` may take to settle its peer graph: 60 s, plus 3 s per node
/// (a 64-node devnet settles in about 2 minutes on 2 cores).
pub fn settle_timeout(nodes: usize) -> Duration {
    Duration::from_secs(60 + 3 * nodes as u64)
}

/// How many validators (the first K nodes) a devnet the bench starts gets: `--validators`
/// if given; with `--compare`, the blocks measured per phase when fewer than the nodes, so
/// that the window of consecutive blocks each mode measures holds one block from each of the
/// same K producers (`validators[slot mod K]`) and the modes are compared block for block
/// from the same places (with `--spam`, two blocks from each); otherwise every node.
pub fn validator_count(args: &PropagationArgs) -> usize {
    match args.validators {
        Some(k) => k,
        None if args.compare.is_some() => args
            .nodes
            .min(usize::try_from(args.blocks).unwrap_or(usize::MAX))
            .max(1),
        None => args.nodes,
    }
}

/// One devnet run with every node publishing in `relay` mode.
pub async fn run_mode(args: &PropagationArgs, mode: &str) -> anyhow::Result<Report> {
    let relay = mode.trim_end_matches(NO_IDONTWANT);
    let mut extra_args = vec!["--relay".to_string(), relay.to_string()];
    if mode.ends_with(NO_IDONTWANT) {
        extra_args.extend(["--idontwant".to_string(), "off".to_string()]);
    }
    let started = Instant::now();
    let attached = attach_urls(args).await?;
    let validators = validator_count(args);
    let mut devnet = None;
    let urls = match &attached {
        Some(urls) => {
            println!(
                "attached to {} running nodes (their relay mode and links are their own)",
                urls.len()
            );
            urls.clone()
        }
        None => {
            let dir = args.dir.as_ref().map(|d| d.join(mode));
            let (dir, tmp) = crate::devnet::work_dir(&dir, "meshnode-bench-")?;
            let opts = DevnetOptions {
                nodes: args.nodes,
                validators,
                slot_ms: args.slot_ms,
                dir,
                template: args.genesis.clone(),
                exe: std::env::current_exe()?,
                rpc_base_port: 0,
                log: std::env::var("MESHNODE_NODE_LOG").unwrap_or_else(|_| "info".into()),
                dev_accounts: None,
                produce: true,
                extra_args,
                profile: args.profile.clone(),
                netns: false,
                loss: None,
            };
            println!(
                "starting a devnet of {} nodes (slot {} ms, {}{}) …",
                args.nodes,
                args.slot_ms,
                if validators == args.nodes {
                    "every node a validator".to_string()
                } else {
                    format!("validators: the first {validators} nodes")
                },
                args.profile
                    .as_ref()
                    .map(|p| format!(", link profile {p} applied in the nodes"))
                    .unwrap_or_default()
            );
            let d = Devnet::start(&opts).await?;
            let urls = d.rpc_urls();
            devnet = Some((d, tmp));
            urls
        }
    };
    let nodes = urls.len();
    let pids: Vec<u32> = devnet
        .iter()
        .flat_map(|(d, _)| d.nodes.iter())
        .filter_map(|n| n.child.as_ref().map(|c| c.id()))
        .collect();
    let want = (nodes as u64 - 1).min(crate::p2p::behaviour::MESH_D_LOW as u64);
    let unsettled = wait_settled(&urls, want, want, settle_timeout(nodes)).await?;
    if let Some(first) = unsettled.first() {
        println!(
            "peer graph not settled after {:.0} s: {} of {} nodes outside the bounds (first: \
             {first}); measuring anyway",
            settle_timeout(nodes).as_secs_f64(),
            unsettled.len(),
            nodes
        );
    }
    let clocks = clock_offsets(&urls, CLOCK_SAMPLES).await?;
    let worst = clocks
        .iter()
        .map(|c| c.offset_ms.abs())
        .fold(0.0f64, f64::max);
    let spread = clocks
        .iter()
        .map(|c| c.uncertainty_ms)
        .fold(0.0f64, f64::max);
    println!(
        "clock offsets (NTP-style, best of {CLOCK_SAMPLES} RPC round trips per node): largest \
         {worst:.2} ms, uncertainty ≤ {spread:.2} ms; arrival times are corrected"
    );
    let c0 = http(&urls[0])?;
    let chain_id = parse_qty(&c0.chain_id().await?).context("eth_chainId")?;
    let senders = match &devnet {
        Some((d, _)) => crate::genesis::GenesisFile::read(&d.genesis)?
            .dev_accounts
            .as_ref()
            .map(|d| d.count)
            .unwrap_or(0)
            .clamp(1, 64),
        // An attached network must fund the dev accounts (genesis/devnet.json does).
        None => {
            let bal = c0
                .get_balance(Keypair::dev_account(0).address().to_string(), None)
                .await?;
            if parse_qty(&bal).unwrap_or(0) == 0 {
                bail!("the attached network does not fund dev:0 (use genesis/devnet.json's dev accounts)");
            }
            64
        }
    };
    println!(
        "{} nodes connected after {:.1} s; driving {} tx/s from {} dev accounts{}",
        nodes,
        started.elapsed().as_secs_f64(),
        args.tps,
        senders,
        if args.tx_batch > 1 {
            format!(", {} at a time to one node", args.tx_batch)
        } else {
            String::new()
        }
    );

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn(drive_load(
        urls.clone(),
        args.tps,
        args.tx_batch,
        senders,
        chain_id,
        stop.clone(),
        accepted.clone(),
    ));
    // Skip the block in progress: measure B whole blocks produced under load (with --spam,
    // B quiet ones, then B under spam).
    let phases = if args.spam { 2 } else { 1 };
    let first = c0.getblockcount().await? + 2;
    let last = first + args.blocks * phases - 1;
    let quiet_last = first + args.blocks - 1;
    let deadline = Instant::now()
        + Duration::from_millis((args.blocks * phases + 20) * args.slot_ms * 3)
        + Duration::from_secs(60);
    let spam_stop = Arc::new(AtomicBool::new(false));
    let mut spam_task = None;
    let targets: Vec<crate::config::NodeFile> = devnet
        .iter()
        .flat_map(|(d, _)| d.nodes.iter())
        .filter_map(|n| n.info.clone())
        .collect();
    let mut shown = 0;
    let mut traffic_from = None;
    let mut cpu_from = None;
    // A progress bar on a terminal; plain lines otherwise (logs, CI).
    let bar = super::progress::bar(
        args.blocks,
        "  {bar:40} {pos}/{len} blocks measured, height {msg} ({elapsed})",
    );
    loop {
        let h = c0.getblockcount().await?;
        if h > last {
            break;
        }
        // The quiet phase's last block is being produced: the spammers start.
        if args.spam && spam_task.is_none() && h >= quiet_last {
            println!("  quiet phase done at height {h}; spamming peers attack now");
            spam_task = Some(tokio::spawn(spam_phase(
                chain_id,
                targets.clone(),
                spam_stop.clone(),
            )));
        }
        if traffic_from.is_none() && h + 1 >= first {
            // The CPU reading first: it must start at height `h`, and reading every node's
            // traffic takes a while on a loaded machine (128 busy nodes: seconds).
            cpu_from = Some((
                cpu_ticks(&pids),
                machine_ticks(),
                Instant::now(),
                super::idle::thread_ticks(&pids),
            ));
            traffic_from = Some((h, block_traffic(&urls).await?));
        }
        if h != shown && h >= first {
            match &bar {
                Some(b) => {
                    b.set_position(h + 1 - first);
                    b.set_message(h.to_string());
                }
                None => println!("  height {h} ({}/{} blocks)", h + 1 - first, args.blocks),
            }
            shown = h;
        }
        if Instant::now() > deadline {
            bail!("only reached height {h} of {last} before the deadline");
        }
        if let Some(i) = devnet
            .as_mut()
            .and_then(|(d, _)| d.exited().first().copied())
        {
            bail!("node{i} exited during the bench; see its node.log");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    stop.store(true, Ordering::Relaxed);
    spam_stop.store(true, Ordering::Relaxed);
    load.await??;
    let spam_result = match spam_task {
        Some(t) => Some(t.await?),
        None => None,
    };
    // Give the last measured block one more slot to reach everyone.
    tokio::time::sleep(Duration::from_millis(args.slot_ms)).await;
    let (h0, t0) = traffic_from.unwrap_or((first - 1, (0, 0, 0)));
    let t1 = block_traffic(&urls).await?;
    let (cpu1, m1, w1, th1) = (
        cpu_ticks(&pids),
        machine_ticks(),
        Instant::now(),
        super::idle::thread_ticks(&pids),
    );
    let h1 = c0.getblockcount().await?;
    let machine = {
        let (cpu0, m0, w0, th0) = cpu_from.unwrap_or_else(|| (cpu1, m1, w1, th1.clone()));
        let (peers, min_mesh) = peer_graph(&urls).await?;
        let blocks_made = h1.saturating_sub(h0).max(1) as f64;
        let cpu_s = cpu1.saturating_sub(cpu0) as f64 / clock_ticks();
        let wall_s = (w1 - w0).as_secs_f64().max(1e-3);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let node_cores = cpu_s / wall_s;
        // The machine's busy share from /proc/stat, but never below the nodes' own share.
        let total = m1.1.saturating_sub(m0.1).max(1) as f64;
        let machine_busy = (m1.0.saturating_sub(m0.0) as f64 / total)
            .max(node_cores / cores as f64)
            .min(1.0);
        MachineLoad {
            cpu_seconds_per_node_per_block: cpu_s / nodes as f64 / blocks_made,
            node_cores,
            machine_busy,
            cores,
            cpu_saturated: machine_busy >= SATURATED,
            peers_per_node: percentiles(peers),
            min_mesh,
            unsettled_nodes: unsettled.len(),
            threads: super::idle::thread_use(&th0, &th1, pids.len(), wall_s, clock_ticks()),
        }
    };
    let spam = match spam_result {
        Some((mut bans, failures)) => {
            let phase = |from: u64, to: u64| {
                let urls = urls.clone();
                let clocks = clocks.clone();
                async move {
                    let mut c = collect(&urls, from, to, &clocks).await?;
                    let blocks = std::mem::take(&mut c.blocks);
                    anyhow::Ok(summarize(&blocks, nodes, c, 0))
                }
            };
            let quiet = phase(first, quiet_last).await?;
            let loud = phase(quiet_last + 1, last).await?;
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            bans.sort_by(f64::total_cmp);
            Some(SpamPhases {
                quiet_heights: (first, quiet_last),
                spam_heights: (quiet_last + 1, last),
                t100_p95_ratio: ratio(loud.t100_ms.p95, quiet.t100_ms.p95),
                relayed_p95_ratio: ratio(loud.t100_relayed_ms.p95, quiet.t100_relayed_ms.p95),
                quiet_t100_ms: quiet.t100_ms,
                spam_t100_ms: loud.t100_ms,
                quiet_relayed_ms: quiet.t100_relayed_ms,
                spam_relayed_ms: loud.t100_relayed_ms,
                spammers: bans.len() + failures.len(),
                ban_ms: percentiles(bans),
                failures,
            })
        }
        None => None,
    };
    let mut collected = collect(&urls, first, last, &clocks).await?;
    let blocks = std::mem::take(&mut collected.blocks);
    let mut summary = summarize(&blocks, nodes, collected, accepted.load(Ordering::Relaxed));
    // Blocks produced between the two readings, each received by every node but its producer.
    let pairs = (h1.saturating_sub(h0) as f64 * (nodes as f64 - 1.0)).max(1.0);
    summary.duplicates_per_node = (t1.1 - t0.1).saturating_sub(t1.0 - t0.0) as f64 / pairs;
    let fetched =
        summary.bytes_per_node_per_block - mean(blocks.iter().map(|b| b.first_delivery_bytes));
    summary.bytes_with_duplicates_per_node_per_block =
        (t1.2 - t0.2) as f64 / pairs + fetched.max(0.0);
    if summary.mean_block_bytes > 0.0 {
        summary.bytes_with_duplicates_ratio =
            summary.bytes_with_duplicates_per_node_per_block / summary.mean_block_bytes;
    }
    if let Some((d, _)) = devnet.as_mut() {
        tokio::task::block_in_place(|| d.stop());
    }

    println!();
    println!(
        "{:>7} {:>7} {:>6} {:>9} {:>8} {:>9} {:>9} {:>9} {:>11} {:>11}",
        "height",
        "from",
        "txs",
        "bytes",
        "reached",
        "t50 ms",
        "t95 ms",
        "t100 ms",
        "deliver ms",
        "validate ms"
    );
    for b in &blocks {
        println!(
            "{:>7} {:>7} {:>6} {:>9} {:>5}/{:<2} {:>9} {:>9} {:>9} {:>11} {:>11}",
            b.height,
            b.producer.map_or("-".to_string(), |i| format!("node{i}")),
            b.txs,
            b.bytes,
            b.reached,
            nodes,
            fmt_ms(b.t50_ms),
            fmt_ms(b.t95_ms),
            fmt_ms(b.t100_ms),
            fmt_ms(b.delivery_median_ms),
            fmt_ms(b.validation_median_ms)
        );
    }
    let s = &summary;
    println!();
    println!(
        "blocks reaching all {} nodes: {}/{}",
        nodes, s.blocks_reaching_all, s.blocks
    );
    print_percentiles(s);
    println!(
        "transactions: {} accepted by RPC, {} in the measured blocks; mean block {:.0} bytes",
        s.txs_submitted, s.txs_in_blocks, s.mean_block_bytes
    );
    println!(
        "duplicates per node per block {:.2}; bytes with duplicates per node per block {:.0} ({:.3} of the full block)",
        s.duplicates_per_node,
        s.bytes_with_duplicates_per_node_per_block,
        s.bytes_with_duplicates_ratio
    );
    let m = &machine;
    println!(
        "CPU: {:.4} s per node per block; nodes used {:.2} of {} cores, machine {:.0} % busy{}",
        m.cpu_seconds_per_node_per_block,
        m.node_cores,
        m.cores,
        m.machine_busy * 100.0,
        if m.cpu_saturated {
            " (CPU-saturated: the times include CPU queueing)"
        } else {
            ""
        }
    );
    print_threads(m);
    println!(
        "peers per node: p50 {} max {}; smallest block mesh {}",
        fmt_ms(m.peers_per_node.p50),
        fmt_ms(m.peers_per_node.max),
        m.min_mesh
    );
    println!(
        "bytes received per node per block {:.0} ({:.3} of the full block){}; {:.1} s",
        s.bytes_per_node_per_block,
        s.bytes_ratio,
        match s.rebuilt_without_roundtrip {
            Some(f) => format!(
                "; compact blocks rebuilt without a round trip: {:.1} %",
                f * 100.0
            ),
            None => String::new(),
        },
        started.elapsed().as_secs_f64()
    );
    if let Some(sp) = &spam {
        println!(
            "spam: heights {}..={} quiet, {}..={} under {} spamming peers ({} not banned in 10 s)",
            sp.quiet_heights.0,
            sp.quiet_heights.1,
            sp.spam_heights.0,
            sp.spam_heights.1,
            sp.spammers,
            sp.failures.len()
        );
        println!(
            "  spammers banned after p50 {} ms, max {} ms (from the first invalid message)",
            fmt_ms(sp.ban_ms.p50),
            fmt_ms(sp.ban_ms.max)
        );
        println!(
            "  t100 p95: quiet {} ms, under spam {} ms, ratio {}; verified and relayed: {} / {} ms, ratio {}",
            fmt_ms(sp.quiet_t100_ms.p95),
            fmt_ms(sp.spam_t100_ms.p95),
            fmt_ms(sp.t100_p95_ratio),
            fmt_ms(sp.quiet_relayed_ms.p95),
            fmt_ms(sp.spam_relayed_ms.p95),
            fmt_ms(sp.relayed_p95_ratio)
        );
    }
    Ok(Report {
        nodes,
        slot_ms: args.slot_ms,
        tps: args.tps,
        tx_batch: args.tx_batch,
        relay: relay.to_string(),
        validators: if attached.is_some() { 0 } else { validators },
        blocks,
        summary,
        machine,
        spam,
        links: match (&attached, &args.profile) {
            (None, Some(p)) => Some(Links {
                profile: devnet_profile_name(p),
                applied: "in the node (delay per link, bandwidth paced per node; no loss)".into(),
            }),
            _ => None,
        },
        clocks,
        attached: attached.is_some(),
        from_dirs: Vec::new(),
    })
}

/// Collects the report of a finished run from its nodes' data dirs: `DIR/arrivals.jsonl`
/// ([`crate::arrivals::read_journal`]), `DIR/node.key` for the node's peer id (without it,
/// hops through that node are unknown) and `DIR/link.json` ([`crate::p2p::shaping::LINK_FILE`]) if present: without it a hop costs
/// only its relay time in the hop bound. Node `i` is `dirs[i]`; the blocks are those some node
/// published (produced during the run), in height order. Times are each node's own clock:
/// right on one machine or in a simulator, uncorrected across machines.
///
/// Errors: a journal cannot be read or is damaged (before its last line).
pub fn collect_from_dirs(dirs: &[std::path::PathBuf]) -> anyhow::Result<Collected> {
    let n = dirs.len();
    let mut peer_index = std::collections::HashMap::new();
    let mut by_hash: std::collections::HashMap<String, Vec<Option<Arrival>>> = Default::default();
    for (i, d) in dirs.iter().enumerate() {
        if let Ok(p) = crate::node::peer_id_of_key_file(&d.join("node.key")) {
            peer_index.insert(p.to_string(), i);
        }
        for line in crate::arrivals::read_journal(&d.join(crate::arrivals::JOURNAL_FILE))? {
            by_hash.entry(line.hash).or_insert_with(|| vec![None; n])[i] = Some(line.arrival);
        }
    }
    let mut blocks: Vec<(u64, String, Vec<Option<Arrival>>)> = by_hash
        .into_iter()
        .filter(|(_, r)| r.iter().flatten().any(|a| a.published_us.is_some()))
        .map(|(h, r)| {
            let height = r.iter().flatten().map(|a| a.height).max().unwrap_or(0);
            (height, h, r)
        })
        .collect();
    blocks.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let links = dirs
        .iter()
        .map(|d| {
            let path = d.join(crate::p2p::shaping::LINK_FILE);
            match std::fs::read(&path) {
                Ok(b) => serde_json::from_slice::<LinkInfo>(&b)
                    .map(Some)
                    .with_context(|| format!("{} is not a link record", path.display())),
                Err(_) => Ok(None),
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut acc = Collected::default();
    for (height, hash, records) in blocks {
        let bytes = records
            .iter()
            .flatten()
            .map(|a| a.block_bytes)
            .max()
            .unwrap_or(0);
        let b = BlockId {
            height,
            hash,
            bytes,
        };
        block_report(b, &records, &peer_index, &links, &mut acc);
    }
    Ok(acc)
}

/// `bench propagation --from-dirs DIR…`: prints and writes the report of a finished run
/// ([`collect_from_dirs`]).
pub fn run_from_dirs(args: &PropagationArgs) -> anyhow::Result<()> {
    let dirs = &args.from_dirs;
    let c = collect_from_dirs(dirs)?;
    if c.blocks.is_empty() {
        bail!(
            "no journal in these {} dirs records a block produced in the run (DIR/{})",
            dirs.len(),
            crate::arrivals::JOURNAL_FILE
        );
    }
    let nodes = dirs.len();
    let blocks = c.blocks.clone();
    let summary = summarize(&blocks, nodes, c, 0);
    println!(
        "{} blocks from the journals of {nodes} nodes (heights {}..={})",
        blocks.len(),
        blocks.first().map_or(0, |b| b.height),
        blocks.last().map_or(0, |b| b.height)
    );
    println!(
        "blocks reaching all {nodes} nodes: {}/{}",
        summary.blocks_reaching_all, summary.blocks
    );
    print_percentiles(&summary);
    println!(
        "mean block {:.0} bytes; bytes received per node per block {:.0} ({:.3} of the full block)",
        summary.mean_block_bytes, summary.bytes_per_node_per_block, summary.bytes_ratio
    );
    let report = Report {
        nodes,
        slot_ms: 0,
        tps: 0,
        tx_batch: 1,
        relay: String::new(),
        validators: 0,
        blocks,
        summary,
        machine: MachineLoad::default(),
        spam: None,
        links: None,
        clocks: Vec::new(),
        attached: false,
        from_dirs: dirs.iter().map(|d| d.display().to_string()).collect(),
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("report written to {}", args.out.display());
    Ok(())
}

/// Clock-offset samples per node.
pub const CLOCK_SAMPLES: usize = 32;

/// A node's clock against the bench's.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ClockOffset {
    /// The node's clock minus the bench's, ms (subtracted from its arrival times).
    pub offset_ms: f64,
    /// ± bound on the offset: half the lowest round trip, ms.
    pub uncertainty_ms: f64,
}

/// The offset of each node's wall clock from this process's, NTP's on-wire way (RFC 5905
/// §8): `samples` reads of `meshnode_clock`; for the read with the lowest round trip, offset =
/// node time − the midpoint of send and receive, uncertainty = half that round trip.
///
/// # Errors
/// A node's RPC failing.
pub async fn clock_offsets(urls: &[String], samples: usize) -> anyhow::Result<Vec<ClockOffset>> {
    let mut out = Vec::new();
    for u in urls {
        let c = http(u)?;
        let mut best: Option<(u64, f64)> = None;
        for _ in 0..samples.max(1) {
            let t0 = crate::now_us();
            let v = c.clock().await?;
            let t1 = crate::now_us();
            let node = v["unixMicros"].as_u64().context("meshnode_clock answer")?;
            let rtt = t1.saturating_sub(t0);
            let offset = node as f64 - (t0 as f64 + t1 as f64) / 2.0;
            if best.is_none_or(|(r, _)| rtt < r) {
                best = Some((rtt, offset));
            }
        }
        let (rtt, offset) = best.unwrap_or_default();
        out.push(ClockOffset {
            offset_ms: offset / 1e3,
            uncertainty_ms: rtt as f64 / 2e3,
        });
    }
    Ok(out)
}

/// `--attach URL…` and `--attach-file FILE` (one URL per line, `#` comments): the nodes to
/// measure instead of starting a devnet; None when neither is given. A URL whose host name
/// resolves to several IPv4 addresses stands for one node at each (Docker's
/// `tasks.SERVICE` names every replica of a service); see [`expand_url`].
async fn attach_urls(args: &PropagationArgs) -> anyhow::Result<Option<Vec<String>>> {
    let mut given = args.attach.clone();
    if let Some(f) = &args.attach_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading --attach-file {}", f.display()))?;
        given.extend(
            text.lines()
                .map(|l| l.split('#').next().unwrap_or_default().trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string),
        );
    }
    if given.is_empty() {
        return Ok(None);
    }
    if args.spam {
        bail!("--spam needs a devnet the bench starts (not --attach)");
    }
    let mut urls = Vec::new();
    for u in &given {
        let expanded = expand_url(u).await?;
        if expanded.len() > 1 {
            println!(
                "{} resolves to {} addresses: one node at each",
                redact(u),
                expanded.len()
            );
        }
        for e in expanded {
            if !urls.contains(&e) {
                urls.push(e);
            }
        }
    }
    if urls.len() < 2 {
        bail!("--attach needs at least 2 nodes");
    }
    Ok(Some(urls))
}

/// One attach URL as the node URLs it stands for: itself, unless its host is a name that
/// resolves to two or more IPv4 addresses, in which case one URL per address (sorted), with
/// the same scheme, credentials, port and path. Names with one IPv4 address (or an IPv4 and
/// an IPv6 one, as `localhost`) stay as given.
///
/// Errors: a URL that does not parse, or a name that does not resolve.
pub(crate) async fn expand_url(url: &str) -> anyhow::Result<Vec<String>> {
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("--attach {}: not a URL", redact(url)))?;
    let (Some(scheme), Some(authority), Some(host)) =
        (uri.scheme_str(), uri.authority(), uri.host())
    else {
        bail!("--attach {}: needs http://host:port", redact(url));
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::IpAddr>().is_ok() {
        return Ok(vec![url.to_string()]);
    }
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let mut v4: Vec<std::net::Ipv4Addr> = tokio::net::lookup_host((bare, port))
        .await
        .with_context(|| format!("--attach {}: resolving {bare}", redact(url)))?
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    v4.sort();
    v4.dedup();
    if v4.len() < 2 {
        return Ok(vec![url.to_string()]);
    }
    let userinfo = authority
        .as_str()
        .rsplit_once('@')
        .map(|(u, _)| format!("{u}@"))
        .unwrap_or_default();
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| *p != "/")
        .unwrap_or("");
    Ok(v4
        .into_iter()
        .map(|ip| format!("{scheme}://{userinfo}{ip}:{port}{path}"))
        .collect())
}

/// A URL as it may be printed: any password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A profile's name as reports quote it (a file's own `name`).
fn devnet_profile_name(spec: &str) -> String {
    crate::p2p::LinkProfile::load(spec)
        .map(|p| p.name)
        .unwrap_or_else(|_| spec.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn attach_urls_expand_only_multi_address_names() {
        for u in [
            "http://127.0.0.1:8545",
            "http://u:p@10.77.1.2:8545/",
            "http://localhost:8545",
        ] {
            assert_eq!(expand_url(u).await.unwrap(), vec![u.to_string()]);
        }
        assert!(expand_url("not a url").await.is_err());
        assert_eq!(
            redact("http://meshnode:s3cret@tasks.node:8545"),
            "http://meshnode:***@tasks.node:8545"
        );
        assert_eq!(redact("http://10.0.0.1:1"), "http://10.0.0.1:1");
    }

    #[test]
    fn load_goes_out_in_whole_groups_to_one_node_each() {
        assert_eq!(whole_groups(37, 16), 32);
        assert_eq!(whole_groups(15, 16), 0);
        assert_eq!(whole_groups(37, 1), 37);
        let nodes: Vec<usize> = (0..40).map(|i| group_node(i, 16, 2)).collect();
        assert!(nodes[..16].iter().all(|&n| n == 0));
        assert!(nodes[16..32].iter().all(|&n| n == 1));
        assert!(nodes[32..].iter().all(|&n| n == 0));
        let one: Vec<usize> = (0..5).map(|i| group_node(i, 1, 3)).collect();
        assert_eq!(one, vec![0, 1, 2, 0, 1]);
    }

    fn args(cli: &[&str]) -> PropagationArgs {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(cli).unwrap();
        match cli.command {
            crate::cli::Command::Bench(crate::cli::BenchCommand::Propagation(a)) => a,
            _ => panic!("not bench propagation"),
        }
    }

    #[test]
    fn compared_modes_measure_the_same_producers() {
        let run = [
            "meshnode",
            "bench",
            "propagation",
            "--nodes",
            "32",
            "--blocks",
        ];
        let compare = ["--compare", "flood,compact"];
        // One mode: every node produces.
        assert_eq!(validator_count(&args(&[&run[..], &["6"]].concat())), 32);
        // Compared: one block from each of the first 6 nodes in every mode's window of 6.
        assert_eq!(
            validator_count(&args(&[&run[..], &["6"], &compare[..]].concat())),
            6
        );
        // More blocks than nodes: every node.
        assert_eq!(
            validator_count(&args(&[&run[..], &["40"], &compare[..]].concat())),
            32
        );
        // Named: as given.
        assert_eq!(
            validator_count(&args(
                &[&run[..], &["6", "--validators", "3"], &compare[..]].concat()
            )),
            3
        );
    }

    #[test]
    fn fractions_and_percentiles() {
        let t = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(time_to_fraction(&t, 4, 0.5), Some(1.0));
        assert_eq!(time_to_fraction(&t, 4, 1.0), Some(3.0));
        assert_eq!(time_to_fraction(&t, 5, 1.0), None, "a node never got it");
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 50.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn delivery_tree_depths() {
        let rec = |published: bool, from: Option<&str>| {
            Some(Arrival {
                published_us: published.then_some(1),
                first_from: from.map(str::to_string),
                ..Default::default()
            })
        };
        let idx: std::collections::HashMap<String, usize> =
            [("a", 0), ("b", 1), ("c", 2), ("d", 3)]
                .into_iter()
                .map(|(p, i)| (p.to_string(), i))
                .collect();
        // a produced; b got it from a, c from b, d from a stranger; e never got it.
        let records = vec![
            rec(true, None),
            rec(false, Some("a")),
            rec(false, Some("b")),
            rec(false, Some("zz")),
            None,
        ];
        assert_eq!(
            delivery_tree(&records, &idx),
            [Some(0), Some(1), Some(2), None, None]
        );
        // The tree itself: who delivered to whom.
        assert_eq!(
            first_deliverers(&records, &idx),
            [None, Some(0), Some(1), None, None]
        );
        // A loop of first deliverers has no depth.
        let looped = vec![
            rec(true, None),
            rec(false, Some("c")),
            rec(false, Some("b")),
        ];
        assert_eq!(delivery_tree(&looped, &idx), [Some(0), None, None]);
    }

    #[test]
    fn hop_bounds_add_delay_wire_time_and_relay_per_hop() {
        let wan = crate::p2p::LinkProfile::load("wan").unwrap();
        let node = |region: usize, class: &str| {
            let me: libp2p::Multiaddr = format!(
                "/ip4/{}/tcp/1",
                crate::p2p::LinkProfile::loopback_ip(region, 0)
            )
            .parse()
            .unwrap();
            Some(
                crate::p2p::LinkShape::new(wan.clone(), &[me], Some(class))
                    .unwrap()
                    .info(),
            )
        };
        // a (europe, supernode) → b (na_east, fullnode) → c (na_east, fullnode).
        let links = vec![
            node(1, "supernode"),
            node(4, "fullnode"),
            node(4, "fullnode"),
        ];
        let rec = |published: bool, from: Option<&str>, relay_us: u64| {
            Some(Arrival {
                published_us: published.then_some(1),
                first_from: from.map(str::to_string),
                first_seen_us: Some(1_000),
                relayed_us: Some(1_000 + relay_us),
                bytes: 62_500, // 10 ms at 50 Mbit/s
                ..Default::default()
            })
        };
        let idx: std::collections::HashMap<String, usize> = [("a", 0), ("b", 1), ("c", 2)]
            .into_iter()
            .map(|(p, i)| (p.to_string(), i))
            .collect();
        let records = vec![
            rec(true, None, 0),
            rec(false, Some("a"), 3_000),
            rec(false, Some("b"), 5_000),
        ];
        let b = hop_bounds(&records, &idx, &links);
        let close = |x: Option<f64>, y: f64| (x.unwrap() - y).abs() < 1e-6;
        assert!(close(b[0], 0.0));
        // 70 ms europe → na_east, 10 ms at min(1 Gbit/s, 50 Mbit/s), b's 3 ms relay.
        assert!(close(b[1], 83.0), "{b:?}");
        // + 2 ms inside na_east, 10 ms at 50 Mbit/s, c's 5 ms relay.
        assert!(close(b[2], 100.0), "{b:?}");
        // Without links: relay times only.
        let bare = hop_bounds(&records, &idx, &[None, None, None]);
        assert!(close(bare[2], 8.0), "{bare:?}");
        // Excess per hop: b saw it 0.999 ms after a published it (at 1 µs), 80 ms sooner
        // than its link allows (these records' times are made up).
        let mut timed = records.clone();
        if let Some(c) = timed[2].as_mut() {
            c.first_seen_us = Some(4_000 + 12_000 + 2_500);
        }
        let e = hop_excess(&timed, &idx, &links);
        assert_eq!(e[0], None, "the producer has no last hop");
        assert!(close(e[1], 0.999 - 80.0), "{e:?}");
        // c: seen 2.5 ms after the 12 ms its link takes from b's relay (4,000 µs).
        assert!(close(e[2], 2.5), "{e:?}");
        // A deliverer outside the devnet: none.
        let bare = hop_excess(&records, &std::collections::HashMap::new(), &links);
        assert_eq!(bare, [None, None, None]);
    }
}
