//! Every block validation error class, sent over gossip by a test peer connected to node 1:
//! gossip-verification Reject classes are rejected, not relayed, and the sender's gossipsub
//! score turns negative; the Ignore classes (future slot, unknown parent: IGNORE in the
//! consensus-specs p2p rules) are dropped without relay and without penalty. A valid block
//! from a test peer reaches every node, so "not relayed" can fail. A block that passes gossip
//! verification but fails its state transition (a nonce gap, an overspend) is relayed (the
//! relay decision needs no state), never imported by any node, counted, and its child is
//! refused as the child of an invalid block.
//!
//! The genesis names two validators no node holds (dev-validator:7 and 8): the test is the
//! only block producer, so the head is exactly what the test builds.

mod common;
use common::*;
use meshnode::crypto::Keypair;
use meshnode::genesis::ChainSpec;
use meshnode::p2p::TopicKind;
use meshnode::rpc::api::BitcoinApiClient;
use meshnode::types::{merkle_root, Block, BlockHeader, Hash, Signature, SignedTx, TxBody};
use meshnode::validation::MAX_BLOCK_TXS;
use std::time::Duration;

const CHAIN: u64 = 1337;

fn transfer(from: u64, nonce: u64, amount: u64) -> SignedTx {
    let k = Keypair::dev_account(from);
    k.sign_tx(TxBody {
        chain_id: CHAIN,
        nonce,
        from: k.public(),
        to: Keypair::dev_account(50).address(),
        amount,
        fee: 1,
        data: vec![],
    })
}

fn validator_of(slot: u64) -> Keypair {
    Keypair::dev_validator(7 + slot % 2)
}

