//! `meshnode` outside the checkout: with no `--genesis` and no `genesis/devnet.json` in the
//! working directory a node starts on the devnet genesis built into the binary; a genesis
//! file that cannot be read is named, with its cause printed once.

use meshnode::genesis::{GenesisFile, BUILT_IN};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the node when the test ends, passed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rpc(url: &str, method: &str) -> serde_json::Value {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": []});
    let reply: serde_json::Value = ureq::post(url)
        .set("Content-Type", "application/json")
        .send_string(&body.to_string())
        .unwrap()
        .into_json()
        .unwrap();
    reply["result"].clone()
}

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
    let info = rpc(&url, "meshnode_nodeInfo");
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
