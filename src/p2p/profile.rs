//! Link profiles: regions with one-way delays between them, jitter, loss and bandwidth classes
//! (what a wide-area network looks like to a node), read from TOML; the built-in `lan` and
//! `wan`; which region an address belongs to; and how a devnet of N nodes is spread over the
//! regions and classes.
//!
//! The `wan` profile is the one libp2p's gossipsub-interop Shadow scenarios use
//! (`libp2p/test-plans`, `gossipsub-interop/network_graph.py`): 8 regions weighted by where
//! Ethereum nodes run, one-way delays between 2 and 220 ms, and two bandwidth classes,
//! "supernode" (1 Gbit/s up and down, 20 % of nodes) and "fullnode" (50 Mbit/s, 80 %).
//!
//! File format (TOML; every delay is one-way, in milliseconds, from the region to each region
//! in the order the regions are listed; a bandwidth of 0 means unlimited):
//!
//! ```toml
//! name = "two-sites"
//! jitter_ms = 0.0   # uniform ± on every delay (default 0)
//! loss = 0.0        # fraction of packets lost per link, 0..1 (netns devnets only; default 0)
//!
//! [[region]]
//! name = "eu"
//! weight = 3        # share of nodes placed here
//! delay_ms = [2, 40]
//!
//! [[region]]
//! name = "us"
//! weight = 1
//! delay_ms = [40, 2]
//!
//! [[class]]
//! name = "fullnode"
//! up_mbit = 50
//! down_mbit = 50
//! weight = 1        # share of nodes in this class
//! ```
//!
//! A node's region is read from its IPv4 address: `127.0.R.x` (loopback devnets) and
//! `10.77.R.x` (network-namespace devnets) are in region `R - 1`, for `R` from 1 to the number
//! of regions; any other address is in no region, and links to it get no delay.

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

/// The `wan` profile's text (see the module doc for its source).
pub const WAN: &str = include_str!("profiles/wan.toml");
/// The `lan` profile's text: one region, no delay, no bandwidth cap.
pub const LAN: &str = include_str!("profiles/lan.toml");

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The named file could not be read.
    #[error("cannot read link profile {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not a profile (TOML syntax or a missing/mistyped field).
    #[error("link profile {name}: {message}")]
    Parse {
        /// Builtin name or file.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The profile parses but makes no sense (matrix shape, negative values, no class…).
    #[error("link profile {name}: {message}")]
    Invalid {
        /// Profile name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// `--link-class` names no class of the profile.
    #[error("link profile {profile} has no class {class:?} (it has {known})")]
    UnknownClass {
        /// Profile name.
        profile: String,
        /// The class asked for.
        class: String,
        /// The classes it has, comma-separated.
        known: String,
    },
}

/// One region of a profile.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Name, e.g. `europe`.
    pub name: String,
    /// Relative share of nodes placed in this region (> 0).
    pub weight: u32,
    /// One-way delay in ms from this region to each region, in the profile's region order.
    pub delay_ms: Vec<f64>,
}

/// A bandwidth class.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Class {
    /// Name, e.g. `fullnode`.
    pub name: String,
    /// Upload cap, Mbit/s (10^6 bit/s); 0 = unlimited.
    pub up_mbit: f64,
    /// Download cap, Mbit/s; 0 = unlimited.
    pub down_mbit: f64,
    /// Relative share of nodes in this class (> 0).
    pub weight: u32,
}

/// A link profile (see the module doc for the file format).
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LinkProfile {
    /// Name (reports quote it).
    pub name: String,
    /// Uniform jitter added to every delay, ± ms.
    #[serde(default)]
    pub jitter_ms: f64,
    /// Packet loss per link, 0..1 (applied by the kernel in netns devnets only).
    #[serde(default)]
    pub loss: f64,
    /// Regions, in matrix order (at most 250: the third octet of an address names one).
    #[serde(rename = "region")]
    pub regions: Vec<Region>,
    /// Bandwidth classes.
    #[serde(rename = "class")]
    pub classes: Vec<Class>,
}

/// Where one node of a devnet sits in a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Region index.
    pub region: usize,
    /// Class index.
    pub class: usize,
}

