//! `meshnode devnet --shadow DIR`: write a complete scenario for the Shadow network simulator
//! (shadow 3.x, <https://shadow.github.io/>), which runs unmodified node binaries on a simulated
//! network with simulated time, instead of starting processes here.
//!
//! What goes into DIR:
//! - `shadow.yaml`: Shadow's configuration ("shadow_config_spec" of the Shadow manual): one
//!   host per node (`node0` …) with a fixed address `10.77.(100 + i / 250).(i % 250 + 1)`, the
//!   network node of its region and bandwidth class, and its `meshnode run` command line;
//!   an optional load host (`load`, address 10.77.99.1, in the region with the most nodes)
//!   running `meshnode bench load` against up to 16 nodes of its region.
//! - `graph.gml`: the network graph, built from a link profile as libp2p's gossipsub-interop
//!   Shadow scenarios build theirs (`libp2p/test-plans`, `gossipsub-interop/network_graph.py`):
//!   one graph node per (region, class) pair with the class's up and down bandwidth, and a
//!   directed edge between every pair of graph nodes, self-loops included, whose latency is the
//!   profile's one-way delay between the two regions and whose `packet_loss` is the profile's
//!   loss. `use_shortest_path` is off, so every packet takes the direct edge. Shadow has no
//!   jitter: a profile's `jitter_ms` is dropped (and said so).
//! - `genesis.json`: validators `dev-validator:0..K`, genesis time [`SHADOW_EPOCH_MS`] plus a
//!   warm-up ([`warmup_secs`]; bootnodes take [`bootnode_max_peers`] peers, so that joiners
//!   are not turned away) (Shadow's clock starts at 2000-01-01 00:00:00 UTC, so a genesis time taken from
//!   the host's clock would lie 26 years in the simulation's future), and the bootnodes by
//!   address and peer id.
//! - `nodes/nodeI/node.key`: each node's libp2p key, so that bootnode peer ids are known
//!   before the run, and `link.json`, its region and class (the hop bound of `bench
//!   propagation --from-dirs` reads it); `nodes/nodeI` is the node's data dir (Shadow does not virtualise the file
//!   system), where the run leaves `arrivals.jsonl` for `bench propagation --from-dirs`.
//! - `run.sh`: empties the data dirs (keeping keys and links) and `shadow.data`, then runs Shadow.
//!
//! Settings that keep the run deterministic and free of workarounds: no native preemption
//! (Shadow's `experimental.native_preemption_enabled` stays off), fresh dial ports (`meshnode
//! run`'s default, since Shadow does not implement `SO_REUSEPORT`), one seed, and
//! `general.model_unblocked_syscall_latency: false` (Shadow's default). The last keeps sled
//! 0.34's one busy-wait from spinning: the first thread that needs sled's I/O pool holds a flag
//! while it spawns the pool's threads, which spin on that flag (`sled::lazy::Lazy::deref`, no
//! syscall in the loop). Shadow runs one thread of a host at a time and, with that setting
//! off, switches only at a blocking syscall, so the pool is complete before its threads run;
//! with it on, Shadow may switch at the spawning thread's `clone`, and the spinning thread then
//! never gives control back (a 16-node run stuck at simulated second 1).

use crate::crypto::Keypair;
use crate::genesis::GenesisFile;
use crate::p2p::LinkProfile;
use anyhow::{bail, Context};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Start of Shadow's simulated clock: 2000-01-01 00:00:00 UTC, in ms since the Unix epoch
/// (Shadow manual, "Simulated time": every host's wall clock starts there).
pub const SHADOW_EPOCH_MS: u64 = 946_684_800_000;

/// The p2p port every node listens on (each host has its own address).
pub const P2P_PORT: u16 = 9000;
/// The JSON-RPC port of every node.
pub const RPC_PORT: u16 = 8545;
/// User name of every node's JSON-RPC inside the simulation (the password is drawn per
/// scenario and written into shadow.yaml).
pub const RPC_USER: &str = "shadow";

