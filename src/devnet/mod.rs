//! `meshnode devnet`: write a fresh genesis, start N node processes on 127.0.0.1 (the first
//! few are bootnodes, see [`bootnode_count`]; every other node is given only the bootnodes),
//! supervise, stop cleanly.
//!
//! Also the harness the bench and the integration tests use to run real node processes.

pub mod docker;
pub mod faults;
pub mod netns;
pub mod shadow;

use crate::cli::DevnetArgs;
use crate::config::NodeFile;
use crate::genesis::GenesisFile;
use crate::p2p::LinkProfile;
use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many of the first nodes of an `n`-node devnet serve as bootnodes: one per 16 nodes,
/// at least 3 and at most 16, so that nodes joining a large devnet do not all queue at the
/// same three (a bootnode accepts `--max-peers` connections at a time).
pub fn bootnode_count(n: usize) -> usize {
    (n / 16).clamp(3, 16).min(n)
}

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Resolves once the process that started this one has exited. Works after the parent's
/// SIGKILL, which no signal handler sees: a thread waits in `poll` on a pidfd of the parent
/// (Linux 5.3+), which becomes readable when it exits, so the wait costs no wake-ups; where
/// there is no pidfd (an older kernel, a simulator), the parent pid is checked every 500 ms
/// and changes when the orphan is re-parented.
pub async fn parent_exit() {
    use rustix::{event, process};
    let parent = nix::unistd::getppid();
    let pidfd = process::Pid::from_raw(parent.as_raw())
        .and_then(|pid| process::pidfd_open(pid, process::PidfdFlags::empty()).ok());
    // The parent may have exited before the pidfd was opened (its pid then names another
    // process, or none): the re-parenting check covers that moment.
    let exited = pidfd
        .filter(|_| nix::unistd::getppid() == parent)
        .and_then(|fd| {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name("parent-watch".into())
                .spawn(move || {
                    let mut fds = [event::PollFd::new(&fd, event::PollFlags::IN)];
                    loop {
                        match event::poll(&mut fds, None) {
                            Err(rustix::io::Errno::INTR) => continue,
                            // Readable: exited. Another error drops `tx` unsent: polling.
                            r => break r.is_ok().then(|| tx.send(())),
                        };
                    }
                })
                .ok()
                .map(|_| rx)
        });
    let watched = match exited {
        Some(rx) => rx.await.is_ok(),
        None => false,
    };
    if !watched {
        while nix::unistd::getppid() == parent {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    tracing::info!(
        parent = parent.as_raw(),
        "the parent process exited; stopping"
    );
}

/// `meshnode --log LOG run` arguments for a loopback node: data dir, genesis, a free p2p port,
/// RPC on `rpc_port` (0 = a free port).
fn run_args(log: &str, dir: &Path, genesis: &Path, rpc_port: u16) -> Vec<String> {
    vec![
        "--log".into(),
        log.into(),
        "run".into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--genesis".into(),
        genesis.display().to_string(),
        "--listen".into(),
        "/ip4/127.0.0.1/tcp/0".into(),
        "--rpc".into(),
        format!("127.0.0.1:{rpc_port}"),
        // Nodes stop with the devnet (or test) process, even when it is SIGKILLed.
        "--exit-with-parent".into(),
    ]
}

/// Devnet settings.
#[derive(Clone, Debug)]
pub struct DevnetOptions {
    /// Number of nodes.
    pub nodes: usize,
    /// The first `validators` nodes get `dev-validator:i` keys.
    pub validators: usize,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// Working directory (genesis.json, nodeI/).
    pub dir: PathBuf,
    /// Genesis template (chain id, dev accounts); None: [`GenesisFile::load`]'s default.
    pub template: Option<PathBuf>,
    /// The meshnode binary.
    pub exe: PathBuf,
    /// First RPC port (node i uses base + i); 0 = free ports.
    pub rpc_base_port: u16,
    /// Log filter passed to nodes.
    pub log: String,
    /// Fund this many dev accounts instead of the template's count.
    pub dev_accounts: Option<u64>,
    /// Whether the validator nodes get their keys (false: a network that never produces, so
    /// mempools only fill — the throughput bench and the flood test).
    pub produce: bool,
    /// Arguments appended to every node's `run` command line.
    pub extra_args: Vec<String>,
    /// Link profile (`lan`, `wan` or a file, see [`crate::p2p::profile`]): nodes are placed in
    /// its regions and classes by weight, listen on `127.0.R.x` and shape their links.
    pub profile: Option<String>,
    /// Every node in its own network namespace ([`netns`], root only): own address
    /// `10.77.R.x`, bandwidth caps and `loss` applied by the kernel, delays by the nodes.
    pub netns: bool,
    /// With `netns`: packet loss on every link (0..1; default: the profile's).
    pub loss: Option<f64>,
}

/// One node process.
pub struct DevnetNode {
    /// Index.
    pub index: usize,
    /// Data dir.
    pub dir: PathBuf,
    /// The process while running.
    pub child: Option<Child>,
    /// What it reported in node.json.
    pub info: Option<NodeFile>,
    /// Its region and bandwidth class when the devnet has a link profile.
    pub placement: Option<crate::p2p::profile::Placement>,
    /// Its network namespace (`devnet --netns`).
    pub netns: Option<String>,
    /// A command the node runs under on its next start (e.g. `faketime -f +0.5s`), empty
    /// for none.
    pub wrapper: Vec<String>,
    args: Vec<String>,
}

impl DevnetNode {
    /// Restarts listen (p2p and RPC) where the first start did, so that the addresses peers,
    /// the genesis and tools hold stay right.
    fn pin_ports(&mut self, info: &NodeFile) {
        let listen = info.listen_addrs[0]
            .split("/p2p/")
            .next()
            .unwrap_or_default();
        let rpc = info.rpc_url.trim_start_matches("http://");
        for (flag, value) in [("--listen", listen), ("--rpc", rpc)] {
            if let Some(i) = self.args.iter().position(|a| a == flag) {
                if let Some(v) = self.args.get_mut(i + 1) {
                    *v = value.to_string();
                }
            }
        }
    }

    /// RPC URL (HTTP) of a started node.
    pub fn rpc_url(&self) -> &str {
        self.info.as_ref().map(|i| i.rpc_url.as_str()).unwrap_or("")
    }
}

/// A running devnet. Dropping it stops every node.
pub struct Devnet {
    /// Working directory.
    pub dir: PathBuf,
    /// Path of the genesis file the nodes use.
    pub genesis: PathBuf,
    /// The nodes.
    pub nodes: Vec<DevnetNode>,
    /// The link profile in force, if any.
    pub profile: Option<LinkProfile>,
    exe: PathBuf,
    /// The namespaces of a `--netns` devnet; last, so that they go after the nodes stop.
    pub netns: Option<netns::Netns>,
}

impl Devnet {
    /// Writes the genesis, starts the bootnodes, records their addresses in the genesis file,
    /// starts the rest, and waits until every node has written node.json.
    pub async fn start(opts: &DevnetOptions) -> anyhow::Result<Devnet> {
        if opts.nodes == 0 {
            bail!("a devnet needs at least one node");
        }
        if opts.validators == 0 || opts.validators > opts.nodes {
            bail!("validators must be between 1 and the number of nodes");
        }
        std::fs::create_dir_all(&opts.dir)?;
        let mut g = GenesisFile::load(opts.template.as_deref())?;
        g.validators = crate::genesis::dev_validators(opts.validators);
        g.slot_ms = opts.slot_ms;
        g.genesis_time_ms = crate::now_ms();
        g.bootnodes.clear();
        if let (Some(count), Some(dev)) = (opts.dev_accounts, g.dev_accounts.as_mut()) {
            dev.count = count;
        }
        g.to_spec()?;
        let genesis = opts.dir.join("genesis.json");
        g.write(&genesis)?;
        let boots = bootnode_count(opts.nodes);
        let profile = opts.profile.as_deref().map(LinkProfile::load).transpose()?;
        // Nodes get the profile by builtin name or by absolute path.
        let profile_arg = match opts.profile.as_deref() {
            Some(p @ ("lan" | "wan")) | Some(p @ "") => p.to_string(),
            Some(p) => std::fs::canonicalize(p)?.display().to_string(),
            None => String::new(),
        };
        let placements = profile.as_ref().map(|p| p.place(opts.nodes));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ns = if opts.netns {
            let loss = opts
                .loss
                .unwrap_or_else(|| profile.as_ref().map_or(0.0, |p| p.loss));
            Some(netns::Netns::create(
                opts.nodes,
                profile.as_ref(),
                placements.as_deref(),
                loss,
            )?)
        } else {
            None
        };
        let mut dn = Devnet {
            dir: opts.dir.clone(),
            genesis: genesis.clone(),
            nodes: Vec::new(),
            profile: profile.clone(),
            exe: opts.exe.clone(),
            netns: ns,
        };
        for i in 0..opts.nodes {
            let dir = opts.dir.join(format!("node{i}"));
            let rpc_port = if opts.rpc_base_port == 0 {
                0
            } else {
                u16::try_from(i)
                    .ok()
                    .and_then(|i| opts.rpc_base_port.checked_add(i))
                    .with_context(|| {
                        format!("RPC port {} + {i} is above 65535", opts.rpc_base_port)
                    })?
            };
            let mut args = run_args(&opts.log, &dir, &genesis, rpc_port);
            if i < opts.validators && opts.produce {
                args.extend(["--validator-key".into(), format!("dev-validator:{i}")]);
            }
            if opts.nodes > cores
                && std::env::var_os("MESHNODE_WORKER_THREADS").is_none()
                && !opts.extra_args.iter().any(|a| a == "--worker-threads")
            {
                // More nodes than cores share the cores anyway: one runtime thread each
                // spares every node the wake-ups between its own threads.
                args.extend(["--worker-threads".into(), "1".into()]);
            }
            args.extend(opts.extra_args.iter().cloned());
            let placement = placements.as_ref().map(|p| p[i]);
            let set = |args: &mut Vec<String>, flag: &str, value: String| {
                if let Some(k) = args.iter().position(|a| a == flag) {
                    args[k + 1] = value;
                }
            };
            let netns = dn.netns.as_ref().map(|n| n.nodes[i].clone());
            if let Some((_, ip)) = &netns {
                // Its own host: fixed ports on its own address, reachable over the bridge.
                set(
                    &mut args,
                    "--listen",
                    format!("/ip4/{ip}/tcp/{}", netns::P2P_PORT),
                );
                set(&mut args, "--rpc", format!("{ip}:8545"));
                set(&mut args, "--metrics", format!("{ip}:9100"));
            }
            if let (Some(pl), Some(profile)) = (placement, profile.as_ref()) {
                if netns.is_none() {
                    let ip = LinkProfile::loopback_ip(pl.region, i);
                    set(&mut args, "--listen", format!("/ip4/{ip}/tcp/0"));
                }
                args.extend([
                    "--link-profile".into(),
                    profile_arg.clone(),
                    "--link-class".into(),
                    profile.classes[pl.class].name.clone(),
                ]);
                if netns.is_some() {
                    // The kernel caps bandwidth (tbf); the node adds only the delays.
                    args.extend(["--link-shaping".into(), "delay".into()]);
                }
            }
            // Bootnodes 1 and 2 learn bootnode 0 by flag; everyone else reads the genesis.
            if i > 0 && i < boots {
                let first = dn.nodes[0].info.as_ref().expect("started").listen_addrs[0].clone();
                args.extend(["--bootnode".into(), first]);
            }
            if i == boots {
                dn.write_bootnodes(&mut g, boots)?;
            }
            dn.nodes.push(DevnetNode {
                index: i,
                dir,
                child: None,
                info: None,
                placement,
                netns: netns.map(|n| n.0),
                wrapper: Vec::new(),
                args,
            });
            dn.start_node(i)?;
            if i < boots {
                dn.wait_ready(i, Duration::from_secs(60)).await?;
            }
        }
        if opts.nodes <= boots {
            dn.write_bootnodes(&mut g, boots)?;
        }
        for i in 0..opts.nodes {
            dn.wait_ready(i, Duration::from_secs(60)).await?;
        }
        Ok(dn)
    }

    fn write_bootnodes(&self, g: &mut GenesisFile, boots: usize) -> anyhow::Result<()> {
        g.bootnodes = self
            .nodes
            .iter()
            .take(boots)
            .filter_map(|n| n.info.as_ref().map(|i| i.listen_addrs[0].clone()))
            .collect();
        g.write(&self.genesis)?;
        Ok(())
    }

    /// (Re)starts node `i` with its original arguments; logs append to `nodeI/node.log`.
    pub fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let n = &mut self.nodes[i];
        std::fs::create_dir_all(&n.dir)?;
        let _ = std::fs::remove_file(n.dir.join("node.json"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.dir.join("node.log"))?;
        let mut line: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = &n.netns {
            line.extend(["ip", "netns", "exec", ns.as_str()].map(Into::into));
        }
        line.extend(n.wrapper.iter().map(Into::into));
        line.push(self.exe.clone().into());
        let mut cmd = Command::new(&line[0]);
        cmd.args(&line[1..]);
        let child = cmd
            .args(&n.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        n.child = Some(child);
        n.info = None;
        Ok(())
    }

    /// A devnet with no nodes yet, for custom topologies built with [`Devnet::add_node`]
    /// (the caller writes `genesis`).
    pub fn empty(dir: PathBuf, genesis: PathBuf, exe: PathBuf) -> Devnet {
        Devnet {
            dir,
            genesis,
            nodes: Vec::new(),
            profile: None,
            exe,
            netns: None,
        }
    }

    /// Adds and starts a node with `extra` arguments after `run --data-dir … --genesis …
    /// --listen 127.0.0.1:0 --rpc 127.0.0.1:0` (it is given no bootnode unless `extra` or the
    /// genesis names some). Returns its index; call [`Devnet::wait_ready`] next.
    pub fn add_node(&mut self, genesis: &Path, extra: &[String]) -> anyhow::Result<usize> {
        let i = self.nodes.len();
        let dir = self.dir.join(format!("node{i}"));
        let mut args = run_args("info", &dir, genesis, 0);
        args.extend_from_slice(extra);
        self.nodes.push(DevnetNode {
            index: i,
            dir,
            child: None,
            info: None,
            placement: None,
            netns: None,
            wrapper: Vec::new(),
            args,
        });
        self.start_node(i)?;
        Ok(i)
    }

    /// Waits until node `i` has written node.json (it listens and serves RPC).
    pub async fn wait_ready(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let n = &mut self.nodes[i];
        let path = n.dir.join("node.json");
        loop {
            if let Some(c) = n.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    bail!(
                        "node {i} exited with {status}; see {}",
                        n.dir.join("node.log").display()
                    );
                }
            }
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Ok(info) = serde_json::from_str::<NodeFile>(&text) {
                    if !info.listen_addrs.is_empty() {
                        n.pin_ports(&info);
                        let mut info = info;
                        if n.netns.is_some() {
                            // Off loopback the RPC wants credentials: the node's cookie,
                            // carried in the URL every devnet tool is given.
                            let cookie =
                                std::fs::read_to_string(n.dir.join(crate::rpc::auth::COOKIE_FILE))
                                    .with_context(|| format!("node {i}: reading its RPC cookie"))?;
                            info.rpc_url = info.rpc_url.replacen(
                                "http://",
                                &format!("http://{}@", cookie.trim()),
                                1,
                            );
                        }
                        n.info = Some(info);
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "node {i} not ready after {timeout:?}; see {}",
                    n.dir.join("node.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends `signal` to node `i` and waits up to `timeout` for it to exit (then SIGKILL).
    pub fn stop_node_with(&mut self, i: usize, signal: Signal, timeout: Duration) {
        let Some(mut c) = self.nodes[i].child.take() else {
            return;
        };
        let _ = kill(Pid::from_raw(c.id() as i32), signal);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Stops node `i` cleanly (SIGTERM, then SIGKILL after 15 s).
    pub fn stop_node(&mut self, i: usize) {
        self.stop_node_with(i, Signal::SIGTERM, Duration::from_secs(15));
    }

    /// Stops every node (all get SIGTERM at once).
    pub fn stop(&mut self) {
        for n in &self.nodes {
            if let Some(c) = &n.child {
                let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            }
        }
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }

    /// RPC URLs of all started nodes.
    pub fn rpc_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.rpc_url().to_string()).collect()
    }

    /// Indexes of nodes whose process has exited.
    pub fn exited(&mut self) -> Vec<usize> {
        self.nodes
            .iter_mut()
            .filter_map(|n| match n.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(_))) => Some(n.index),
                _ => None,
            })
            .collect()
    }

    /// The binary the nodes run.
    pub fn exe(&self) -> &Path {
        &self.exe
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        self.stop();
        if let Some(n) = self.netns.as_mut() {
            n.remove();
        }
    }
}

/// Creates `dir` for a written scenario (`--shadow`, `--docker`) and returns its canonical
/// path. Errors: `dir` cannot be created, or already holds something (a scenario is written
/// into a new or empty directory, so that nothing of an older one is mixed in).
pub(crate) fn new_scenario_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: a scenario is written into a new or empty directory",
            dir.display()
        );
    }
    Ok(std::fs::canonicalize(dir)?)
}

