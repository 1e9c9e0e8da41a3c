//! A node that joins after the others have built 1,000 blocks downloads them in parallel from
//! several peers, reaches their head, and its store passes `store check`. A peer that claims the
//! head but serves junk gets nothing imported and no credit; a peer on another genesis is
//! disconnected.

mod common;
use common::*;
use meshnode::chain::{Chain, ChainStore};
use meshnode::crypto::Keypair;
use meshnode::rpc::api::{AdminApiClient, BitcoinApiClient, EthApiClient, MeshnodeApiClient};
use meshnode::txpool::Mempool;
use meshnode::types::{Hash, TxBody};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BLOCKS: u64 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_syncs_1000_blocks_from_several_peers() {
    // Slots 1..=1000 lie in the past; their validators run nowhere live, so the chain the late
    // joiner must reach stays at exactly 1,000 blocks.
    let slot_ms = 100;
    let (mut net, genesis, spec) = custom_net(
        &[0, 1, 2],
        slot_ms,
        meshnode::now_ms() - (BLOCKS + 50) * slot_ms,
    );
    let tmp_path = net.tmp.path().to_path_buf();

    // Build the chain offline with the node's own producer: 5 transfers per block.
    let built = tmp_path.join("built-chain");
    let head_hash = {
        let chain = Chain::open(&built, spec.clone()).unwrap();
        let mempool = Mutex::new(Mempool::new(100));
        let mut nonces = [0u64; 5];
        for slot in 1..=BLOCKS {
            for (i, n) in nonces.iter_mut().enumerate() {
                let k = Keypair::dev_account(i as u64);
                let tx = k.sign_tx(TxBody {
                    chain_id: spec.chain_id,
                    nonce: *n,
                    from: k.public(),
                    to: Keypair::dev_account(40).address(),
                    amount: 3,
                    fee: 1,
                    data: vec![],
                });
                let v = meshnode::validation::check_tx(tx, spec.chain_id).unwrap();
                let acc = chain.store.get_account(&k.address()).unwrap();
                mempool.lock().unwrap().insert(v, acc).unwrap();
                *n += 1;
            }
            let key = Keypair::dev_validator(slot % 3);
            let me = key.address();
            let b = chain
                .produce(&key, slot, |state| {
                    mempool.lock().unwrap().select(
                        state,
                        &me,
                        meshnode::chain::PRODUCER_MAX_TXS,
                        meshnode::chain::PRODUCER_MAX_BYTES,
                    )
                })
                .unwrap()
                .unwrap()
                .into_inner();
            assert_eq!(b.txs.len(), 5);
            mempool.lock().unwrap().on_block(&b, &chain.store);
        }
        assert_eq!(chain.head().height, BLOCKS);
        chain.head().hash
    };
    // Three relay nodes start from copies of that store.
    for i in 0..3 {
        let dir = tmp_path.join(format!("node{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let st = std::process::Command::new("cp")
            .arg("-r")
            .arg(&built)
            .arg(dir.join("chain"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    for boot in [None, Some(0usize), Some(0)] {
        add_ready(&mut net, &genesis, boot, vec![]).await;
    }
    wait_peers(&net, 2).await;
    for i in 0..3 {
        assert_eq!(height(&client(&net, i)).await, BLOCKS);
    }

    // A liar claims the real head but serves junk. The late joiner first knows only the liar:
    // it asks, gets nothing it can import, and stays at genesis.
    let liar = sync_responder(
        spec.chain_id,
        vec![],
        Answers::Liar {
            genesis: spec.genesis_block().hash(),
            height: BLOCKS,
            head: head_hash,
        },
    )
    .await;
    let j = net
        .net
        .add_node(&genesis, &["--bootnode".to_string(), liar.addr.clone()])
        .unwrap();
    net.net
        .wait_ready(j, Duration::from_secs(60))
        .await
        .unwrap();
    let cj = client(&net, j);
    let rr = liar.range_requests.clone();
    wait_for(
        "the joiner to ask the liar for blocks",
        Duration::from_secs(30),
        || {
            let rr = rr.clone();
            async move { (rr.load(std::sync::atomic::Ordering::Relaxed) > 0).then_some(()) }
        },
    )
    .await;
    assert_eq!(height(&cj).await, 0, "nothing the liar served was imported");

    // Then it is joined to the three honest nodes.
    let started = Instant::now();
    for i in 0..3 {
        let a = net.net.nodes[i].info.as_ref().unwrap().listen_addrs[0].clone();
        assert!(cj.add_peer(a).await.unwrap());
    }
    wait_for(
        "the late joiner at the network's head",
        Duration::from_secs(120),
        || {
            let cj = cj.clone();
            async move { (height(&cj).await >= BLOCKS).then_some(()) }
        },
    )
    .await;
    let wall = started.elapsed().as_secs_f64();
    let liar_asked = liar
        .range_requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(cj.getbestblockhash().await.unwrap(), head_hash.to_string());
    assert_eq!(
        cj.syncing().await.unwrap(),
        serde_json::Value::Bool(false),
        "eth_syncing is false when done"
    );
    let s = cj.sync_status().await.unwrap();
    let served: Vec<(String, u64)> = s["servedBy"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, n)| (p.clone(), n.as_u64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect();
    let secs = s["lastSeconds"].as_f64().unwrap();
    let blocks = s["lastBlocks"].as_u64().unwrap();
    eprintln!(
        "synced {blocks} blocks ({} txs) in {secs:.2} s = {:.0} blocks/s (process start to head: {wall:.2} s); served by {served:?}",
        blocks * 5,
        blocks as f64 / secs
    );
    assert!(
        served.len() > 1,
        "more than one peer served blocks: {served:?}"
    );
    assert!(
        served.iter().all(|(p, _)| *p != liar.peer_id),
        "the liar is credited with blocks: {served:?}"
    );
    eprintln!("the liar was asked for {liar_asked} segments and served none that were accepted");

    // A peer on another genesis is disconnected once its Status arrives.
    let joiner_addr = cj.node_info().await.unwrap()["listenAddrs"][0]
        .as_str()
        .unwrap()
        .to_string();
    let other = sync_responder(
        spec.chain_id,
        vec![joiner_addr],
        Answers::Liar {
            genesis: Hash([1; 32]),
            height: 5,
            head: Hash([2; 32]),
        },
    )
    .await;
    let sr = other.status_requests.clone();
    wait_for(
        "the joiner to ask the other-genesis peer's Status",
        Duration::from_secs(30),
        || {
            let sr = sr.clone();
            async move { (sr.load(std::sync::atomic::Ordering::Relaxed) > 0).then_some(()) }
        },
    )
    .await;
    let oh = other.handle.clone();
    wait_for(
        "the other-genesis peer to be disconnected",
        Duration::from_secs(30),
        || {
            let oh = oh.clone();
            async move { oh.peers().await.unwrap().is_empty().then_some(()) }
        },
    )
    .await;
    assert!(!peer_ids(&cj).await.contains(&other.peer_id));
    assert_eq!(
        served.iter().map(|(_, n)| n).sum::<u64>(),
        BLOCKS,
        "every block counted once"
    );

    // Its store is sound.
    net.net.stop_node(j);
    let (store, spec) = ChainStore::open_existing(&net.net.nodes[j].dir.join("chain")).unwrap();
    let r = store.check(&spec).unwrap();
    assert_eq!((r.head_height, r.txs), (BLOCKS, BLOCKS * 5));
}