/// What to write.
#[derive(Clone, Debug)]
pub struct ShadowOptions {
    /// Scenario directory (created; must be empty or absent).
    pub dir: PathBuf,
    /// Number of nodes.
    pub nodes: usize,
    /// The first `validators` nodes produce (`dev-validator:i`).
    pub validators: usize,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// Link profile: `wan`, `lan` or a file ([`crate::p2p::profile`]).
    pub profile: String,
    /// Load: signed transfers per second from a load host (0: no load host).
    pub tps: u64,
    /// Simulated seconds of slots after genesis (the run stops some seconds later).
    pub seconds: u64,
    /// The meshnode binary every host runs.
    pub exe: PathBuf,
    /// Genesis template (None: [`GenesisFile::load`]'s default).
    pub template: Option<PathBuf>,
    /// Log filter passed to the nodes.
    pub log: String,
    /// Shadow's seed (and the scenario's: placement is deterministic anyway).
    pub seed: u64,
    /// `meshnode run --simulated-cost` for every node (see [`crate::config::SimulatedCost`]).
    pub simulated_cost: Option<String>,
}

/// A written scenario: where things are and the two commands to give the user.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// `DIR/shadow.yaml`.
    pub config: PathBuf,
    /// `DIR/genesis.json`.
    pub genesis: PathBuf,
    /// Each node's data dir.
    pub data_dirs: Vec<PathBuf>,
    /// Genesis time, ms since the Unix epoch (inside the simulation).
    pub genesis_time_ms: u64,
    /// Shadow's `general.stop_time`, simulated seconds from the start.
    pub stop_secs: u64,
    /// The command that runs the scenario.
    pub run_command: String,
    /// The command that reports on a finished run.
    pub report_command: String,
    /// What the scenario leaves out of the profile (e.g. jitter), for the user.
    pub caveats: Vec<String>,
}

/// The address of node `i` inside the simulation: `10.77.(100 + i / 250).(i % 250 + 1)`.
/// The third octet is above any profile's region count, so nothing reads a region from it:
/// Shadow, not the node, applies the links.
pub fn node_ip(i: usize) -> anyhow::Result<Ipv4Addr> {
    let third = 100 + i / 250;
    let third = u8::try_from(third).with_context(|| format!("node {i}: more than 39,000 nodes"))?;
    Ok(Ipv4Addr::new(10, 77, third, (i % 250 + 1) as u8))
}

/// The load host's address.
pub const LOAD_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 99, 1);

/// Nodes started per simulated second after the bootnodes.
pub const JOINS_PER_SEC: f64 = 50.0;

/// Simulated seconds before genesis: bootnodes start at 1 s, the rest from 2 s at
/// [`JOINS_PER_SEC`]; then 30 s for the last to find peers and fill its gossipsub meshes.
pub fn warmup_secs(nodes: usize) -> u64 {
    32 + (nodes as f64 / JOINS_PER_SEC).ceil() as u64
}

/// `--max-peers` of a bootnode in an `n`-node scenario with `boots` bootnodes: room for
/// twice its share of joiners, at least the default and at most 512.
pub fn bootnode_max_peers(n: usize, boots: usize) -> usize {
    (2 * n.div_ceil(boots.max(1))).clamp(crate::p2p::PeerConfig::DEFAULT_MAX, 512)
}

#[derive(Serialize)]
struct Config {
    general: General,
    network: Network,
    experimental: Experimental,
    hosts: BTreeMap<String, Host>,
}

#[derive(Serialize)]
struct General {
    stop_time: String,
    seed: u64,
    /// 0: one worker thread per core.
    parallelism: u32,
    progress: bool,
    model_unblocked_syscall_latency: bool,
}

#[derive(Serialize)]
struct Network {
    graph: Graph,
    use_shortest_path: bool,
}

#[derive(Serialize)]
struct Graph {
    #[serde(rename = "type")]
    kind: String,
    file: GraphFile,
}

#[derive(Serialize)]
struct GraphFile {
    path: String,
}

#[derive(Serialize)]
struct Experimental {
    native_preemption_enabled: bool,
}

#[derive(Serialize)]
struct Host {
    network_node_id: usize,
    ip_addr: String,
    processes: Vec<Process>,
}

#[derive(Serialize)]
struct Process {
    path: String,
    args: Vec<String>,
    environment: BTreeMap<String, String>,
    start_time: String,
    expected_final_state: FinalState,
}

