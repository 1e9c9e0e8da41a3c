//! `meshnode devnet --docker DIR`: write a network for Docker Swarm (`docker stack deploy`,
//! Docker's own orchestrator, across machines) that also runs on one machine with
//! `docker compose`, instead of starting processes here.
//!
//! What goes into DIR:
//! - `stack.yml` (Compose file format 3.8, which both `docker stack deploy` and `docker
//!   compose` read):
//!   - services `boot0` … `boot{K-1}`: the bootnodes, one replica each, each with a fixed
//!     node key (a Docker secret) so that its multiaddr is known in the genesis, and each a
//!     validator (`dev-validator:i`). Boot i publishes its JSON-RPC on port 8545 + i of the
//!     host it runs on (`mode: host`).
//!   - service `node`: `--nodes - K` replicas with keys of their own.
//!   - every service has `endpoint_mode: dnsrr`: a service name resolves to its tasks'
//!     own addresses (in Swarm as in Compose), so `node` names every replica and `bench
//!     propagation --attach http://…@node:8545` reaches each of them. Swarm's default, a
//!     virtual IP, needs the kernel's IPVS (`ip_vs`), which not every host has (this one
//!     answers "No route to host" through a VIP).
//!   - network `meshnet`: an attachable overlay (driver `${MESHNODE_NETWORK_DRIVER:-overlay}`;
//!     `bridge` for Compose without Swarm) on `${MESHNODE_SUBNET:-10.77.240.0/24}`.
//!   - config `genesis` (the genesis file) and one secret per bootnode key.
//!   - every node listens on `/ip4/0.0.0.0/tcp/9000` and serves JSON-RPC on `0.0.0.0:8545`
//!     behind the scenario's credentials (the node requires them off loopback).
//! - `genesis.json`: the template's chain id and dev accounts, the K validators, genesis time
//!   = now (slots before the deploy are simply empty), and the bootnodes as
//!   `/dns4/bootI/tcp/9000/p2p/<peer id>`: each service name resolves inside the network
//!   (Docker's embedded DNS; the node resolves `/dns4` with libp2p's DNS transport).
//! - `keys/bootI.key`: the bootnode keys (mode 0644: a Compose file secret is a bind mount,
//!   read by the image's unprivileged user 10001; these are devnet keys).
//! - `attach.txt`: the node URLs for `meshnode bench propagation --attach-file`, run in a
//!   container on the network (the commands this module returns).
//!
//! The image is built by `deploy/docker/Dockerfile` (multi-stage, registry needed) or, with
//! no registry, by `deploy/docker/build-offline.sh` from a local binary; both give a
//! `scratch`-based image running as user 10001 with entry point `meshnode`.

use crate::crypto::Keypair;
use crate::genesis::GenesisFile;
use anyhow::bail;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The p2p port every container listens on.
pub const P2P_PORT: u16 = 9000;
/// The JSON-RPC port inside every container; bootnode i publishes it on host port
/// `RPC_PORT + i`.
pub const RPC_PORT: u16 = 8545;
/// User name of every node's JSON-RPC (the password is drawn per scenario).
pub const RPC_USER: &str = "meshnode";
/// The overlay subnet unless `MESHNODE_SUBNET` says otherwise at deploy time.
pub const DEFAULT_SUBNET: &str = "10.77.240.0/24";
/// The image unless `MESHNODE_IMAGE` says otherwise at deploy time.
pub const DEFAULT_IMAGE: &str = "meshnode:local";
/// The network's name in the stack file; Docker prefixes it with the stack (project) name.
pub const NETWORK: &str = "meshnet";

/// What to write.
#[derive(Clone, Debug)]
pub struct DockerOptions {
    /// Scenario directory (created; must be empty or absent).
    pub dir: PathBuf,
    /// Number of nodes, bootnodes included.
    pub nodes: usize,
    /// Bootnodes, which are also the validators (services `boot0..K`).
    pub bootnodes: usize,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// Genesis template (None: [`GenesisFile::load`]'s default).
    pub template: Option<PathBuf>,
    /// Log filter passed to the nodes (`MESHNODE_LOG`).
    pub log: String,
}

/// A written scenario: where things are and the commands to give the user.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// `DIR/stack.yml`.
    pub stack: PathBuf,
    /// `DIR/genesis.json`.
    pub genesis: PathBuf,
    /// `DIR/attach.txt`.
    pub attach_file: PathBuf,
    /// Bootnode multiaddrs as written into the genesis.
    pub bootnodes: Vec<String>,
    /// Replicas of the `node` service.
    pub replicas: usize,
    /// The JSON-RPC password of every node (user [`RPC_USER`]).
    pub rpc_password: String,
}

