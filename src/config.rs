//! Raw settings (flags, environment, files) -> validated node [`Config`], in one fallible
//! function, [`Config::from_raw`]; plus `node.json`, what a running node tells tooling. No
//! clap types here: `cli` converts its arguments into [`RawConfig`].

use crate::crypto::Keypair;
use crate::genesis::{ChainSpec, GenesisFile};
use anyhow::{bail, Context};
use libp2p::Multiaddr;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything a node needs to run, checked.
#[derive(Clone, Debug)]
pub struct Config {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Chain spec from the genesis file.
    pub spec: ChainSpec,
    /// libp2p listen addresses.
    pub listen: Vec<Multiaddr>,
    /// JSON-RPC address.
    pub rpc_addr: SocketAddr,
    /// Bootnodes (genesis plus flags, deduplicated).
    pub bootnodes: Vec<Multiaddr>,
    /// Validator key, if this node produces blocks.
    pub validator_key: Option<Keypair>,
    /// libp2p node key file.
    pub node_key: PathBuf,
    /// Peer manager counts (target, outbound target, maximum).
    pub peers: crate::p2p::PeerConfig,
    /// Transaction pool limits and announcement tuning.
    pub txpool: crate::txpool::TxPoolConfig,
    /// Gossip validation worker tuning.
    pub gossip: crate::gossip::GossipConfig,
    /// Range sync tuning.
    pub sync: crate::sync::SyncConfig,
    /// How this node publishes the blocks it produces.
    pub relay: crate::producer::RelayMode,
    /// `user:password` from --rpc-user/--rpc-password; `None` means cookie auth.
    pub rpc_user_pass: Option<String>,
    /// Where to serve Prometheus metrics (`--metrics`); `None`: not served.
    pub metrics_addr: Option<SocketAddr>,
    /// How long a misbehaving peer is banned (`--bantime`).
    pub ban_time: std::time::Duration,
    /// Most HTTP requests in flight and most open WebSocket connections on JSON-RPC.
    pub rpc_limits: RpcLimits,
    /// Whether local transactions are journaled (`--mempool-journal`).
    pub mempool_journal: bool,
    /// Link shaping from `--link-profile` / `--link-class`; `None` without a profile.
    pub link_shape: Option<crate::p2p::LinkShape>,
    /// Whether dials reuse the listen port (`--port-reuse`; [`crate::p2p::ports`]).
    pub port_reuse: bool,
}

/// Settings as given (`meshnode run` flags and environment), not yet checked. Field meanings
/// and defaults are those of the flags of the same names (`meshnode run --help`).
#[derive(Clone, Debug)]
pub struct RawConfig {
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--genesis`: the genesis file (None: [`GenesisFile::load`]'s default).
    pub genesis: Option<PathBuf>,
    /// `--listen` multiaddrs, unparsed.
    pub listen: Vec<String>,
    /// `--rpc`.
    pub rpc: SocketAddr,
    /// `--bootnode` multiaddrs, unparsed.
    pub bootnode: Vec<String>,
    /// `--validator-key`: a key file or `dev-validator:N`.
    pub validator_key: Option<String>,
    /// `--node-key`.
    pub node_key: Option<PathBuf>,
    /// `--target-peers`.
    pub target_peers: usize,
    /// `--outbound-peers`.
    pub outbound_peers: usize,
    /// `--max-peers`.
    pub max_peers: usize,
    /// `--mempool-max-txs`.
    pub mempool_max_txs: usize,
    /// `--mempool-max-bytes`.
    pub mempool_max_bytes: usize,
    /// `--mempool-max-per-sender`.
    pub mempool_max_per_sender: usize,
    /// `--mempool-max-queued-per-sender`.
    pub mempool_max_queued_per_sender: usize,
    /// `--mempool-max-queued`.
    pub mempool_max_queued: usize,
    /// `--mempool-queued-lifetime-secs`.
    pub mempool_queued_lifetime_secs: u64,
    /// `--min-relay-fee`.
    pub min_relay_fee: u64,
    /// `--mempool-journal`: `on` or `off`.
    pub mempool_journal: bool,
    /// `--rpc-user`.
    pub rpc_user: Option<String>,
    /// `--rpc-password`.
    pub rpc_password: Option<String>,
    /// `--rpc-max-http-requests`.
    pub rpc_max_http_requests: usize,
    /// `--rpc-max-ws-connections`.
    pub rpc_max_ws_connections: usize,
    /// `--relay`: `compact` or `gossip`.
    pub relay: String,
    /// `--idontwant`: `on` or `off`.
    pub idontwant: bool,
    /// `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// `--bantime`, seconds.
    pub bantime: u64,
    /// `--link-profile`: `lan`, `wan` or a profile file.
    pub link_profile: Option<String>,
    /// `--link-class`: a bandwidth class of the profile.
    pub link_class: Option<String>,
    /// `--link-shaping all` (true) or `delay` (false: no bandwidth pacing in the node).
    pub link_pace: bool,
    /// `--port-reuse`.
    pub port_reuse: bool,
    /// `--simulated-cost`, unparsed.
    pub simulated_cost: Option<String>,
    /// `--block-nice`.
    pub block_nice: i32,
}