impl LinkProfile {
    /// `lan`, `wan`, or the path of a profile file.
    ///
    /// # Errors
    /// [`ProfileError`] naming the file and what is wrong with it.
    pub fn load(spec: &str) -> Result<LinkProfile, ProfileError> {
        let (name, text) = match spec {
            "wan" => ("wan".to_string(), WAN.to_string()),
            "lan" => ("lan".to_string(), LAN.to_string()),
            path => (
                path.to_string(),
                std::fs::read_to_string(Path::new(path)).map_err(|source| ProfileError::Read {
                    path: path.to_string(),
                    source,
                })?,
            ),
        };
        let profile: LinkProfile = toml::from_str(&text).map_err(|e| ProfileError::Parse {
            name: name.clone(),
            message: e.to_string(),
        })?;
        profile.validate()?;
        Ok(profile)
    }

    /// Checks the shape of the delay matrix, that values are finite and not negative, that
    /// weights are positive and that there is at least one region and one class.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let bad = |message: String| ProfileError::Invalid {
            name: self.name.clone(),
            message,
        };
        let n = self.regions.len();
        if n == 0 || n > 250 {
            return Err(bad(format!("needs 1 to 250 regions, has {n}")));
        }
        if self.classes.is_empty() {
            return Err(bad("needs at least one [[class]]".into()));
        }
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(self.jitter_ms) || !(0.0..1.0).contains(&self.loss) {
            return Err(bad("jitter_ms must be ≥ 0 and loss in [0, 1)".into()));
        }
        for r in &self.regions {
            if r.delay_ms.len() != n {
                return Err(bad(format!(
                    "region {} has {} delays, the profile has {n} regions",
                    r.name,
                    r.delay_ms.len()
                )));
            }
            if !r.delay_ms.iter().all(|d| ok(*d)) || r.weight == 0 {
                return Err(bad(format!(
                    "region {}: delays must be ≥ 0 ms and the weight > 0",
                    r.name
                )));
            }
        }
        for c in &self.classes {
            if !ok(c.up_mbit) || !ok(c.down_mbit) || c.weight == 0 {
                return Err(bad(format!(
                    "class {}: bandwidths must be ≥ 0 and the weight > 0",
                    c.name
                )));
            }
        }
        Ok(())
    }

    /// The index of the class named `name`.
    pub fn class_index(&self, name: &str) -> Result<usize, ProfileError> {
        self.classes
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| ProfileError::UnknownClass {
                profile: self.name.clone(),
                class: name.to_string(),
                known: self
                    .classes
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The class a node gets when none is named: the one with the largest weight.
    pub fn default_class(&self) -> usize {
        (0..self.classes.len())
            .max_by_key(|i| (self.classes[*i].weight, std::cmp::Reverse(*i)))
            .unwrap_or(0)
    }

    /// One-way delay from region `from` to region `to`.
    pub fn delay(&self, from: usize, to: usize) -> Duration {
        Duration::from_secs_f64(self.regions[from].delay_ms[to] / 1e3)
    }

    /// The region of an IPv4 address: `127.0.R.x` or `10.77.R.x` → `R - 1` when that is a
    /// region of this profile.
    pub fn region_of_ip(&self, ip: Ipv4Addr) -> Option<usize> {
        let [a, b, r, _] = ip.octets();
        let ours = (a, b) == (127, 0) || (a, b) == (10, 77);
        (ours && r >= 1 && usize::from(r) <= self.regions.len()).then(|| usize::from(r) - 1)
    }

    /// The region of the first IPv4 component of a multiaddr (see [`Self::region_of_ip`]).
    pub fn region_of(&self, addr: &Multiaddr) -> Option<usize> {
        addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => self.region_of_ip(ip),
            _ => None,
        })
    }

    /// The loopback address of the `index`-th node placed in `region`: `127.0.(region+1).(index
    /// mod 250 + 1)` (nodes tell each other's regions from it; ports keep nodes apart).
    pub fn loopback_ip(region: usize, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, (region + 1) as u8, (index % 250 + 1) as u8)
    }

    /// Regions and classes for `n` nodes in proportion to the weights, deterministically and
    /// evenly interleaved (smooth weighted round-robin, as nginx spreads upstream requests), so
    /// that any prefix of the nodes is spread like the whole.
    pub fn place(&self, n: usize) -> Vec<Placement> {
        let regions = smooth_wrr(
            &self.regions.iter().map(|r| r.weight).collect::<Vec<_>>(),
            n,
        );
        let classes = smooth_wrr(
            &self.classes.iter().map(|c| c.weight).collect::<Vec<_>>(),
            n,
        );
        regions
            .into_iter()
            .zip(classes)
            .map(|(region, class)| Placement { region, class })
            .collect()
    }

    /// Upload and download caps of a class, bytes per second (`None`: unlimited).
    pub fn class_rates(&self, class: usize) -> (Option<f64>, Option<f64>) {
        let c = &self.classes[class];
        let bps = |mbit: f64| (mbit > 0.0).then_some(mbit * 1e6 / 8.0);
        (bps(c.up_mbit), bps(c.down_mbit))
    }
}