impl Scenario {
    /// `docker stack deploy` of this scenario as stack `name`.
    pub fn deploy_command(&self, name: &str) -> String {
        format!("docker stack deploy -c {} {name}", self.stack.display())
    }

    /// The bench, as a one-off container on stack `name`'s network, measuring every node of
    /// it and writing `propagation.json` into the scenario directory.
    pub fn bench_command(&self, name: &str, image: &str) -> String {
        let dir = self
            .stack
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| ".".into());
        format!(
            "docker run --rm --network {name}_{NETWORK} -v {dir}:/scenario -u \"$(id -u):$(id -g)\" \
             {image} bench propagation --attach-file /scenario/attach.txt --blocks 10 --tps 100 \
             --out /scenario/propagation.json"
        )
    }
}

/// Writes the scenario (see the module doc).
///
/// Errors: bad counts, an unusable template, DIR not empty, or I/O.
pub fn write(opts: &DockerOptions) -> anyhow::Result<Scenario> {
    if opts.bootnodes == 0 {
        bail!("a Docker network needs at least one bootnode");
    }
    if opts.nodes < 2 || opts.bootnodes > opts.nodes {
        bail!("--nodes must be at least 2 and at least the number of bootnodes (validators)");
    }
    let dir = super::new_scenario_dir(&opts.dir)?;
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys)?;
    let mut bootnodes = Vec::new();
    for i in 0..opts.bootnodes {
        let path = keys.join(format!("boot{i}.key"));
        Keypair::generate().write_file(&path)?;
        set_mode(&path, 0o644)?;
        let peer = crate::node::peer_id_of_key_file(&path)?;
        bootnodes.push(format!("/dns4/boot{i}/tcp/{P2P_PORT}/p2p/{peer}"));
    }

    let mut g = GenesisFile::load(opts.template.as_deref())?;
    g.validators = crate::genesis::dev_validators(opts.bootnodes);
    g.slot_ms = opts.slot_ms;
    g.genesis_time_ms = crate::now_ms();
    g.bootnodes = bootnodes.clone();
    g.to_spec()?;
    let genesis = dir.join("genesis.json");
    g.write(&genesis)?;

    let password = crate::rpc::auth::random_hex(16)?;
    let replicas = opts.nodes - opts.bootnodes;
    std::fs::write(dir.join("stack.yml"), stack_yaml(opts, replicas, &password))?;
    let attach_file = dir.join("attach.txt");
    let mut attach = String::from(
        "# Node JSON-RPC URLs for `meshnode bench propagation --attach-file`, from a container \
         on the network.\n# `node` resolves to every replica (endpoint_mode dnsrr).\n",
    );
    for i in 0..opts.bootnodes {
        let _ = writeln!(attach, "http://{RPC_USER}:{password}@boot{i}:{RPC_PORT}");
    }
    if replicas > 0 {
        let _ = writeln!(attach, "http://{RPC_USER}:{password}@node:{RPC_PORT}");
    }
    std::fs::write(&attach_file, attach)?;
    Ok(Scenario {
        stack: dir.join("stack.yml"),
        genesis,
        attach_file,
        bootnodes,
        replicas,
        rpc_password: password,
    })
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &std::path::Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// The arguments of `meshnode run` inside a container (after the entry point).
fn run_args(key: Option<usize>) -> Vec<String> {
    let mut a: Vec<String> = [
        "run",
        "--data-dir",
        "/data",
        "--genesis",
        "/etc/meshnode/genesis.json",
        "--listen",
        "/ip4/0.0.0.0/tcp/9000",
        "--rpc",
        "0.0.0.0:8545",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(i) = key {
        a.extend([
            "--node-key".into(),
            format!("/run/secrets/boot{i}_key"),
            "--validator-key".into(),
            format!("dev-validator:{i}"),
        ]);
    }
    a
}

/// A YAML flow sequence of plain strings (the arguments are ours: no quoting needed beyond
/// JSON's, which YAML accepts).
fn flow(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn stack_yaml(opts: &DockerOptions, replicas: usize, password: &str) -> String {
    let mut y = String::new();
    let _ = write!(
        y,
        "# A meshnode network written by `meshnode devnet --docker`: {nodes} nodes, {boots} \
         bootnodes (boot0..boot{last}, also the validators) and {replicas} replicas of `node`.\n\
         # Docker Swarm, across machines:  docker stack deploy -c stack.yml meshnode\n\
         # One machine, no Swarm:           MESHNODE_NETWORK_DRIVER=bridge docker compose -f \
         stack.yml -p meshnode up -d\n\
         # Deploy-time settings: MESHNODE_IMAGE (default {DEFAULT_IMAGE}), MESHNODE_SUBNET \
         (default {DEFAULT_SUBNET}).\n\
         version: \"3.8\"\n\n\
         x-node: &node\n\
         \x20 image: ${{MESHNODE_IMAGE:-{DEFAULT_IMAGE}}}\n\
         \x20 environment:\n\
         \x20   MESHNODE_LOG: {log}\n\
         \x20   MESHNODE_RPC_USER: {RPC_USER}\n\
         \x20   MESHNODE_RPC_PASSWORD: \"{password}\"\n\
         \x20 configs:\n\
         \x20   - source: genesis\n\
         \x20     target: /etc/meshnode/genesis.json\n\
         \x20 networks: [{NETWORK}]\n\
         \x20 stop_grace_period: 30s\n\n\
         services:\n",
        nodes = opts.nodes,
        boots = opts.bootnodes,
        last = opts.bootnodes - 1,
        log = serde_json::to_string(&opts.log).unwrap_or_default(),
    );
    for i in 0..opts.bootnodes {
        let _ = write!(
            y,
            "  boot{i}:\n\
             \x20   <<: *node\n\
             \x20   command: {cmd}\n\
             \x20   secrets:\n\
             \x20     - source: boot{i}_key\n\
             \x20       target: boot{i}_key\n\
             \x20   deploy:\n\
             \x20     endpoint_mode: dnsrr\n\
             \x20   ports:\n\
             \x20     - target: {RPC_PORT}\n\
             \x20       published: {port}\n\
             \x20       mode: host\n",
            cmd = flow(&run_args(Some(i))),
            port = RPC_PORT as usize + i,
        );
    }
    if replicas > 0 {
        let _ = write!(
            y,
            "  node:\n\
             \x20   <<: *node\n\
             \x20   command: {cmd}\n\
             \x20   deploy:\n\
             \x20     replicas: {replicas}\n\
             \x20     endpoint_mode: dnsrr\n",
            cmd = flow(&run_args(None)),
        );
    }
    let _ = write!(
        y,
        "\nnetworks:\n\
         \x20 {NETWORK}:\n\
         \x20   driver: ${{MESHNODE_NETWORK_DRIVER:-overlay}}\n\
         \x20   attachable: true\n\
         \x20   ipam:\n\
         \x20     config:\n\
         \x20       - subnet: ${{MESHNODE_SUBNET:-{DEFAULT_SUBNET}}}\n\n\
         configs:\n\
         \x20 genesis:\n\
         \x20   file: ./genesis.json\n\n\
         secrets:\n"
    );
    for i in 0..opts.bootnodes {
        let _ = write!(
            y,
            "  boot{i}_key:\n\
             \x20   file: ./keys/boot{i}.key\n"
        );
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_parses_and_names_every_part() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = DockerOptions {
            dir: tmp.path().join("net"),
            nodes: 6,
            bootnodes: 2,
            slot_ms: 1000,
            template: None,
            log: "info".into(),
        };
        let s = write(&opts).unwrap();
        let text = std::fs::read_to_string(&s.stack).unwrap();
        let y: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        let services = &y["services"];
        assert_eq!(services["node"]["deploy"]["replicas"].as_u64(), Some(4));
        assert_eq!(
            services["node"]["deploy"]["endpoint_mode"].as_str(),
            Some("dnsrr")
        );
        for i in 0..2 {
            let b = &services[format!("boot{i}").as_str()];
            let cmd: Vec<&str> = b["command"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(cmd
                .windows(2)
                .any(|w| w == ["--validator-key", &format!("dev-validator:{i}")]));
            assert!(cmd
                .windows(2)
                .any(|w| w == ["--node-key", &format!("/run/secrets/boot{i}_key")]));
            let key = tmp.path().join(format!("net/keys/boot{i}.key"));
            let peer = crate::node::peer_id_of_key_file(&key).unwrap();
            assert_eq!(s.bootnodes[i], format!("/dns4/boot{i}/tcp/9000/p2p/{peer}"));
        }
        assert!(y["secrets"]["boot1_key"]["file"].as_str().is_some());
        assert_eq!(
            y["networks"][NETWORK]["driver"].as_str(),
            Some("${MESHNODE_NETWORK_DRIVER:-overlay}")
        );
        let g = GenesisFile::load(Some(&s.genesis)).unwrap();
        assert_eq!(g.validators.len(), 2);
        assert_eq!(g.bootnodes, s.bootnodes);
        let attach = std::fs::read_to_string(&s.attach_file).unwrap();
        assert_eq!(
            attach.lines().filter(|l| l.starts_with("http://")).count(),
            3
        );
        assert!(attach.contains(&s.rpc_password));
        assert!(write(&opts).is_err(), "a second scenario into the same dir");
    }
}
