//! `meshnode bench scale`: the propagation bench at several network sizes with the same load,
//! side by side — how t100 grows with the node count, what each node pays in CPU per block,
//! how many peers each node holds, and whether the machine itself was the limit.
//!
//! Each size is a fresh devnet run by [`super::propagation::run_mode`] (the same settle
//! wait, load, collection and definitions as `bench propagation`). A size that fails (a
//! node exits, the deadline passes) is reported with its error and the next size still runs.

use super::propagation::{self, Percentiles};
use crate::cli::{PropagationArgs, ScaleArgs};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// One network size's figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SizeReport {
    /// Nodes.
    pub nodes: usize,
    /// Blocks measured (0 when the run failed).
    pub blocks: usize,
    /// Of those, blocks every node imported.
    pub blocks_reaching_all: usize,
    /// Over blocks: ms from publish until every node had imported the block.
    pub t100_ms: Percentiles,
    /// Over blocks: ms from publish until every node had verified and relayed it.
    pub t100_relayed_ms: Percentiles,
    /// Over (block, node): first seen → relayed, ms.
    pub relay_ms: Percentiles,
    /// Over (block, node): relayed → imported, ms.
    pub import_ms: Percentiles,
    /// Over (block, node): hops in the delivery tree.
    pub hops: Percentiles,
    /// Over blocks: the hop bound (links, delivery tree and relay times; as `bench
    /// propagation`), ms.
    #[serde(default)]
    pub hop_bound_ms: Percentiles,
    /// Over blocks: t100 ÷ the block's hop bound (1 = at the limit).
    #[serde(default)]
    pub t100_over_hop_bound: Percentiles,
    /// Peers per node at the end of the run.
    pub peers_per_node: Percentiles,
    /// Smallest block-topic gossipsub mesh of any node.
    pub min_mesh: usize,
    /// Nodes whose peer graph had not settled when the wait timed out (the run went on).
    #[serde(default)]
    pub unsettled_nodes: usize,
    /// CPU seconds per node per block (`/proc/PID/stat`).
    pub cpu_seconds_per_node_per_block: f64,
    /// Fraction of the machine's CPU busy during the measured blocks.
    pub machine_busy: f64,
    /// The machine was the limit (busy ≥ 90 %).
    pub cpu_saturated: bool,
    /// t100 p95 ÷ the smallest size's t100 p95.
    pub t100_p95_ratio: Option<f64>,
    /// Why the run failed, if it did.
    pub error: Option<String>,
}

/// The report `--out` receives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScaleReport {
    /// Relay mode of every run.
    pub relay: String,
    /// Transactions per second submitted at every size.
    pub tps: u64,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// Blocks measured per size.
    pub blocks: u64,
    /// The link profile every size ran on (`--profile`), if any.
    #[serde(default)]
    pub profile: Option<String>,
    /// Per size, in the order given.
    pub sizes: Vec<SizeReport>,
}

