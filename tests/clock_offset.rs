//! `meshnode bench propagation --attach`: measuring nodes the bench did not start, on clocks
//! that differ. A 4-node devnet is measured once as it is, then again with node 3 restarted
//! under `faketime` 500 ms ahead: the bench must estimate that offset and, once corrected,
//! node 3's arrival times must match the first run within ±5 ms.
//!
//! Needs `faketime` (Debian's package; CI installs it).

mod common;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Runs the bench attached to `urls`; its JSON report.
fn bench(urls: &[String], out: &Path) -> Value {
    let mut args = vec!["propagation", "--blocks", "8", "--tps", "20"];
    for u in urls {
        args.extend(["--attach", u.as_str()]);
    }
    common::bench(&args, out).1
}

/// Median over blocks not produced by node `i` of its (corrected) first-seen time, ms.
fn median_first_seen(report: &Value, i: usize) -> f64 {
    let mut v: Vec<f64> = report["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["first_seen_ms"][i].as_f64())
        .filter(|t| *t != 0.0)
        .collect();
    assert!(v.len() >= 4, "node {i} saw too few blocks: {v:?}");
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Removes the shared memory `faketime` makes for the process it wraps
/// (`/dev/shm/faketime_shm_<pid>`, `/dev/shm/sem.faketime_sem_<pid>`, named by the wrapper's
/// pid): the wrapper removes them only when it exits by itself, not when a devnet stop kills
/// it. Declared before the devnet, so it runs after the devnet's own drop.
struct FaketimeShm(std::sync::Mutex<Option<u32>>);

impl Drop for FaketimeShm {
    fn drop(&mut self) {
        let pid = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pid) = pid {
            for f in [
                format!("/dev/shm/faketime_shm_{pid}"),
                format!("/dev/shm/sem.faketime_sem_{pid}"),
            ] {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_500_ms_ahead_is_corrected() {
    if Command::new("faketime").arg("--version").output().is_err() {
        panic!("faketime is missing: apt-get install faketime");
    }
    // Nodes 0–2 produce; node 3 only receives (a producer 500 ms ahead would sign its
    // blocks early, which its peers rightly refuse).
    let shm = FaketimeShm(std::sync::Mutex::new(None));
    let mut net = common::start_net(4, 3, 500).await;
    common::wait_peers(&net, 2).await;
    let tmp = tempfile::tempdir().unwrap();
    let urls = net.net.rpc_urls();
    let plain = tokio::task::block_in_place(|| bench(&urls, &tmp.path().join("plain.json")));
    let before = median_first_seen(&plain, 3);
    let off0 = plain["clocks"][3]["offset_ms"].as_f64().unwrap();
    assert!(off0.abs() < 5.0, "same machine, same clock: {off0} ms");

    net.net.stop_node(3);
    net.net.nodes[3].wrapper = ["faketime", "-f", "+0.5s"].map(String::from).to_vec();
    net.net.start_node(3).unwrap();
    *shm.0.lock().unwrap() = net.net.nodes[3].child.as_ref().map(|c| c.id());
    net.net
        .wait_ready(3, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    common::wait_peers(&net, 2).await;
    let urls = net.net.rpc_urls();
    let shifted = tokio::task::block_in_place(|| bench(&urls, &tmp.path().join("shifted.json")));
    let off = shifted["clocks"][3]["offset_ms"].as_f64().unwrap();
    let unc = shifted["clocks"][3]["uncertainty_ms"].as_f64().unwrap();
    let after = median_first_seen(&shifted, 3);
    println!(
        "node 3: offset estimated {off:.2} ms (± {unc:.2}); median first seen {before:.2} ms \
         unshifted, {after:.2} ms shifted and corrected"
    );
    assert!((off - 500.0).abs() < 5.0, "estimated offset {off} ms");
    assert!(
        (after - before).abs() <= 5.0,
        "corrected {after} ms vs unshifted {before} ms"
    );
}
