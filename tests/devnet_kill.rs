//! `meshnode devnet` killed with SIGKILL (no handler runs) leaves no node running: each node
//! was started with `--exit-with-parent`, sees its parent gone (a `parent-watch` thread waits
//! on a pidfd of the parent) and shuts down cleanly, removing its `node.json` and `.cookie`.
//! A devnet of more nodes than the machine has cores gives each node one runtime thread, and
//! every node runs its block-validation thread at nice -10 where the machine allows it.

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

/// The `/proc` directories of `pid`'s threads named `name`.
fn threads_named(pid: i32, name: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .map(|t| t.path())
                .filter(|t| {
                    std::fs::read_to_string(t.join("comm")).is_ok_and(|c| {
                        let c = c.trim_end();
                        match name.strip_suffix('*') {
                            Some(prefix) => c.starts_with(prefix),
                            None => c == name,
                        }
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The nice values (field 19 of `/proc/PID/task/TID/stat`) of `pid`'s threads named `name`
/// (`prefix*`: every name that starts with `prefix`).
fn nice_of_threads(pid: i32, name: &str) -> Vec<i32> {
    threads_named(pid, name)
        .iter()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.join("stat")).ok()?;
            // Fields after the command: state is field 3, nice field 19.
            stat.rsplit(')')
                .next()?
                .split_whitespace()
                .nth(16)?
                .parse()
                .ok()
        })
        .collect()
}

/// The nice value a thread of this machine gets when it asks for -10: -10 with CAP_SYS_NICE
/// (or RLIMIT_NICE), else its process's own.
fn nice_the_machine_allows() -> i32 {
    std::thread::spawn(|| {
        let _ = rustix::process::setpriority_process(None, -10);
        rustix::process::getpriority_process(None).unwrap()
    })
    .join()
    .unwrap()
}

#[test]
fn nodes_stop_when_their_devnet_is_killed() {
    // More nodes than cores, so that the devnet sizes the nodes' runtimes down.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = (cores + 1).max(3);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let mut devnet = devnet_process(&dir, n, &[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let node_json = |i: usize| dir.join(format!("node{i}/node.json"));
    while !(0..n).all(|i| node_json(i).exists()) {
        assert!(Instant::now() < deadline, "the devnet did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pids: Vec<i32> = (0..n)
        .map(|i| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(node_json(i)).unwrap()).unwrap();
            v["pid"].as_i64().unwrap() as i32
        })
        .collect();
    assert!(pids.iter().all(|&p| running(p)));
    for (i, &p) in pids.iter().enumerate() {
        assert_eq!(
            threads_named(p, "tokio-rt-worker").len(),
            1,
            "node{i}: {n} nodes on {cores} cores, yet not one runtime thread"
        );
        assert_eq!(
            threads_named(p, "parent-watch").len(),
            1,
            "node{i} does not wait on a pidfd of its parent"
        );
    }
    let block_nice = nice_the_machine_allows();
    for (i, &p) in pids.iter().enumerate() {
        assert_eq!(
            nice_of_threads(p, "block-validatio"),
            vec![block_nice],
            "node{i}: the block-validation thread's nice value"
        );
        assert!(
            nice_of_threads(p, "tx-validation").iter().all(|&n| n == 0),
            "node{i}: transaction validation keeps the process's priority"
        );
    }
    // sled's I/O pool runs at the block thread's value too: the block worker sets it when it
    // starts and again after a block, every 10 s at most.
    let deadline = Instant::now() + Duration::from_secs(40);
    for (i, &p) in pids.iter().enumerate() {
        loop {
            let nices = nice_of_threads(p, "sled-io-*");
            if !nices.is_empty() && nices.iter().all(|&n| n == block_nice) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node{i}: sled's I/O threads run at nice {nices:?}, not the block thread's {block_nice}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

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
    for i in 0..n {
        assert!(!node_json(i).exists(), "node{i} left its node.json");
        assert!(
            !dir.join(format!("node{i}/.cookie")).exists(),
            "node{i} left its .cookie"
        );
    }
}
