//! Mempool reconciliation on connect (eth/68's pooled-transaction exchange): two groups of
//! nodes fill their mempools apart; when a link joins them, every mempool holds the union of
//! the pending transactions within 5 s, including a node that is not on the new link;
//! queued transactions stay where they were.

mod common;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use meshnode::rpc::api::BitcoinApiClient;
use meshnode::types::SignedTx;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn transfer(chain_id: u64, from: u64, nonce: u64) -> SignedTx {
    signed_transfer(chain_id, from, 60, nonce, 1, 1 + nonce % 7)
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_partition_heals_every_mempool_holds_the_union_within_5_s() {
    // A validator nobody runs: no blocks, so the mempools only fill.
    let (mut net, genesis, spec) = custom_net(&[99], 1000, meshnode::now_ms());
    let a = add_ready(&mut net, &genesis, None, vec![]).await;
    let b = add_ready(&mut net, &genesis, None, vec![]).await;
    let c = add_ready(&mut net, &genesis, Some(b), vec![]).await;
    let (ca, cb, cc) = (client(&net, a), client(&net, b), client(&net, c));
    wait_for("c connected to b", Duration::from_secs(30), || {
        let cc = cc.clone();
        async move { (!peer_ids(&cc).await.is_empty()).then_some(()) }
    })
    .await;
    assert!(peer_ids(&ca).await.is_empty(), "a is on its own");

    // 300 pending transactions at a (3 senders), 200 at b's side (2 senders), and one
    // queued transaction at a.
    let mut side_a = HashSet::new();
    for from in 1..=3 {
        for n in 0..100 {
            side_a.insert(
                ca.sendrawtransaction(hex::encode(transfer(spec.chain_id, from, n).to_bytes()))
                    .await
                    .unwrap(),
            );
        }
    }
    let mut side_b = HashSet::new();
    for from in 4..=5 {
        for n in 0..100 {
            side_b.insert(
                cb.sendrawtransaction(hex::encode(transfer(spec.chain_id, from, n).to_bytes()))
                    .await
                    .unwrap(),
            );
        }
    }
    let queued = ca
        .sendrawtransaction(hex::encode(transfer(spec.chain_id, 6, 5).to_bytes()))
        .await
        .unwrap();
    // Side b agrees within itself (gossip), and a knows nothing of it.
    wait_for("c holds b's 200", Duration::from_secs(30), || {
        let cc = cc.clone();
        async move { (mempool(&cc).await.len() == 200).then_some(()) }
    })
    .await;
    assert_eq!(mempool(&ca).await.len(), 301);

    // Heal: b dials a.
    let a_addr = listen_addr(&net, a);
    let t0 = Instant::now();
    cb.request::<Value, _>("addnode", rpc_params![a_addr, "add"])
        .await
        .unwrap();
    let union: HashSet<String> = side_a.union(&side_b).cloned().collect();
    for (name, cl) in [("a", &ca), ("b", &cb), ("c", &cc)] {
        let want = union.clone();
        wait_for(
            &format!("{name} holding the union"),
            Duration::from_secs(30),
            || {
                let cl = cl.clone();
                let want = want.clone();
                async move {
                    let have: HashSet<String> = mempool(&cl).await.into_iter().collect();
                    want.is_subset(&have).then_some(())
                }
            },
        )
        .await;
    }
    let took = t0.elapsed();
    eprintln!(
        "union of {} pending transactions at all 3 nodes {:.2} s after the link",
        union.len(),
        took.as_secs_f64()
    );
    assert!(took <= Duration::from_secs(5), "took {took:?}");
    for (name, cl) in [("b", &cb), ("c", &cc)] {
        assert!(
            !mempool(cl).await.contains(&queued),
            "the queued transaction reached {name}"
        );
    }
}
