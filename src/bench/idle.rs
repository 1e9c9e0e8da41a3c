//! `meshnode bench idle`: what a devnet costs the machine when nothing happens but the
//! network's upkeep (gossipsub heartbeats, pings, Kademlia, the peer manager) and, unless
//! `--no-blocks`, one empty block per slot.
//!
//! The devnet starts, its peer graph settles (see [`super::propagation::wait_settled`]; if it
//! has not within the propagation bench's wait, the reading goes on and the report counts
//! the nodes outside the bounds), then the CPU time of every node process (`/proc/PID/stat`
//! utime + stime, all threads) is read twice, `--seconds` apart: cores = CPU seconds ÷ wall
//! seconds.

use super::propagation::{clock_ticks, cpu_ticks, settle_timeout, wait_settled};
use crate::cli::IdleArgs;
use crate::devnet::{Devnet, DevnetOptions};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The report `--out` receives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdleReport {
    /// Nodes.
    pub nodes: usize,
    /// Whether a validator produced (empty) blocks during the reading.
    pub blocks: bool,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// Seconds between the two readings.
    pub seconds: f64,
    /// Seconds from the start until the peer graph had settled (or the wait timed out).
    pub settled_after_s: f64,
    /// Nodes still outside the settle bounds when the wait timed out (0: all settled).
    #[serde(default)]
    pub unsettled_nodes: usize,
    /// Cores the node processes used together.
    pub cores: f64,
    /// CPU milliseconds per node per second.
    pub ms_per_node_per_s: f64,
}

/// Runs the bench and prints the figures.
pub async fn run_cli(args: IdleArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.nodes >= 2, "need at least 2 nodes");
    let (dir, _tmp) = crate::devnet::work_dir(&args.dir, "meshnode-idle-")?;
    let opts = DevnetOptions {
        nodes: args.nodes,
        validators: 1,
        slot_ms: args.slot_ms,
        dir,
        template: args.genesis.clone(),
        exe: std::env::current_exe()?,
        rpc_base_port: 0,
        log: std::env::var("MESHNODE_NODE_LOG").unwrap_or_else(|_| "info".into()),
        dev_accounts: None,
        produce: !args.no_blocks,
        extra_args: Vec::new(),
        profile: None,
        netns: false,
        loss: None,
    };
    let started = Instant::now();
    println!("starting a devnet of {} nodes …", args.nodes);
    let mut devnet = Devnet::start(&opts).await?;
    let urls = devnet.rpc_urls();
    let pids: Vec<u32> = devnet
        .nodes
        .iter()
        .filter_map(|n| n.child.as_ref().map(|c| c.id()))
        .collect();
    let want = (args.nodes as u64 - 1).min(crate::p2p::behaviour::MESH_D_LOW as u64);
    let unsettled = wait_settled(&urls, want, want, settle_timeout(args.nodes)).await?;
    if let Some(first) = unsettled.first() {
        println!(
            "peer graph not settled: {} of {} nodes outside the bounds (first: {first}); \
             reading anyway",
            unsettled.len(),
            args.nodes
        );
    }
    let settled = started.elapsed().as_secs_f64();
    println!(
        "peer graph {} after {settled:.0} s; reading CPU for {} s",
        if unsettled.is_empty() {
            "settled"
        } else {
            "waited for"
        },
        args.seconds
    );
    let bar = super::progress::TimedBar::start(args.seconds, "reading CPU");
    let (c0, t0) = (cpu_ticks(&pids), Instant::now());
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (c1, t1) = (cpu_ticks(&pids), Instant::now());
    bar.finish();
    if let Some(i) = devnet.exited().first() {
        anyhow::bail!("node{i} exited during the bench; see its node.log");
    }
    tokio::task::block_in_place(|| devnet.stop());
    let secs = (t1 - t0).as_secs_f64();
    let cores = c1.saturating_sub(c0) as f64 / clock_ticks() / secs;
    let report = IdleReport {
        nodes: args.nodes,
        blocks: !args.no_blocks,
        slot_ms: args.slot_ms,
        seconds: secs,
        settled_after_s: settled,
        unsettled_nodes: unsettled.len(),
        cores,
        ms_per_node_per_s: cores * 1000.0 / args.nodes as f64,
    };
    println!(
        "{} idle nodes ({}): {:.3} cores together, {:.2} ms of CPU per node per second",
        report.nodes,
        if report.blocks {
            format!("one empty block per {} ms slot", report.slot_ms)
        } else {
            "no blocks".to_string()
        },
        report.cores,
        report.ms_per_node_per_s
    );
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("report written to {}", args.out.display());
    Ok(())
}
