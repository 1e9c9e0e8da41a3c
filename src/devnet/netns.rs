//! Network-namespace devnets (`meshnode devnet --netns`, Linux, root): every node in its own
//! network namespace with its own address in 10.77.0.0/20 on one bridge, its bandwidth capped
//! in the kernel (`tc tbf` on both ends of its veth pair) and its packet loss drawn in the
//! kernel (`iptables -m statistic` on its namespace's INPUT chain); delays between regions
//! stay in the node (`--link-shaping delay`), since `sch_netem` is missing on many kernels
//! (this machine's among them) and per-destination delays would need a netem qdisc per region
//! pair.
//!
//! Names carry the devnet process's pid: namespaces `mn<pid>-<i>`, host-side veths
//! `mn<pid>h<i>`, the bridge `mn<pid>b`. Everything is removed when [`Netns`] drops (exit,
//! Ctrl-C); what a killed devnet left behind (its pid no longer running) is removed by
//! [`clean`] (`meshnode devnet clean`), which every netns devnet also runs when it starts.
//! Rules live inside the namespaces, so deleting a namespace deletes its veth end, qdiscs and
//! iptables rules with it; the bridge is deleted explicitly.

use crate::p2p::profile::{LinkProfile, Placement};
use anyhow::{bail, Context};
use std::net::Ipv4Addr;
use std::process::Command;

/// The bridge's address; nodes are `10.77.R.x/20`.
pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Most nodes a netns devnet holds (host part `i + 2` of one /24 per region).
pub const MAX_NODES: usize = 250;
/// Most regions (third octets 1..=15 inside the /20).
pub const MAX_REGIONS: usize = 15;
/// The TCP port every node listens on inside its namespace (p2p); RPC is on 8545.
pub const P2P_PORT: u16 = 9000;
/// The iptables chain (in each namespace, jumped to from INPUT and OUTPUT) that holds a
/// partition's DROP rules.
pub const PARTITION_CHAIN: &str = "MESHNODE_PARTITION";

/// A netns devnet's namespaces, veths and bridge; removed on drop.
#[derive(Debug)]
pub struct Netns {
    tag: String,
    /// Per node: (namespace, address).
    pub nodes: Vec<(String, Ipv4Addr)>,
    removed: bool,
}