/// `n` picks from `weights` by smooth weighted round-robin.
fn smooth_wrr(weights: &[u32], n: usize) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    (0..n)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(weights) {
                *c += i64::from(*w);
            }
            let best = (0..weights.len())
                .max_by_key(|i| (current[*i], std::cmp::Reverse(*i)))
                .unwrap_or(0);
            current[best] -= total;
            best
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_match_their_source() {
        let wan = LinkProfile::load("wan").unwrap();
        assert_eq!(wan.regions.len(), 8);
        let idx = |n: &str| wan.regions.iter().position(|r| r.name == n).unwrap();
        // Spot checks against gossipsub-interop's network_graph.py.
        assert_eq!(
            wan.delay(idx("europe"), idx("na_east")),
            Duration::from_millis(70)
        );
        assert_eq!(
            wan.delay(idx("australia"), idx("south_africa")),
            Duration::from_millis(220)
        );
        assert_eq!(
            wan.delay(idx("south_america"), idx("south_africa")),
            Duration::from_millis(195)
        );
        assert_eq!(
            wan.delay(idx("south_africa"), idx("south_america")),
            Duration::from_millis(190)
        );
        assert_eq!(
            wan.delay(idx("east_asia"), idx("east_asia")),
            Duration::from_millis(4)
        );
        assert_eq!(wan.classes[wan.default_class()].name, "fullnode");
        assert_eq!(
            wan.class_rates(wan.class_index("supernode").unwrap()).0,
            Some(1024e6 / 8.0)
        );
        let lan = LinkProfile::load("lan").unwrap();
        assert_eq!(lan.delay(0, 0), Duration::ZERO);
        assert_eq!(lan.class_rates(0), (None, None));
    }

    #[test]
    fn placement_follows_weights() {
        let wan = LinkProfile::load("wan").unwrap();
        let p = wan.place(1000);
        let share = |f: &dyn Fn(&Placement) -> bool| p.iter().filter(|x| f(x)).count();
        let europe = wan.regions.iter().position(|r| r.name == "europe").unwrap();
        let total: u32 = wan.regions.iter().map(|r| r.weight).sum();
        let want = 1000.0 * f64::from(wan.regions[europe].weight) / f64::from(total);
        assert!((share(&|x| x.region == europe) as f64 - want).abs() <= 1.0);
        assert_eq!(share(&|x| wan.classes[x.class].name == "supernode"), 200);
        // Deterministic.
        assert_eq!(wan.place(16), wan.place(16));
    }

    #[test]
    fn regions_come_from_addresses() {
        let wan = LinkProfile::load("wan").unwrap();
        let a: Multiaddr = "/ip4/127.0.3.7/tcp/4001".parse().unwrap();
        assert_eq!(wan.region_of(&a), Some(2));
        assert_eq!(wan.region_of_ip(Ipv4Addr::new(10, 77, 8, 1)), Some(7));
        assert_eq!(wan.region_of_ip(Ipv4Addr::new(10, 77, 9, 1)), None);
        assert_eq!(wan.region_of_ip(Ipv4Addr::new(127, 0, 0, 1)), None);
        assert_eq!(wan.region_of_ip(Ipv4Addr::new(192, 168, 1, 1)), None);
        assert_eq!(LinkProfile::loopback_ip(2, 6), Ipv4Addr::new(127, 0, 3, 7));
    }

    #[test]
    fn bad_profiles_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.toml");
        std::fs::write(
            &f,
            "name = \"x\"\n[[region]]\nname = \"a\"\nweight = 1\ndelay_ms = [1, 2]\n[[class]]\nname = \"c\"\nup_mbit = 1\ndown_mbit = 1\nweight = 1\n",
        )
        .unwrap();
        let e = LinkProfile::load(f.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("region a has 2 delays"), "{e}");
        std::fs::write(&f, "name = 3").unwrap();
        assert!(matches!(
            LinkProfile::load(f.to_str().unwrap()),
            Err(ProfileError::Parse { .. })
        ));
        assert!(matches!(
            LinkProfile::load("/nonexistent/profile.toml"),
            Err(ProfileError::Read { .. })
        ));
        let wan = LinkProfile::load("wan").unwrap();
        assert!(wan
            .class_index("satellite")
            .unwrap_err()
            .to_string()
            .contains("supernode"));
    }
}
