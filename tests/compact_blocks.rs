//! Compact block relay (BIP152 after) against real node processes. In-process test peers
//! (meshnode's own network stack, connected to one node) publish crafted compact blocks and
//! answer — or do not answer — the node's `getblocktxn` (BlockTxs) and full-block
//! (BlocksByHash) requests.
//!
//! The genesis names two validators no node holds (dev-validator:7 and 8): the test is the
//! only block producer.

mod common;
use common::*;
use meshnode::crypto::Keypair;
use meshnode::genesis::ChainSpec;
use meshnode::p2p::codec::{Status, SyncRequest, SyncResponse};
use meshnode::p2p::{NetworkEvent, NetworkHandle, TopicKind};
use meshnode::rpc::api::{BitcoinApiClient, MeshnodeApiClient};
use meshnode::types::{
    encoding, merkle_root, Block, BlockHeader, CompactBlock, Hash, Signature, SignedTx, TxBody,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHAIN: u64 = 1337;

fn transfer(from: u64, nonce: u64) -> SignedTx {
    let k = Keypair::dev_account(from);
    k.sign_tx(TxBody {
        chain_id: CHAIN,
        nonce,
        from: k.public(),
        to: Keypair::dev_account(50).address(),
        amount: 7,
        fee: 1,
        data: vec![],
    })
}

/// A valid block on genesis in the current slot (plus `ahead`), signed by its validator.
fn block_on_genesis(spec: &ChainSpec, txs: Vec<SignedTx>) -> Block {
    let g = spec.genesis_block();
    let slot = spec.slot_at(meshnode::now_ms()).max(1);
    let start = spec.slot_start_ms(slot);
    let key = Keypair::dev_validator(7 + slot % 2);
    let hashes: Vec<Hash> = txs.iter().map(SignedTx::hash).collect();
    let mut b = Block {
        header: BlockHeader {
            chain_id: CHAIN,
            height: 1,
            slot,
            parent: g.hash(),
            timestamp_ms: meshnode::now_ms().clamp(start, start + spec.slot_ms - 1),
            producer: key.public(),
            tx_root: merkle_root(&hashes),
            tx_count: txs.len() as u32,
        },
        signature: Signature([0; 64]),
        txs,
    };
    key.sign_block(&mut b);
    b
}

/// How a [`ServingPeer`] answers a request: `None` keeps the request open forever (the
/// requester times out).
type Answer = Arc<dyn Fn(&SyncRequest) -> Option<SyncResponse> + Send + Sync>;

/// An in-process peer connected to one node that answers sync requests with `answer` and
/// records every request.
struct ServingPeer {
    handle: NetworkHandle,
    requests: Arc<Mutex<Vec<SyncRequest>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serving_peer(net: &TestNet, i: usize, genesis: Hash, answer: Answer) -> ServingPeer {
    let target = net.net.nodes[i].info.clone().unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let cfg = meshnode::p2p::NetworkConfig {
        chain_id: CHAIN,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootnodes: vec![target.listen_addrs[0].parse().unwrap()],
        peers: meshnode::p2p::PeerConfig::static_only(),
        queue_len: 64,
        idontwant: true,
        ban_time: meshnode::p2p::bans::DEFAULT_BAN_TIME,
        shape: None,
        port_reuse: false,
    };
    let key = libp2p::identity::Keypair::generate_ed25519();
    let (handle, mut chans, _task) = meshnode::p2p::start(key, cfg, async move {
        let _ = stop_rx.await;
    })
    .unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let (h, reqs) = (handle.clone(), requests.clone());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(ev) = chans.events.recv().await {
            if let NetworkEvent::SyncRequest {
                request, channel, ..
            } = ev
            {
                let resp = match &request {
                    SyncRequest::Status => Some(SyncResponse::Status(Status {
                        genesis,
                        head_height: 0,
                        head_hash: genesis,
                    })),
                    // Mempool reconciliation on connect: an empty pool, not recorded.
                    SyncRequest::PooledHashes => Some(SyncResponse::Hashes(vec![])),
                    other => {
                        reqs.lock().unwrap().push(other.clone());
                        answer(other)
                    }
                };
                match resp {
                    Some(r) => h.respond(channel, r).await,
                    None => held.push(channel),
                }
            }
        }
    });
    wait_in_block_mesh(&handle, &target.peer_id, &format!("node{i}")).await;
    ServingPeer {
        handle,
        requests,
        _stop: stop,
    }
}

/// Answers BlockTxs and BlocksByHash from `block`.
fn serves(block: Block) -> Answer {
    Arc::new(move |r| match r {
        SyncRequest::BlockTxs { indexes, .. } => Some(SyncResponse::Txs(
            indexes
                .iter()
                .map(|i| block.txs[*i as usize].clone())
                .collect(),
        )),
        SyncRequest::BlocksByHash(_) => Some(SyncResponse::Blocks(vec![block.to_bytes()])),
        _ => Some(SyncResponse::Blocks(vec![])),
    })
}

async fn wait_height(c: &jsonrpsee::http_client::HttpClient, what: &str, h: u64) {
    let c = c.clone();
    wait_for(what, Duration::from_secs(30), || {
        let c = c.clone();
        async move { (height(&c).await >= h).then_some(()) }
    })
    .await;
}

