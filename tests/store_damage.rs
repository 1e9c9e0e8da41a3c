//! A damaged store is refused, named and repaired (issue 13, failure 1).
//!
//! A real node's store (a 2-node devnet under transaction load, the node stopped cleanly) is
//! copied, and each copy damaged one way: a byte flipped at offsets spread over sled's log and
//! snapshot files and the first block file, a file truncated, the log's tail dropped (every
//! damage to the block file must be found). For every copy both
//! `meshnode store check` and `meshnode run` either refuse, naming the damage and the remedy,
//! or (a flip in bytes sled no longer reads) find the store whole at the original height.
//! Never a panic, never "ok" at a lower height. Then `store repair` and sync bring a damaged
//! node back to the network's head: once after a byte flipped mid-log (blocks kept up to the
//! damage), once after the log was emptied (only genesis is kept, from `--genesis`), once
//! cleared on purpose (`--resync`).

mod common;
use common::*;
use meshnode::rpc::client::send_transfer;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The first block file, in the store directory (`chain/`).
const BLOCK_FILE: &str = "blocks/blk00000.dat";

fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_meshnode")
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What a command made of a damaged copy.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Refused, naming the damage and the remedy.
    Refused,
    /// Whole, at this height.
    Whole(u64),
}

/// A refusal must be a clean exit 1 naming the damage and `store repair`; never a panic.
fn judge_refusal(what: &str, o: &Output) -> Verdict {
    let t = text(o);
    assert!(!t.contains("panicked"), "{what}: a panic\n{t}");
    assert_eq!(o.status.code(), Some(1), "{what}: exit status\n{t}");
    assert!(
        t.contains("is damaged") && t.contains("meshnode store repair --data-dir"),
        "{what}: the error names no damage or remedy\n{t}"
    );
    Verdict::Refused
}

