//! Crash safety: a validator under steady transaction load is killed with SIGKILL five times at
//! random moments. Each time, before it restarts, its store passes `store check` and holds
//! every block it had shown over RPC or announced; after restarting it catches up.

mod common;
use common::*;
use meshnode::chain::ChainStore;
use meshnode::crypto::Keypair;
use meshnode::rpc::api::BitcoinApiClient;
use meshnode::rpc::client::send_transfer;
use nix::sys::signal::Signal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_five_times_keeps_the_store_sound() {
    let mut net = start_net(3, 3, 500).await;
    wait_peers(&net, 2).await;
    let victim = 2;
    let victim_addr = Keypair::dev_validator(victim as u64).address().to_string();
    let c0 = client(&net, 0);
    let urls = net.net.rpc_urls();

    // Steady load: transfers to the victim while it is up, to node 0 while it is down.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let stop = stop.clone();
        let (victim_url, other_url) = (urls[victim].clone(), urls[0].clone());
        async move {
            let mut nonce = 0;
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let ok = send_transfer(&victim_url, "dev:20", "dev:21", 1, 1, Some(nonce))
                    .await
                    .is_ok()
                    || send_transfer(&other_url, "dev:20", "dev:21", 1, 1, Some(nonce))
                        .await
                        .is_ok();
                if ok {
                    nonce += 1;
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        }
    });

    let mut catch_up = Vec::new();
    for round in 0..5 {
        // A random moment (the clock's microseconds: no seeded RNG needed).
        let delay = 300 + meshnode::now_us() % 1700;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let cv = client(&net, victim);
        // What the victim had shown over RPC just before the kill is committed.
        let shown_height = height(&cv).await;
        let mut must_have = Vec::new();
        for h in 1..=shown_height {
            must_have.push(cv.getblockhash(h).await.unwrap());
        }
        net.net
            .stop_node_with(victim, Signal::SIGKILL, Duration::from_secs(5));
        // Blocks the victim produced that node 0 accepted were announced by it.
        let h0 = height(&c0).await;
        for h in 1..=h0 {
            let hash = c0.getblockhash(h).await.unwrap();
            let b = c0.getblock(hash.clone(), Some(1)).await.unwrap();
            if b["producer"] == victim_addr.as_str() {
                must_have.push(hash);
            }
        }
        // Offline: the store is sound and has every one of them.
        let dir = net.net.nodes[victim].dir.join("chain");
        {
            let (store, spec) = ChainStore::open_existing(&dir).unwrap();
            let report = store
                .check(&spec)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            for h in &must_have {
                assert!(
                    store.has_block(&h.parse().unwrap()).unwrap(),
                    "round {round}: block {h} lost"
                );
            }
            eprintln!(
                "round {round}: killed after {delay} ms at height {}; store check ok ({} blocks, {} txs); {} announced/shown blocks present",
                report.head_height,
                report.blocks,
                report.txs,
                must_have.len()
            );
        }
        // The CLI says the same.
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshnode"))
            .args(["store", "check", "--data-dir"])
            .arg(&net.net.nodes[victim].dir)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Restart and catch up with the network.
        net.net.start_node(victim).unwrap();
        net.net
            .wait_ready(victim, Duration::from_secs(60))
            .await
            .unwrap();
        let restarted = Instant::now();
        let target = height(&c0).await;
        let cv = client(&net, victim);
        wait_for(
            "the restarted node to reach the network's head",
            Duration::from_secs(60),
            || {
                let cv = cv.clone();
                async move { (height(&cv).await >= target).then_some(()) }
            },
        )
        .await;
        catch_up.push(restarted.elapsed().as_secs_f64());
    }
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.unwrap();
    eprintln!("{sent} transactions sent; catch-up after restart (s): {catch_up:.2?}");
    assert!(sent > 0);
}
