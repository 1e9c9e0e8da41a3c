//! A published Ethereum client library (web3.py, pinned) reads a live node: chain id, block
//! number, blocks with and without full transactions, a transaction and its receipt, a dev
//! account's balance and nonce, the peer count, block transaction counts, geth's txpool and
//! admin namespaces, and eth_subscribe over WebSocket — with no parse error anywhere.

mod common;
use common::*;
use meshnode::crypto::Keypair;
use meshnode::rpc::api::EthApiClient;
use meshnode::rpc::client::send_transfer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web3_py_reads_a_live_node() {
    let net = start_net(3, 3, 500).await;
    wait_peers(&net, 2).await;
    let url = net.net.nodes[1].rpc_url().to_string();
    let hash = format!(
        "0x{}",
        send_transfer(&url, "dev:3", "dev:8", 4242, 2, None)
            .await
            .unwrap()
    );
    let c = client(&net, 1);
    wait_for("the transaction's receipt", Duration::from_secs(30), || {
        let (c, hash) = (c.clone(), hash.clone());
        async move { c.get_transaction_receipt(hash).await.unwrap().map(|_| ()) }
    })
    .await;
    let sender = Keypair::dev_account(3).address().to_string();
    let recipient = Keypair::dev_account(8).address().to_string();
    // A transaction behind a nonce gap stays queued (txpool_content's "queued").
    let queued = Keypair::dev_account(6).address().to_string();
    send_transfer(&url, "dev:6", "dev:8", 1, 1, Some(5))
        .await
        .unwrap();
    // Keep transactions flowing for the newPendingTransactions subscription.
    let feeder = {
        let url = net.net.nodes[0].rpc_url().to_string();
        tokio::spawn(async move {
            for _ in 0..600 {
                let _ = send_transfer(&url, "dev:11", "dev:12", 1, 1, None).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let out = run_client_script(
        "web3_check.py",
        &[&url, &hash, &sender, &recipient, "4242", "1337", &queued],
    )
    .await;
    feeder.abort();
    eprintln!("{out}");
}