/// Parses `8,16,32` into sizes (each at least 2).
///
/// Errors: an entry that is not a number, or below 2.
pub fn parse_sizes(list: &str) -> anyhow::Result<Vec<usize>> {
    let sizes = list
        .split(',')
        .map(|s| {
            let n: usize = s
                .trim()
                .parse()
                .with_context(|| format!("--nodes: {s:?} is not a number"))?;
            if n < 2 {
                bail!("--nodes: every size needs at least 2 nodes, got {n}");
            }
            Ok(n)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if sizes.is_empty() {
        bail!("--nodes: give at least one size");
    }
    Ok(sizes)
}

fn size_report(nodes: usize, r: &propagation::Report) -> SizeReport {
    let s = &r.summary;
    SizeReport {
        nodes,
        blocks: s.blocks,
        blocks_reaching_all: s.blocks_reaching_all,
        t100_ms: s.t100_ms.clone(),
        t100_relayed_ms: s.t100_relayed_ms.clone(),
        relay_ms: s.relay_ms.clone(),
        import_ms: s.import_ms.clone(),
        hops: s.hops.clone(),
        hop_bound_ms: s.hop_bound_ms.clone(),
        t100_over_hop_bound: s.t100_over_hop_bound.clone(),
        peers_per_node: r.machine.peers_per_node.clone(),
        min_mesh: r.machine.min_mesh,
        unsettled_nodes: r.machine.unsettled_nodes,
        cpu_seconds_per_node_per_block: r.machine.cpu_seconds_per_node_per_block,
        machine_busy: r.machine.machine_busy,
        cpu_saturated: r.machine.cpu_saturated,
        t100_p95_ratio: None,
        error: None,
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.1}"))
}

/// Runs the bench: one devnet per size, a table, `--out` JSON and the scale curve.
pub async fn run_cli(args: ScaleArgs) -> anyhow::Result<()> {
    let sizes = parse_sizes(&args.nodes)?;
    let started = Instant::now();
    let mut out = Vec::new();
    for &n in &sizes {
        match &args.profile {
            Some(p) => println!("== {n} nodes, link profile {p}"),
            None => println!("== {n} nodes"),
        }
        let pargs = PropagationArgs {
            nodes: n,
            blocks: args.blocks,
            validators: None,
            tps: args.tps,
            tx_batch: 1,
            slot_ms: args.slot_ms,
            out: args.out.clone(),
            dir: args.dir.as_ref().map(|d| d.join(format!("n{n}"))),
            genesis: args.genesis.clone(),
            relay: args.relay.clone(),
            compare: None,
            spam: false,
            profile: args.profile.clone(),
            attach: Vec::new(),
            attach_file: None,
            from_dirs: Vec::new(),
        };
        match propagation::run_mode(&pargs, &args.relay).await {
            Ok(r) => out.push(size_report(n, &r)),
            Err(e) => {
                println!("{n} nodes failed: {e:#}");
                out.push(SizeReport {
                    nodes: n,
                    error: Some(format!("{e:#}")),
                    ..Default::default()
                });
            }
        }
    }
    let base = out.first().and_then(|s| s.t100_ms.p95).filter(|b| *b > 0.0);
    for s in &mut out {
        s.t100_p95_ratio = match (s.t100_ms.p95, base) {
            (Some(v), Some(b)) => Some(v / b),
            _ => None,
        };
    }
    println!();
    println!(
        "{:>6} {:>9} {:>10} {:>10} {:>10} {:>12} {:>10} {:>8} {:>9} {:>9} {:>6} {:>11} {:>7} {:>7}",
        "nodes",
        "reached",
        "t100 p50",
        "t100 p95",
        "t100 max",
        "relayed p95",
        "bound p95",
        "÷bound",
        "relay p50",
        "import p50",
        "peers",
        "cpu s/n/blk",
        "busy",
        "ratio"
    );
    for s in &out {
        if let Some(e) = &s.error {
            println!("{:>6} failed: {e}", s.nodes);
            continue;
        }
        println!(
            "{:>6} {:>5}/{:<3} {:>10} {:>10} {:>10} {:>12} {:>10} {:>8} {:>9} {:>9} {:>6} {:>11.4} {:>6.0}% {:>7}{}",
            s.nodes,
            s.blocks_reaching_all,
            s.blocks,
            fmt(s.t100_ms.p50),
            fmt(s.t100_ms.p95),
            fmt(s.t100_ms.max),
            fmt(s.t100_relayed_ms.p95),
            fmt(s.hop_bound_ms.p95),
            s.t100_over_hop_bound
                .p95
                .map_or("-".into(), |r| format!("{r:.2}")),
            fmt(s.relay_ms.p50),
            fmt(s.import_ms.p50),
            fmt(s.peers_per_node.p50),
            s.cpu_seconds_per_node_per_block,
            s.machine_busy * 100.0,
            s.t100_p95_ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            match (s.cpu_saturated, s.unsettled_nodes) {
                (true, 0) => "  CPU-saturated".to_string(),
                (false, 0) => String::new(),
                (sat, n) => format!(
                    "{}  {n} nodes unsettled",
                    if sat { "  CPU-saturated" } else { "" }
                ),
            }
        );
    }
    if out.iter().any(|s| s.cpu_saturated) {
        println!(
            "CPU-saturated: the machine was busy ≥ {:.0} % during those runs, so their times \
             include CPU queueing, not only the network",
            propagation::SATURATED * 100.0
        );
    }
    let report = ScaleReport {
        relay: args.relay.clone(),
        tps: args.tps,
        slot_ms: args.slot_ms,
        blocks: args.blocks,
        profile: args.profile.clone(),
        sizes: out,
    };
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    match super::plot::write_scale(&args.out, &report) {
        Ok(paths) => {
            for p in paths {
                println!("picture written to {}", p.display());
            }
        }
        Err(e) => println!("no pictures: {e:#}"),
    }
    println!(
        "report written to {} ({:.1} s in all)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_sizes("8, 16,32").unwrap(), vec![8, 16, 32]);
        assert!(parse_sizes("8,x").is_err());
        assert!(parse_sizes("1").is_err());
    }
}
