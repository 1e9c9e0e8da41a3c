//! A 30 s partition under load, then heal (issue 13): within 5 s of the heal every node holds
//! every transaction either side accepted (in its chain or its mempool: the losing side's
//! blocks are undone and their transactions exchanged), and within 10 s all nodes have one
//! head. The partition is `meshnode fault partition` on a running `meshnode devnet`.

mod common;
use common::{devnet_process, fault};
use serde_json::Value;
use std::time::{Duration, Instant};

const N: usize = 6;
const CHAIN: u64 = 1337;

fn call(url: &str, method: &str, params: Value) -> Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    ureq::post(url)
        .timeout(Duration::from_secs(10))
        .send_string(&body.to_string())
        .ok()
        .and_then(|r| r.into_json::<Value>().ok())
        .unwrap_or(Value::Null)
}

/// Every node's best block hash, asked of all nodes at once (a snapshot taken node after node
/// straddles blocks in flight).
fn heads(urls: &[String]) -> Vec<Value> {
    std::thread::scope(|s| {
        let asks: Vec<_> = urls
            .iter()
            .map(|u| {
                s.spawn(move || {
                    call(u, "getbestblockhash", serde_json::json!([]))["result"].clone()
                })
            })
            .collect();
        asks.into_iter()
            .map(|a| a.join().unwrap_or(Value::Null))
            .collect()
    })
}

#[test]
fn after_a_30_s_partition_under_load_every_node_has_every_transaction_and_one_head() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let _devnet = devnet_process(&dir, N, &["--slot-ms", "500"]);
    let t0 = Instant::now();
    while !dir.join("devnet.json").exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "devnet did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = fault(&dir, &["status"]);
    let urls: Vec<String> = (0..N)
        .map(|i| status["nodes"][i]["rpc_url"].as_str().unwrap().to_string())
        .collect();

    fault(&dir, &["partition", "0,1,2/3,4,5"]);
    // 30 s of load on both sides: 4 transfers a second into each.
    let mut accepted = Vec::new();
    let started = Instant::now();
    let mut nonce = [0u64; 2];
    while started.elapsed() < Duration::from_secs(30) {
        for (side, node) in [(0usize, 0usize), (1, 3)] {
            let tx = common::signed_transfer(CHAIN, 40 + side as u64, 60, nonce[side], 1, 1);
            let r = call(
                &urls[node + nonce[side] as usize % 3],
                "sendrawtransaction",
                serde_json::json!([hex::encode(tx.to_bytes())]),
            );
            if let Some(h) = r["result"].as_str() {
                accepted.push(h.to_string());
                nonce[side] += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let hs = heads(&urls);
    assert_ne!(hs[0], hs[3], "the two sides did not build their own chains");
    fault(&dir, &["heal"]);
    let healed = Instant::now();

    let mut all_txs_after = None;
    let mut one_head_after = None;
    while healed.elapsed() < Duration::from_secs(20)
        && (all_txs_after.is_none() || one_head_after.is_none())
    {
        if one_head_after.is_none() {
            let hs = heads(&urls);
            if hs.iter().all(|h| h.is_string() && *h == hs[0]) {
                one_head_after = Some(healed.elapsed().as_secs_f64());
            }
        }
        if all_txs_after.is_none()
            && urls.iter().all(|u| {
                accepted.iter().all(|h| {
                    call(u, "getrawtransaction", serde_json::json!([h]))["result"].is_string()
                })
            })
        {
            all_txs_after = Some(healed.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{} transactions accepted during the partition; after the heal: all on every node in {:?} s, one head in {:?} s",
        accepted.len(),
        all_txs_after,
        one_head_after
    );
    assert!(accepted.len() > 100);
    assert!(all_txs_after.is_some_and(|s| s <= 5.0), "transactions");
    assert!(one_head_after.is_some_and(|s| s <= 10.0), "one head");
}
