//! Kademlia discovery: a node given one of three bootnodes finds the other two.

mod common;
use common::*;
use meshnode::genesis::GenesisFile;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_given_one_bootnode_finds_the_others() {
    let mut net = start_net(3, 3, 1000).await;
    wait_peers(&net, 2).await;
    // A genesis copy without bootnodes (the bootnode list is not part of the genesis hash).
    let mut g = GenesisFile::read(&net.net.genesis).unwrap();
    assert_eq!(g.bootnodes.len(), 3);
    g.bootnodes.clear();
    let lone = net.tmp.path().join("genesis-no-bootnodes.json");
    g.write(&lone).unwrap();
    let only = net.net.nodes[2].info.as_ref().unwrap().listen_addrs[0].clone();
    let i = net
        .net
        .add_node(&lone, &["--bootnode".into(), only])
        .unwrap();
    net.net
        .wait_ready(i, Duration::from_secs(60))
        .await
        .unwrap();

    let others: Vec<String> = (0..2)
        .map(|j| net.net.nodes[j].info.as_ref().unwrap().peer_id.clone())
        .collect();
    let c = client(&net, i);
    wait_for(
        "the new node to connect to bootnodes 0 and 1 it was not given",
        Duration::from_secs(60),
        || {
            let c = c.clone();
            let others = others.clone();
            async move {
                let peers = peer_ids(&c).await;
                others.iter().all(|o| peers.contains(o)).then_some(())
            }
        },
    )
    .await;
}
