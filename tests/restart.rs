//! A node stopped and restarted keeps its chain and catches up on the blocks it missed.

mod common;
use common::*;
use meshnode::rpc::api::BitcoinApiClient;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_keeps_chain_and_catches_up() {
    let mut net = start_net(3, 2, 500).await;
    wait_peers(&net, 2).await;
    let c0 = client(&net, 0);
    wait_for("height 5", Duration::from_secs(60), || {
        let c = c0.clone();
        async move { (height(&c).await >= 5).then_some(()) }
    })
    .await;
    let c2 = client(&net, 2);
    let h_before = height(&c2).await;
    let hash_before = c2.getblockhash(h_before).await.unwrap();
    net.net.stop_node(2);

    wait_for(
        "the others to build 6 blocks more",
        Duration::from_secs(60),
        || {
            let c = c0.clone();
            async move { (height(&c).await >= h_before + 6).then_some(()) }
        },
    )
    .await;
    net.net.start_node(2).unwrap();
    net.net
        .wait_ready(2, Duration::from_secs(60))
        .await
        .unwrap();
    let c2 = client(&net, 2);
    // Its stored chain survived: the block it had is still there, at the same height.
    assert!(height(&c2).await >= h_before);
    assert_eq!(c2.getblockhash(h_before).await.unwrap(), hash_before);
    // It catches up with the network and agrees on the blocks it missed.
    let target = height(&c0).await;
    wait_for(
        "the restarted node to catch up",
        Duration::from_secs(60),
        || {
            let c = c2.clone();
            async move { (height(&c).await >= target).then_some(()) }
        },
    )
    .await;
    for h in h_before..=target {
        assert_eq!(
            c2.getblockhash(h).await.unwrap(),
            c0.getblockhash(h).await.unwrap(),
            "height {h}"
        );
    }
}
