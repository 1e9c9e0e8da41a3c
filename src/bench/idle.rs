//! `meshnode bench idle`: what a devnet costs the machine when nothing happens but the
//! network's upkeep (gossipsub heartbeats, pings, Kademlia, the peer manager) and, unless
//! `--no-blocks`, one empty block per slot.
//!
//! The devnet starts, its peer graph settles (see [`super::propagation::wait_settled`]; if it
//! has not within the propagation bench's wait, the reading goes on and the report counts
//! the nodes outside the bounds), then the CPU time of every node process (`/proc/PID/stat`
//! utime + stime, all threads) is read twice, `--seconds` apart: cores = CPU seconds ÷ wall
//! seconds. The same two readings per thread (`/proc/PID/task/TID/stat` and `status`) say
//! where the CPU went: threads of one name (the runtime's workers, the validation threads,
//! sled's I/O pool, libp2p's timer thread) are summed over the nodes, with their wake-ups
//! (voluntary context switches: a thread gave up the CPU to wait, then was woken).

use super::propagation::{clock_ticks, cpu_ticks, parse_stat, settle_timeout, wait_settled};
use crate::cli::IdleArgs;
use crate::devnet::{Devnet, DevnetOptions};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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
    /// Where the CPU went: threads grouped by name, most CPU first (threads that started or
    /// ended between the readings are left out).
    #[serde(default)]
    pub threads: Vec<ThreadUse>,
}

/// The CPU and wake-ups of the node threads of one name, over the reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadUse {
    /// Thread name without its trailing number (`sled-io-3` → `sled-io`); `main` for a
    /// process's main thread.
    pub name: String,
    /// Threads of this name, all nodes together.
    pub threads: usize,
    /// Cores they used together.
    pub cores: f64,
    /// Voluntary context switches per node per second: how often a thread of this name
    /// waited and was woken.
    pub wakeups_per_node_per_s: f64,
}

/// One reading of every thread of `pids`: (pid, tid) → (name, CPU ticks, voluntary context
/// switches). Threads that vanish while read are skipped.
pub fn thread_ticks(pids: &[u32]) -> HashMap<(u32, u32), (String, u64, u64)> {
    let mut out = HashMap::new();
    for &pid in pids {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for tid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
            let base = format!("/proc/{pid}/task/{tid}");
            let (Ok(stat), Ok(status)) = (
                std::fs::read_to_string(format!("{base}/stat")),
                std::fs::read_to_string(format!("{base}/status")),
            ) else {
                continue;
            };
            let Some((name, ticks)) = parse_stat(&stat) else {
                continue;
            };
            let switches = status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let name = if tid == pid {
                "main".to_string()
            } else {
                thread_kind(&name)
            };
            out.insert((pid, tid), (name, ticks, switches));
        }
    }
    out
}

/// A thread name without its trailing number: `sled-io-3` → `sled-io`.
fn thread_kind(name: &str) -> String {
    let t = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let t = if t.len() < name.len() {
        t.trim_end_matches(['-', '_', '#'])
    } else {
        t
    };
    if t.is_empty() { name } else { t }.to_string()
}

/// Groups two [`thread_ticks`] readings `secs` apart by thread name, most CPU first.
pub fn thread_use(
    before: &HashMap<(u32, u32), (String, u64, u64)>,
    after: &HashMap<(u32, u32), (String, u64, u64)>,
    nodes: usize,
    secs: f64,
    ticks_per_s: f64,
) -> Vec<ThreadUse> {
    let mut by: BTreeMap<&str, (usize, u64, u64)> = BTreeMap::new();
    for (k, (name, t1, v1)) in after {
        let Some((_, t0, v0)) = before.get(k) else {
            continue;
        };
        let e = by.entry(name.as_str()).or_default();
        e.0 += 1;
        e.1 += t1.saturating_sub(*t0);
        e.2 += v1.saturating_sub(*v0);
    }
    let secs = secs.max(f64::MIN_POSITIVE);
    let mut out: Vec<ThreadUse> = by
        .into_iter()
        .map(|(name, (threads, ticks, switches))| ThreadUse {
            name: name.to_string(),
            threads,
            cores: ticks as f64 / ticks_per_s / secs,
            wakeups_per_node_per_s: switches as f64 / secs / nodes.max(1) as f64,
        })
        .collect();
    out.sort_by(|a, b| b.cores.total_cmp(&a.cores).then(a.name.cmp(&b.name)));
    out
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
    let (c0, th0, t0) = (cpu_ticks(&pids), thread_ticks(&pids), Instant::now());
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (c1, th1, t1) = (cpu_ticks(&pids), thread_ticks(&pids), Instant::now());
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
        threads: thread_use(&th0, &th1, pids.len(), secs, clock_ticks()),
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
    println!(
        "where it went (threads of one name, all nodes; wake-ups: voluntary context switches):"
    );
    for t in &report.threads {
        println!(
            "  {:<18} {:>5} threads  {:.4} cores  {:>7.1} wake-ups per node per s",
            t.name, t.threads, t.cores, t.wakeups_per_node_per_s
        );
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("report written to {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_names_lose_their_number_and_stat_lines_parse() {
        assert_eq!(thread_kind("sled-io-3"), "sled-io");
        assert_eq!(thread_kind("tokio-rt-worker"), "tokio-rt-worker");
        assert_eq!(thread_kind("block-validatio"), "block-validatio");
        assert_eq!(thread_kind("42"), "42");
        let line = "7 (odd (name) 1) S 1 7 7 0 -1 4194560 100 0 0 0 25 17 0 0 20 0 3 0";
        assert_eq!(parse_stat(line), Some(("odd (name) 1".to_string(), 42)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn thread_use_groups_by_name_and_skips_threads_not_read_twice() {
        let r = |v: &[((u32, u32), &str, u64, u64)]| {
            v.iter()
                .map(|(k, n, t, s)| (*k, (n.to_string(), *t, *s)))
                .collect::<HashMap<_, _>>()
        };
        let before = r(&[
            ((1, 1), "main", 0, 0),
            ((1, 2), "sled-io", 10, 5),
            ((2, 3), "sled-io", 10, 5),
            ((2, 4), "tokio-rt-worker", 100, 50),
            ((2, 5), "gone", 1, 1),
        ]);
        let after = r(&[
            ((1, 1), "main", 0, 0),
            ((1, 2), "sled-io", 30, 25),
            ((2, 3), "sled-io", 20, 15),
            ((2, 4), "tokio-rt-worker", 500, 90),
            ((2, 6), "new", 50, 50),
        ]);
        let u = thread_use(&before, &after, 2, 10.0, 100.0);
        let names: Vec<&str> = u.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["tokio-rt-worker", "sled-io", "main"]);
        assert_eq!(u[0].threads, 1);
        assert!((u[0].cores - 0.4).abs() < 1e-9);
        assert!((u[0].wakeups_per_node_per_s - 2.0).abs() < 1e-9);
        assert_eq!(u[1].threads, 2);
        assert!((u[1].cores - 0.03).abs() < 1e-9);
        assert!((u[1].wakeups_per_node_per_s - 1.5).abs() < 1e-9);
    }
}
