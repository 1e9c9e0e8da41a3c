//! A flood at 10× what the network accepts: 3 nodes that never produce, each mempool bounded
//! at 300 transactions, and 3,000 transactions with distinct fees from 3,000 senders submitted
//! to node 0 in JSON-RPC batches. Every node must end holding exactly the 300 highest fees
//! (the lowest were evicted or refused, never a higher one), within its bound, with the minimum
//! fee risen above every evicted fee and a low-fee transaction refused in Bitcoin's and
//! geth's words; RSS stays bounded and RPC keeps answering throughout.

mod common;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use meshnode::crypto::Keypair;
use meshnode::devnet::{Devnet, DevnetOptions};
use meshnode::rpc::api::{BitcoinApiClient, EthApiClient};
use meshnode::types::TxBody;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BOUND: usize = 300;
const FLOOD: u64 = 3_000;

fn rss_mib(pid: u32) -> f64 {
    meshnode::bench::throughput::rss_bytes(pid).unwrap() as f64 / (1024.0 * 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_keeps_the_highest_fees_within_the_bound_and_rpc_answering() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = DevnetOptions {
        nodes: 3,
        validators: 1,
        slot_ms: 500,
        dir: tmp.path().to_path_buf(),
        template: Some(repo_path("genesis/devnet.json")),
        exe: PathBuf::from(env!("CARGO_BIN_EXE_meshnode")),
        rpc_base_port: 0,
        log: "info".into(),
        dev_accounts: Some(FLOOD + 10),
        produce: false,
        extra_args: ["--mempool-max-txs", &BOUND.to_string()]
            .map(String::from)
            .to_vec(),
        profile: None,
        netns: false,
        loss: None,
    };
    let net = TestNet {
        net: Devnet::start(&opts).await.expect("devnet starts"),
        tmp,
    };
    wait_peers(&net, 2).await;
    let pids: Vec<u32> = net
        .net
        .nodes
        .iter()
        .map(|n| n.info.as_ref().unwrap().pid)
        .collect();
    let rss_before: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();

    // Sender i pays fee fees[i]: a permutation of 1..=3000, so arrival order is not fee order.
    let fees: Vec<u64> = (0..FLOOD).map(|i| (i * 1_237) % FLOOD + 1).collect();
    assert_eq!(fees.iter().collect::<HashSet<_>>().len(), FLOOD as usize);
    let to = Keypair::dev_account(FLOOD + 5).address();
    let txs: Vec<(u64, String, String)> = (0..FLOOD)
        .map(|i| {
            let k = Keypair::dev_account(i);
            let tx = k.sign_tx(TxBody {
                chain_id: 1337,
                nonce: 0,
                from: k.public(),
                to,
                amount: 1,
                fee: fees[i as usize],
                data: vec![],
            });
            (
                fees[i as usize],
                tx.hash().to_string(),
                hex::encode(tx.to_bytes()),
            )
        })
        .collect();
    let mut by_fee: Vec<&(u64, String, String)> = txs.iter().collect();
    by_fee.sort_by_key(|t| std::cmp::Reverse(t.0));
    let top: HashSet<String> = by_fee[..BOUND].iter().map(|t| t.1.clone()).collect();
    let lowest_kept = by_fee[BOUND - 1].0;

    // RPC must keep answering during the flood: probe node 1 every 100 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let worst_ms = Arc::new(AtomicU64::new(0));
    let probe = {
        let (c, stop, worst) = (client(&net, 1), stop.clone(), worst_ms.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.getmempoolinfo()
                    .await
                    .expect("RPC answers during the flood");
                worst.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let c0 = client(&net, 0);
    let mut accepted = 0;
    for chunk in txs.chunks(500) {
        let mut b = BatchRequestBuilder::new();
        for (_, _, hex) in chunk {
            b.insert("sendrawtransaction", vec![hex.as_str()]).unwrap();
        }
        let r = c0.batch_request::<String>(b).await.unwrap();
        accepted += r.num_successful_calls();
    }
    eprintln!("node 0 accepted {accepted} of {FLOOD} on arrival");

    // Every node converges on exactly the top 300 fees.
    for i in 0..3 {
        let c = client(&net, i);
        let top = top.clone();
        wait_for(
            &format!("node{i} to hold the 300 highest fees"),
            Duration::from_secs(60),
            || {
                let (c, top) = (c.clone(), top.clone());
                async move {
                    let pool: HashSet<String> = mempool(&c).await.into_iter().collect();
                    (pool == top).then_some(())
                }
            },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    probe.await.unwrap();

    for i in 0..3 {
        let info = client(&net, i).getmempoolinfo().await.unwrap();
        eprintln!("node{i} getmempoolinfo: {info}");
        assert_eq!(info["size"], BOUND as u64);
        assert!(info["bytes"].as_u64().unwrap() <= info["maxmempool"].as_u64().unwrap());
        // The minimum fee rose above everything evicted, up to the lowest fee kept.
        let min = info["mempoolminfee"].as_u64().unwrap();
        assert!(
            min > 1 && min <= lowest_kept,
            "mempoolminfee {min}, lowest kept {lowest_kept}"
        );
    }
    let info0 = c0.getmempoolinfo().await.unwrap();
    assert!(info0["evicted"].as_u64().unwrap() > 0, "{info0}");

    // A low fee is refused with a clear reason in both families.
    let k = Keypair::dev_account(FLOOD + 1);
    let cheap = k.sign_tx(TxBody {
        chain_id: 1337,
        nonce: 0,
        from: k.public(),
        to,
        amount: 1,
        fee: 5,
        data: vec![],
    });
    let e = c0
        .sendrawtransaction(hex::encode(cheap.to_bytes()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("-26") && e.contains("mempool min fee not met"),
        "{e}"
    );
    let e = c0
        .send_raw_transaction(format!("0x{}", hex::encode(cheap.to_bytes())))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("-32000") && e.contains("transaction underpriced"),
        "{e}"
    );

    let rss_after: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();
    let worst = worst_ms.load(Ordering::Relaxed);
    eprintln!("RSS MiB before {rss_before:.1?} after {rss_after:.1?}; slowest RPC answer during the flood {worst} ms");
    for (b, a) in rss_before.iter().zip(&rss_after) {
        assert!(*a < b + 64.0, "RSS grew from {b:.1} to {a:.1} MiB");
    }
    assert!(
        worst < 5_000,
        "an RPC answer took {worst} ms during the flood"
    );
}