/// A devnet's directory: `dir` when given (kept afterwards), else a fresh temporary directory
/// named `<prefix>…`, removed when the returned guard drops.
pub fn work_dir(
    dir: &Option<PathBuf>,
    prefix: &str,
) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    Ok(match dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new().prefix(prefix).tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    })
}

/// `meshnode devnet`.
pub async fn run_cli(args: DevnetArgs) -> anyhow::Result<()> {
    if let Some(crate::cli::DevnetAction::Clean) = args.action {
        let gone = netns::clean()?;
        for g in &gone {
            println!("removed {g}");
        }
        println!("{} leftovers of stopped netns devnets removed", gone.len());
        return Ok(());
    }
    if let Some(dir) = &args.shadow {
        return write_shadow(&args, dir);
    }
    if let Some(dir) = &args.docker {
        return write_docker(&args, dir);
    }
    let (dir, _tmp) = work_dir(&args.dir, "meshnode-devnet-")?;
    let opts = DevnetOptions {
        nodes: args.nodes,
        validators: args.validators.unwrap_or(args.nodes),
        slot_ms: args.slot_ms,
        dir: dir.clone(),
        template: args.genesis.clone(),
        exe: std::env::current_exe()?,
        rpc_base_port: args.rpc_base_port,
        log: std::env::var("MESHNODE_NODE_LOG").unwrap_or_else(|_| "info".into()),
        dev_accounts: None,
        produce: true,
        // Each node serves Prometheus metrics on a free port (node.json `metrics_url`).
        extra_args: vec!["--metrics".into(), "127.0.0.1:0".into()],
        profile: args.profile.clone(),
        netns: args.netns,
        loss: args.loss,
    };
    let dn = Devnet::start(&opts).await?;
    println!("devnet of {} nodes in {}", dn.nodes.len(), dir.display());
    println!("genesis: {}", dn.genesis.display());
    for n in &dn.nodes {
        let info = n.info.as_ref().expect("ready");
        let role = if n.index < opts.validators {
            format!("validator dev-validator:{}", n.index)
        } else {
            "relay".into()
        };
        let boot = if n.index < bootnode_count(dn.nodes.len()) {
            ", bootnode"
        } else {
            ""
        };
        let link = match (n.placement, dn.profile.as_ref()) {
            (Some(pl), Some(p)) => format!(
                ", {} {}",
                p.regions[pl.region].name, p.classes[pl.class].name
            ),
            _ => String::new(),
        } + &n
            .netns
            .as_ref()
            .map(|ns| format!(", netns {ns}"))
            .unwrap_or_default();
        println!(
            "node{} {}  ({role}{boot}{link})  peer {}  metrics {}  log {}",
            n.index,
            info.rpc_url,
            info.peer_id,
            info.metrics_url.as_deref().unwrap_or("-"),
            n.dir.join("node.log").display()
        );
    }
    println!(
        "dev accounts dev:0.. are funded (public keys, devnet only). Ctrl-C stops every node."
    );
    let (dash_stop, dash_stop_rx) = tokio::sync::watch::channel(false);
    let dashboard = match args.dashboard {
        Some(addr) => {
            let nodes = dn
                .nodes
                .iter()
                .map(|n| crate::dashboard::DashboardNode {
                    name: format!("node{}", n.index),
                    rpc_url: n.rpc_url().to_string(),
                })
                .collect();
            let server = crate::dashboard::serve(addr, nodes, dash_stop_rx).await?;
            println!("dashboard: http://{}/", server.local_addr);
            Some(server)
        }
        None => None,
    };
    let faults = std::sync::Arc::new(tokio::sync::Mutex::new(faults::Faults::new(dn)?));
    let (admin_addr, admin) = faults::serve_admin(args.admin, faults.clone()).await?;
    let admin_url = format!("http://{admin_addr}");
    std::fs::write(
        dir.join(DEVNET_FILE),
        serde_json::to_vec_pretty(&serde_json::json!({ "admin_url": admin_url }))?,
    )?;
    println!(
        "admin RPC (faults on demand): {admin_url}  e.g. meshnode fault --dir {} partition 0,1/2,3",
        dir.display()
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let stop = stop_signal();
    tokio::pin!(stop);
    let mut reported = std::collections::HashSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                let mut f = faults.lock().await;
                let up = f.up();
                for i in f.net.exited() {
                    if up.contains(&i) && reported.insert(i) {
                        eprintln!("node{i} exited; see {}", f.net.nodes[i].dir.join("node.log").display());
                    }
                }
            }
        }
    }
    let _ = admin.stop();
    let _ = dash_stop.send(true);
    if let Some(d) = dashboard {
        let _ = d.task.await;
    }
    let mut f = faults.lock().await;
    println!("stopping {} nodes…", f.net.nodes.len());
    tokio::task::block_in_place(|| f.net.stop());
    if let Some(n) = f.net.netns.as_mut() {
        n.remove();
        println!("removed namespaces {}-* and bridge {}", n.tag(), n.bridge());
    }
    let _ = std::fs::remove_file(dir.join(DEVNET_FILE));
    println!("stopped");
    Ok(())
}