fn store_check(dir: &Path, what: &str) -> Verdict {
    let o = Command::new(exe())
        .args(["store", "check", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    if o.status.success() {
        let t = text(&o);
        let h = t
            .split(" at height ")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .and_then(|h| h.parse().ok())
            .unwrap_or_else(|| panic!("{what}: unexpected output {t}"));
        Verdict::Whole(h)
    } else {
        judge_refusal(&format!("{what}: store check"), &o)
    }
}

/// `meshnode run` on `dir`: refuses (exits), or starts (writes node.json), is asked for its
/// height, and is stopped.
async fn run_node(dir: &Path, genesis: &Path, what: &str) -> Verdict {
    let child = Command::new(exe())
        .args(["run", "--data-dir"])
        .arg(dir)
        .arg("--genesis")
        .arg(genesis)
        .args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--rpc",
            "127.0.0.1:0",
            "--exit-with-parent",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.0.try_wait().unwrap().is_some() {
            let o = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap())
                .wait_with_output()
                .unwrap();
            return judge_refusal(&format!("{what}: run"), &o);
        }
        if let Ok(t) = std::fs::read_to_string(dir.join("node.json")) {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            if let Some(url) = v["rpc_url"].as_str() {
                let h = height(&meshnode::rpc::client::http(url).unwrap()).await;
                return Verdict::Whole(h);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: run neither refused nor started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_stores_are_refused_named_and_repaired() {
    // Node 0 produces; node 1 follows and is the one damaged.
    let mut net = start_net(2, 1, 200).await;
    wait_peers(&net, 1).await;
    let urls = net.net.rpc_urls();
    for n in 0..40u64 {
        send_transfer(
            &urls[0],
            "dev:5",
            &format!("dev:{}", 10 + n % 20),
            7,
            1,
            Some(n),
        )
        .await
        .unwrap();
    }
    let c1 = client(&net, 1);
    wait_for("height 40 at node 1", Duration::from_secs(90), || {
        let c = c1.clone();
        async move { (height(&c).await >= 40).then_some(()) }
    })
    .await;
    net.net.stop_node(1);
    let node1 = net.net.nodes[1].dir.clone();
    let work = net.tmp.path().join("damage");
    std::fs::create_dir_all(&work).unwrap();
    // A genesis without bootnodes: a damaged copy that starts must not sync meanwhile.
    let lone_genesis = work.join("genesis.json");
    let mut g = meshnode::genesis::GenesisFile::read(&net.net.genesis).unwrap();
    g.bootnodes.clear();
    g.write(&lone_genesis).unwrap();

    // Two kinds of clean store: as the node left it (no sled snapshot yet), and after one more
    // open (a snapshot written, as on any node that was restarted).
    let fresh = work.join("fresh");
    copy_dir(&node1, &fresh);
    let reopened = work.join("reopened");
    copy_dir(&node1, &reopened);
    let Verdict::Whole(head) = store_check(&reopened, "the clean store") else {
        panic!("the clean store was refused")
    };
    assert!(head >= 40);
    assert!(std::fs::read_dir(reopened.join("chain")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("snap.")));

    // The damage: (label, base store, file in chain/, action).
    enum Act {
        Flip(u64),
        Truncate(u64),
    }
    let mut cases: Vec<(String, &PathBuf, String, Act)> = Vec::new();
    for base in [&fresh, &reopened] {
        let kind = base.file_name().unwrap().to_string_lossy().to_string();
        let files = std::fs::read_dir(base.join("chain"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .chain([BLOCK_FILE.to_string()]);
        for name in files {
            if !(name == "db" || name.starts_with("snap.") || name == BLOCK_FILE) {
                continue;
            }
            let path = base.join("chain").join(&name);
            assert!(path.exists(), "{kind}: no {name}");
            // sled grows its log in 512 KiB segments: damage the bytes written so far.
            let bytes = std::fs::read(&path).unwrap();
            let len = bytes
                .iter()
                .rposition(|b| *b != 0)
                .map_or(0, |i| i as u64 + 1);
            if len == 0 {
                continue;
            }
            let flips = if name.starts_with("snap.") { 4 } else { 16 };
            for k in 0..flips {
                let off = len * k / flips + (len / flips) / 2;
                cases.push((
                    format!("{kind} {name}: byte {off} flipped"),
                    base,
                    name.clone(),
                    Act::Flip(off),
                ));
            }
            for (label, to) in [
                ("emptied", 0),
                ("cut to a quarter", len / 4),
                ("cut in half", len / 2),
                ("its tail dropped", len - len / 10),
            ] {
                cases.push((
                    format!("{kind} {name}: {label}"),
                    base,
                    name.clone(),
                    Act::Truncate(to),
                ));
            }
        }
    }
    let (mut refused, mut whole) = (0, 0);
    for (label, base, file, act) in &cases {
        let copy = work.join("copy");
        copy_dir(base, &copy);
        let path = copy.join("chain").join(file);
        match act {
            Act::Flip(off) => flip(&path, *off),
            Act::Truncate(len) => truncate(&path, *len),
        }
        // Each command gets its own damaged copy: opening a store may rewrite it.
        let copy2 = work.join("copy2");
        copy_dir(&copy, &copy2);
        let checked = store_check(&copy, label);
        let ran = run_node(&copy2, &lone_genesis, label).await;
        eprintln!("{label}: store check {checked:?}, run {ran:?}");
        assert_eq!(checked, ran, "{label}: store check and run disagree");
        // Every byte of a block file belongs to an indexed record (magic, length, block).
        if file == BLOCK_FILE {
            assert_eq!(checked, Verdict::Refused, "{label}: damage not found");
        }
        match checked {
            Verdict::Refused => refused += 1,
            Verdict::Whole(h) => {
                assert_eq!(h, head, "{label}: whole at a lower height");
                whole += 1;
            }
        }
    }
    eprintln!(
        "{} damaged copies: {refused} refused with the damage named, {whole} unaffected (bytes sled no longer reads)",
        cases.len()
    );
    assert!(refused >= cases.len() / 2, "too few damages found");

    // Repair 1: a byte flipped in the middle of the log behind a sled snapshot; repair keeps
    // the blocks before the damage, sync refills the rest.
    let chain = node1.join("chain");
    assert_eq!(store_check(&node1, "node 1"), Verdict::Whole(head));
    let bytes = std::fs::read(chain.join("db")).unwrap();
    let used = bytes.iter().rposition(|b| *b != 0).unwrap() as u64 + 1;
    flip(&chain.join("db"), used / 2);
    assert_eq!(
        store_check(&node1, "a flip in the middle"),
        Verdict::Refused
    );
    let o = Command::new(exe())
        .args(["store", "repair", "--data-dir"])
        .arg(&node1)
        .output()
        .unwrap();
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    eprintln!("{t}");
    let kept: u64 = t
        .split("up to height ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!(kept < head, "{t}");
    assert!(t.contains("sync refills"), "{t}");
    assert_eq!(store_check(&node1, "repaired"), Verdict::Whole(kept));
    rejoin(&mut net).await;

    // Repair 2: the log emptied; nothing can be kept, and the spec must come from --genesis.
    net.net.stop_node(1);
    truncate(&chain.join("db"), 0);
    for snap in std::fs::read_dir(&chain).unwrap() {
        let p = snap.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("snap.")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    assert_eq!(store_check(&node1, "emptied"), Verdict::Refused);
    let repair = |args: &[&str]| {
        Command::new(exe())
            .args(["store", "repair", "--data-dir"])
            .arg(&node1)
            .args(args)
            .output()
            .unwrap()
    };
    let o = repair(&[]);
    assert!(
        !o.status.success() && text(&o).contains("--genesis"),
        "{}",
        text(&o)
    );
    let genesis = net.net.genesis.display().to_string();
    let o = repair(&["--genesis", &genesis]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("up to height 0"), "{}", text(&o));
    assert!(
        text(&o).contains("the store cannot be read"),
        "{}",
        text(&o)
    );
    assert_eq!(
        store_check(&node1, "repaired from genesis"),
        Verdict::Whole(0)
    );
    rejoin(&mut net).await;

    // Repair 3: --resync clears even a sound chain.
    net.net.stop_node(1);
    let o = repair(&["--resync"]);
    assert!(text(&o).contains("cleared to genesis"), "{}", text(&o));
    assert_eq!(store_check(&node1, "resynced"), Verdict::Whole(0));
    rejoin(&mut net).await;
}

/// Restarts node 1 and waits until it has node 0's head.
async fn rejoin(net: &mut TestNet) {
    net.net.start_node(1).unwrap();
    net.net
        .wait_ready(1, Duration::from_secs(60))
        .await
        .unwrap();
    let (c0, c1) = (client(net, 0), client(net, 1));
    let target = height(&c0).await;
    let t0 = Instant::now();
    wait_for(
        "the repaired node to sync to the network's head",
        Duration::from_secs(60),
        || {
            let c = c1.clone();
            async move { (height(&c).await >= target).then_some(()) }
        },
    )
    .await;
    use meshnode::rpc::api::BitcoinApiClient;
    assert_eq!(
        c1.getblockhash(target).await.unwrap(),
        c0.getblockhash(target).await.unwrap()
    );
    eprintln!(
        "node 1 synced to height {target} in {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}
