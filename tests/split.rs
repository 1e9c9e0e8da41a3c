//! Split and rejoin: two groups share a genesis but know different bootnodes; each runs with
//! part of the validator set for 20 slots while receiving transactions; then `admin_addPeer`
//! joins them. Every node ends on the heavier branch, and every transaction accepted on the
//! lighter branch that is still valid is in the new chain or in a mempool.

mod common;
use common::*;
use meshnode::rpc::api::{AdminApiClient, BitcoinApiClient, EthApiClient};
use meshnode::rpc::client::send_transfer;
use std::time::{Duration, Instant};

async fn in_chain(c: &jsonrpsee::http_client::HttpClient, hash: &str) -> bool {
    match c
        .get_transaction_by_hash(format!("0x{hash}"))
        .await
        .unwrap()
    {
        Some(tx) => !tx["blockHash"].is_null(),
        None => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_groups_converge_on_the_heavier_branch() {
    let (mut net, genesis, spec) = custom_net(&[0, 1, 2, 3], 400, meshnode::now_ms());
    let addr = listen_addr;
    let validator = |i: u64| vec!["--validator-key".to_string(), format!("dev-validator:{i}")];

    // Group A: nodes 0, 1, 2 with validators 0, 1, 2. Group B: node 3 with validator 3, node 4 relays.
    for (i, boot) in [
        (0usize, None),
        (1, Some(0usize)),
        (2, Some(0)),
        (3, None),
        (4, Some(3)),
    ] {
        let args = if i < 4 { validator(i as u64) } else { vec![] };
        add_ready(&mut net, &genesis, boot, args).await;
    }
    let c: Vec<_> = (0..5).map(|i| client(&net, i)).collect();
    let url = |i: usize| net.net.nodes[i].rpc_url().to_string();
    for (i, want) in [(0, 2), (1, 2), (2, 2), (3, 1), (4, 1)] {
        let ci = c[i].clone();
        wait_for(
            &format!("node{i} to have {want} peers"),
            Duration::from_secs(60),
            || {
                let ci = ci.clone();
                async move { (peer_ids(&ci).await.len() >= want).then_some(()) }
            },
        )
        .await;
    }
    let start_slot = spec.slot_at(meshnode::now_ms());

    // Transactions: a conflict on dev:0 nonce 0 (each group spends it differently), and
    // transfers from accounts only one group uses (still valid on either branch).
    let a_conflict = send_transfer(&url(1), "dev:0", "dev:9", 111, 1, Some(0))
        .await
        .unwrap();
    let b_conflict = send_transfer(&url(4), "dev:0", "dev:9", 222, 1, Some(0))
        .await
        .unwrap();
    let mut a_txs = Vec::new();
    let mut b_txs = Vec::new();
    for n in 0..3 {
        a_txs.push(
            send_transfer(&url(2), "dev:6", "dev:9", 10 + n, 1, Some(n))
                .await
                .unwrap(),
        );
        b_txs.push(
            send_transfer(&url(4), "dev:5", "dev:9", 20 + n, 1, Some(n))
                .await
                .unwrap(),
        );
    }
    // 20 slots apart, and each group's transactions in its own chain.
    wait_for(
        "20 slots of separate running",
        Duration::from_secs(60),
        || {
            let s = spec.slot_at(meshnode::now_ms());
            async move { (s >= start_slot + 20).then_some(()) }
        },
    )
    .await;
    for (node, txs) in [
        (
            0usize,
            [&a_txs[..], std::slice::from_ref(&a_conflict)].concat(),
        ),
        (3, [&b_txs[..], std::slice::from_ref(&b_conflict)].concat()),
    ] {
        for h in txs {
            let ci = c[node].clone();
            wait_for(
                &format!("{h} in node{node}'s chain"),
                Duration::from_secs(30),
                || {
                    let ci = ci.clone();
                    let h = h.clone();
                    async move { in_chain(&ci, &h).await.then_some(()) }
                },
            )
            .await;
        }
    }
    assert!(
        !peer_ids(&c[3])
            .await
            .contains(&net.net.nodes[0].info.as_ref().unwrap().peer_id),
        "groups are apart"
    );
    let (ha, hb) = (height(&c[0]).await, height(&c[3]).await);
    assert!(ha > hb, "group A (3 validators) is heavier: {ha} vs {hb}");
    let b_hash_at_hb = c[3].getblockhash(hb).await.unwrap();

    // Join.
    let joined = Instant::now();
    assert!(c[3].add_peer(addr(&net, 0)).await.unwrap());
    let same_head = wait_for(
        "every node on the same head",
        Duration::from_secs(30),
        || {
            let c = c.clone();
            async move {
                // All at once: one after another straddles blocks in flight.
                let heads: Vec<_> =
                    futures::future::join_all(c.iter().map(|ci| ci.getbestblockhash()))
                        .await
                        .into_iter()
                        .map(Result::unwrap)
                        .collect();
                heads
                    .windows(2)
                    .all(|w| w[0] == w[1])
                    .then(|| heads[0].clone())
            }
        },
    )
    .await;
    let took = joined.elapsed();
    eprintln!(
        "converged on {same_head} {:.2} s after admin_addPeer",
        took.as_secs_f64()
    );
    // The heavier branch won: A's block at its pre-join height is canonical everywhere.
    let a_block = c[0].getblockhash(ha).await.unwrap();
    for (i, ci) in c.iter().enumerate() {
        assert_eq!(
            ci.getblockhash(ha).await.unwrap(),
            a_block,
            "node{i} is on A's branch"
        );
    }
    // B's old tip is now a side branch on B's nodes.
    let tips = c[3].getchaintips().await.unwrap();
    assert!(
        tips.iter().any(|t| t["hash"] == b_hash_at_hb.as_str()
            && t["status"] != "active"
            && t["branchlen"].as_u64() >= Some(1)),
        "{tips:?}"
    );
    // A's conflicting spend stands; B's is gone; B's still-valid transactions survive.
    for (i, ci) in c.iter().enumerate() {
        assert!(
            in_chain(ci, &a_conflict).await,
            "node{i}: A's dev:0 spend in the chain"
        );
        assert!(
            !in_chain(ci, &b_conflict).await,
            "node{i}: B's conflicting spend not in the chain"
        );
    }
    for h in &b_txs {
        let ci = c[3].clone();
        wait_for(&format!("B's tx {h} in the new chain or the mempool"), Duration::from_secs(30), || {
            let ci = ci.clone();
            let h = h.clone();
            async move { (in_chain(&ci, &h).await || mempool(&ci).await.contains(&h)).then_some(()) }
        })
        .await;
    }
    // And they get mined on the joined network.
    for h in &b_txs {
        let ci = c[0].clone();
        wait_for(
            &format!("B's tx {h} mined on A's node"),
            Duration::from_secs(30),
            || {
                let ci = ci.clone();
                let h = h.clone();
                async move { in_chain(&ci, &h).await.then_some(()) }
            },
        )
        .await;
    }
}
