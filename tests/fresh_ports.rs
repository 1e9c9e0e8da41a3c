//! Dials take fresh source ports by default (libp2p's `PortUse::New`, `src/p2p/ports.rs`), so
//! the node runs where `SO_REUSEPORT` is missing (the Shadow simulator); with `--port-reuse`
//! every dial leaves from the listen port, as rust-libp2p does by default.

mod common;
use common::*;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A plain TCP listener on 127.0.0.1 that records the source port of every connection it
/// accepts (and drops it: the node's noise handshake fails, which is fine here).
fn listener() -> (u16, Arc<Mutex<Vec<u16>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<u16>>> = Default::default();
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            s.lock().unwrap().push(conn.peer_addr().unwrap().port());
        }
    });
    (port, seen)
}

/// A bootnode address at `port` with a made-up peer id.
fn fake_bootnode(port: u16) -> [String; 2] {
    [
        "--bootnode".to_string(),
        format!(
            "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
            libp2p::PeerId::from(libp2p::identity::Keypair::generate_ed25519().public())
        ),
    ]
}

fn listen_port(net: &TestNet, i: usize) -> u16 {
    let a = listen_addr(net, i);
    let tail = a.split("/tcp/").nth(1).unwrap();
    tail.split('/').next().unwrap().parse().unwrap()
}

async fn wait_dials(what: &str, seen: &Arc<Mutex<Vec<u16>>>, n: usize) -> Vec<u16> {
    wait_for(what, Duration::from_secs(30), || {
        let v = seen.lock().unwrap().clone();
        async move { (v.len() >= n).then_some(v) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn dials_take_fresh_ports_unless_port_reuse_is_set() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (mut net, genesis, _) = custom_net(&[0], 1000, now);

    // Default: two dials to one listener and one to another, each from its own port.
    let ((pa, seen_a), (pb, seen_b)) = (listener(), listener());
    let args: Vec<String> = [fake_bootnode(pa), fake_bootnode(pa), fake_bootnode(pb)].concat();
    let n0 = add_ready(&mut net, &genesis, None, args).await;
    let a = wait_dials("two dials to listener A", &seen_a, 2).await;
    let b = wait_dials("a dial to listener B", &seen_b, 1).await;
    let own = listen_port(&net, n0);
    let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
    eprintln!("default: listen port {own}, source ports {all:?}");
    assert!(
        !all.contains(&own),
        "a dial left from the listen port {own}: {all:?}"
    );
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), a.len() + b.len(), "a source port was used twice");

    // --port-reuse: every dial leaves from the listen port.
    let ((pc, seen_c), (pd, seen_d)) = (listener(), listener());
    let mut args: Vec<String> = [fake_bootnode(pc), fake_bootnode(pd)].concat();
    args.push("--port-reuse".to_string());
    let n1 = add_ready(&mut net, &genesis, None, args).await;
    let c = wait_dials("a dial to listener C", &seen_c, 1).await;
    let d = wait_dials("a dial to listener D", &seen_d, 1).await;
    let own = listen_port(&net, n1);
    eprintln!("--port-reuse: listen port {own}, source ports {c:?} {d:?}");
    assert_eq!((c[0], d[0]), (own, own));
}
