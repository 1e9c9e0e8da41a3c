//! `meshnode devnet --shadow DIR`: the scenario of a 64-node Shadow run, checked without Shadow.
//! shadow.yaml parses; every host's address, arguments, key and bootnodes agree with each other
//! and with the genesis; the genesis time lies inside the simulation (Shadow's clock starts at
//! 2000-01-01); graph.gml has an edge for every pair of regions and classes with the profile's
//! delay; the load host reaches nodes with their credentials; and a node started with a
//! host's own argument line (moved to loopback) comes up with the peer id the genesis names.

use meshnode::crypto::Keypair;
use meshnode::devnet::shadow::{P2P_PORT, RPC_PORT, SHADOW_EPOCH_MS};
use meshnode::genesis::GenesisFile;
use meshnode::p2p::LinkProfile;
use serde_yaml_ng::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_meshnode");

/// GML as written by `devnet --shadow`: (node id → label), edges (source, target) → latency µs.
type Gml = (HashMap<u64, String>, HashMap<(u64, u64), u64>);

/// A small GML reader: `key value` pairs and `key [ … ]` blocks, strings in double quotes.
fn parse_gml(text: &str) -> Gml {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let s: String = chars.by_ref().take_while(|c| *c != '"').collect();
            tokens.push(s);
        } else {
            let mut s = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                s.push(c);
                chars.next();
            }
            tokens.push(s);
        }
    }
    let mut nodes = HashMap::new();
    let mut edges = HashMap::new();
    let mut i = 0;
    while i < tokens.len() {
        if (tokens[i] == "node" || tokens[i] == "edge")
            && tokens.get(i + 1).map(String::as_str) == Some("[")
        {
            let kind = tokens[i].clone();
            let mut kv = HashMap::new();
            i += 2;
            while tokens[i] != "]" {
                kv.insert(tokens[i].clone(), tokens[i + 1].clone());
                i += 2;
            }
            if kind == "node" {
                nodes.insert(kv["id"].parse().unwrap(), kv["label"].clone());
            } else {
                let lat = kv["latency"].strip_suffix(" us").expect("latency in us");
                let key = (kv["source"].parse().unwrap(), kv["target"].parse().unwrap());
                assert!(
                    edges.insert(key, lat.parse().unwrap()).is_none(),
                    "edge {key:?} twice"
                );
                assert_eq!(kv["packet_loss"], "0.0", "wan has no loss");
            }
        }
        i += 1;
    }
    (nodes, edges)
}

fn secs(v: &Value) -> f64 {
    let s = v.as_str().expect("a duration string");
    let (n, unit) = s.split_once(' ').expect("`N unit`");
    let n: f64 = n.parse().unwrap();
    match unit {
        "ms" => n / 1e3,
        "s" => n,
        other => panic!("unit {other}"),
    }
}