async fn start(nodes: usize) -> (TestNet, ChainSpec) {
    let (mut net, genesis, spec) = custom_net(&[7, 8], 500, meshnode::now_ms());
    add_ready(&mut net, &genesis, None, vec![]).await;
    for _ in 1..nodes {
        add_ready(&mut net, &genesis, Some(0), vec![]).await;
    }
    if nodes > 1 {
        wait_peers(&net, nodes - 1).await;
    }
    (net, spec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_transactions_are_fetched_from_the_sender_and_relayed_on() {
    let (net, spec) = start(3).await;
    let c: Vec<_> = (0..3).map(|i| client(&net, i)).collect();
    // Two transactions every pool has, two nobody has.
    let known = [transfer(1, 0), transfer(2, 0)];
    for tx in &known {
        c[0].sendrawtransaction(hex::encode(encoding::encode(tx)))
            .await
            .unwrap();
    }
    for (i, ci) in c.iter().enumerate() {
        let ci = ci.clone();
        wait_for(
            &format!("node{i}'s mempool to hold both"),
            Duration::from_secs(30),
            || {
                let ci = ci.clone();
                async move { (mempool(&ci).await.len() == 2).then_some(()) }
            },
        )
        .await;
    }
    let b = block_on_genesis(
        &spec,
        vec![
            known[0].clone(),
            transfer(3, 0),
            known[1].clone(),
            transfer(4, 0),
        ],
    );
    let sender = serving_peer(&net, 1, spec.genesis_block().hash(), serves(b.clone())).await;
    let cb = CompactBlock::from_block(&b, 42, |_, _| false);
    sender
        .handle
        .publish(TopicKind::CompactBlock, encoding::encode(&cb))
        .await
        .unwrap();
    for (i, ci) in c.iter().enumerate() {
        wait_height(ci, &format!("node{i} to import the block"), 1).await;
        assert_eq!(ci.getblockhash(1).await.unwrap(), b.hash().to_string());
    }
    // Node 1 asked the sender for exactly the two it lacked, once; nothing else.
    let reqs = sender.requests.lock().unwrap().clone();
    assert_eq!(
        reqs,
        vec![SyncRequest::BlockTxs {
            block: b.hash(),
            indexes: vec![1, 3]
        }],
        "one getblocktxn for positions 1 and 3"
    );
    let a = c[1]
        .block_arrival(b.hash().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.rebuilt_without_roundtrip, Some(false));
    assert_eq!(a.fetched_txs, 2);
    assert!(!a.full_block_fallback);
    // Nodes 0 and 2 got the compact block from node 1 (the sender knows only node 1) and
    // fetched the two from it: node 1 serves a block it relayed.
    for i in [0, 2] {
        let a = c[i]
            .block_arrival(b.hash().to_string())
            .await
            .unwrap()
            .unwrap();
        assert!(
            a.rebuilt_without_roundtrip.is_some(),
            "node{i} got it compact"
        );
        assert!(a.validated_us.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_sender_is_replaced_by_another_peer_and_a_wrong_answer_by_the_full_block() {
    let (net, spec) = start(1).await;
    let c = client(&net, 0);
    let genesis = spec.genesis_block().hash();
    let b = block_on_genesis(&spec, vec![transfer(5, 0), transfer(6, 0)]);
    // The sender never answers; the helper has the block.
    let silent = serving_peer(&net, 0, genesis, Arc::new(|_| None)).await;
    let helper = serving_peer(&net, 0, genesis, serves(b.clone())).await;
    let cb = CompactBlock::from_block(&b, 7, |_, _| false);
    silent
        .handle
        .publish(TopicKind::CompactBlock, encoding::encode(&cb))
        .await
        .unwrap();
    wait_height(&c, "the block from the helper", 1).await;
    assert_eq!(c.getblockhash(1).await.unwrap(), b.hash().to_string());
    assert!(
        !silent.requests.lock().unwrap().is_empty(),
        "the sender was asked first"
    );
    assert!(
        matches!(
            helper.requests.lock().unwrap()[..],
            [SyncRequest::BlockTxs { .. }]
        ),
        "then the other peer"
    );
    let a = c
        .block_arrival(b.hash().to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a.fetched_txs, a.full_block_fallback), (2, false));

    // Next block: the sender answers getblocktxn with the wrong transactions (their short
    // ids do not match): the node falls back to the full block.
    let g = spec.genesis_block();
    let mut b2 = block_on_genesis(&spec, vec![transfer(5, 1), transfer(6, 1)]);
    // On top of b, in a later slot.
    let slot = b.header.slot + 1;
    wait_for("the next slot", Duration::from_secs(10), || {
        let now = spec.slot_at(meshnode::now_ms());
        async move { (now >= slot).then_some(()) }
    })
    .await;
    let start = spec.slot_start_ms(slot);
    b2.header.height = 2;
    b2.header.slot = slot;
    b2.header.parent = b.hash();
    b2.header.timestamp_ms = meshnode::now_ms().clamp(start, start + spec.slot_ms - 1);
    b2.header.producer = Keypair::dev_validator(7 + slot % 2).public();
    Keypair::dev_validator(7 + slot % 2).sign_block(&mut b2);
    let _ = g;
    let b2c = b2.clone();
    let liar = serving_peer(
        &net,
        0,
        genesis,
        Arc::new(move |r| match r {
            SyncRequest::BlockTxs { indexes, .. } => Some(SyncResponse::Txs(
                indexes.iter().map(|_| transfer(9, 0)).collect(),
            )),
            SyncRequest::BlocksByHash(_) => Some(SyncResponse::Blocks(vec![b2c.to_bytes()])),
            _ => None,
        }),
    )
    .await;
    let cb2 = CompactBlock::from_block(&b2, 8, |_, _| false);
    liar.handle
        .publish(TopicKind::CompactBlock, encoding::encode(&cb2))
        .await
        .unwrap();
    wait_height(&c, "the second block via the full-block fallback", 2).await;
    let a = c
        .block_arrival(b2.hash().to_string())
        .await
        .unwrap()
        .unwrap();
    assert!(a.full_block_fallback, "{a:?}");
    assert!(liar
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|r| matches!(r, SyncRequest::BlocksByHash(h) if h == &vec![b2.hash()])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_compact_blocks_get_their_verdicts_and_collisions_fall_back() {
    let (net, spec) = start(1).await;
    let c = client(&net, 0);
    let genesis = spec.genesis_block().hash();
    let good = block_on_genesis(&spec, vec![transfer(11, 0), transfer(12, 0)]);
    // (name, bytes, expected verdict: true = Reject, false = Ignore)
    let mut bad_sig = CompactBlock::from_block(&good, 1, |_, _| false);
    bad_sig.signature.0[0] ^= 1;
    let mut wrong_slot = CompactBlock::from_block(&good, 1, |_, _| false);
    // Signed by the validator whose slot this is not.
    let other = Keypair::dev_validator(7 + (wrong_slot.header.slot + 1) % 2);
    wrong_slot.header.producer = other.public();
    wrong_slot.signature = other.sign(&wrong_slot.header.signing_bytes());
    let mut unknown_parent = good.clone();
    unknown_parent.header.parent = Hash([5; 32]);
    Keypair::dev_validator(7 + good.header.slot % 2).sign_block(&mut unknown_parent);
    let unknown_parent = CompactBlock::from_block(&unknown_parent, 1, |_, _| false);
    let mut out_of_range = CompactBlock::from_block(&good, 1, |i, _| i == 0);
    out_of_range.prefilled[0].index = 5;
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("bad producer signature", encoding::encode(&bad_sig), true),
        (
            "producer not scheduled for the slot",
            encoding::encode(&wrong_slot),
            true,
        ),
        (
            "prefilled index out of range",
            encoding::encode(&out_of_range),
            true,
        ),
        (
            "truncated bytes",
            encoding::encode(&bad_sig)[..40].to_vec(),
            true,
        ),
        ("unknown parent", encoding::encode(&unknown_parent), false),
    ];
    for (name, bytes, reject) in cases {
        // A fresh peer each time: gossipsub's invalid-delivery penalty grows with its square.
        let peer = serving_peer(&net, 0, genesis, serves(good.clone())).await;
        let (_, r0, i0) = gossip_counters(&c).await;
        peer.handle
            .publish(TopicKind::CompactBlock, bytes)
            .await
            .unwrap();
        let (r, i) = wait_for(
            &format!("the verdict on: {name}"),
            Duration::from_secs(30),
            || {
                let c = c.clone();
                async move {
                    let (_, r, i) = gossip_counters(&c).await;
                    (r > r0 || i > i0).then_some((r, i))
                }
            },
        )
        .await;
        assert_eq!(
            r > r0,
            reject,
            "{name}: Reject expected: {reject} (rejected {r0}->{r}, ignored {i0}->{i})"
        );
        assert_eq!(height(&c).await, 0, "{name}: imported");
        assert!(
            peer.requests.lock().unwrap().is_empty(),
            "{name}: nothing fetched for a block that fails its checks"
        );
        eprintln!("{name}: {}", if reject { "rejected" } else { "ignored" });
    }
    let peer = serving_peer(&net, 0, genesis, serves(good.clone())).await;
    // Two equal short ids: a collision, so the node fetches the full block (BIP152).
    let mut collide = CompactBlock::from_block(&good, 3, |_, _| false);
    collide.short_ids[1] = collide.short_ids[0];
    peer.handle
        .publish(TopicKind::CompactBlock, encoding::encode(&collide))
        .await
        .unwrap();
    wait_height(&c, "the block via the full-block fallback", 1).await;
    let a = c
        .block_arrival(good.hash().to_string())
        .await
        .unwrap()
        .unwrap();
    assert!(a.full_block_fallback, "{a:?}");
    assert!(peer
        .requests
        .lock()
        .unwrap()
        .iter()
        .any(|r| matches!(r, SyncRequest::BlocksByHash(_))));
    // The node is alive and serving.
    assert_eq!(c.getblockhash(1).await.unwrap(), good.hash().to_string());
}
