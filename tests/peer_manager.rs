//! The peer manager under load: a 64-node devnet is not a full mesh and every node keeps to
//! its limits and its gossipsub mesh bounds; 200 peers dialling one node cannot push it past
//! its maximum, and it keeps relaying blocks meanwhile; a newcomer refused by a full node gets
//! in by eviction.

mod common;
use common::*;
use futures::StreamExt;
use jsonrpsee::http_client::HttpClient;
use meshnode::devnet::{Devnet, DevnetOptions};
use meshnode::p2p::behaviour::mesh_degree;
use meshnode::p2p::PeerConfig;
use meshnode::p2p::TopicKind;
use meshnode::rpc::api::{BitcoinApiClient, MeshnodeApiClient};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One node's view: peers by `connection_type` from `getpeerinfo`, and the mesh sizes of the
/// two block topics (full, compact) from `meshnode_nodeInfo`.
#[derive(Debug)]
struct View {
    peers: usize,
    outbound: usize,
    addr_fetch: usize,
    max: usize,
    outbound_target: usize,
    mesh: [usize; 2],
}

async fn view(c: &HttpClient) -> View {
    let peers = c.getpeerinfo().await.unwrap();
    let kind = |k: &str| {
        peers
            .iter()
            .filter(|p| p["connection_type"].as_str() == Some(k))
            .count()
    };
    let info = c.node_info().await.unwrap();
    let mesh = |t: &str| info["gossip"]["mesh"][t].as_u64().unwrap() as usize;
    View {
        peers: peers.len(),
        outbound: kind("outbound-full-relay"),
        addr_fetch: kind("addr-fetch"),
        max: info["peers"]["max"].as_u64().unwrap() as usize,
        outbound_target: info["peers"]["outboundTarget"].as_u64().unwrap() as usize,
        mesh: [mesh("block"), mesh("cblock")],
    }
}

