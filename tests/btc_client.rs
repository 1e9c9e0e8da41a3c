//! A published Bitcoin Core RPC client library (python-bitcoinrpc's AuthServiceProxy, pinned)
//! drives the Bitcoin-family methods of a live node with JSON-RPC 1.x bodies: submission,
//! mempool, blocks at every verbosity, headers, raw transactions, mempool info and entries,
//! testmempoolaccept, network info, uptime, help, peers, chain tips, a batch, and Bitcoin's
//! error codes; authenticated with the node's cookie as Bitcoin clients do.

mod common;
use common::*;
use meshnode::crypto::Keypair;
use meshnode::types::TxBody;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_bitcoinrpc_drives_the_bitcoin_methods() {
    let net = start_net(3, 3, 500).await;
    wait_peers(&net, 2).await;
    let k = Keypair::dev_account(4);
    let tx = k.sign_tx(TxBody {
        chain_id: 1337,
        nonce: 0,
        from: k.public(),
        to: Keypair::dev_account(9).address(),
        amount: 77,
        fee: 3,
        data: vec![],
    });
    let (raw, txid) = (hex::encode(tx.to_bytes()), tx.hash().to_string());
    let mut stale_body = tx.body.clone();
    stale_body.amount = 78;
    let stale = hex::encode(k.sign_tx(stale_body).to_bytes());
    let cookie = std::fs::read_to_string(net.net.nodes[2].dir.join(".cookie")).unwrap();
    let out = run_client_script(
        "bitcoin_check.py",
        &[
            net.net.nodes[2].rpc_url(),
            &raw,
            &txid,
            cookie.trim(),
            &stale,
        ],
    )
    .await;
    eprintln!("{out}");
}