impl Config {
    /// Validates `args`: reads the genesis, parses multiaddrs, loads the validator key.
    ///
    /// Errors name the flag or file at fault.
    pub fn from_raw(args: &RawConfig) -> anyhow::Result<Config> {
        let spec = GenesisFile::load(args.genesis.as_deref())?.to_spec()?;
        let parse = |s: &String, what: &str| -> anyhow::Result<Multiaddr> {
            s.parse()
                .with_context(|| format!("invalid {what} multiaddr {s:?}"))
        };
        let listen = args
            .listen
            .iter()
            .map(|s| parse(s, "--listen"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if listen.is_empty() {
            bail!("at least one --listen address is needed");
        }
        let mut bootnodes = Vec::new();
        for s in spec.bootnodes.iter().chain(&args.bootnode) {
            let a = parse(s, "bootnode")?;
            if crate::p2p::peer_id_of(&a).is_none() {
                bail!("bootnode {s:?} has no /p2p/<peer id> suffix");
            }
            if !bootnodes.contains(&a) {
                bootnodes.push(a);
            }
        }
        let peers = crate::p2p::PeerConfig {
            target: args.target_peers,
            outbound: if args.target_peers == 0 {
                0
            } else {
                args.outbound_peers
            },
            max: args.max_peers,
        };
        peers.validate().map_err(anyhow::Error::msg)?;
        let validator_key = match &args.validator_key {
            Some(s) => Some(Keypair::from_spec(s).context("loading --validator-key")?),
            None => None,
        };
        if args.mempool_max_txs == 0
            || args.mempool_max_bytes == 0
            || args.mempool_max_per_sender == 0
        {
            bail!("--mempool-max-txs, --mempool-max-bytes and --mempool-max-per-sender must be at least 1");
        }
        let link_shape = match &args.link_profile {
            None => {
                if args.link_class.is_some() {
                    bail!("--link-class needs --link-profile");
                }
                None
            }
            Some(spec) => {
                let profile = crate::p2p::LinkProfile::load(spec)?;
                let mut shape =
                    crate::p2p::LinkShape::new(profile, &listen, args.link_class.as_deref())?;
                if !args.link_pace {
                    shape.up_bps = None;
                    shape.down_bps = None;
                }
                if shape.region.is_none() && shape.profile.regions.len() > 1 {
                    bail!(
                        "--link-profile {spec}: no --listen address names a region (listen on \
                         127.0.R.x or 10.77.R.x, R = 1..={})",
                        shape.profile.regions.len()
                    );
                }
                Some(shape)
            }
        };
        Ok(Config {
            link_shape,
            port_reuse: args.port_reuse,
            node_key: args
                .node_key
                .clone()
                .unwrap_or_else(|| args.data_dir.join("node.key")),
            data_dir: args.data_dir.clone(),
            spec,
            listen,
            rpc_addr: args.rpc,
            bootnodes,
            validator_key,
            peers,
            txpool: crate::txpool::TxPoolConfig {
                pool: crate::txpool::MempoolConfig {
                    max_txs: args.mempool_max_txs,
                    max_bytes: args.mempool_max_bytes,
                    max_per_sender: args.mempool_max_per_sender,
                    max_queued_per_sender: args.mempool_max_queued_per_sender,
                    max_queued: args.mempool_max_queued,
                    queued_lifetime: std::time::Duration::from_secs(
                        args.mempool_queued_lifetime_secs,
                    ),
                    min_relay_fee: args.min_relay_fee,
                },
                ..Default::default()
            },
            gossip: crate::gossip::GossipConfig {
                idontwant: args.idontwant,
                simulated_cost: args
                    .simulated_cost
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--simulated-cost: {e}"))?,
                block_nice: args.block_nice,
                ..Default::default()
            },
            sync: Default::default(),
            relay: args
                .relay
                .parse()
                .map_err(|e| anyhow::anyhow!("--relay: {e}"))?,
            rpc_user_pass: match (&args.rpc_user, &args.rpc_password) {
                (Some(u), Some(p)) => {
                    if u.contains(':') {
                        bail!("--rpc-user must not contain ':'");
                    }
                    Some(format!("{u}:{p}"))
                }
                _ => None,
            },
            metrics_addr: args.metrics,
            ban_time: std::time::Duration::from_secs(args.bantime),
            mempool_journal: args.mempool_journal,
            rpc_limits: {
                if args.rpc_max_http_requests == 0 || args.rpc_max_ws_connections == 0 {
                    bail!(
                        "--rpc-max-http-requests and --rpc-max-ws-connections must be at least 1"
                    );
                }
                RpcLimits {
                    http_requests: args.rpc_max_http_requests,
                    ws_connections: args.rpc_max_ws_connections,
                }
            },
        })
    }
}

/// What a running node writes to `DATA_DIR/node.json` once it listens (for devnet tooling
/// and tests that start nodes on port 0); removed at a clean shutdown.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NodeFile {
    /// libp2p peer id.
    pub peer_id: String,
    /// Listen multiaddrs with `/p2p/<peer id>`.
    pub listen_addrs: Vec<String>,
    /// JSON-RPC URL (HTTP; the same port serves WebSocket).
    pub rpc_url: String,
    /// Process id.
    pub pid: u32,
    /// Prometheus metrics URL (`http://ADDR/metrics`) when `--metrics` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
}

/// JSON-RPC connection limits (enforced by `rpc::limits`): HTTP requests in flight and open
/// WebSocket connections, each with its own pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcLimits {
    /// Most HTTP requests served at once (`--rpc-max-http-requests`, default 256).
    pub http_requests: usize,
    /// Most open WebSocket connections (`--rpc-max-ws-connections`, default 512).
    pub ws_connections: usize,
}

impl Default for RpcLimits {
    fn default() -> Self {
        RpcLimits {
            http_requests: 256,
            ws_connections: 512,
        }
    }
}