/// Why `v` breaks the limits, if it does.
fn broken(v: &View) -> Option<String> {
    let mesh_ok = [TopicKind::Block, TopicKind::CompactBlock]
        .into_iter()
        .zip(v.mesh)
        .all(|(k, m)| {
            let (lo, _, hi) = mesh_degree(k);
            (lo..=hi).contains(&m)
        });
    (v.peers > v.max || v.outbound < v.outbound_target || !mesh_ok || v.addr_fetch > 0)
        .then(|| format!("{v:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_node_devnet_keeps_every_node_within_its_peer_limits_and_mesh_bounds() {
    const N: usize = 64;
    let tmp = tempfile::tempdir().unwrap();
    let opts = DevnetOptions {
        nodes: N,
        validators: 1,
        slot_ms: 1000,
        dir: tmp.path().to_path_buf(),
        template: Some(repo_path("genesis/devnet.json")),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_meshnode")),
        rpc_base_port: 0,
        log: "info".into(),
        dev_accounts: None,
        produce: true,
        extra_args: Vec::new(),
        profile: None,
        netns: false,
        loss: None,
    };
    let net = TestNet {
        net: Devnet::start(&opts).await.expect("devnet starts"),
        tmp,
    };
    let clients: Vec<HttpClient> = (0..N).map(|i| client(&net, i)).collect();
    // The graph settles within a few minutes of the start (nodes leave the bootnodes,
    // addr-fetch connections close, inbound excess is pruned); wait for a moment when
    // every node is within bounds at once.
    let started = Instant::now();
    let mut last = Vec::new();
    let settled = loop {
        let mut bad = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            if let Some(why) = broken(&view(c).await) {
                bad.push(format!("node{i}: {why}"));
            }
        }
        if bad.is_empty() {
            break true;
        }
        last = bad;
        if started.elapsed() > Duration::from_secs(300) {
            break false;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    assert!(
        settled,
        "after 300 s, {} of {N} nodes outside their limits (max {}, outbound target {}, mesh \
         (D_lo, D, D_hi) block {:?}, cblock {:?}):\n{}",
        last.len(),
        PeerConfig::DEFAULT_MAX,
        PeerConfig::DEFAULT_OUTBOUND,
        mesh_degree(TopicKind::Block),
        mesh_degree(TopicKind::CompactBlock),
        last.join("\n")
    );
    let views = futures::future::join_all(clients.iter().map(view)).await;
    let mean = views.iter().map(|v| v.peers).sum::<usize>() as f64 / N as f64;
    let most = views.iter().map(|v| v.peers).max().unwrap();
    println!(
        "settled after {:.0} s: peers per node mean {mean:.1}, max {most}",
        started.elapsed().as_secs_f64()
    );
    assert!(most < N - 1, "a full mesh: a node has {most} peers");
    // And the network still works: the next block reaches every node.
    let target = height(&clients[0]).await + 2;
    for (i, c) in clients.iter().enumerate() {
        wait_for(
            &format!("node{i} at height {target}"),
            Duration::from_secs(60),
            || async move { (height(c).await >= target).then_some(()) },
        )
        .await;
    }
}

/// A peer that only dials: TCP, noise and yamux, no protocol of its own; it dials `addr`
/// again one second after each refusal or disconnection until `until`.
async fn pest(addr: libp2p::Multiaddr, until: Instant) {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p::swarm::dummy::Behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    let _ = swarm.dial(addr.clone());
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match tokio::time::timeout(left, swarm.select_next_some()).await {
            Err(_) => return,
            Ok(
                libp2p::swarm::SwarmEvent::ConnectionClosed { .. }
                | libp2p::swarm::SwarmEvent::OutgoingConnectionError { .. },
            ) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let _ = swarm.dial(addr.clone());
            }
            Ok(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_dialers_cannot_push_a_node_past_its_maximum_and_blocks_still_flow() {
    const MAX: usize = 16;
    let (mut net, genesis, _spec) = custom_net(&[0], 500, meshnode::now_ms());
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // producer -> relay -> consumer; the producer and the consumer have no discovery, so
    // every block the consumer gets came through the relay.
    let producer = add_ready(
        &mut net,
        &genesis,
        None,
        s(&["--validator-key", "dev-validator:0", "--target-peers", "0"]),
    )
    .await;
    let max = MAX.to_string();
    let relay = add_ready(
        &mut net,
        &genesis,
        Some(producer),
        s(&[
            "--max-peers",
            &max,
            "--target-peers",
            "8",
            "--outbound-peers",
            "2",
        ]),
    )
    .await;
    let consumer = add_ready(&mut net, &genesis, Some(relay), s(&["--target-peers", "0"])).await;
    let (cp, cr, cc) = (
        client(&net, producer),
        client(&net, relay),
        client(&net, consumer),
    );
    wait_for("the consumer at height 2", Duration::from_secs(60), || {
        let cc = cc.clone();
        async move { (height(&cc).await >= 2).then_some(()) }
    })
    .await;

    let addr: libp2p::Multiaddr = listen_addr(&net, relay).parse().unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    let pests: Vec<_> = (0..200)
        .map(|_| tokio::spawn(pest(addr.clone(), until)))
        .collect();
    let start_height = height(&cc).await;
    let mut most = 0;
    while Instant::now() < until {
        let n = cr.getconnectioncount().await.unwrap();
        most = most.max(n);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let end_height = height(&cc).await;
    for p in pests {
        p.await.unwrap();
    }
    let info = cr.node_info().await.unwrap();
    println!(
        "relay: at most {most} peers during the flood; consumer {start_height} -> {end_height}; {}",
        info["peers"]
    );
    assert!(
        most <= MAX,
        "the relay had {most} peers, its maximum is {MAX}"
    );
    assert!(
        info["peers"]["denied"].as_u64().unwrap() > 0,
        "no connection was refused: the flood did not reach the limit"
    );
    // 30 s of 500 ms slots: the producer made ~60 blocks; the consumer must have followed.
    let produced = height(&cp).await;
    assert!(
        end_height >= start_height + 20 && end_height + 5 >= produced,
        "the consumer fell behind during the flood: {start_height} -> {end_height}, producer at \
         {produced}"
    );
    // The two real peers are still connected to the relay.
    let ids = peer_ids(&cr).await;
    for (name, i) in [("producer", producer), ("consumer", consumer)] {
        let id = net.net.nodes[i].info.as_ref().unwrap().peer_id.clone();
        assert!(ids.contains(&id), "the relay dropped the {name}");
    }
}

/// A node whose inbound slots are full evicts a settled inbound peer when a newcomer is
/// refused (Bitcoin Core's inbound eviction), so a newcomer that knows only that node gets in
/// (and can find the rest of the network through it). Without eviction the newcomer is refused on
/// every retry and stays alone: nobody else knows its address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_refused_by_a_full_bootnode_gets_in_by_eviction() {
    // Inbound slots: max 7 − outbound 1 = 6; target 7, so pruning never frees one.
    const MAX: usize = 7;
    let (mut net, genesis, _spec) = custom_net(&[0], 500, meshnode::now_ms());
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let boot = add_ready(
        &mut net,
        &genesis,
        None,
        s(&[
            "--validator-key",
            "dev-validator:0",
            "--max-peers",
            "7",
            "--target-peers",
            "7",
            "--outbound-peers",
            "1",
        ]),
    )
    .await;
    // Six nodes without discovery fill its inbound slots and keep them. Its 4 (D)
    // longest-connected mesh peers are protected from eviction; the others are not.
    let mut fillers = Vec::new();
    for _ in 0..6 {
        fillers.push(add_ready(&mut net, &genesis, Some(boot), s(&["--target-peers", "0"])).await);
    }
    let cb = client(&net, boot);
    wait_for(
        "the bootnode's inbound slots full",
        Duration::from_secs(30),
        || {
            let cb = cb.clone();
            async move { (peer_ids(&cb).await.len() >= 6).then_some(()) }
        },
    )
    .await;
    let newcomer = add_ready(&mut net, &genesis, Some(boot), Vec::new()).await;
    let newcomer_id = net.net.nodes[newcomer]
        .info
        .as_ref()
        .unwrap()
        .peer_id
        .clone();
    let t0 = Instant::now();
    let mut most = 0;
    // The bootnode's own view: a refused connection never shows there, while the newcomer
    // sees it for the moment before it is closed.
    let peers = loop {
        most = most.max(cb.getconnectioncount().await.unwrap());
        let p = peer_ids(&cb).await;
        if p.contains(&newcomer_id) {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "the bootnode never let the newcomer in: its peers {p:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let info = cb.node_info().await.unwrap();
    println!(
        "newcomer in after {:.1} s with {} peers; bootnode counters {}",
        t0.elapsed().as_secs_f64(),
        peers.len(),
        info["peers"]
    );
    assert!(
        most <= MAX,
        "the bootnode had {most} peers, its maximum is {MAX}"
    );
    assert!(info["peers"]["denied"].as_u64().unwrap() > 0, "never full");
    assert!(
        info["peers"]["evicted"].as_u64().unwrap() > 0,
        "nobody evicted"
    );
}
