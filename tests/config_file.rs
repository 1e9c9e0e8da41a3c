//! `meshnode init DIR` then `meshnode run --config DIR/meshnode.toml`, started from another
//! directory: the node uses the directory's key, genesis and data dir, and takes each
//! setting by the documented precedence: flag > environment variable > file > default.

mod common;

use common::{rpc_blocking, Killed};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn init_then_run_with_the_config_file_takes_flag_then_env_then_file_then_default() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node");
    let exe = env!("CARGO_BIN_EXE_meshnode");
    let out = Command::new(exe).arg("init").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let peer_id = printed
        .split("(peer id ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .to_string();
    let config = dir.join("meshnode.toml");
    // The file sets three values; the run overrides one by flag and one by environment.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\nmempool-max-txs = 1111\nmempool-max-bytes = 2222222\nrpc = \"127.0.0.1:9\"\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n",
    );
    std::fs::write(&config, text).unwrap();

    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let mut node = Killed(
        Command::new(exe)
            .current_dir(&elsewhere)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .args(["--mempool-max-bytes", "3333333"])
            .env("MESHNODE_RPC", "127.0.0.1:0")
            .env_remove("MESHNODE_DATA_DIR")
            .env_remove("MESHNODE_GENESIS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // data-dir = "." in the file: relative to the file, not to the working directory.
    let node_file = dir.join("node.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !node_file.exists() {
        if let Some(status) = node.0.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(node.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the node exited ({status}):\n{err}");
        }
        assert!(Instant::now() < deadline, "no node.json after 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!elsewhere.join("meshnode-data").exists());
    let nf: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&node_file).unwrap()).unwrap();
    // The node key init wrote.
    assert_eq!(nf["peer_id"], serde_json::json!(peer_id));
    // Environment beats file: not port 9.
    let url = nf["rpc_url"].as_str().unwrap().to_string();
    assert!(!url.ends_with(":9"), "{url}");
    let info = rpc_blocking(&url, "getmempoolinfo", Some(&dir.join(".cookie")));
    // File beats default (100000); flag beats file.
    assert_eq!(info["maxmempooltxs"], 1111, "{info}");
    assert_eq!(info["maxmempool"], 3333333, "{info}");
    // Default where nobody set anything.
    let net = rpc_blocking(&url, "meshnode_nodeInfo", Some(&dir.join(".cookie")));
    assert_eq!(net["chainId"], 1337, "{net}");
}

#[test]
fn a_config_file_with_an_unknown_setting_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("bad.toml");
    std::fs::write(&config, "max-peer = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meshnode"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown setting `max-peer`"), "{err}");
    assert!(err.contains(&config.display().to_string()), "{err}");
}