/// A valid block on `parent` in the current slot (plus `ahead`), signed by its validator.
fn valid_block(
    spec: &ChainSpec,
    parent: &BlockHeader,
    parent_hash: Hash,
    ahead: u64,
    txs: Vec<SignedTx>,
) -> Block {
    let slot = spec.slot_at(meshnode::now_ms()).max(parent.slot + 1) + ahead;
    let start = spec.slot_start_ms(slot);
    let key = validator_of(slot);
    let hashes: Vec<Hash> = txs.iter().map(SignedTx::hash).collect();
    let mut b = Block {
        header: BlockHeader {
            chain_id: CHAIN,
            height: parent.height + 1,
            slot,
            parent: parent_hash,
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

fn resign(mut b: Block) -> Block {
    validator_of(b.header.slot).sign_block(&mut b);
    b
}

async fn counters(net: &TestNet) -> Vec<(u64, u64, u64)> {
    let mut v = Vec::new();
    for i in 0..3 {
        v.push(gossip_counters(&client(net, i)).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_block_error_class_is_rejected_not_relayed_and_penalised() {
    let (mut net, genesis, spec) = custom_net(&[7, 8], 500, meshnode::now_ms());
    for boot in [None, Some(0usize), Some(0)] {
        add_ready(&mut net, &genesis, boot, vec![]).await;
    }
    wait_peers(&net, 2).await;
    let c: Vec<_> = (0..3).map(|i| client(&net, i)).collect();

    // Positive control: a valid block with a transaction, from a test peer, reaches everyone.
    let gen = spec.genesis_block();
    let b1 = valid_block(&spec, &gen.header, gen.hash(), 0, vec![transfer(0, 0, 10)]);
    let tp = test_peer(&net, 1, CHAIN).await;
    tp.handle
        .publish(TopicKind::Block, b1.to_bytes())
        .await
        .unwrap();
    for (i, ci) in c.iter().enumerate() {
        let ci = ci.clone();
        wait_for(
            &format!("the valid block at node{i}"),
            Duration::from_secs(30),
            || {
                let ci = ci.clone();
                async move { (height(&ci).await == 1).then_some(()) }
            },
        )
        .await;
    }
    drop(tp);
    let (p, ph) = (b1.header.clone(), b1.hash());
    // Crafted blocks use the current slot: let the slot after b1's begin, so that none of them
    // is a future slot by accident (the future-slot case asks for one on purpose).
    let after_b1 = p.slot + 1;
    wait_for("the slot after b1's", Duration::from_secs(10), || {
        let now = spec.slot_at(meshnode::now_ms());
        async move { (now >= after_b1).then_some(()) }
    })
    .await;

    type Case = (&'static str, bool, Box<dyn Fn() -> Block>);
    let s = spec.clone();
    let cases: Vec<Case> = vec![
        (
            "wrong chain id",
            true,
            Box::new({
                let (s, p) = (s.clone(), p.clone());
                move || {
                    let mut b = valid_block(&s, &p, ph, 0, vec![]);
                    b.header.chain_id = 999;
                    resign(b)
                }
            }),
        ),
        (
            "producer not scheduled for the slot",
            true,
            Box::new({
                let (s, p) = (s.clone(), p.clone());
                move || {
                    let mut b = valid_block(&s, &p, ph, 0, vec![]);
                    let other = Keypair::dev_validator(7 + (b.header.slot + 1) % 2);
                    b.header.producer = other.public();
                    other.sign_block(&mut b);
                    b
                }
            }),
        ),
        (
            "slot not after the parent's",
            true,
            Box::new({
                let p = p.clone();
                move || {
                    let mut b = valid_block(&s, &p, ph, 0, vec![]);
                    b.header.slot = p.slot;
                    b.header.timestamp_ms = s.slot_start_ms(p.slot);
                    resign(b)
                }
            }),
        ),
        (
            "bad header signature",
            true,
            Box::new({
                let (s, p) = (spec.clone(), p.clone());
                move || {
                    let mut b = valid_block(&s, &p, ph, 0, vec![]);
                    b.signature.0[5] ^= 1;
                    b
                }
            }),
        ),
        (
            "tx_root mismatch",
            true,
            Box::new({
                let (s, p) = (spec.clone(), p.clone());
                move || {
                    let mut b = valid_block(&s, &p, ph, 0, vec![transfer(1, 0, 5)]);
                    b.header.tx_root = Hash([7; 32]);
                    resign(b)
                }
            }),
        ),
        (
            "tx_count mismatch",
            true,
            Box::new({
                let (s, p) = (spec.clone(), p.clone());
                move || {
                    let mut b = valid_block(&s, &p, ph, 0, vec![transfer(1, 0, 5)]);
                    b.header.tx_count = 2;
                    resign(b)
                }
            }),
        ),
        (
            "oversize block",
            true,
            Box::new({
                let (s, p) = (spec.clone(), p.clone());
                move || {
                    let tx = transfer(1, 0, 5);
                    valid_block(&s, &p, ph, 0, vec![tx; MAX_BLOCK_TXS + 1])
                }
            }),
        ),
        (
            "duplicate transaction",
            true,
            Box::new({
                let (s, p) = (spec.clone(), p.clone());
                move || {
                    let tx = transfer(1, 0, 5);
                    valid_block(&s, &p, ph, 0, vec![tx.clone(), tx])
                }
            }),
        ),
        (
            "transaction with a bad signature",
            true,
            Box::new({
                let (s, p) = (spec.clone(), p.clone());
                move || {
                    let mut tx = transfer(1, 0, 5);
                    tx.signature.0[3] ^= 1;
                    valid_block(&s, &p, ph, 0, vec![tx])
                }
            }),
        ),
        (
            "slot too far in the future",
            false,
            Box::new({
                let (s, p) = (spec.clone(), p.clone());
                move || valid_block(&s, &p, ph, 20, vec![])
            }),
        ),
        (
            "unknown parent",
            false,
            Box::new({
                let (s, p) = (spec.clone(), p.clone());
                move || valid_block(&s, &p, Hash([9; 32]), 0, vec![])
            }),
        ),
    ];

    for (name, reject, make) in cases {
        let tp = test_peer(&net, 1, CHAIN).await;
        let before = counters(&net).await;
        let b = make();
        tp.handle
            .publish(TopicKind::Block, b.to_bytes())
            .await
            .unwrap();
        let c1 = c[1].clone();
        let (r0, i0) = (before[1].1, before[1].2);
        wait_for(
            &format!("node1's verdict on: {name}"),
            Duration::from_secs(30),
            || {
                let c1 = c1.clone();
                async move {
                    let (_, r, i) = gossip_counters(&c1).await;
                    (r > r0 || i > i0).then_some(())
                }
            },
        )
        .await;
        let after = counters(&net).await;
        let rejected = after[1].1 > before[1].1;
        assert_eq!(
            rejected,
            reject,
            "{name}: expected {}",
            if reject { "Reject" } else { "Ignore" }
        );
        let score = score_of(&c[1], &tp.peer_id).await.unwrap_or(0.0);
        if reject {
            assert!(score < 0.0, "{name}: sender not penalised (score {score})");
        } else {
            assert!(
                score >= 0.0,
                "{name}: an Ignore must not penalise (score {score})"
            );
        }
        for i in [0, 2] {
            assert_eq!(after[i], before[i], "{name}: node{i} received it (relayed)");
            assert!(
                c[i].getblock(b.hash().to_string(), Some(1)).await.is_err(),
                "{name}: node{i} has the block"
            );
        }
        assert_eq!(height(&c[1]).await, 1, "{name}: node1's head moved");
        eprintln!(
            "{name}: {} by node1, sender score {score:.1}, not relayed",
            if rejected { "rejected" } else { "ignored" }
        );
    }
}

async fn relayed_not_imported(c: &jsonrpsee::http_client::HttpClient) -> u64 {
    use meshnode::rpc::api::MeshnodeApiClient;
    c.node_info().await.unwrap()["gossip"]["relayedNotImported"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_fails_its_state_transition_is_relayed_never_imported_and_counted() {
    use meshnode::rpc::api::MeshnodeApiClient;
    let (mut net, genesis, spec) = custom_net(&[7, 8], 500, meshnode::now_ms());
    for boot in [None, Some(0usize), Some(0)] {
        add_ready(&mut net, &genesis, boot, vec![]).await;
    }
    wait_peers(&net, 2).await;
    let c: Vec<_> = (0..3).map(|i| client(&net, i)).collect();
    let gen = spec.genesis_block();
    let cases: [(&str, SignedTx); 2] = [
        ("a nonce gap", transfer(1, 5, 5)),
        ("an overspend", transfer(1, 0, u64::MAX / 2)),
    ];
    for (n, (name, tx)) in cases.into_iter().enumerate() {
        let tp = test_peer(&net, 1, CHAIN).await;
        let b = valid_block(&spec, &gen.header, gen.hash(), 0, vec![tx]);
        let hash = b.hash().to_string();
        tp.handle
            .publish(TopicKind::Block, b.to_bytes())
            .await
            .unwrap();
        // Every node received it (node 1 relayed it before trying its state transition) and
        // counted it as relayed but not imported.
        for (i, ci) in c.iter().enumerate() {
            let ci = ci.clone();
            wait_for(
                &format!("{name}: node{i} to count the block as relayed, not imported"),
                Duration::from_secs(30),
                || {
                    let ci = ci.clone();
                    async move { (relayed_not_imported(&ci).await > n as u64).then_some(()) }
                },
            )
            .await;
            let a = c[i].block_arrival(hash.clone()).await.unwrap().unwrap();
            assert!(a.first_seen_us.is_some(), "{name}: node{i} never saw it");
            assert!(a.relayed_us.is_some(), "{name}: node{i} did not pass it on");
            assert!(a.validated_us.is_none(), "{name}: node{i} imported it");
            assert!(
                c[i].getblock(hash.clone(), Some(1)).await.is_err(),
                "{name}: node{i} has the block"
            );
            assert_eq!(height(&c[i]).await, 0, "{name}: node{i}'s head moved");
        }
        let score = score_of(&c[1], &tp.peer_id).await.unwrap_or(0.0);
        assert!(
            score >= 0.0,
            "{name}: the relaying peer is not at fault (score {score})"
        );
        // Its child is refused: the parent is known to be invalid.
        let (_, r0, _) = gossip_counters(&c[1]).await;
        let child = valid_block(&spec, &b.header, b.hash(), 0, vec![]);
        tp.handle
            .publish(TopicKind::Block, child.to_bytes())
            .await
            .unwrap();
        let c1 = c[1].clone();
        wait_for(
            &format!("{name}: node1 to reject the child"),
            Duration::from_secs(30),
            || {
                let c1 = c1.clone();
                async move { (gossip_counters(&c1).await.1 > r0).then_some(()) }
            },
        )
        .await;
        eprintln!("{name}: relayed to every node, imported by none, counted; child rejected");
        drop(tp);
    }
    let info = c[1].node_info().await.unwrap();
    assert_eq!(info["gossip"]["relayedNotImported"], 2);
}