/// Runs `ip`/`tc`/`iptables` with `args`; the error names the command and its stderr.
fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} (is iproute2/iptables installed?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A `tc tbf` rate and burst for `bytes_per_s`: the burst holds 4 ms at the rate, at least
/// 32 KiB (a tbf needs at least one MTU-sized packet plus slack per timer tick).
fn tbf_args(bytes_per_s: f64) -> (String, String) {
    let bits = (bytes_per_s * 8.0).round() as u64;
    let burst = ((bytes_per_s * 0.004) as u64).max(32 * 1024);
    (format!("{bits}bit"), format!("{burst}b"))
}

impl Netns {
    /// Creates the bridge and one namespace per node: node i at `10.77.(R+1).(i+2)`, R its
    /// region in `placements` (0 without a profile); its class's caps as tbf qdiscs, `loss` as
    /// an iptables rule. Removes stale devnets first ([`clean`]).
    ///
    /// # Errors
    /// Not root, too many nodes or regions, another netns devnet running (the bridge address
    /// is taken), or a failing command (named); whatever was created is removed again.
    pub fn create(
        n: usize,
        profile: Option<&LinkProfile>,
        placements: Option<&[Placement]>,
        loss: f64,
    ) -> anyhow::Result<Netns> {
        if !nix::unistd::geteuid().is_root() {
            bail!("--netns needs root (network namespaces, tc, iptables)");
        }
        if n > MAX_NODES {
            bail!("--netns holds at most {MAX_NODES} nodes");
        }
        if profile.is_some_and(|p| p.regions.len() > MAX_REGIONS) {
            bail!("--netns supports profiles of at most {MAX_REGIONS} regions");
        }
        if !(0.0..1.0).contains(&loss) {
            bail!("loss must be in [0, 1)");
        }
        for gone in clean()? {
            tracing::info!(%gone, "removed a stale netns devnet's leftover");
        }
        let taken = run(
            "ip",
            &["-o", "addr", "show", "to", &format!("{BRIDGE_IP}/32")],
        )?;
        if !taken.trim().is_empty() {
            bail!(
                "{BRIDGE_IP} is in use ({}): another netns devnet is running; stop it first",
                taken.split_whitespace().nth(1).unwrap_or("?")
            );
        }
        let tag = format!("mn{}", std::process::id());
        let mut net = Netns {
            tag: tag.clone(),
            nodes: Vec::new(),
            removed: false,
        };
        let bridge = net.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &["addr", "add", &format!("{BRIDGE_IP}/20"), "dev", &bridge],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let placement = placements.and_then(|p| p.get(i).copied());
            let region = placement.map_or(0, |p| p.region);
            let ip = Ipv4Addr::new(10, 77, (region + 1) as u8, (i + 2) as u8);
            let ns = format!("{tag}-{i}");
            let host = format!("{tag}h{i}");
            run("ip", &["netns", "add", &ns])?;
            net.nodes.push((ns.clone(), ip));
            run(
                "ip",
                &[
                    "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            run("ip", &["link", "set", &host, "master", &bridge, "up"])?;
            run(
                "ip",
                &["-n", &ns, "addr", "add", &format!("{ip}/20"), "dev", "eth0"],
            )?;
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
            run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            if let (Some(p), Some(pl)) = (profile, placement) {
                let (up, down) = p.class_rates(pl.class);
                // Upload: what leaves the namespace; download: what the host side sends in.
                for (rate, netns, dev) in [(up, Some(ns.as_str()), "eth0"), (down, None, &*host)] {
                    let Some(r) = rate else { continue };
                    let (rate, burst) = tbf_args(r);
                    let mut a: Vec<&str> = Vec::new();
                    if let Some(ns) = netns {
                        a.extend(["-n", ns]);
                    }
                    a.extend([
                        "qdisc", "add", "dev", dev, "root", "tbf", "rate", &rate, "burst", &burst,
                        "latency", "200ms",
                    ]);
                    run("tc", &a)?;
                }
            }
            // The chain partitions fill ([`Netns::partition`]); empty until then.
            for chain_args in [
                &["-N", PARTITION_CHAIN][..],
                &["-A", "INPUT", "-j", PARTITION_CHAIN],
                &["-A", "OUTPUT", "-j", PARTITION_CHAIN],
            ] {
                let mut a = vec!["netns", "exec", &ns, "iptables"];
                a.extend_from_slice(chain_args);
                run("ip", &a)?;
            }
            if loss > 0.0 {
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &ns,
                        "iptables",
                        "-A",
                        "INPUT",
                        "-m",
                        "statistic",
                        "--mode",
                        "random",
                        "--probability",
                        &format!("{loss}"),
                        "-j",
                        "DROP",
                    ],
                )?;
            }
        }
        Ok(net)
    }

    /// Cuts the nodes into `groups` in the kernel: in each node's namespace, every packet to
    /// or from a node of another group is dropped (chain [`PARTITION_CHAIN`], replacing any
    /// partition before). Connections across the cut stall as on a real network until TCP or
    /// libp2p gives up on them.
    ///
    /// # Errors
    /// An iptables call failing (named).
    pub fn partition(&self, groups: &[Vec<usize>]) -> anyhow::Result<()> {
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for (i, (ns, _)) in self.nodes.iter().enumerate() {
            self.iptables(ns, &["-F", PARTITION_CHAIN])?;
            for (j, (_, ip)) in self.nodes.iter().enumerate() {
                if group_of(j) == group_of(i) {
                    continue;
                }
                let ip = ip.to_string();
                self.iptables(ns, &["-A", PARTITION_CHAIN, "-s", &ip, "-j", "DROP"])?;
                self.iptables(ns, &["-A", PARTITION_CHAIN, "-d", &ip, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Lifts a partition: empties [`PARTITION_CHAIN`] in every namespace.
    ///
    /// # Errors
    /// An iptables call failing (named).
    pub fn heal(&self) -> anyhow::Result<()> {
        for (ns, _) in &self.nodes {
            self.iptables(ns, &["-F", PARTITION_CHAIN])?;
        }
        Ok(())
    }

    fn iptables(&self, ns: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["netns", "exec", ns, "iptables"];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// The bridge's name.
    pub fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    /// The name prefix of everything this devnet created (`mn<pid>`).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Deletes the namespaces (with their veths, qdiscs and rules) and the bridge. Idempotent;
    /// errors are logged, not returned (it runs on the way out).
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        for (i, (ns, _)) in self.nodes.iter().enumerate() {
            // Deleting the host end takes the pair (and both qdiscs) at once; a namespace
            // itself is torn down by the kernel asynchronously after `ip netns del`.
            let host = format!("{}h{i}", self.tag);
            if let Err(e) = run("ip", &["link", "del", &host]) {
                tracing::warn!(%host, cause = %e, "cannot delete a veth");
            }
            if let Err(e) = run("ip", &["netns", "del", ns]) {
                tracing::warn!(%ns, cause = %e, "cannot delete a namespace");
            }
        }
        let bridge = self.bridge();
        if let Err(e) = run("ip", &["link", "del", &bridge]) {
            tracing::warn!(%bridge, cause = %e, "cannot delete the bridge");
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The devnet pid a name belongs to: `mn<pid>-<i>`, `mn<pid>h<i>`, `mn<pid>b`.
fn owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix("mn")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let tail = &rest[digits.len()..];
    let ok = tail == "b"
        || tail
            .strip_prefix('-')
            .is_some_and(|i| i.parse::<u32>().is_ok())
        || tail
            .strip_prefix('h')
            .is_some_and(|i| i.parse::<u32>().is_ok());
    if ok {
        digits.parse().ok()
    } else {
        None
    }
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Removes what netns devnets that no longer run left behind: namespaces named `mn<pid>-<i>`
/// and bridges `mn<pid>b` whose pid is not a running process. Returns what it removed.
///
/// # Errors
/// `ip` missing or failing.
pub fn clean() -> anyhow::Result<Vec<String>> {
    let mut gone = Vec::new();
    // Links first (a veth's host end takes its pair at once), then the namespaces.
    for line in run("ip", &["-o", "link", "show"])?.lines() {
        // "7: mn123b: <BROADCAST,…" or "8: mn123h0@if2: …"
        let name = line
            .split(':')
            .nth(1)
            .map(|s| s.trim().split('@').next().unwrap_or_default())
            .unwrap_or_default();
        if owner(name).is_some_and(|pid| !alive(pid)) {
            run("ip", &["link", "del", name])?;
            gone.push(format!("link {name}"));
        }
    }
    for line in run("ip", &["netns", "list"])?.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if owner(name).is_some_and(|pid| !alive(pid)) {
            run("ip", &["netns", "del", name])?;
            gone.push(format!("namespace {name}"));
        }
    }
    Ok(gone)
}

/// What a netns devnet leaves in the kernel right now, for checks: namespaces and links named
/// after `tag` (`mn<pid>`), and root-namespace iptables rules mentioning 10.77.
///
/// # Errors
/// `ip` or `iptables` missing or failing.
pub fn leftovers(tag: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let ours = |name: &str| {
        name.strip_prefix(tag)
            .is_some_and(|t| t.starts_with(['-', 'h', 'b']))
    };
    for line in run("ip", &["netns", "list"])?.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        if ours(name) {
            out.push(format!("namespace {name}"));
        }
    }
    for line in run("ip", &["-o", "link", "show"])?.lines() {
        let name = line.split(':').nth(1).unwrap_or_default().trim();
        if ours(name.split('@').next().unwrap_or_default()) {
            out.push(format!("link {name}"));
        }
    }
    for line in run("tc", &["qdisc", "show"])?.lines() {
        if line.contains(tag) {
            out.push(format!("qdisc {line}"));
        }
    }
    if let Ok(rules) = run("iptables", &["-S"]) {
        for r in rules.lines().filter(|r| r.contains("10.77.")) {
            out.push(format!("iptables {r}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_belong_to_their_pid() {
        assert_eq!(owner("mn123-4"), Some(123));
        assert_eq!(owner("mn123h4"), Some(123));
        assert_eq!(owner("mn123b"), Some(123));
        assert_eq!(owner("mn123x"), None);
        assert_eq!(owner("mnx-1"), None);
        assert_eq!(owner("docker0"), None);
        assert_eq!(owner("mn123-"), None);
    }

    #[test]
    fn tbf_bursts_hold_4_ms() {
        assert_eq!(
            tbf_args(50e6 / 8.0),
            ("50000000bit".into(), "32768b".into())
        );
        assert_eq!(tbf_args(1024e6 / 8.0).1, "512000b");
    }
}
