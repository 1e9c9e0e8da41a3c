//! A 5-node network: a transaction submitted with `meshnode tx send` to one node reaches every
//! mempool, then a block on every node within 3 slots (visible through Bitcoin- and
//! Ethereum-style RPC). Every node journals its arrival records (`DATA_DIR/arrivals.jsonl`), the
//! same records `meshnode_blockArrival` returns, and `bench propagation --from-dirs` reports on
//! them after the fact.

mod common;
use common::*;
use meshnode::genesis::GenesisFile;
use meshnode::rpc::api::{BitcoinApiClient, EthApiClient, MeshnodeApiClient};
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_reaches_every_mempool_then_a_block_on_every_node() {
    // One producer with 1.5 s slots leaves time to see the tx in every mempool first.
    let net = start_net(5, 1, 1500).await;
    wait_peers(&net, 2).await;
    let clients: Vec<_> = (0..5).map(|i| client(&net, i)).collect();
    // Submit right after a block so the next one is a whole slot away.
    let h0 = height(&clients[0]).await;
    wait_for("a new block", Duration::from_secs(30), || {
        let c = clients[0].clone();
        async move { (height(&c).await > h0).then_some(()) }
    })
    .await;
    // Submit with the real CLI, as a user would, to a node that is not a bootnode.
    let genesis = GenesisFile::read(&net.net.genesis)
        .unwrap()
        .to_spec()
        .unwrap();
    let submit_slot = genesis.slot_at(meshnode::now_ms());
    let url = net.net.nodes[4].rpc_url().to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshnode"))
        .args([
            "tx", "send", "--from", "dev:3", "--to", "dev:7", "--amount", "12345", "--fee", "2",
            "--rpc", &url,
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "tx send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(hash.len(), 64, "tx send prints the hash: {hash:?}");

    // Every node's mempool shows it before the next block.
    let mut seen_in_mempool = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen_in_mempool.len() < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "tx only reached mempools of {seen_in_mempool:?}"
        );
        for (i, c) in clients.iter().enumerate() {
            if mempool(c).await.contains(&hash) {
                seen_in_mempool.insert(i);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Then in a block on every node, the same block everywhere.
    let mut block_hashes = HashSet::new();
    for (i, c) in clients.iter().enumerate() {
        let tx = wait_for(
            &format!("the tx in a block on node{i}"),
            Duration::from_secs(20),
            || {
                let c = c.clone();
                let hash = hash.clone();
                async move {
                    let tx = c
                        .get_transaction_by_hash(format!("0x{hash}"))
                        .await
                        .unwrap()?;
                    (!tx["blockHash"].is_null()).then_some(tx)
                }
            },
        )
        .await;
        let number = tx["blockNumber"].as_str().unwrap().to_string();
        let eth_block = c
            .get_block_by_number(number.clone(), false)
            .await
            .unwrap()
            .unwrap();
        assert!(eth_block["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &format!("0x{hash}")));
        let n = u64::from_str_radix(number.trim_start_matches("0x"), 16).unwrap();
        let bh = c.getblockhash(n).await.unwrap();
        let btc_block = c.getblock(bh.clone(), Some(1)).await.unwrap();
        assert!(btc_block["tx"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &hash));
        let slot = btc_block["slot"].as_u64().unwrap();
        assert!(
            slot <= submit_slot + 3,
            "included in slot {slot}, submitted in slot {submit_slot}: more than 3 slots"
        );
        assert!(
            mempool(c).await.iter().all(|h| h != &hash),
            "included tx left node{i}'s mempool"
        );
        block_hashes.insert(bh);
    }
    assert_eq!(
        block_hashes.len(),
        1,
        "every node has the tx in the same block"
    );

    // The journal: a record settles and is written with the next block, or at most 2 s after
    // its block was validated.
    let bh = block_hashes.into_iter().next().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, c) in clients.iter().enumerate() {
        let rpc = c
            .block_arrival(bh.clone())
            .await
            .unwrap()
            .expect("a record");
        let path = net.net.nodes[i].dir.join("arrivals.jsonl");
        let lines = meshnode::arrivals::read_journal(&path).unwrap();
        let line = lines
            .iter()
            .find(|l| l.hash == bh)
            .unwrap_or_else(|| panic!("{} has no line for block {bh}", path.display()));
        assert_eq!(
            line.arrival, rpc,
            "node{i}: journal and meshnode_blockArrival differ"
        );
        assert!(rpc.validated_us.is_some() && rpc.block_bytes > 0, "{rpc:?}");
    }

    // After the fact, from the data dirs alone.
    let dirs: Vec<String> = net
        .net
        .nodes
        .iter()
        .map(|n| n.dir.display().to_string())
        .collect();
    let out_json = net.tmp.path().join("from-dirs.json");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshnode"))
        .args(["bench", "propagation", "--out"])
        .arg(&out_json)
        .arg("--from-dirs")
        .args(&dirs)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "bench --from-dirs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_json).unwrap()).unwrap();
    let block = report["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["hash"] == bh.as_str())
        .unwrap_or_else(|| panic!("block {bh} not in the report"))
        .clone();
    assert_eq!(block["reached"], 5, "{block}");
    assert!(block["t100_ms"].as_f64().unwrap() > 0.0, "{block}");
    // The delivery tree, rebuilt from who delivered first and each dir's node key: the
    // producer at 0, everyone else 1 hop or more.
    let hops: Vec<u64> = block["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_u64().expect("every node's hop depth known"))
        .collect();
    assert_eq!(hops.iter().filter(|h| **h == 0).count(), 1, "{block}");
    // The producer the report names is the tree's root.
    assert_eq!(
        block["producer"].as_u64(),
        hops.iter().position(|h| *h == 0).map(|i| i as u64),
        "{block}"
    );
}
