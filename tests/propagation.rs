//! A 5-node network: a transaction submitted with `meshnode tx send` to one node reaches every
//! mempool, then a block on every node within 3 slots (visible through Bitcoin- and
//! Ethereum-style RPC).

mod common;
use common::*;
use meshnode::genesis::GenesisFile;
use meshnode::rpc::api::{BitcoinApiClient, EthApiClient};
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
}