/// Shadow's `expected_final_state`: `running` or `{exited: N}`.
#[derive(Serialize)]
#[serde(untagged)]
enum FinalState {
    Running(&'static str),
    Exited { exited: i32 },
}

/// The graph node of (`region`, `class`) in `graph.gml`.
pub fn graph_node(profile: &LinkProfile, region: usize, class: usize) -> usize {
    region * profile.classes.len() + class
}

/// Shadow's bandwidth string for a profile rate in Mbit/s (0 = unlimited, given as 10 Gbit/s:
/// Shadow needs a number).
fn bandwidth(mbit: f64) -> String {
    if mbit <= 0.0 {
        "10 Gbit".into()
    } else {
        format!("{} Kbit", (mbit * 1000.0).round() as u64)
    }
}

/// `graph.gml` for `profile` (see the module doc).
pub fn gml(profile: &LinkProfile) -> String {
    let mut s = String::from("graph [\n  directed 1\n");
    for (r, region) in profile.regions.iter().enumerate() {
        for (c, class) in profile.classes.iter().enumerate() {
            let _ = write!(
                s,
                "  node [\n    id {}\n    label \"{}-{}\"\n    host_bandwidth_up \"{}\"\n    host_bandwidth_down \"{}\"\n  ]\n",
                graph_node(profile, r, c),
                region.name,
                class.name,
                bandwidth(class.up_mbit),
                bandwidth(class.down_mbit)
            );
        }
    }
    let classes = profile.classes.len();
    for a in 0..profile.regions.len() {
        for b in 0..profile.regions.len() {
            // Shadow's latencies are whole nanoseconds at best; microseconds keep fractional ms.
            let latency_us = (profile.regions[a].delay_ms[b] * 1000.0).round() as u64;
            for ca in 0..classes {
                for cb in 0..classes {
                    let _ = write!(
                        s,
                        "  edge [\n    source {}\n    target {}\n    latency \"{latency_us} us\"\n    packet_loss {:?}\n  ]\n",
                        graph_node(profile, a, ca),
                        graph_node(profile, b, cb),
                        profile.loss
                    );
                }
            }
        }
    }
    s.push_str("]\n");
    s
}

fn secs(s: f64) -> String {
    format!("{} ms", (s * 1000.0).round() as u64)
}

/// Writes the scenario (see the module doc) and returns where it is and how to run it.
///
/// Errors: bad counts, an unusable profile or template, DIR not empty, or I/O.
pub fn write(opts: &ShadowOptions) -> anyhow::Result<Scenario> {
    if opts.nodes == 0 {
        bail!("a scenario needs at least one node");
    }
    if opts.validators == 0 || opts.validators > opts.nodes {
        bail!("validators must be between 1 and the number of nodes");
    }
    if opts.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    let dir = super::new_scenario_dir(&opts.dir)?;
    let exe = std::fs::canonicalize(&opts.exe)
        .with_context(|| format!("locating {}", opts.exe.display()))?;
    let profile = LinkProfile::load(&opts.profile)?;
    let placements = profile.place(opts.nodes);
    let boots = super::bootnode_count(opts.nodes);

    // Keys first: the genesis names the bootnodes by peer id.
    let mut data_dirs = Vec::new();
    let mut peer_ids = Vec::new();
    for (i, pl) in placements.iter().enumerate() {
        let d = dir.join("nodes").join(format!("node{i}"));
        std::fs::create_dir_all(&d)?;
        let key_path = d.join("node.key");
        Keypair::generate().write_file(&key_path)?;
        // The node's link, for the hop bound of `bench propagation --from-dirs`.
        let (up, down) = profile.class_rates(pl.class);
        let link = crate::p2p::shaping::LinkInfo {
            profile: profile.name.clone(),
            region: Some(profile.regions[pl.region].name.clone()),
            class: profile.classes[pl.class].name.clone(),
            up_bytes_per_s: up,
            down_bytes_per_s: down,
            delay_ms: profile.regions[pl.region].delay_ms.clone(),
            regions: profile.regions.iter().map(|r| r.name.clone()).collect(),
        };
        std::fs::write(
            d.join(crate::p2p::shaping::LINK_FILE),
            serde_json::to_vec_pretty(&link)?,
        )?;
        peer_ids.push(crate::node::peer_id_of_key_file(&key_path)?);
        data_dirs.push(d);
    }

    let warmup = warmup_secs(opts.nodes);
    let genesis_time_ms = SHADOW_EPOCH_MS + warmup * 1000;
    let mut g = GenesisFile::load(opts.template.as_deref())?;
    g.validators = crate::genesis::dev_validators(opts.validators);
    g.slot_ms = opts.slot_ms;
    g.genesis_time_ms = genesis_time_ms;
    g.bootnodes = (0..boots)
        .map(|i| {
            Ok(format!(
                "/ip4/{}/tcp/{P2P_PORT}/p2p/{}",
                node_ip(i)?,
                peer_ids[i]
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    g.to_spec()?;
    let genesis = dir.join("genesis.json");
    g.write(&genesis)?;

    let password = crate::rpc::auth::random_hex(16)?;
    let exe_s = exe.display().to_string();
    let mut env = BTreeMap::new();
    // One tokio worker per node: every thread is a thread Shadow schedules and keeps memory for.
    env.insert("TOKIO_WORKER_THREADS".to_string(), "1".to_string());
    let mut hosts = BTreeMap::new();
    for i in 0..opts.nodes {
        let ip = node_ip(i)?;
        let pl = placements[i];
        let mut args: Vec<String> = vec![
            "--log".into(),
            opts.log.clone(),
            "run".into(),
            "--data-dir".into(),
            data_dirs[i].display().to_string(),
            "--genesis".into(),
            genesis.display().to_string(),
            "--listen".into(),
            format!("/ip4/{ip}/tcp/{P2P_PORT}"),
            "--rpc".into(),
            format!("{ip}:{RPC_PORT}"),
            "--rpc-user".into(),
            RPC_USER.into(),
            "--rpc-password".into(),
            password.clone(),
        ];
        if i < opts.validators {
            args.extend(["--validator-key".into(), format!("dev-validator:{i}")]);
        }
        if i < boots {
            // Every joiner dials every bootnode at once; with the default limit the bootnodes
            // fill up and far-away joiners, whose dials arrive last, stay alone for up to a
            // minute (seen at 100 nodes on `wan`). Room for all of them; the peer manager
            // prunes a bootnode back to its target every 5 s.
            args.extend([
                "--max-peers".into(),
                bootnode_max_peers(opts.nodes, boots).to_string(),
            ]);
        }
        if let Some(cost) = &opts.simulated_cost {
            args.extend(["--simulated-cost".into(), cost.clone()]);
        }
        // Bootnodes first; the rest 50 per simulated second, so that joiners do not all
        // queue at the bootnodes at the same instant.
        let start = if i < boots {
            1.0
        } else {
            2.0 + (i - boots) as f64 / JOINS_PER_SEC
        };
        hosts.insert(
            format!("node{i}"),
            Host {
                network_node_id: graph_node(&profile, pl.region, pl.class),
                ip_addr: ip.to_string(),
                processes: vec![Process {
                    path: exe_s.clone(),
                    args,
                    environment: env.clone(),
                    start_time: secs(start),
                    expected_final_state: FinalState::Running("running"),
                }],
            },
        );
    }
    let stop_secs = warmup + opts.seconds + 10;
    if opts.tps > 0 {
        // The load host sits in the region with the most nodes, on its best-connected class
        // (largest uplink), and submits to up to 16 nodes of that region: each submission is
        // a JSON-RPC round trip, which across regions would cost up to 440 ms.
        let region = (0..profile.regions.len())
            .max_by_key(|r| (profile.regions[*r].weight, std::cmp::Reverse(*r)))
            .unwrap_or(0);
        let targets: Vec<usize> = (0..opts.nodes)
            .filter(|i| placements[*i].region == region)
            .take(16)
            .collect();
        let mut args: Vec<String> = vec!["bench".into(), "load".into()];
        for i in targets {
            args.extend([
                "--rpc".into(),
                format!("http://{RPC_USER}:{password}@{}:{RPC_PORT}", node_ip(i)?),
            ]);
        }
        args.extend([
            "--tps".into(),
            opts.tps.to_string(),
            "--seconds".into(),
            opts.seconds.to_string(),
        ]);
        let class = (0..profile.classes.len())
            .max_by(|a, b| {
                let up = |c: usize| {
                    let m = profile.classes[c].up_mbit;
                    if m <= 0.0 {
                        f64::INFINITY
                    } else {
                        m
                    }
                };
                up(*a).total_cmp(&up(*b))
            })
            .unwrap_or(0);
        hosts.insert(
            "load".into(),
            Host {
                network_node_id: graph_node(&profile, region, class),
                ip_addr: LOAD_IP.to_string(),
                processes: vec![Process {
                    path: exe_s.clone(),
                    args,
                    environment: env.clone(),
                    // From genesis: the nodes answer RPC by then.
                    start_time: secs(warmup as f64),
                    expected_final_state: FinalState::Exited { exited: 0 },
                }],
            },
        );
    }
    let config = Config {
        general: General {
            stop_time: format!("{stop_secs} s"),
            seed: opts.seed,
            parallelism: 0,
            progress: true,
            model_unblocked_syscall_latency: false,
        },
        network: Network {
            graph: Graph {
                kind: "gml".into(),
                file: GraphFile {
                    path: "graph.gml".into(),
                },
            },
            use_shortest_path: false,
        },
        experimental: Experimental {
            native_preemption_enabled: false,
        },
        hosts,
    };
    std::fs::write(dir.join("graph.gml"), gml(&profile))?;
    let header = format!(
        "# Shadow scenario written by `meshnode devnet --shadow`: {} nodes ({} validators, {} \
         bootnodes), link profile {}, {} tx/s, {} s of {} ms slots after a {} s warm-up.\n# Run: \
         sh run.sh   Report: meshnode bench propagation --from-dirs nodes/*\n",
        opts.nodes,
        opts.validators,
        boots,
        profile.name,
        opts.tps,
        opts.seconds,
        opts.slot_ms,
        warmup
    );
    let yaml = serde_yaml_ng::to_string(&config)?;
    let config_path = dir.join("shadow.yaml");
    std::fs::write(&config_path, header + &yaml)?;
    let run_sh = dir.join("run.sh");
    std::fs::write(
        &run_sh,
        "#!/bin/sh\n# Runs this Shadow scenario from a clean state (written by `meshnode devnet \
         --shadow`).\nset -e\ncd \"$(dirname \"$0\")\"\nfor d in nodes/*/; do\n  find \"$d\" \
         -mindepth 1 -maxdepth 1 ! -name node.key ! -name link.json -exec rm -rf {} +\ndone\nrm -rf \
         shadow.data\nexec shadow shadow.yaml > shadow.log\n",
    )?;
    let mut caveats = Vec::new();
    if profile.jitter_ms > 0.0 {
        caveats.push(format!(
            "Shadow has no jitter: the profile's ±{} ms are left out",
            profile.jitter_ms
        ));
    }
    Ok(Scenario {
        config: config_path,
        genesis,
        data_dirs,
        genesis_time_ms,
        stop_secs,
        run_command: format!("sh {}", run_sh.display()),
        report_command: format!(
            "meshnode bench propagation --from-dirs {}/nodes/*",
            dir.display()
        ),
        caveats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_and_in_range() {
        let ips: std::collections::HashSet<_> = (0..5000).map(|i| node_ip(i).unwrap()).collect();
        assert_eq!(ips.len(), 5000);
        assert!(ips.iter().all(|ip| ip.octets()[..2] == [10, 77]));
        assert!(!ips.contains(&LOAD_IP));
    }

    #[test]
    fn gml_has_every_pair() {
        let p = LinkProfile::load("wan").unwrap();
        let g = gml(&p);
        let nodes = p.regions.len() * p.classes.len();
        assert_eq!(g.matches("  node [").count(), nodes);
        assert_eq!(g.matches("  edge [").count(), nodes * nodes);
        assert!(g.contains("latency \"165000 us\""));
        assert!(g.contains("host_bandwidth_up \"50000 Kbit\""));
    }
}
