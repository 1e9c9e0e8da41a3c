//! A node killed with SIGKILL right after accepting transactions over JSON-RPC still has them
//! when it starts again (geth's local-transaction journal), announces them, and they are mined;
//! with `--mempool-journal off` the same kill loses them all (the control).

mod common;
use common::*;
use meshnode::rpc::api::BitcoinApiClient;
use nix::sys::signal::Signal;
use std::time::Duration;

const CHAIN: u64 = 1337;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_accepted_before_a_kill_9_survive_it_and_are_mined() {
    // A lone node that produces nothing: what it accepts stays in its mempool only.
    let (mut net, genesis, _) = custom_net(&[7], 500, meshnode::now_ms());
    let lone = add_ready(&mut net, &genesis, None, vec![]).await;
    let control = add_ready(
        &mut net,
        &genesis,
        None,
        vec!["--mempool-journal".into(), "off".into()],
    )
    .await;
    let mut hashes = Vec::new();
    for (node, from) in [(lone, 3u64), (control, 4)] {
        let c = client(&net, node);
        for nonce in 0..30 {
            let tx = signed_transfer(CHAIN, from, 9, nonce, 5, 1);
            let h = c
                .sendrawtransaction(hex::encode(tx.to_bytes()))
                .await
                .unwrap();
            if node == lone {
                hashes.push(h);
            }
        }
        assert_eq!(
            c.getrawmempool(None)
                .await
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            30
        );
    }
    for node in [lone, control] {
        net.net
            .stop_node_with(node, Signal::SIGKILL, Duration::from_secs(5));
        net.net.start_node(node).unwrap();
        net.net
            .wait_ready(node, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let pool_len = |node| {
        let c = client(&net, node);
        async move {
            c.getrawmempool(None)
                .await
                .unwrap()
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(
        pool_len(lone).await,
        30,
        "the journal gave back every accepted transaction"
    );
    assert_eq!(
        pool_len(control).await,
        0,
        "without the journal the kill lost them"
    );

    // A producer joins: the reloaded transactions are announced to it and mined.
    let producer = add_ready(
        &mut net,
        &genesis,
        Some(lone),
        vec!["--validator-key".into(), "dev-validator:7".into()],
    )
    .await;
    let c = client(&net, producer);
    for h in hashes {
        wait_for(&format!("{h} mined"), Duration::from_secs(60), || {
            let (c, h) = (c.clone(), h.clone());
            async move {
                let v = c
                    .getrawtransaction(h, Some(serde_json::Value::Bool(true)), None)
                    .await
                    .ok()?;
                v["blockhash"].is_string().then_some(())
            }
        })
        .await;
    }
}
