//! Mempool relay policy: a transaction behind a nonce gap (queued) stays in the mempool that
//! admitted it, from RPC or from gossip, and travels once the gap fills; a fee below the
//! minimum relay fee is refused with Bitcoin Core's and geth's errors. Pending transactions
//! in the same settings do travel, so the negative checks can fail.

mod common;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use meshnode::p2p::TopicKind;
use meshnode::rpc::api::BitcoinApiClient;
use meshnode::types::SignedTx;
use serde_json::Value;
use std::time::Duration;

const CHAIN_ID: u64 = 1337;

fn transfer(from: u64, nonce: u64, fee: u64) -> SignedTx {
    signed_transfer(CHAIN_ID, from, 50, nonce, 5, fee)
}

async fn in_mempool(net: &TestNet, i: usize, hash: &str) -> bool {
    mempool(&client(net, i)).await.iter().any(|h| h == hash)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_transaction_from_rpc_stays_local_until_its_gap_fills() {
    let net = start_net(3, 1, 1000).await;
    wait_peers(&net, 2).await;
    let c0 = client(&net, 0);
    // Nonce 3 of dev:7 while its account nonce is 0: queued at node0.
    let queued = c0
        .sendrawtransaction(hex::encode(transfer(7, 3, 2).to_bytes()))
        .await
        .unwrap();
    // A pending transaction sent at the same time travels (the positive control).
    let pending = c0
        .sendrawtransaction(hex::encode(transfer(8, 0, 2).to_bytes()))
        .await
        .unwrap();
    for i in 1..3 {
        wait_tx_at(&net, i, &pending).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        in_mempool(&net, 0, &queued).await,
        "node0 keeps the queued tx"
    );
    for i in 1..3 {
        assert!(
            !in_mempool(&net, i, &queued).await,
            "the queued tx reached node{i}"
        );
    }
    // Filling the gap makes all four pending: they travel and are mined.
    for n in 0..3 {
        c0.sendrawtransaction(hex::encode(transfer(7, n, 2).to_bytes()))
            .await
            .unwrap();
    }
    for i in 1..3 {
        wait_tx_at(&net, i, &queued).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queued_transaction_from_gossip_is_ignored_and_not_relayed() {
    let net = start_net(3, 1, 1000).await;
    wait_peers(&net, 2).await;
    // The test peer is connected to node1 only: whatever node0 and node2 get came through
    // node1.
    let tp = test_peer(&net, 1, CHAIN_ID).await;
    let queued = transfer(9, 4, 2);
    let pending = transfer(10, 0, 2);
    for tx in [&queued, &pending] {
        tp.handle
            .publish(TopicKind::Tx, tx.to_bytes())
            .await
            .unwrap();
    }
    let (q, p) = (queued.hash().to_string(), pending.hash().to_string());
    for i in [0, 2] {
        wait_tx_at(&net, i, &p).await;
    }
    wait_tx_at(&net, 1, &q).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in [0, 2] {
        assert!(
            !in_mempool(&net, i, &q).await,
            "the queued tx reached node{i}"
        );
    }
    // Queued is not wrong: the sender keeps its score.
    let score = score_of(&client(&net, 1), &tp.peer_id).await.unwrap_or(0.0);
    assert!(score >= 0.0, "test peer score {score}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fee_below_the_minimum_relay_fee_is_refused() {
    let net = start_net(1, 1, 1000).await;
    let c = client(&net, 0);
    let zero = hex::encode(transfer(11, 0, 0).to_bytes());
    let e = c.sendrawtransaction(zero.clone()).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("-26") || msg.contains("26"), "{msg}");
    assert!(msg.contains("min relay fee not met, 0 < 1"), "{msg}");
    let e = c
        .request::<Value, _>("eth_sendRawTransaction", rpc_params![format!("0x{zero}")])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("transaction underpriced"), "{e}");
    let info: Value = c.request("getmempoolinfo", rpc_params![]).await.unwrap();
    assert_eq!(info["minrelaytxfee"], 1, "{info}");
    assert!(info["mempoolminfee"].as_u64() >= Some(1), "{info}");
    let net_info: Value = c.request("getnetworkinfo", rpc_params![]).await.unwrap();
    assert_eq!(net_info["relayfee"], 1, "{net_info}");
    // Fee 1 is admitted.
    c.sendrawtransaction(hex::encode(transfer(11, 0, 1).to_bytes()))
        .await
        .unwrap();
}
