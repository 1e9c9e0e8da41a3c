//! Shared helpers for integration tests: real node processes on 127.0.0.1 (port 0), temp
//! data dirs, the generated JSON-RPC clients, and waiting on events with generous timeouts.
#![allow(dead_code)]

use jsonrpsee::http_client::HttpClient;
use meshnode::devnet::{Devnet, DevnetOptions};
use meshnode::rpc::api::{BitcoinApiClient, MeshnodeApiClient};
use meshnode::rpc::client::http;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A devnet plus the temp dir that holds it (removed on drop, after the nodes stop).
pub struct TestNet {
    pub net: Devnet,
    pub tmp: tempfile::TempDir,
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.net.stop();
        if std::thread::panicking() {
            // Keep the logs of a failed test visible.
            for n in &self.net.nodes {
                if let Ok(log) = std::fs::read_to_string(n.dir.join("node.log")) {
                    let tail: Vec<&str> = log.lines().rev().take(30).collect();
                    eprintln!("---- node{} log (last lines) ----", n.index);
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
            // The whole logs and data dirs stay for inspection (the cause of a rare failure
            // is usually earlier than the last lines).
            self.tmp.disable_cleanup(true);
            eprintln!(
                "---- kept {} (node logs and data) ----",
                self.tmp.path().display()
            );
        }
    }
}

pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Starts `nodes` real node processes, the first `validators` producing, `slot_ms` slots.
pub async fn start_net(nodes: usize, validators: usize, slot_ms: u64) -> TestNet {
    start_net_with(nodes, validators, slot_ms, &[]).await
}

/// As [`start_net`], with `extra` appended to every node's `run` command line.
pub async fn start_net_with(
    nodes: usize,
    validators: usize,
    slot_ms: u64,
    extra: &[&str],
) -> TestNet {
    let tmp = tempfile::tempdir().unwrap();
    let opts = DevnetOptions {
        nodes,
        validators,
        slot_ms,
        dir: tmp.path().to_path_buf(),
        template: Some(repo_path("genesis/devnet.json")),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_meshnode")),
        rpc_base_port: 0,
        log: "info,meshnode=debug".into(),
        dev_accounts: None,
        produce: true,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        profile: None,
        netns: false,
        loss: None,
    };
    let net = Devnet::start(&opts).await.expect("devnet starts");
    TestNet { net, tmp }
}

pub fn client(net: &TestNet, i: usize) -> HttpClient {
    http(net.net.nodes[i].rpc_url()).unwrap()
}

/// Polls `cond` every 50 ms until it returns Some, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn height(c: &HttpClient) -> u64 {
    c.getblockcount().await.unwrap()
}

pub async fn peer_ids(c: &HttpClient) -> Vec<String> {
    c.getpeerinfo()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p["peer_id"].as_str().map(str::to_string))
        .collect()
}

pub async fn mempool(c: &HttpClient) -> Vec<String> {
    serde_json::from_value(c.getrawmempool(None).await.unwrap()).unwrap()
}

pub async fn gossip_counters(c: &HttpClient) -> (u64, u64, u64) {
    let v = c.node_info().await.unwrap();
    let g = &v["gossip"];
    (
        g["accepted"].as_u64().unwrap(),
        g["rejected"].as_u64().unwrap(),
        g["ignored"].as_u64().unwrap(),
    )
}

/// Waits until every node has at least `n` peers.
pub async fn wait_peers(net: &TestNet, n: usize) {
    for i in 0..net.net.nodes.len() {
        let c = client(net, i);
        wait_for(
            &format!("node{i} to have {n} peers"),
            Duration::from_secs(60),
            || {
                let c = c.clone();
                async move { (peer_ids(&c).await.len() >= n).then_some(()) }
            },
        )
        .await;
    }
}