/// `meshnode devnet --shadow DIR`: writes the scenario and prints how to run and report on it.
fn write_shadow(args: &DevnetArgs, dir: &Path) -> anyhow::Result<()> {
    let opts = shadow::ShadowOptions {
        dir: dir.to_path_buf(),
        nodes: args.nodes,
        validators: args.validators.unwrap_or(args.nodes),
        slot_ms: args.slot_ms,
        profile: args.profile.clone().unwrap_or_else(|| "lan".into()),
        tps: args.tps,
        seconds: args.seconds,
        exe: std::env::current_exe()?,
        template: args.genesis.clone(),
        log: std::env::var("MESHNODE_NODE_LOG").unwrap_or_else(|_| "info".into()),
        seed: args.seed,
        simulated_cost: args.simulated_cost.clone(),
    };
    let s = shadow::write(&opts)?;
    println!(
        "Shadow scenario of {} nodes ({} validators, link profile {}{}) in {}",
        opts.nodes,
        opts.validators,
        opts.profile,
        if opts.tps > 0 {
            format!(", load host at {} tx/s", opts.tps)
        } else {
            String::new()
        },
        dir.display()
    );
    println!(
        "genesis at simulated {} s, slots for {} s, stop at {} s; config {}",
        (s.genesis_time_ms - shadow::SHADOW_EPOCH_MS) / 1000,
        opts.seconds,
        s.stop_secs,
        s.config.display()
    );
    for c in &s.caveats {
        println!("note: {c}");
    }
    println!("run:    {}", s.run_command);
    println!("report: {}", s.report_command);
    Ok(())
}

