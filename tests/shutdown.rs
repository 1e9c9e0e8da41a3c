//! A node stopped with SIGINT while it produces blocks, takes RPC submissions and relays
//! gossip exits cleanly within 5 s, after every one of its tasks has finished.

mod common;
use common::*;
use meshnode::rpc::client::send_transfer;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_under_load_exits_within_5s_with_every_task_finished() {
    let mut net = start_net(3, 2, 500).await;
    wait_peers(&net, 2).await;
    let victim = 1; // a validator
    let urls: Vec<String> = (0..3)
        .map(|i| net.net.nodes[i].info.as_ref().unwrap().rpc_url.clone())
        .collect();

    // Load: transfers from many senders to the victim and to node 0, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for (w, url) in [urls[victim].clone(), urls[0].clone()]
        .into_iter()
        .enumerate()
    {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        load.push(tokio::spawn(async move {
            let mut i = 0u64;
            let deadline = Instant::now() + Duration::from_secs(30);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let from = format!("dev:{}", 10 + w as u64 * 20 + i % 20);
                let nonce = i / 20;
                if send_transfer(&url, &from, "dev:5", 1, 1, Some(nonce))
                    .await
                    .is_ok()
                {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    let c0 = client(&net, 0);
    let h0 = height(&c0).await;
    wait_for("two blocks under load", Duration::from_secs(60), || {
        let c = c0.clone();
        async move { (height(&c).await >= h0 + 2).then_some(()) }
    })
    .await;
    assert!(
        accepted.load(Ordering::Relaxed) > 0,
        "the load reached the nodes"
    );

    let node_dir = net.net.nodes[victim].dir.clone();
    let mut child = net.net.nodes[victim].child.take().expect("victim runs");
    let t0 = Instant::now();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(10) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = t0.elapsed();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let _ = l.await;
    }
    let log = std::fs::read_to_string(node_dir.join("node.log")).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("no exit 10 s after SIGINT; log tail:\n{}", tail(&log)));
    assert!(
        status.success(),
        "exit status {status}; log tail:\n{}",
        tail(&log)
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} to exit after SIGINT"
    );
    assert!(
        log.contains("stopped: every task finished"),
        "no sign that every task finished; log tail:\n{}",
        tail(&log)
    );
    assert!(!log.contains("task ended abnormally"), "{}", tail(&log));
    assert!(
        !node_dir.join("node.json").exists(),
        "node.json removed at shutdown"
    );
    assert!(
        !node_dir.join(".cookie").exists(),
        "cookie removed at shutdown"
    );
    eprintln!(
        "exited {took:?} after SIGINT with {} transfers accepted during the load",
        accepted.load(Ordering::Relaxed)
    );
    // The rest of the network carries on.
    let h = height(&c0).await;
    wait_for("the others to go on", Duration::from_secs(60), || {
        let c = c0.clone();
        async move { (height(&c).await > h).then_some(()) }
    })
    .await;
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
