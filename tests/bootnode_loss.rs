//! Losing bootnodes (issue 13): in a 24-node network (bootnodes 0, 1, 2) a node that joins
//! while all bootnodes but one are dead still finds at least 80 % of the network within 30 s
//! (`getnodeaddresses`, its Kademlia routing table); once every bootnode is stopped, the other
//! nodes stay one connected network and keep agreeing on new blocks.

mod common;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use meshnode::rpc::api::BitcoinApiClient;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

const N: usize = 24;

/// Peer ids node `c` has found (routing table).
async fn found(c: &jsonrpsee::http_client::HttpClient) -> HashSet<String> {
    let v: serde_json::Value = c.request("getnodeaddresses", rpc_params![0]).await.unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| p["peer_id"].as_str().unwrap().to_string())
        .collect()
}

/// Waits (60 s at most) until every node of `nodes` holds the same block at a height above
/// the highest head when called: one chain, whatever each node's head at any instant (a node
/// on a branch of its own at that height may still reorg onto the others' chain).
async fn one_chain(net: &TestNet, nodes: &[usize]) {
    let mut top = 0;
    for &i in nodes {
        top = top.max(height(&client(net, i)).await);
    }
    let target = top + 2;
    wait_for(
        &format!("every node to hold the same block at height {target}"),
        Duration::from_secs(60),
        || async move {
            let mut first = None;
            for &i in nodes {
                let c = client(net, i);
                if height(&c).await < target {
                    return None;
                }
                let h = c.getblockhash(target).await.ok()?;
                if *first.get_or_insert_with(|| h.clone()) != h {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// Whether `nodes` form one connected graph over their current connections.
async fn connected(net: &TestNet, nodes: &[usize]) -> bool {
    let id_of: HashMap<String, usize> = nodes
        .iter()
        .map(|&i| (net.net.nodes[i].info.as_ref().unwrap().peer_id.clone(), i))
        .collect();
    let mut edges: HashMap<usize, Vec<usize>> = HashMap::new();
    for &i in nodes {
        for p in peer_ids(&client(net, i)).await {
            if let Some(&j) = id_of.get(&p) {
                edges.entry(i).or_default().push(j);
                edges.entry(j).or_default().push(i);
            }
        }
    }
    let mut seen = HashSet::from([nodes[0]]);
    let mut todo = vec![nodes[0]];
    while let Some(i) = todo.pop() {
        for &j in edges.get(&i).into_iter().flatten() {
            if seen.insert(j) {
                todo.push(j);
            }
        }
    }
    seen.len() == nodes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_keeps_finding_and_holding_itself_without_its_bootnodes() {
    let mut net = start_net(N, N, 500).await;
    wait_peers(&net, 3).await;
    // Three peers at one instant is not yet a network: when 24 nodes start at once, the
    // bootnodes' slots fill and a node can hold three connections for a few milliseconds
    // before each is refused, and go on refused until an eviction lets it in. One block
    // held by all 24 shows every node joined.
    let all: Vec<usize> = (0..N).collect();
    one_chain(&net, &all).await;
    let ids: Vec<String> = net
        .net
        .nodes
        .iter()
        .map(|n| n.info.as_ref().unwrap().peer_id.clone())
        .collect();

    // All bootnodes but one dead, then a node joins.
    net.net.stop_node(1);
    net.net.stop_node(2);
    let genesis = net.net.genesis.clone();
    let joiner = net.net.add_node(&genesis, &[]).unwrap();
    net.net
        .wait_ready(joiner, Duration::from_secs(60))
        .await
        .unwrap();
    let t0 = Instant::now();
    let alive: HashSet<&String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| ![1, 2].contains(i))
        .map(|(_, id)| id)
        .collect();
    let want = (N * 8).div_ceil(10);
    let cj = client(&net, joiner);
    let n_found = wait_for(
        &format!("the new node to find {want} of the {N} nodes"),
        Duration::from_secs(30),
        || {
            let (cj, alive) = (cj.clone(), alive.clone());
            async move {
                let f = found(&cj).await;
                let n = f.iter().filter(|p| alive.contains(*p)).count();
                (n >= want).then_some(n)
            }
        },
    )
    .await;
    eprintln!(
        "with 2 of 3 bootnodes dead, the new node found {n_found} live nodes in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    // Every bootnode stopped: the rest stay connected and agree on new blocks.
    net.net.stop_node(0);
    let stopped = Instant::now();
    let rest: Vec<usize> = (3..=joiner).collect();
    // A node whose only peers were bootnodes is alone for a moment: it must find the others
    // in its routing table again.
    let mut reconnected = None;
    while stopped.elapsed() < Duration::from_secs(30) {
        if connected(&net, &rest).await {
            reconnected.get_or_insert(stopped.elapsed().as_secs_f64());
            if stopped.elapsed() > Duration::from_secs(10) {
                break;
            }
        } else {
            reconnected = None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let reconnected = reconnected.expect("the network split once its bootnodes were gone");
    eprintln!("without bootnodes: one connected network {reconnected:.1} s after the last stopped");
    let c3 = client(&net, 3);
    let target = height(&c3).await + 3;
    for &i in &rest {
        let c = client(&net, i);
        wait_for(
            &format!("node{i} at height {target}"),
            Duration::from_secs(60),
            || {
                let c = c.clone();
                async move { (height(&c).await >= target).then_some(()) }
            },
        )
        .await;
    }
    let want_hash = c3.getblockhash(target).await.unwrap();
    for &i in &rest {
        assert_eq!(
            client(&net, i).getblockhash(target).await.unwrap(),
            want_hash,
            "node{i} disagrees at height {target}"
        );
    }
    assert!(connected(&net, &rest).await);
    eprintln!(
        "{} nodes without bootnodes: one connected network, one chain to height {target}",
        rest.len()
    );
}
