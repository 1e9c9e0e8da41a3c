//! A meshnode network on Docker Swarm, measured from outside (issue: realistic links and real
//! hosts). The test:
//! - installs Docker from Debian's packages (`docker.io`) where `dockerd` is missing;
//! - starts its own Docker daemon in a network namespace of its own (`mnd-<pid>`; sockets,
//!   data and state under a temporary directory), so that every bridge, veth and iptables
//!   rule Docker creates lives in that namespace and goes with it, and no address outside
//!   10.77.0.0/16 is used: the daemon's bridges come from 10.77.248.0/21, the swarm's pool
//!   is 10.77.0.0/17 and the stack's overlay is 10.77.240.0/24;
//! - `docker swarm init` on an address of that namespace;
//! - builds the image with no registry: `deploy/docker/build-offline.sh` imports a root
//!   filesystem holding the locally built binary and what it links;
//! - writes the network with `meshnode devnet --docker DIR --nodes 6` (2 bootnodes that also
//!   produce, 4 replicas), `docker stack deploy`s it on an overlay network, checks each of
//!   the 6 containers has its own address in the overlay's subnet;
//! - runs `meshnode bench propagation --attach-file` in a container on the network, as the
//!   README says, and checks every measured block reached all 6 nodes;
//! - removes the stack, then checks the network is gone, leaves the swarm, stops the daemon,
//!   removes the namespace and checks nothing is left (namespace, daemon, mounts).
//!
//! Needs root. Without root the test says so and does nothing.

