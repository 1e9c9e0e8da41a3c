//! `meshnode devnet` killed with SIGKILL (no handler runs) leaves no node running: each node
//! was started with `--exit-with-parent`, sees its parent gone and shuts down cleanly,
//! removing its `node.json` and `.cookie`.

mod common;

use common::devnet_process;
use std::time::{Duration, Instant};

/// Whether `pid` still runs (a zombie waiting for its reaper does not).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

#[test]
fn nodes_stop_when_their_devnet_is_killed() {
    const N: usize = 3;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let mut devnet = devnet_process(&dir, N, &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let node_json = |i: usize| dir.join(format!("node{i}/node.json"));
    while !(0..N).all(|i| node_json(i).exists()) {
        assert!(Instant::now() < deadline, "the devnet did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pids: Vec<i32> = (0..N)
        .map(|i| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(node_json(i)).unwrap()).unwrap();
            v["pid"].as_i64().unwrap() as i32
        })
        .collect();
    assert!(pids.iter().all(|&p| running(p)));

    devnet.child.kill().unwrap(); // SIGKILL
    devnet.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pids.iter().any(|&p| running(p)) {
        assert!(
            Instant::now() < deadline,
            "nodes still running 20 s after the devnet was killed: {:?}",
            pids.iter().filter(|&&p| running(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..N {
        assert!(!node_json(i).exists(), "node{i} left its node.json");
        assert!(
            !dir.join(format!("node{i}/.cookie")).exists(),
            "node{i} left its .cookie"
        );
    }
}
