//! What `getpeerinfo` says about each peer, and the application score behind it
//! (gossipsub v1.1 P5, `src/p2p/score.rs`): a peer that serves junk for a range it claims
//! loses a whole point per bad reply; a peer that never answers loses a tenth per failed
//! request (timed out, or cut off by the peer's own request timeout); an honest peer keeps 0
//! and shows its traffic (Bitcoin Core's `bytessent`, `bytesrecv`, `lastsend`, `lastrecv`);
//! lifting a ban by RPC starts a peer again at 0.

mod common;
use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use meshnode::rpc::api::BitcoinApiClient;
use meshnode::types::Hash;
use serde_json::Value;
use std::time::Duration;

const CHAIN_ID: u64 = 1337;

/// `peer`'s `getpeerinfo` entry at node `c`, if connected.
async fn entry(c: &jsonrpsee::http_client::HttpClient, peer: &str) -> Option<Value> {
    c.getpeerinfo()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p["peer_id"] == peer)
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn getpeerinfo_shows_traffic_and_the_scores_of_liars_and_silent_peers() {
    let net = start_net(2, 1, 1000).await;
    wait_peers(&net, 1).await;
    let c0 = client(&net, 0);
    let node0 = net.net.nodes[0].info.as_ref().unwrap().listen_addrs[0].clone();
    let genesis: Hash = c0.getblockhash(0).await.unwrap().parse().unwrap();

    // A liar claims a head far ahead and serves undecodable junk for it; a silent peer
    // answers nothing, so node0's requests to it fail after 20 s (timed out, or closed by the
    // peer's own inbound timeout).
    let liar = sync_responder(
        CHAIN_ID,
        vec![node0.clone()],
        Answers::Liar {
            genesis,
            height: 1_000_000,
            head: Hash([9; 32]),
        },
    )
    .await;
    let silent = test_peer(&net, 0, CHAIN_ID).await;

    let seen = wait_for(
        "the liar's application score to fall by a bad reply",
        Duration::from_secs(60),
        || {
            let c0 = c0.clone();
            let id = liar.peer_id.clone();
            async move {
                entry(&c0, &id)
                    .await
                    .filter(|e| e["app_score"].as_f64().unwrap() <= -0.9)
            }
        },
    )
    .await;
    eprintln!("liar: {seen}");
    // Gossipsub weighs the application score ×10.
    assert!(seen["gossip_score"].as_f64().unwrap() <= -8.0, "{seen}");
    assert!(seen["bytesrecv"].as_u64().unwrap() > 0, "{seen}");

    let seen = wait_for(
        "a request to the silent peer to fail",
        Duration::from_secs(60),
        || {
            let c0 = c0.clone();
            let id = silent.peer_id.clone();
            async move {
                entry(&c0, &id)
                    .await
                    .filter(|e| e["app_score"].as_f64().unwrap() < 0.0)
            }
        },
    )
    .await;
    eprintln!("silent: {seen}");
    let app = seen["app_score"].as_f64().unwrap();
    // One failed request (or two, if two were in flight), each a tenth of a bad reply.
    assert!((-0.21..=-0.09).contains(&app), "{seen}");
    assert_eq!(seen["score_state"], "healthy", "{seen}");
    // Failures reach gossipsub only past a tolerance: its mesh keeps the peer.
    assert!(seen["gossip_score"].as_f64().unwrap() >= 0.0, "{seen}");

    // The honest peer: traffic both ways within the last seconds, no penalty.
    let node1 = net.net.nodes[1].info.as_ref().unwrap().peer_id.clone();
    let honest = entry(&c0, &node1).await.expect("node1 connected to node0");
    eprintln!("honest: {honest}");
    let now = unix_secs();
    for (field, min) in [("bytessent", 1), ("bytesrecv", 1)] {
        assert!(honest[field].as_u64().unwrap() >= min, "{field}: {honest}");
    }
    for field in ["lastsend", "lastrecv"] {
        let t = honest[field].as_u64().unwrap();
        // Blocks every second and pings keep both fresh.
        assert!(
            t + 30 >= now && t <= now + 1,
            "{field} {t}, now {now}: {honest}"
        );
    }
    assert_eq!(honest["app_score"].as_f64().unwrap(), 0.0, "{honest}");
    assert_eq!(honest["score_state"], "healthy", "{honest}");

    // A ban by RPC, then lifted: the silent peer comes back with its score reset to 0, its
    // failed request forgiven.
    c0.request::<Value, _>("setban", rpc_params![silent.peer_id.clone(), "add"])
        .await
        .unwrap();
    wait_for("the banned peer gone", Duration::from_secs(10), || {
        let c0 = c0.clone();
        let id = silent.peer_id.clone();
        async move { entry(&c0, &id).await.is_none().then_some(()) }
    })
    .await;
    c0.request::<Value, _>("setban", rpc_params![silent.peer_id.clone(), "remove"])
        .await
        .unwrap();
    silent.handle.dial(node0.parse().unwrap()).await.unwrap();
    let back = wait_for("the unbanned peer back", Duration::from_secs(60), || {
        let c0 = c0.clone();
        let id = silent.peer_id.clone();
        async move { entry(&c0, &id).await }
    })
    .await;
    eprintln!("silent, unbanned: {back}");
    assert_eq!(back["app_score"].as_f64().unwrap(), 0.0, "{back}");
}