/// A libp2p peer speaking meshnode's real protocols in-process, connected to one node only
/// (no discovery, no Kademlia), for sending crafted gossip. Stops when dropped.
pub struct TestPeer {
    pub handle: meshnode::p2p::NetworkHandle,
    pub peer_id: String,
    _chans: meshnode::p2p::NetworkChannels,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Starts a [`TestPeer`] on chain `chain_id` dialling node `i`, and waits until the node is
/// in its block-topic mesh (so a publish reaches the node).
pub async fn test_peer(net: &TestNet, i: usize, chain_id: u64) -> TestPeer {
    let target = net.net.nodes[i].info.clone().unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = meshnode::p2p::NetworkConfig {
        chain_id,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootnodes: vec![target.listen_addrs[0].parse().unwrap()],
        // No discovery: it stays connected to node i only, so anything other nodes receive
        // came through node i.
        peers: meshnode::p2p::PeerConfig::static_only(),
        queue_len: 64,
        idontwant: true,
        ban_time: meshnode::p2p::bans::DEFAULT_BAN_TIME,
        shape: None,
        port_reuse: false,
    };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let peer_id = key.public().to_peer_id().to_string();
    let (handle, chans, _task) = meshnode::p2p::start(key, cfg, async move {
        let _ = stop_rx.await;
    })
    .unwrap();
    wait_in_block_mesh(&handle, &target.peer_id, &format!("node{i}")).await;
    TestPeer {
        handle,
        peer_id,
        _chans: chans,
        stop: Some(stop),
    }
}

/// Waits until the in-process peer behind `handle` has `target` (a peer id) in its block-topic
/// mesh, so that what it publishes reaches that node.
pub async fn wait_in_block_mesh(handle: &meshnode::p2p::NetworkHandle, target: &str, name: &str) {
    wait_for(
        &format!("the test peer in {name}'s block mesh"),
        Duration::from_secs(30),
        || {
            let h = handle.clone();
            let t = target.to_string();
            async move {
                h.peers()
                    .await
                    .unwrap()
                    .iter()
                    .any(|p| p.peer_id == t && p.in_block_mesh)
                    .then_some(())
            }
        },
    )
    .await;
}

/// The gossipsub score node `c` gives `peer_id` (None if unknown to it).
pub async fn score_of(c: &HttpClient, peer_id: &str) -> Option<f64> {
    c.getpeerinfo()
        .await
        .unwrap()
        .iter()
        .find(|p| p["peer_id"] == peer_id)?["gossip_score"]
        .as_f64()
}

/// What a [`SyncResponder`] answers.
#[derive(Clone)]
pub enum Answers {
    /// Status with this genesis and head; BlocksByRange with undecodable junk.
    Liar {
        genesis: meshnode::types::Hash,
        height: u64,
        head: meshnode::types::Hash,
    },
}

/// An in-process peer (no discovery) that answers sync requests as told, listening on
/// 127.0.0.1 and dialling `bootnodes`. Counts the requests it answered.
pub struct SyncResponder {
    pub peer_id: String,
    pub addr: String,
    pub handle: meshnode::p2p::NetworkHandle,
    pub status_requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub range_requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for SyncResponder {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn sync_responder(
    chain_id: u64,
    bootnodes: Vec<String>,
    answers: Answers,
) -> SyncResponder {
    use meshnode::p2p::codec::{Status, SyncRequest, SyncResponse};
    use std::sync::atomic::{AtomicU64, Ordering};
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = meshnode::p2p::NetworkConfig {
        chain_id,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootnodes: bootnodes.iter().map(|b| b.parse().unwrap()).collect(),
        peers: meshnode::p2p::PeerConfig::static_only(),
        queue_len: 64,
        idontwant: true,
        ban_time: meshnode::p2p::bans::DEFAULT_BAN_TIME,
        shape: None,
        port_reuse: false,
    };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let peer_id = key.public().to_peer_id().to_string();
    let (handle, mut chans, _task) = meshnode::p2p::start(key, cfg, async move {
        let _ = stop_rx.await;
    })
    .unwrap();
    let addr = wait_for("the responder to listen", Duration::from_secs(10), || {
        let h = handle.clone();
        async move { h.info().await.unwrap().listen_addrs.first().cloned() }
    })
    .await;
    let (status_requests, range_requests) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (sr, rr, h) = (
        status_requests.clone(),
        range_requests.clone(),
        handle.clone(),
    );
    tokio::spawn(async move {
        while let Some(ev) = chans.events.recv().await {
            if let meshnode::p2p::NetworkEvent::SyncRequest {
                request, channel, ..
            } = ev
            {
                let Answers::Liar {
                    genesis,
                    height,
                    head,
                } = answers.clone();
                let resp = match request {
                    SyncRequest::Status => {
                        sr.fetch_add(1, Ordering::Relaxed);
                        SyncResponse::Status(Status {
                            genesis,
                            head_height: height,
                            head_hash: head,
                        })
                    }
                    SyncRequest::BlocksByRange { count, .. } => {
                        rr.fetch_add(1, Ordering::Relaxed);
                        SyncResponse::Blocks(vec![vec![0xAB; 300]; count.min(64) as usize])
                    }
                    SyncRequest::BlocksByHash(_) => SyncResponse::Blocks(vec![]),
                    SyncRequest::BlockTxs { .. } => SyncResponse::Txs(vec![]),
                    SyncRequest::NewBlock { .. } => SyncResponse::Ack,
                    SyncRequest::PooledHashes => SyncResponse::Hashes(vec![]),
                    SyncRequest::PooledTxs(_) => SyncResponse::Txs(vec![]),
                };
                h.respond(channel, resp).await;
            }
        }
    });
    SyncResponder {
        peer_id,
        addr,
        handle,
        status_requests,
        range_requests,
        stop: Some(stop),
    }
}

/// An empty network with its own genesis (from the devnet template): validators
/// `dev-validator:i` for each `i` in `validators`, `slot_ms`, `genesis_time_ms`, no bootnodes.
/// Returns the network, the genesis path and its spec; add nodes with [`add_ready`].
pub fn custom_net(
    validators: &[u64],
    slot_ms: u64,
    genesis_time_ms: u64,
) -> (TestNet, PathBuf, meshnode::genesis::ChainSpec) {
    let tmp = tempfile::tempdir().unwrap();
    let mut g = meshnode::genesis::GenesisFile::read(&repo_path("genesis/devnet.json")).unwrap();
    g.validators = validators
        .iter()
        .map(|i| hex::encode(meshnode::crypto::Keypair::dev_validator(*i).public().0))
        .collect();
    g.slot_ms = slot_ms;
    g.genesis_time_ms = genesis_time_ms;
    g.bootnodes.clear();
    let spec = g.to_spec().unwrap();
    let genesis = tmp.path().join("genesis.json");
    g.write(&genesis).unwrap();
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_meshnode"));
    let net = TestNet {
        net: Devnet::empty(tmp.path().to_path_buf(), genesis.clone(), exe),
        tmp,
    };
    (net, genesis, spec)
}

/// The first listen multiaddr of node `i`.
pub fn listen_addr(net: &TestNet, i: usize) -> String {
    net.net.nodes[i].info.as_ref().unwrap().listen_addrs[0].clone()
}

/// Starts a node with `args`, plus `--bootnode` node `boot` if given, and waits until it
/// serves. Returns its index.
pub async fn add_ready(
    net: &mut TestNet,
    genesis: &std::path::Path,
    boot: Option<usize>,
    mut args: Vec<String>,
) -> usize {
    if let Some(b) = boot {
        args.extend(["--bootnode".to_string(), listen_addr(net, b)]);
    }
    let n = net.net.add_node(genesis, &args).unwrap();
    net.net
        .wait_ready(n, Duration::from_secs(60))
        .await
        .unwrap();
    n
}

/// A Python interpreter with `pkgs` (pip requirement strings) installed: a venv under
/// `target/test-python`, created and filled from PyPI on first use. Panics with pip's output if
/// that fails.
pub fn python_with(pkgs: &[&str]) -> PathBuf {
    let venv = repo_path("target/test-python");
    let py = venv.join("bin/python");
    let marker = venv.join(format!(
        "installed-{}",
        pkgs.join("+").replace(['/', '=', '<', '>'], "_")
    ));
    if !marker.exists() {
        if !py.exists() {
            let out = std::process::Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "python3 -m venv: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = std::process::Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(pkgs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pip install {pkgs:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&marker, b"").unwrap();
    }
    py
}

/// The Python packages the client-library tests use (pinned), installed into one venv.
pub const CLIENT_LIBS: &[&str] = &["web3==8.0.0", "python-bitcoinrpc==1.0"];

/// Runs `tests/clients/<script>` with the client libraries installed, asserts it exits 0
/// (showing its output otherwise) and returns its stdout.
pub async fn run_client_script(script: &str, args: &[&str]) -> String {
    let py = tokio::task::spawn_blocking(|| python_with(CLIENT_LIBS))
        .await
        .unwrap();
    let out = tokio::process::Command::new(&py)
        .arg(repo_path(&format!("tests/clients/{script}")))
        .args(args)
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    stdout.trim().to_string()
}

/// A `devnet` process (and, by the pids in their node.json, its nodes) stopped when the test
/// ends, passed or not: SIGINT first, as Ctrl-C, then SIGKILL.
pub struct DevnetProcess {
    /// The `meshnode devnet` process.
    pub child: std::process::Child,
    /// Its `--dir`.
    pub dir: PathBuf,
    /// Its `--nodes`.
    pub nodes: usize,
}

impl Drop for DevnetProcess {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for i in 0..self.nodes {
            let nf = self.dir.join(format!("node{i}/node.json"));
            if let Ok(text) = std::fs::read_to_string(nf) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    if let Some(pid) = v["pid"].as_i64() {
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Starts `meshnode devnet --nodes NODES --rpc-base-port 0 --dir DIR` plus `extra`, its
/// output discarded; stopped (with its nodes) when dropped.
pub fn devnet_process(dir: &std::path::Path, nodes: usize, extra: &[&str]) -> DevnetProcess {
    DevnetProcess {
        child: std::process::Command::new(env!("CARGO_BIN_EXE_meshnode"))
            .args([
                "devnet",
                "--nodes",
                &nodes.to_string(),
                "--rpc-base-port",
                "0",
            ])
            .args(extra)
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        dir: dir.to_path_buf(),
        nodes,
    }
}

/// `meshnode fault --dir DIR ARGS…` against a running devnet: its JSON answer (panics with
/// the error otherwise).
pub fn fault(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_meshnode"))
        .arg("fault")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "meshnode fault {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A transfer of `amount` from dev account `from` to dev account `to`, signed.
pub fn signed_transfer(
    chain_id: u64,
    from: u64,
    to: u64,
    nonce: u64,
    amount: u64,
    fee: u64,
) -> meshnode::types::SignedTx {
    let k = meshnode::crypto::Keypair::dev_account(from);
    k.sign_tx(meshnode::types::TxBody {
        chain_id,
        nonce,
        from: k.public(),
        to: meshnode::crypto::Keypair::dev_account(to).address(),
        amount,
        fee,
        data: vec![],
    })
}

/// Waits until node `i` knows transaction `hash` (mempool or chain).
pub async fn wait_tx_at(net: &TestNet, i: usize, hash: &str) {
    let c = client(net, i);
    wait_for(
        &format!("tx {hash} at node{i}"),
        Duration::from_secs(30),
        || {
            let c = c.clone();
            let h = hash.to_string();
            async move { c.getrawtransaction(h, None, None).await.ok().map(|_| ()) }
        },
    )
    .await;
}

/// One JSON-RPC 2.0 call over blocking HTTP (ureq), with the cookie at `cookie` as Basic
/// auth when given; the `result` member.
pub fn rpc_blocking(
    url: &str,
    method: &str,
    cookie: Option<&std::path::Path>,
) -> serde_json::Value {
    rpc_blocking_with(url, method, serde_json::json!([]), cookie)
}

/// [`rpc_blocking`] with positional `params` (a JSON array).
pub fn rpc_blocking_with(
    url: &str,
    method: &str,
    params: serde_json::Value,
    cookie: Option<&std::path::Path>,
) -> serde_json::Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let mut req = ureq::post(url).set("Content-Type", "application/json");
    if let Some(c) = cookie {
        let auth = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                std::fs::read_to_string(c).unwrap().trim()
            )
        );
        req = req.set("Authorization", &auth);
    }
    let reply: serde_json::Value = req
        .send_string(&body.to_string())
        .unwrap()
        .into_json()
        .unwrap();
    reply["result"].clone()
}

/// A child process killed (SIGKILL) and reaped when the test ends, passed or not.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 100 ms until it holds, from blocking code (no runtime); panics with
/// `what` after `secs` seconds. Returns the seconds it took.
pub fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) -> f64 {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed().as_secs_f64()
}

/// Runs `meshnode bench ARGS --out OUT` (node logs at `warn`), echoes its output, asserts that
/// it succeeded (naming the bench and giving its output otherwise) and returns its standard
/// output and the JSON report it wrote to `out`.
pub fn bench<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    out: &std::path::Path,
) -> (String, serde_json::Value) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_meshnode"))
        .arg("bench")
        .args(args)
        .arg("--out")
        .arg(out)
        .env("MESHNODE_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("{stdout}");
    let name = args
        .first()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        o.status.success(),
        "bench {name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    (stdout, report)
}
