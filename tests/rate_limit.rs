//! Per-peer rate limits on the sync protocol: a peer that asks for `Status` 200 times at once
//! gets the quota's 64 answers, the rest of its requests fail, and after 100 requests over
//! quota within 10 s it is banned and disconnected, while the node keeps answering others.

mod common;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use meshnode::p2p::codec::{SyncRequest, SyncResponse};
use serde_json::Value;
use std::time::Duration;

const CHAIN_ID: u64 = 1337;

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_over_its_request_quota_goes_unanswered_then_banned() {
    let net = start_net(2, 1, 1000).await;
    wait_peers(&net, 1).await;
    let c0 = client(&net, 0);
    let node: libp2p::PeerId = net.net.nodes[0]
        .info
        .as_ref()
        .unwrap()
        .peer_id
        .parse()
        .unwrap();
    let tp = test_peer(&net, 0, CHAIN_ID).await;
    let (mut answered, mut failed) = (0, 0);
    for _ in 0..200 {
        match tp.handle.request(node, SyncRequest::Status).await {
            Ok(SyncResponse::Status(_)) => answered += 1,
            _ => failed += 1,
        }
    }
    println!("{answered} Status answered, {failed} not");
    // 64 per 10 s, plus what refills while the 200 requests go out (one per 0.16 s).
    assert!(
        (64..=70).contains(&answered),
        "Status quota is 64 per 10 s: {answered} answered"
    );
    assert_eq!(answered + failed, 200);
    let ban = wait_for("the peer banned", Duration::from_secs(30), || {
        let c0 = c0.clone();
        let id = tp.peer_id.clone();
        async move {
            let v: Value = c0.request("listbanned", rpc_params![]).await.unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .find(|e| e["address"] == id.as_str())
                .cloned()
        }
    })
    .await;
    println!("ban: {ban}");
    assert!(
        ban["reason"]
            .as_str()
            .is_some_and(|r| r.contains("sync requests over quota")),
        "{ban}"
    );
    wait_for("the peer disconnected", Duration::from_secs(30), || {
        let c0 = c0.clone();
        let id = tp.peer_id.clone();
        async move { (!peer_ids(&c0).await.contains(&id)).then_some(()) }
    })
    .await;
    // Node 1, honest, still gets answers.
    let c1 = client(&net, 1);
    let h: u64 = c1.request("getblockcount", rpc_params![]).await.unwrap();
    wait_for(
        "node 1 keeps following node 0",
        Duration::from_secs(30),
        || {
            let c1 = c1.clone();
            async move {
                let now: u64 = c1.request("getblockcount", rpc_params![]).await.unwrap();
                (now > h).then_some(())
            }
        },
    )
    .await;
}