fn arg<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .map(|i| args[i + 1].as_str())
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .expect("a list")
        .iter()
        .map(|a| a.as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn a_64_node_wan_scenario_is_complete_and_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("scenario");
    let out = Command::new(EXE)
        .args([
            "devnet",
            "--nodes",
            "64",
            "--profile",
            "wan",
            "--validators",
            "8",
        ])
        .args(["--tps", "200", "--seconds", "30", "--shadow"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = std::fs::canonicalize(&dir).unwrap();
    assert!(
        stdout.contains(&format!("run:    sh {}/run.sh", dir.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "report: meshnode bench propagation --from-dirs {}/nodes/*",
            dir.display()
        )),
        "{stdout}"
    );
    // A second scenario never overwrites the first.
    let again = Command::new(EXE)
        .args(["devnet", "--nodes", "4", "--shadow"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());

    // shadow.yaml parses, with deterministic settings.
    let yaml: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("shadow.yaml")).unwrap())
            .expect("shadow.yaml is YAML");
    assert_eq!(
        yaml["experimental"]["native_preemption_enabled"],
        Value::Bool(false)
    );
    assert_eq!(yaml["network"]["use_shortest_path"], Value::Bool(false));
    assert_eq!(yaml["network"]["graph"]["type"].as_str(), Some("gml"));
    let stop = secs(&yaml["general"]["stop_time"]);
    let hosts = yaml["hosts"].as_mapping().expect("hosts");
    assert_eq!(hosts.len(), 65, "64 nodes and the load host");

    // The graph: one node per (region, class), an edge for every ordered pair, the profile's
    // one-way delay on it.
    let profile = LinkProfile::load("wan").unwrap();
    let (gnodes, edges) = parse_gml(&std::fs::read_to_string(dir.join("graph.gml")).unwrap());
    let classes = profile.classes.len() as u64;
    assert_eq!(gnodes.len(), profile.regions.len() * profile.classes.len());
    for (a, ra) in profile.regions.iter().enumerate() {
        for (b, _) in profile.regions.iter().enumerate() {
            for ca in 0..classes {
                for cb in 0..classes {
                    let key = (a as u64 * classes + ca, b as u64 * classes + cb);
                    assert_eq!(
                        edges.get(&key).copied(),
                        Some((ra.delay_ms[b] * 1000.0).round() as u64),
                        "edge {key:?} ({} → {})",
                        ra.name,
                        profile.regions[b].name
                    );
                }
            }
        }
    }
    assert_eq!(edges.len(), gnodes.len() * gnodes.len());

    // The genesis.
    let genesis_path = dir.join("genesis.json");
    let g = GenesisFile::read(&genesis_path).unwrap();
    g.to_spec().expect("a valid genesis");
    let validators: Vec<String> = (0..8)
        .map(|i| hex::encode(Keypair::dev_validator(i).public().0))
        .collect();
    assert_eq!(g.validators, validators);

    // Every node host.
    let mut ips = HashSet::new();
    let mut by_ip: HashMap<String, (usize, PathBuf)> = HashMap::new();
    let mut credentials = HashSet::new();
    let mut latest_start = 0.0f64;
    let placements = profile.place(64);
    let mut regions_used = HashSet::new();
    for i in 0..64 {
        let h = &yaml["hosts"][format!("node{i}").as_str()];
        let ip = h["ip_addr"].as_str().expect("ip_addr").to_string();
        assert!(ip.starts_with("10.77."), "node{i} at {ip}");
        assert!(ips.insert(ip.clone()), "{ip} twice");
        let gid = h["network_node_id"].as_u64().unwrap();
        let label = &gnodes[&gid];
        let pl = placements[i];
        assert_eq!(
            label,
            &format!(
                "{}-{}",
                profile.regions[pl.region].name, profile.classes[pl.class].name
            ),
            "node{i}'s graph node"
        );
        regions_used.insert(pl.region);
        let procs = h["processes"].as_sequence().unwrap();
        assert_eq!(procs.len(), 1);
        let p = &procs[0];
        assert_eq!(
            Path::new(p["path"].as_str().unwrap()),
            Path::new(EXE).canonicalize().unwrap()
        );
        assert_eq!(p["expected_final_state"].as_str(), Some("running"));
        let start = secs(&p["start_time"]);
        latest_start = latest_start.max(start);
        let args = strings(&p["args"]);
        assert_eq!(args[2], "run");
        assert_eq!(
            arg(&args, "--listen"),
            Some(format!("/ip4/{ip}/tcp/{P2P_PORT}").as_str())
        );
        assert_eq!(
            arg(&args, "--rpc"),
            Some(format!("{ip}:{RPC_PORT}").as_str())
        );
        assert_eq!(
            arg(&args, "--genesis").map(PathBuf::from),
            Some(genesis_path.clone())
        );
        let data = PathBuf::from(arg(&args, "--data-dir").unwrap());
        assert!(
            data.is_absolute() && data.join("node.key").is_file(),
            "node{i}: {data:?}"
        );
        assert_eq!(
            arg(&args, "--validator-key"),
            (i < 8).then(|| format!("dev-validator:{i}")).as_deref(),
            "node{i}"
        );
        credentials.insert(format!(
            "{}:{}",
            arg(&args, "--rpc-user").unwrap(),
            arg(&args, "--rpc-password").unwrap()
        ));
        assert!(
            !args.iter().any(|a| a == "--link-profile"),
            "Shadow shapes the links"
        );
        // Bootnodes make room for the joiners (`bootnode_max_peers`); nobody else changes it.
        let boots = meshnode::devnet::bootnode_count(64);
        assert_eq!(
            arg(&args, "--max-peers").map(|m| m.parse::<usize>().unwrap() >= 2 * 64 / boots),
            (i < boots).then_some(true),
            "node{i}"
        );
        let link: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data.join("link.json")).unwrap()).unwrap();
        assert_eq!(
            link["region"].as_str(),
            Some(profile.regions[pl.region].name.as_str())
        );
        by_ip.insert(ip, (i, data));
    }
    // By weight: 64 nodes leave the two smallest wan regions (47 and 36 of 11,326) empty.
    assert!(regions_used.len() >= 5, "{regions_used:?}");
    assert_eq!(credentials.len(), 1, "one RPC credential for the load host");

    // Genesis inside the simulation: after every node has started, with the slots before stop.
    let genesis_s = (g.genesis_time_ms as f64 - SHADOW_EPOCH_MS as f64) / 1e3;
    assert!(
        genesis_s > latest_start + 10.0 && genesis_s + 30.0 < stop,
        "genesis at {genesis_s} s, last start {latest_start} s, stop {stop} s"
    );

    // Bootnodes by address and peer id: each is a host with that address and that key.
    assert_eq!(g.bootnodes.len(), meshnode::devnet::bootnode_count(64));
    for b in &g.bootnodes {
        let parts: Vec<&str> = b.split('/').collect();
        assert_eq!((parts[1], parts[3], parts[5]), ("ip4", "tcp", "p2p"), "{b}");
        assert_eq!(parts[4], P2P_PORT.to_string());
        let (i, data) = by_ip
            .get(parts[2])
            .unwrap_or_else(|| panic!("{b}: no such host"));
        let pid = meshnode::node::peer_id_of_key_file(&data.join("node.key")).unwrap();
        assert_eq!(parts[6], pid.to_string(), "bootnode node{i}'s key");
    }

    // The load host: `bench load` at 200 tx/s to nodes it can reach, from genesis.
    let load = &yaml["hosts"]["load"]["processes"][0];
    let args = strings(&load["args"]);
    assert_eq!(&args[..2], ["bench", "load"]);
    assert_eq!(arg(&args, "--tps"), Some("200"));
    let urls: Vec<&String> = args
        .iter()
        .zip(args.iter().skip(1))
        .filter(|(f, _)| *f == "--rpc")
        .map(|(_, u)| u)
        .collect();
    assert!(!urls.is_empty());
    let cred = credentials.iter().next().unwrap();
    // In the load host's own region (a submission is a round trip).
    let load_gid = yaml["hosts"]["load"]["network_node_id"].as_u64().unwrap();
    let load_region = gnodes[&load_gid].split('-').next().unwrap().to_string();
    for u in urls {
        let rest = u
            .strip_prefix(&format!("http://{cred}@"))
            .unwrap_or_else(|| panic!("{u}"));
        let (ip, port) = rest.split_once(':').unwrap();
        let (i, _) = by_ip.get(ip).unwrap_or_else(|| panic!("{u}: no such node"));
        assert_eq!(port, RPC_PORT.to_string(), "{u}");
        assert_eq!(
            profile.regions[placements[*i].region].name, load_region,
            "{u}"
        );
    }
    assert!(secs(&load["start_time"]) >= genesis_s - 1.0);
    assert_eq!(
        yaml["hosts"]["load"]["processes"][0]["expected_final_state"]["exited"].as_u64(),
        Some(0)
    );

    // A host's own argument line starts a node: node 10's, moved to loopback (nothing may dial
    // 10.77 addresses outside the simulation, so its genesis copy names no bootnodes).
    let h = &yaml["hosts"]["node10"]["processes"][0];
    let mut args = strings(&h["args"]);
    let (_, data) = &by_ip[yaml["hosts"]["node10"]["ip_addr"].as_str().unwrap()];
    let mut local = g.clone();
    local.bootnodes.clear();
    let local_genesis = tmp.path().join("local-genesis.json");
    local.write(&local_genesis).unwrap();
    let local_data = tmp.path().join("node10");
    std::fs::create_dir_all(&local_data).unwrap();
    std::fs::copy(data.join("node.key"), local_data.join("node.key")).unwrap();
    for (flag, value) in [
        ("--listen", "/ip4/127.0.0.1/tcp/0".to_string()),
        ("--rpc", "127.0.0.1:0".to_string()),
        ("--genesis", local_genesis.display().to_string()),
        ("--data-dir", local_data.display().to_string()),
    ] {
        let k = args.iter().position(|a| a == flag).unwrap();
        args[k + 1] = value;
    }
    args.push("--exit-with-parent".into());
    let mut child = Command::new(EXE)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let node_json = local_data.join("node.json");
    let info = loop {
        if let Ok(t) = std::fs::read_to_string(&node_json) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                break v;
            }
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("node10's argument line did not start a node");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let pid = meshnode::node::peer_id_of_key_file(&data.join("node.key")).unwrap();
    assert_eq!(info["peer_id"].as_str(), Some(pid.to_string().as_str()));
}
