//! WebSocket subscriptions on a live 3-node network: `eth_subscribe` newHeads and
//! newPendingTransactions, `meshnode_subscribe` blockArrivals (on a node that only relays, so
//! every record is a gossip arrival), geth-style 0x ids, unsubscribe, and a refused kind.

mod common;
use common::*;
use jsonrpsee::core::client::{Subscription, SubscriptionClientT, SubscriptionKind};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClientBuilder;
use meshnode::rpc::api::BitcoinApiClient;
use meshnode::rpc::client::send_transfer;
use serde_json::Value;
use std::time::Duration;

async fn next(sub: &mut Subscription<Value>, what: &str) -> Value {
    tokio::time::timeout(Duration::from_secs(30), sub.next())
        .await
        .unwrap_or_else(|_| panic!("no {what} notification within 30 s"))
        .expect("subscription open")
        .expect("notification parses")
}

fn id_of(sub: &Subscription<Value>) -> String {
    match sub.kind() {
        SubscriptionKind::Subscription(jsonrpsee::types::SubscriptionId::Str(s)) => s.to_string(),
        other => panic!("subscription id is not a string: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_subscriptions_push_heads_txs_and_arrivals() {
    // Nodes 0 and 1 produce; node 2 only relays.
    let net = start_net(3, 2, 500).await;
    wait_peers(&net, 2).await;
    let http_url = net.net.nodes[2].rpc_url().to_string();
    let ws_url = http_url.replacen("http://", "ws://", 1);
    let ws = WsClientBuilder::default().build(&ws_url).await.unwrap();

    let mut heads: Subscription<Value> = ws
        .subscribe("eth_subscribe", rpc_params!["newHeads"], "eth_unsubscribe")
        .await
        .unwrap();
    let mut txs: Subscription<Value> = ws
        .subscribe(
            "eth_subscribe",
            rpc_params!["newPendingTransactions"],
            "eth_unsubscribe",
        )
        .await
        .unwrap();
    let mut arrivals: Subscription<Value> = ws
        .subscribe(
            "meshnode_subscribe",
            rpc_params!["blockArrivals"],
            "meshnode_unsubscribe",
        )
        .await
        .unwrap();
    for s in [id_of(&heads), id_of(&txs), id_of(&arrivals)] {
        assert!(
            s.starts_with("0x") && s.len() == 34,
            "geth-style id, got {s}"
        );
    }

    // newHeads: consecutive heights, header fields, no transaction list.
    let h1 = next(&mut heads, "newHeads").await;
    let h2 = next(&mut heads, "newHeads").await;
    let n = |h: &Value| {
        u64::from_str_radix(h["number"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    assert_eq!(n(&h2), n(&h1) + 1, "{h1} then {h2}");
    assert_eq!(h2["parentHash"], h1["hash"]);
    assert!(h2.get("transactions").is_none() && h2["logsBloom"].is_string());
    let c = client(&net, 2);
    let canonical = c.getblockhash(n(&h2)).await.unwrap();
    assert_eq!(h2["hash"].as_str().unwrap(), format!("0x{canonical}"));

    // blockArrivals: a gossip arrival record with both timestamps, for a real block.
    let a = next(&mut arrivals, "blockArrivals").await;
    let first = a["firstSeenUs"]
        .as_u64()
        .expect("firstSeenUs on a relay node");
    let validated = a["validatedUs"].as_u64().expect("validatedUs");
    assert!(validated >= first, "{a}");
    assert!(a["publishedUs"].is_null(), "{a}");
    let hash = a["hash"].as_str().unwrap().to_string();
    let block = c.getblock(hash.clone(), Some(1)).await.unwrap();
    assert_eq!(block["height"], a["height"], "{a}");

    // newPendingTransactions: a tx submitted to another node reaches this one's mempool.
    let sent = send_transfer(net.net.nodes[0].rpc_url(), "dev:2", "dev:3", 5, 1, None)
        .await
        .unwrap();
    let pushed = loop {
        let h = next(&mut txs, "newPendingTransactions").await;
        if h.as_str() == Some(&format!("0x{sent}")) {
            break h;
        }
    };
    assert!(pushed.is_string());

    // Unsubscribe ends a stream; an unknown kind is refused with invalid params.
    heads.unsubscribe().await.unwrap();
    for (method, kind, unsub) in [
        ("eth_subscribe", "logs", "eth_unsubscribe"),
        ("meshnode_subscribe", "nope", "meshnode_unsubscribe"),
    ] {
        match ws
            .subscribe::<Value, _>(method, rpc_params![kind], unsub)
            .await
        {
            Err(jsonrpsee::core::ClientError::Call(e)) => {
                assert_eq!(e.code(), -32602, "{e:?}");
                assert!(e.message().contains(kind), "{e:?}");
            }
            other => panic!("{method}({kind}) should be refused, got {other:?}"),
        }
    }
    // The connection still serves calls and the other subscriptions still deliver.
    next(&mut arrivals, "blockArrivals after unsubscribe").await;
}
