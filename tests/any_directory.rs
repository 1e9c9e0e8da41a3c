//! `meshnode` outside the checkout: with no `--genesis` and no `genesis/devnet.json` in the
//! working directory a node starts on the devnet genesis built into the binary; a genesis
//! file that cannot be read is named, with its cause printed once; a copy of the binary in an
//! empty directory runs `devnet` and `tx send`, and `tx sign` (offline) signs the same bytes.

mod common;

use common::{rpc_blocking, DevnetProcess, Killed};
use meshnode::genesis::{GenesisFile, BUILT_IN};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_node_started_outside_the_checkout_runs_on_the_built_in_devnet_genesis() {
    let cwd = tempfile::tempdir().unwrap();
    assert!(!cwd.path().join("genesis").exists());
    let data = cwd.path().join("data");
    let node = Killed(
        Command::new(env!("CARGO_BIN_EXE_meshnode"))
            .current_dir(cwd.path())
            .args(["run", "--data-dir"])
            .arg(&data)
            .args(["--rpc", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .env_remove("MESHNODE_GENESIS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let node_file = data.join("node.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut node = node;
    while !node_file.exists() {
        if let Some(status) = node.0.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(node.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the node exited ({status}) instead of starting:\n{err}");
        }
        assert!(Instant::now() < deadline, "no node.json after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let nf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&node_file).unwrap()).unwrap();
    let url = nf["rpc_url"].as_str().unwrap().to_string();
    let info = rpc_blocking(&url, "meshnode_nodeInfo", None);
    let spec = serde_json::from_str::<GenesisFile>(BUILT_IN)
        .unwrap()
        .to_spec()
        .unwrap();
    assert_eq!(info["chainId"], serde_json::json!(spec.chain_id), "{info}");
    assert_eq!(
        info["genesisHash"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        spec.genesis_block()
            .hash()
            .to_string()
            .trim_start_matches("0x"),
        "{info}"
    );
    // The built-in genesis is the checkout's file, byte for byte.
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("genesis/devnet.json");
    assert_eq!(std::fs::read_to_string(checkout).unwrap(), BUILT_IN);
}

#[test]
fn a_genesis_file_that_cannot_be_read_is_named_with_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = Command::new(env!("CARGO_BIN_EXE_meshnode"))
        .args(["run", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--genesis")
        .arg(&missing)
        .args(["--rpc", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot read genesis file {}", missing.display())),
        "{err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// Runs the copied binary in `cwd` with `args`; its stdout, trimmed. Panics with stderr on a
/// non-zero exit.
fn meshnode(exe: &Path, cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(exe)
        .current_dir(cwd)
        .args(args)
        .env_remove("MESHNODE_GENESIS")
        .env_remove("MESHNODE_DATA_DIR")
        .env_remove("MESHNODE_RPC_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "meshnode {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_copied_binary_runs_a_devnet_and_sends_what_tx_sign_signs_offline() {
    let cwd = tempfile::tempdir().unwrap();
    let exe = cwd.path().join("meshnode");
    std::fs::copy(env!("CARGO_BIN_EXE_meshnode"), &exe).unwrap();
    assert!(!cwd.path().join("genesis").exists());
    let net_dir = cwd.path().join("net");
    let devnet = DevnetProcess {
        child: Command::new(&exe)
            .current_dir(cwd.path())
            .args([
                "devnet",
                "--nodes",
                "2",
                "--rpc-base-port",
                "0",
                "--dir",
                "net",
            ])
            .env_remove("MESHNODE_GENESIS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        dir: net_dir.clone(),
        nodes: 2,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while !(0..2).all(|i| net_dir.join(format!("node{i}/node.json")).exists()) {
        assert!(
            Instant::now() < deadline,
            "the devnet did not start in 90 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let node0 = net_dir.join("node0");
    let node0 = node0.to_str().unwrap();
    let node1 = net_dir.join("node1");
    let node1 = node1.to_str().unwrap();

    // Offline: no node is asked for the chain id or the nonce.
    let fields = [
        "--from", "dev:1", "--to", "dev:2", "--amount", "777", "--fee", "2", "--data", "0xbeef",
    ];
    let mut sign = vec!["tx", "sign", "--nonce", "0", "--chain-id", "1337"];
    sign.extend(fields);
    let signed = meshnode(&exe, cwd.path(), &sign);
    assert!(hex::decode(&signed).is_ok(), "{signed}");

    let mut send = vec!["tx", "send", "--nonce", "0", "--data-dir", node0];
    send.extend(fields);
    let hash = meshnode(&exe, cwd.path(), &send);

    // What the node holds is byte for byte what `tx sign` printed.
    let held = meshnode(
        &exe,
        cwd.path(),
        &["rpc", "--data-dir", node0, "getrawtransaction", &hash],
    );
    assert_eq!(held, signed);

    // `tx decode` gives the fields back.
    let decoded: serde_json::Value =
        serde_json::from_str(&meshnode(&exe, cwd.path(), &["tx", "decode", &signed])).unwrap();
    let address = |spec: &str| {
        meshnode(&exe, cwd.path(), &["keys", "show", spec])
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("address:")
            .trim()
            .to_string()
    };
    assert_eq!(decoded["hash"], serde_json::json!(hash), "{decoded}");
    assert_eq!(decoded["from"], serde_json::json!(address("dev:1")));
    assert_eq!(decoded["to"], serde_json::json!(address("dev:2")));
    assert_eq!(decoded["amount"], 777);
    assert_eq!(decoded["fee"], 2);
    assert_eq!(decoded["nonce"], 0);
    assert_eq!(decoded["chainId"], 1337);
    assert_eq!(decoded["data"], "0xbeef");
    assert_eq!(decoded["signatureValid"], true);
    assert_eq!(decoded["hex"], serde_json::json!(signed));

    // It spreads: the other node of the devnet gets it too (pool or chain).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new(&exe)
            .current_dir(cwd.path())
            .args(["rpc", "--data-dir", node1, "getrawtransaction", &hash])
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), signed);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node1 never got {hash}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Damaged input is refused with a message, not a panic.
    let out = Command::new(&exe)
        .args(["tx", "decode", &signed[..signed.len() - 2]])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a meshnode transaction"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(devnet);
}