mod common;
use common::wait_until as wait;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUBNET_PREFIX: &str = "10.77.240.";
/// The address of the daemon's namespace that the swarm advertises.
const SWARM_ADDR: &str = "10.77.249.1";

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn sh(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

/// `o`'s stdout, after asserting that `what` succeeded (else its output in the panic).
fn check(what: &str, o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(cmd: &str, args: &[&str]) -> String {
    check(&format!("{cmd} {args:?}"), sh(cmd, args))
}

/// A private Docker daemon in its own network namespace; everything it made is removed on
/// drop, also when the test fails half-way.
struct Daemon {
    netns: String,
    root: PathBuf,
    host: String,
    dockerd: Option<Child>,
    stack: Option<String>,
    image: Option<String>,
}

impl Daemon {
    fn start() -> Daemon {
        let netns = format!("mnd-{}", std::process::id());
        let root = std::env::temp_dir().join(format!("meshnode-docker-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("exec")).unwrap();
        let host = format!("unix://{}", root.join("docker.sock").display());
        let mut d = Daemon {
            netns,
            root,
            host,
            dockerd: None,
            stack: None,
            image: None,
        };
        ok("ip", &["netns", "add", &d.netns]);
        ok("ip", &["-n", &d.netns, "link", "set", "lo", "up"]);
        // The swarm needs a non-loopback address to advertise: a veth pair kept inside.
        ok(
            "ip",
            &[
                "-n", &d.netns, "link", "add", "mndsw0", "type", "veth", "peer", "name", "mndsw1",
            ],
        );
        ok(
            "ip",
            &[
                "-n",
                &d.netns,
                "addr",
                "add",
                &format!("{SWARM_ADDR}/24"),
                "dev",
                "mndsw0",
            ],
        );
        ok("ip", &["-n", &d.netns, "link", "set", "mndsw0", "up"]);
        ok("ip", &["-n", &d.netns, "link", "set", "mndsw1", "up"]);
        let log = std::fs::File::create(d.root.join("dockerd.log")).unwrap();
        // nsenter enters the network namespace only (`ip netns exec` would also remount /sys
        // and hide the cgroup hierarchy dockerd needs).
        let child = Command::new("nsenter")
            .arg(format!("--net=/var/run/netns/{}", d.netns))
            .arg("dockerd")
            .arg(format!("--data-root={}", d.root.join("data").display()))
            .arg(format!("--exec-root={}", d.root.join("exec").display()))
            .arg(format!("--pidfile={}", d.root.join("docker.pid").display()))
            .arg(format!("--host={}", d.host))
            .args([
                "--bip=10.77.250.1/24",
                "--default-address-pool=base=10.77.248.0/21,size=24",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting dockerd");
        d.dockerd = Some(child);
        let t0 = Instant::now();
        while !d.docker(&["info"]).status.success() {
            if t0.elapsed() > Duration::from_secs(60) {
                panic!(
                    "dockerd did not answer within 60 s; its log:\n{}",
                    std::fs::read_to_string(d.root.join("dockerd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        d
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .env("DOCKER_HOST", &self.host)
            .args(args)
            .output()
            .expect("running docker")
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        check(&format!("docker {args:?}"), self.docker(args))
    }

    fn networks(&self) -> String {
        String::from_utf8_lossy(
            &self
                .docker(&["network", "ls", "--format", "{{.Name}}"])
                .stdout,
        )
        .into_owned()
    }

    /// Stack, swarm, daemon, namespace, mounts and files, in that order; each step is tried
    /// even if an earlier one failed.
    fn teardown(&mut self) {
        if let Some(stack) = self.stack.take() {
            let _ = self.docker(&["stack", "rm", &stack]);
            let net = format!("{stack}_meshnet");
            let t0 = Instant::now();
            while self.networks().lines().any(|l| l == net)
                && t0.elapsed() < Duration::from_secs(60)
            {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        if let Some(image) = self.image.take() {
            let _ = self.docker(&["image", "rm", "-f", &image]);
        }
        let _ = self.docker(&["swarm", "leave", "--force"]);
        if let Some(mut child) = self.dockerd.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let t0 = Instant::now();
            while child.try_wait().ok().flatten().is_none() {
                if t0.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        // containerd and its shims are dockerd's children; any that outlived it go too.
        let root = self.root.display().to_string();
        let _ = Command::new("pkill").args(["-9", "-f", &root]).status();
        // Mounts dockerd left under its roots (overlay layers, network namespace files),
        // deepest first.
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mounts")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.teardown();
    }
}

fn ensure_dockerd() {
    let have = Command::new("sh")
        .args(["-c", "command -v dockerd"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if have {
        return;
    }
    eprintln!("dockerd missing: apt-get install docker.io");
    // policy-rc.d exit 101 (Debian's invoke-rc.d policy) keeps the package from starting a
    // system daemon, which would put docker0 (172.17.0.0/16) in the host's namespace.
    let o = Command::new("sh")
        .args([
            "-c",
            "set -e; p=/usr/sbin/policy-rc.d; made=; \
             if [ ! -e $p ]; then printf '#!/bin/sh\\nexit 101\\n' > $p; chmod +x $p; made=1; fi; \
             rc=0; (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
             docker.io) || rc=$?; [ -n \"$made\" ] && rm -f $p; exit $rc",
        ])
        .output()
        .expect("running apt-get");
    assert!(
        o.status.success(),
        "apt-get install docker.io failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn six_nodes_on_swarm_measured_from_outside() {
    if !is_root() {
        eprintln!("not root: cannot install Docker or create namespaces; skipping");
        return;
    }
    let exe = env!("CARGO_BIN_EXE_meshnode");
    ensure_dockerd();
    let mut d = Daemon::start();
    d.docker_ok(&[
        "swarm",
        "init",
        "--advertise-addr",
        SWARM_ADDR,
        "--listen-addr",
        &format!("{SWARM_ADDR}:2377"),
        "--default-addr-pool",
        "10.77.0.0/17",
        "--default-addr-pool-mask-length",
        "24",
    ]);

    let image = format!("meshnode-test:{}", std::process::id());
    let o = Command::new("sh")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/docker/build-offline.sh"
        ))
        .args([exe, &image])
        .env("DOCKER_HOST", &d.host)
        .output()
        .unwrap();
    check("build-offline.sh", o);
    d.image = Some(image.clone());
    let user = d.docker_ok(&["image", "inspect", "-f", "{{.Config.User}}", &image]);
    assert_eq!(
        user.trim(),
        "10001:10001",
        "the image runs as a non-root user"
    );

    let scenario = tempfile::tempdir().unwrap();
    let dir = scenario.path().join("net");
    let out = ok(
        exe,
        &["devnet", "--docker", dir.to_str().unwrap(), "--nodes", "6"],
    );
    assert!(out.contains("docker stack deploy"), "{out}");

    let stack = format!("mnci{}", std::process::id());
    let o = Command::new("docker")
        .env("DOCKER_HOST", &d.host)
        .env("MESHNODE_IMAGE", &image)
        .args([
            "stack",
            "deploy",
            "-c",
            dir.join("stack.yml").to_str().unwrap(),
            &stack,
        ])
        .output()
        .unwrap();
    check("docker stack deploy", o);
    d.stack = Some(stack.clone());
    let net = format!("{stack}_meshnet");
    let subnet = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}} {{.Driver}}",
        &net,
    ]);
    assert_eq!(subnet.trim(), "10.77.240.0/24 overlay");

    // Six containers running, each with its own address on the overlay.
    let mut addrs: Vec<String> = Vec::new();
    wait("6 running containers with an overlay address", 120, || {
        let ids = String::from_utf8_lossy(
            &d.docker(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.stack.namespace={stack}"),
            ])
            .stdout,
        )
        .into_owned();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.len() != 6 {
            return false;
        }
        let fmt = format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}");
        let mut args = vec!["inspect", "-f", &fmt];
        args.extend(ids.iter().copied());
        let o = d.docker(&args);
        addrs = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        o.status.success() && addrs.len() == 6
    });
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 6, "one address per node: {addrs:?}");
    assert!(
        addrs.iter().all(|a| a.starts_with(SUBNET_PREFIX)),
        "{addrs:?}"
    );

    // The bench, in a container on the network, as the README runs it.
    let vol = format!("{}:/scenario", dir.display());
    let caller = format!(
        "{}:{}",
        nix::unistd::Uid::effective(),
        nix::unistd::Gid::effective()
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        &net,
        "-v",
        &vol,
        // As the README: the bench writes its report as the caller.
        "-u",
        &caller,
        &image,
        "bench",
        "propagation",
        "--attach-file",
        "/scenario/attach.txt",
        "--blocks",
        "5",
        "--tps",
        "50",
        "--out",
        "/scenario/propagation.json",
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "bench: {stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("resolves to 4 addresses"),
        "the node service's replicas are found by name: {stdout}"
    );
    let report = read_json(&dir.join("propagation.json"));
    assert_eq!(report["attached"], true);
    assert_eq!(report["nodes"], 6, "{stdout}");
    let s = &report["summary"];
    assert_eq!(s["blocks"], 5, "{stdout}");
    assert_eq!(
        s["blocks_reaching_all"], 5,
        "every block reaches all 6: {stdout}"
    );
    assert!(s["txs_in_blocks"].as_u64().unwrap() > 0, "{stdout}");

    // Remove it all, checking each step.
    d.docker_ok(&["stack", "rm", &stack]);
    d.stack = None;
    wait("the stack's network to go", 60, || {
        !d.networks().lines().any(|l| l == net)
    });
    d.docker_ok(&["image", "rm", "-f", &image]);
    d.image = None;
    d.docker_ok(&["swarm", "leave", "--force"]);
    let state = d.docker_ok(&["info", "-f", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(state.trim(), "inactive");
    let netns = d.netns.clone();
    let root = d.root.clone();
    let pid = d.dockerd.as_ref().map(|c| c.id()).unwrap();
    drop(d);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true),
        "dockerd stopped"
    );
    assert!(
        !ok("ip", &["netns", "list"])
            .lines()
            .any(|l| l.split_whitespace().next() == Some(netns.as_str())),
        "namespace {netns} removed"
    );
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(root.to_str().unwrap()),
        "no mount left under {}",
        root.display()
    );
    assert!(!root.exists(), "{} removed", root.display());
}
