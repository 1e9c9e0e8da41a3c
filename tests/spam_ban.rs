//! A peer that floods invalid gossip is disconnected and banned (the node refuses it until
//! the ban ends or is lifted), while honest peers stay connected and transactions keep
//! travelling; `setban` / `listbanned` / `clearbanned` manage bans by hand, as in Bitcoin Core.

mod common;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use meshnode::p2p::TopicKind;
use meshnode::rpc::api::BitcoinApiClient;
use meshnode::types::SignedTx;
use serde_json::Value;
use std::time::{Duration, Instant};

const CHAIN_ID: u64 = 1337;

fn transfer(from: u64, nonce: u64, amount: u64) -> SignedTx {
    signed_transfer(CHAIN_ID, from, 50, nonce, amount, 1)
}

async fn connected(c: &jsonrpsee::http_client::HttpClient, peer: &str) -> bool {
    peer_ids(c).await.iter().any(|p| p == peer)
}

async fn banned(c: &jsonrpsee::http_client::HttpClient) -> Vec<Value> {
    let v: Value = c.request("listbanned", rpc_params![]).await.unwrap();
    v.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spammer_is_disconnected_and_banned_and_honest_peers_carry_on() {
    let net = start_net(3, 1, 1000).await;
    wait_peers(&net, 2).await;
    let c1 = client(&net, 1);
    let honest_before = peer_ids(&c1).await;
    let tp = test_peer(&net, 1, CHAIN_ID).await;
    assert!(connected(&c1, &tp.peer_id).await);

    // 1,000 distinct transactions with broken signatures, as fast as the peer sends them.
    let t0 = Instant::now();
    for i in 0..1000u64 {
        let mut tx = transfer(20 + i % 10, i, 1 + i);
        tx.signature.0[7] ^= 0x20;
        if tp
            .handle
            .publish(TopicKind::Tx, tx.to_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
    let ban = wait_for("the spammer banned", Duration::from_secs(30), || {
        let c1 = c1.clone();
        let id = tp.peer_id.clone();
        async move {
            let b = banned(&c1).await;
            b.into_iter().find(|e| e["address"] == id.as_str())
        }
    })
    .await;
    let took = t0.elapsed();
    wait_for("the spammer disconnected", Duration::from_secs(10), || {
        let c1 = c1.clone();
        let id = tp.peer_id.clone();
        async move { (!connected(&c1, &id).await).then_some(()) }
    })
    .await;
    let took_disconnected = t0.elapsed();
    eprintln!(
        "banned after {:.2} s, disconnected after {:.2} s: {ban}",
        took.as_secs_f64(),
        took_disconnected.as_secs_f64()
    );
    assert!(
        took_disconnected <= Duration::from_secs(5),
        "took {took_disconnected:?}"
    );
    assert!(ban["time_remaining"].as_u64().unwrap() > 3600, "{ban}");
    assert!(!ban["reason"].as_str().unwrap().is_empty(), "{ban}");

    // It cannot come back while banned.
    let addr = net.net.nodes[1].info.as_ref().unwrap().listen_addrs[0]
        .parse()
        .unwrap();
    let _ = tp.handle.dial(addr).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !connected(&c1, &tp.peer_id).await,
        "a banned peer reconnected"
    );

    // Honest peers stay, and a valid transaction still travels through node1.
    for p in &honest_before {
        assert!(connected(&c1, p).await, "honest peer {p} lost");
    }
    let good = c1
        .sendrawtransaction(hex::encode(transfer(30, 0, 5).to_bytes()))
        .await
        .unwrap();
    for i in [0, 2] {
        wait_tx_at(&net, i, &good).await;
    }

    // By hand: lift the ban, and the peer can connect again.
    c1.request::<Value, _>("setban", rpc_params![tp.peer_id.clone(), "remove"])
        .await
        .unwrap();
    assert!(banned(&c1).await.is_empty());
    let addr = net.net.nodes[1].info.as_ref().unwrap().listen_addrs[0]
        .parse()
        .unwrap();
    tp.handle.dial(addr).await.unwrap();
    wait_for("the unbanned peer back", Duration::from_secs(30), || {
        let c1 = c1.clone();
        let id = tp.peer_id.clone();
        async move { connected(&c1, &id).await.then_some(()) }
    })
    .await;
    // setban add disconnects it again; clearbanned lifts everything.
    c1.request::<Value, _>("setban", rpc_params![tp.peer_id.clone(), "add", 600])
        .await
        .unwrap();
    let again = banned(&c1).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0]["ban_duration"], 600);
    assert_eq!(again[0]["reason"], "manual (setban)");
    wait_for(
        "the peer banned by hand disconnected",
        Duration::from_secs(10),
        || {
            let c1 = c1.clone();
            let id = tp.peer_id.clone();
            async move { (!connected(&c1, &id).await).then_some(()) }
        },
    )
    .await;
    let e = c1
        .request::<Value, _>("setban", rpc_params![tp.peer_id.clone(), "add"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("already banned"), "{e}");
    let e = c1
        .request::<Value, _>("setban", rpc_params!["127.0.0.1", "add"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("loopback"), "{e}");
    let e = c1
        .request::<Value, _>("setban", rpc_params!["not-a-peer", "add"])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("neither a peer id nor an IP"), "{e}");
    c1.request::<Value, _>("clearbanned", rpc_params![])
        .await
        .unwrap();
    assert!(banned(&c1).await.is_empty());
}
