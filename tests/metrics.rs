//! Prometheus metrics of a node in a running devnet, scraped and parsed by the Prometheus
//! project's own parser (Python `prometheus_client`, OpenMetrics): gossipsub, Kademlia,
//! identify, swarm, bandwidth and node metrics are present; the arrival latency histogram
//! counts exactly the blocks the node saw first by gossip; every metric the Grafana dashboard
//! in `deploy/grafana/` queries is exported.

mod common;

use common::*;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use meshnode::rpc::api::BitcoinApiClient;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

/// Scrapes `url` through `tests/clients/metrics_parse.py`.
async fn scrape(url: &str) -> Value {
    let py = tokio::task::spawn_blocking(|| python_with(&["prometheus-client==0.21.1"]))
        .await
        .unwrap();
    let out = tokio::process::Command::new(&py)
        .arg(repo_path("tests/clients/metrics_parse.py"))
        .arg(url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "metrics_parse.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn family<'a>(m: &'a Value, name: &str) -> &'a Value {
    let f = &m["families"][name];
    assert!(
        f.is_object(),
        "no metric family {name}; families: {:?}",
        m["families"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>()
    );
    f
}

/// The value of the sample `sample` of family `name` (the first one, whatever its labels).
fn sample(m: &Value, name: &str, sample: &str) -> f64 {
    family(m, name)["samples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s[0] == sample)
        .unwrap_or_else(|| panic!("no sample {sample} in {name}"))[2]
        .as_f64()
        .unwrap()
}

/// Blocks at heights 1..=`head` that node `c` first saw by gossip before they were
/// validated: what the arrival latency histogram observes.
async fn seen_by_gossip(c: &jsonrpsee::http_client::HttpClient, head: u64) -> u64 {
    let mut n = 0;
    for h in 1..=head {
        let hash = c.getblockhash(h).await.unwrap();
        let a: Value = c
            .request("meshnode_blockArrival", rpc_params![hash])
            .await
            .unwrap();
        if let (Some(seen), Some(valid)) = (a["firstSeenUs"].as_u64(), a["validatedUs"].as_u64()) {
            if seen <= valid {
                n += 1;
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn a_devnet_nodes_metrics_parse_and_count_the_blocks_it_saw() {
    let net = start_net_with(3, 1, 500, &["--metrics", "127.0.0.1:0"]).await;
    let c = client(&net, 1);
    wait_for("node1 at height 4", Duration::from_secs(60), || async {
        (height(&c).await >= 4).then_some(())
    })
    .await;
    let url = net.net.nodes[1]
        .info
        .as_ref()
        .unwrap()
        .metrics_url
        .clone()
        .expect("node.json names metrics_url");

    // The histogram and the node's own arrival records agree (a block committed between
    // the scrape and the count is retried).
    let mut last = String::new();
    let mut m = Value::Null;
    for _ in 0..20 {
        m = scrape(&url).await;
        let head = sample(&m, "meshnode_head_height", "meshnode_head_height") as u64;
        let count = sample(
            &m,
            "meshnode_block_arrival_latency_seconds",
            "meshnode_block_arrival_latency_seconds_count",
        ) as u64;
        let seen = seen_by_gossip(&c, head).await;
        if count == seen && seen >= 3 {
            last.clear();
            break;
        }
        last = format!("head {head}: histogram counts {count}, node saw {seen} by gossip");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(last.is_empty(), "{last}");
    assert!(
        m["content_type"]
            .as_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{}",
        m["content_type"]
    );
    assert_eq!(
        family(&m, "meshnode_block_arrival_latency_seconds")["type"],
        "histogram"
    );
    assert!(
        sample(
            &m,
            "meshnode_block_relay_seconds",
            "meshnode_block_relay_seconds_count"
        ) >= 3.0
    );
    assert!(
        sample(
            &m,
            "meshnode_block_received_bytes",
            "meshnode_block_received_bytes_total"
        ) > 0.0
    );

    // Gossipsub (the behaviour's own metrics), Kademlia, identify, swarm, bandwidth.
    let recv = family(&m, "gossipsub_topic_msg_recv_counts")["samples"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        recv.iter().any(
            |s| s[1]["hash"].as_str().unwrap_or("").ends_with("/block/1")
                || s[1]["hash"].as_str().unwrap_or("").ends_with("/cblock/1")
        ),
        "{recv:?}"
    );
    assert!(
        sample(
            &m,
            "gossipsub_mesh_peer_counts",
            "gossipsub_mesh_peer_counts"
        ) >= 0.0
    );
    for f in [
        "libp2p_kad_inbound_requests",
        "libp2p_kad_query_result_num_requests",
        "libp2p_identify_received",
        "libp2p_ping_rtt_seconds",
        "libp2p_swarm_connections_established",
    ] {
        family(&m, f);
    }
    assert!(sample(&m, "libp2p_bandwidth_bytes", "libp2p_bandwidth_bytes_total") > 0.0);
    let peers: f64 = family(&m, "meshnode_peers")["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[2].as_f64().unwrap())
        .sum();
    assert_eq!(peers, 2.0, "node1 of 3 has 2 peers");

    // The calls made above show up in the RPC latency histogram under their method names.
    let m = scrape(&url).await;
    let rpc = family(&m, "meshnode_rpc_request_duration_seconds")["samples"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        rpc.iter().any(|s| s[1]["method"] == "meshnode_blockArrival"
            && s[0].as_str().unwrap().ends_with("_count")),
        "{rpc:?}"
    );

    // Every metric the dashboard queries exists.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/grafana/meshnode.json")).unwrap(),
    )
    .unwrap();
    let mut wanted = BTreeSet::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            for w in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if ["meshnode_", "gossipsub_", "libp2p_"]
                    .iter()
                    .any(|p| w.starts_with(p))
                {
                    wanted.insert(w.to_string());
                }
            }
        }
    }
    assert!(wanted.len() >= 10, "{wanted:?}");
    // prometheus-client leaves out a labelled family until its first sample: these count
    // events a healthy devnet has not had yet (no message rejected or ignored, no
    // connection closed).
    let not_yet = [
        "gossipsub_rejected_messages_per_topic",
        "gossipsub_ignored_messages_per_topic",
        "libp2p_swarm_connections_duration_seconds",
    ];
    let families = m["families"].as_object().unwrap();
    let exported = |w: &str| {
        ["", "_total", "_bucket", "_count", "_sum"]
            .iter()
            .any(|suffix| {
                w.strip_suffix(suffix)
                    .is_some_and(|f| families.contains_key(f) || not_yet.contains(&f))
            })
    };
    let missing: Vec<_> = wanted.iter().filter(|w| !exported(w)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries {missing:?}, not exported"
    );

    // Only /metrics is served.
    let bad = url.replace("/metrics", "/other");
    let status = tokio::task::spawn_blocking(move || match ureq::get(&bad).call() {
        Err(ureq::Error::Status(code, _)) => code,
        other => panic!("{other:?}"),
    })
    .await
    .unwrap();
    assert_eq!(status, 404);
}
