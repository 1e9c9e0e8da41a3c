//! `--relay flood`: blocks travel through meshnode's request-response protocol (pushed to
//! every peer after gossip verification, duplicates dropped by hash), not gossipsub, and every
//! node follows the same chain.

mod common;
use common::*;
use meshnode::devnet::{Devnet, DevnetOptions};
use meshnode::rpc::api::{BitcoinApiClient, MeshnodeApiClient};
use std::path::PathBuf;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooded_blocks_reach_every_node_without_gossipsub() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = DevnetOptions {
        nodes: 4,
        validators: 2,
        slot_ms: 500,
        dir: tmp.path().to_path_buf(),
        template: Some(repo_path("genesis/devnet.json")),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_meshnode")),
        rpc_base_port: 0,
        log: "info".into(),
        dev_accounts: None,
        produce: true,
        extra_args: vec!["--relay".into(), "flood".into()],
        profile: None,
        netns: false,
        loss: None,
    };
    let net = TestNet {
        net: Devnet::start(&opts).await.expect("devnet starts"),
        tmp,
    };
    wait_peers(&net, 3).await;
    let c: Vec<_> = (0..4).map(|i| client(&net, i)).collect();
    for (i, ci) in c.iter().enumerate() {
        let ci = ci.clone();
        wait_for(
            &format!("node{i} at height 4"),
            Duration::from_secs(60),
            || {
                let ci = ci.clone();
                async move { (height(&ci).await >= 4).then_some(()) }
            },
        )
        .await;
    }
    let h = 3;
    let hash = c[0].getblockhash(h).await.unwrap();
    for (i, ci) in c.iter().enumerate() {
        assert_eq!(
            ci.getblockhash(h).await.unwrap(),
            hash,
            "node{i} on another chain"
        );
        let info = ci.node_info().await.unwrap();
        let topics = &info["gossip"]["topics"];
        let flood = &topics["flood"];
        assert!(
            flood["received"].as_u64().unwrap_or(0) > 0,
            "node{i} received no flooded block: {topics}"
        );
        assert!(
            flood["receivedWithDuplicates"].as_u64() >= flood["received"].as_u64(),
            "{topics}"
        );
        for t in ["block", "cblock"] {
            assert_eq!(
                topics[t]["received"].as_u64().unwrap_or(0),
                0,
                "node{i} got a block over gossipsub: {topics}"
            );
        }
    }
    // Nodes that did not produce it got it from a peer, and relayed it before importing it.
    let mut relayed = 0;
    for ci in &c {
        let a = ci.block_arrival(hash.clone()).await.unwrap().unwrap();
        if a.published_us.is_none() {
            assert!(a.first_from.is_some() && a.validated_us.is_some(), "{a:?}");
            relayed += a.relayed_us.is_some() as usize;
        }
    }
    assert_eq!(relayed, 3, "every receiver verified and relayed it");
}
