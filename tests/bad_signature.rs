//! Transactions with bad signatures: refused at RPC with the documented errors and never
//! seen elsewhere; published over gossip by a test peer, rejected, not relayed, and the
//! sender's gossipsub score falls. Valid transactions in the same setting do travel, so the
//! negative checks can fail.

mod common;
use common::*;
use meshnode::crypto::Keypair;
use meshnode::p2p::TopicKind;
use meshnode::rpc::api::{BitcoinApiClient, EthApiClient};
use meshnode::types::{SignedTx, TxBody};
use std::time::Duration;

const CHAIN_ID: u64 = 1337;

fn transfer(from: u64, nonce: u64) -> SignedTx {
    let k = Keypair::dev_account(from);
    k.sign_tx(TxBody {
        chain_id: CHAIN_ID,
        nonce,
        from: k.public(),
        to: Keypair::dev_account(50).address(),
        amount: 5,
        fee: 1,
        data: vec![],
    })
}

fn corrupt(mut tx: SignedTx) -> SignedTx {
    tx.signature.0[10] ^= 0x40;
    tx
}

async fn everywhere(net: &TestNet, hash: &str) {
    for i in 0..net.net.nodes.len() {
        let c = client(net, i);
        wait_for(
            &format!("tx {hash} at node{i}"),
            Duration::from_secs(20),
            || {
                let c = c.clone();
                let hash = hash.to_string();
                async move {
                    let in_pool = mempool(&c).await.contains(&hash);
                    let mined = c
                        .get_transaction_by_hash(format!("0x{hash}"))
                        .await
                        .unwrap()
                        .is_some();
                    (in_pool || mined).then_some(())
                }
            },
        )
        .await;
    }
}

async fn nowhere(net: &TestNet, hash: &str) {
    for i in 0..net.net.nodes.len() {
        let c = client(net, i);
        assert!(
            !mempool(&c).await.contains(&hash.to_string()),
            "bad tx in node{i}'s mempool"
        );
        assert!(
            c.get_transaction_by_hash(format!("0x{hash}"))
                .await
                .unwrap()
                .is_none(),
            "bad tx known to node{i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_over_rpc_is_refused_and_goes_nowhere() {
    let net = start_net(3, 1, 1000).await;
    wait_peers(&net, 2).await;
    let c = client(&net, 1);
    let bad = corrupt(transfer(11, 0));
    let e = c
        .sendrawtransaction(hex::encode(bad.to_bytes()))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("-26") && e.contains("bad-txns-signature"), "{e}");
    let e = c
        .send_raw_transaction(format!("0x{}", hex::encode(bad.to_bytes())))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("-32000") && e.contains("invalid sender"), "{e}");
    let e = c
        .sendrawtransaction("zz".into())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("-22"), "{e}");
    // Positive control: a valid tx sent the same way reaches every node.
    let good = transfer(11, 0);
    let h = c
        .sendrawtransaction(hex::encode(good.to_bytes()))
        .await
        .unwrap();
    everywhere(&net, &h).await;
    nowhere(&net, &bad.hash().to_string()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signature_over_gossip_is_rejected_not_relayed_and_penalised() {
    let net = start_net(3, 1, 1000).await;
    wait_peers(&net, 2).await;
    // A test peer speaking the real protocol, connected only to node 1.
    let target = net.net.nodes[1].info.clone().unwrap();
    let tp = test_peer(&net, 1, CHAIN_ID).await;
    let (peer, me) = (tp.handle.clone(), tp.peer_id.clone());
    let c1 = client(&net, 1);

    // Positive control: a valid tx published by the test peer is accepted and relayed.
    let good = transfer(12, 0);
    peer.publish(TopicKind::Tx, good.to_bytes()).await.unwrap();
    everywhere(&net, &good.hash().to_string()).await;
    let before: Vec<(u64, u64, u64)> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(gossip_counters(&client(&net, i)).await);
        }
        v
    };

    let bad = corrupt(transfer(13, 0));
    peer.publish(TopicKind::Tx, bad.to_bytes()).await.unwrap();
    wait_for(
        "node1 to reject the bad tx",
        Duration::from_secs(20),
        || {
            let c1 = c1.clone();
            let r0 = before[1].1;
            async move { (gossip_counters(&c1).await.1 > r0).then_some(()) }
        },
    )
    .await;
    let score = wait_for(
        "the test peer's score on node1 to turn negative",
        Duration::from_secs(20),
        || {
            let c1 = c1.clone();
            let me = me.clone();
            async move {
                let peers = c1.getpeerinfo().await.unwrap();
                let s =
                    peers.iter().find(|p| p["peer_id"] == me.as_str())?["gossip_score"].as_f64()?;
                (s < 0.0).then_some(s)
            }
        },
    )
    .await;
    assert!(score < 0.0);
    // Not relayed: after a further valid tx has reached everyone (so gossip had time to
    // carry the bad one too), no other node saw the bad one at all.
    let later = transfer(12, 1);
    peer.publish(TopicKind::Tx, later.to_bytes()).await.unwrap();
    everywhere(&net, &later.hash().to_string()).await;
    let direct: Vec<String> = peer
        .peers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.peer_id)
        .collect();
    assert_eq!(
        direct,
        vec![target.peer_id.clone()],
        "the test peer must be connected to node1 only"
    );
    for i in [0, 2] {
        let now = gossip_counters(&client(&net, i)).await;
        assert_eq!(
            now.1, before[i].1,
            "node{i} received (and rejected) a relayed bad tx"
        );
    }
    nowhere(&net, &bad.hash().to_string()).await;

    // A /txs/1 batch with one bad signature among good ones is Rejected as a whole and not
    // relayed; the good transaction alone in a later batch reaches everyone.
    let (ok_tx, bad_tx) = (transfer(14, 0), corrupt(transfer(15, 0)));
    let r1 = gossip_counters(&c1).await.1;
    let others = [
        gossip_counters(&client(&net, 0)).await.1,
        gossip_counters(&client(&net, 2)).await.1,
    ];
    let encode = meshnode::types::encoding::encode::<Vec<meshnode::types::SignedTx>>;
    peer.publish(
        TopicKind::TxBatch,
        encode(&vec![ok_tx.clone(), bad_tx.clone()]),
    )
    .await
    .unwrap();
    wait_for(
        "node1 to reject the bad batch",
        Duration::from_secs(20),
        || {
            let c1 = c1.clone();
            async move { (gossip_counters(&c1).await.1 > r1).then_some(()) }
        },
    )
    .await;
    peer.publish(TopicKind::TxBatch, encode(&vec![ok_tx.clone()]))
        .await
        .unwrap();
    everywhere(&net, &ok_tx.hash().to_string()).await;
    nowhere(&net, &bad_tx.hash().to_string()).await;
    for (i, before) in [(0, others[0]), (2, others[1])] {
        let now = gossip_counters(&client(&net, i)).await.1;
        assert_eq!(
            now, before,
            "node{i} received (and rejected) a relayed bad batch"
        );
    }
    drop(tp);
}