/// `meshnode devnet --docker DIR`: writes the stack and prints how to deploy and measure it.
fn write_docker(args: &DevnetArgs, dir: &Path) -> anyhow::Result<()> {
    let opts = docker::DockerOptions {
        dir: dir.to_path_buf(),
        nodes: args.nodes,
        bootnodes: args.validators.unwrap_or(2).min(args.nodes),
        slot_ms: args.slot_ms,
        template: args.genesis.clone(),
        log: std::env::var("MESHNODE_NODE_LOG").unwrap_or_else(|_| "info".into()),
    };
    let s = docker::write(&opts)?;
    println!(
        "Docker network of {} nodes ({} bootnodes that also produce blocks, {} replicas of \
         `node`) in {}",
        opts.nodes,
        opts.bootnodes,
        s.replicas,
        dir.display()
    );
    println!(
        "image {} (MESHNODE_IMAGE to change; build it with deploy/docker/Dockerfile, or \
         deploy/docker/build-offline.sh where no registry is reachable)",
        docker::DEFAULT_IMAGE
    );
    println!("deploy: {}", s.deploy_command("meshnode"));
    println!(
        "bench:  {}",
        s.bench_command("meshnode", docker::DEFAULT_IMAGE)
    );
    println!("remove: docker stack rm meshnode");
    Ok(())
}

/// The file in a devnet's directory naming its admin RPC (`{"admin_url": …}`) while it runs.
pub const DEVNET_FILE: &str = "devnet.json";

/// The admin RPC URL of the devnet running in `dir`.
///
/// Errors: no devnet.json (no devnet running there) or an unreadable one.
pub fn read_admin_url(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join(DEVNET_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (is a devnet running there?)", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["admin_url"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{} names no admin_url", path.display()))
}
