//! Command-line interface (clap derive). Doc comments here are the `--help` text.

pub mod file;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// meshnode: a libp2p node that gossips signed transactions and blocks, and measures how fast
/// they propagate.
#[derive(Debug, Parser)]
#[command(name = "meshnode", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info,meshnode=debug`.
    #[arg(long, global = true, env = "MESHNODE_LOG", default_value = "info")]
    pub log: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true, env = "MESHNODE_LOG_JSON")]
    pub log_json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node.
    Run(Box<RunArgs>),
    /// Write a node directory: a commented config file (meshnode.toml), a new node key and
    /// the genesis; then `meshnode run --config DIR/meshnode.toml` starts the node.
    Init {
        /// The directory (created if missing; existing files are never overwritten).
        dir: PathBuf,
        /// Genesis to copy (default: `genesis/devnet.json` if it exists here, else the
        /// devnet genesis built into the binary).
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
    /// Start N local nodes on 127.0.0.1 with a fresh genesis; Ctrl-C stops them all.
    Devnet(DevnetArgs),
    /// Serve the live propagation view (peer graph, block waves, arrival CDF, mempools) for
    /// running nodes given by their RPC URLs.
    Dashboard(DashboardArgs),
    /// Inject a fault into a running `meshnode devnet` (partition, heal, kill, restart,
    /// bootnodes down/up, damage a store, spam a node) through its admin RPC.
    Fault(FaultArgs),
    /// Key management.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Transactions.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Chain store maintenance.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Call one JSON-RPC method and print the result as pretty JSON (as `bitcoin-cli`); exits
    /// non-zero with the error code and message on failure.
    Rpc(RpcArgs),
}

/// `meshnode run`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Configuration file (TOML; keys are these flags' long names, e.g. `target-peers = 12`).
    /// Precedence: flag > environment variable > file > default. `meshnode init DIR` writes
    /// a commented one.
    #[arg(long, env = "MESHNODE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (chain database, node key, node.json).
    #[arg(long, env = "MESHNODE_DATA_DIR", default_value = "./meshnode-data")]
    pub data_dir: PathBuf,
    /// Genesis file (default: `genesis/devnet.json` if it exists here, else the devnet genesis built into the binary).
    #[arg(long, env = "MESHNODE_GENESIS")]
    pub genesis: Option<PathBuf>,
    /// libp2p listen multiaddr (repeatable). Port 0 picks a free port.
    #[arg(long, default_value = "/ip4/127.0.0.1/tcp/0")]
    pub listen: Vec<String>,
    /// JSON-RPC (HTTP and WebSocket) address. Port 0 picks a free port.
    #[arg(long, env = "MESHNODE_RPC", default_value = "127.0.0.1:8545")]
    pub rpc: SocketAddr,
    /// Bootnode multiaddr `/ip4/…/tcp/…/p2p/<peer id>` (repeatable), added to the genesis ones.
    #[arg(long)]
    pub bootnode: Vec<String>,
    /// Validator key: a key file, or `dev-validator:N` (public devnet key). Without it the node
    /// only relays.
    #[arg(long, env = "MESHNODE_VALIDATOR_KEY")]
    pub validator_key: Option<String>,
    /// libp2p node key file (created on first start). Default: DATA_DIR/node.key.
    #[arg(long)]
    pub node_key: Option<PathBuf>,
    /// Peers to keep: every 5 s the excess above this is disconnected, least useful first
    /// (not in a gossipsub mesh, low peer score). 0 turns discovery and pruning off: the
    /// node keeps only the connections it is given.
    #[arg(long, default_value_t = crate::p2p::PeerConfig::DEFAULT_TARGET)]
    pub target_peers: usize,
    /// Outbound peers: Kademlia random walks dial until this many connections are ours;
    /// pruning never takes outbound peers below it (Bitcoin Core's outbound slots).
    #[arg(long, default_value_t = crate::p2p::PeerConfig::DEFAULT_OUTBOUND)]
    pub outbound_peers: usize,
    /// Hard limit on connected peers; inbound peers get this minus --outbound-peers.
    /// Connections above it are refused (rust-libp2p `connection_limits`).
    #[arg(long, default_value_t = crate::p2p::PeerConfig::DEFAULT_MAX)]
    pub max_peers: usize,
    /// Most transactions in the mempool.
    #[arg(long, default_value_t = 100_000)]
    pub mempool_max_txs: usize,
    /// Most bytes (encoded transactions) in the mempool.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub mempool_max_bytes: usize,
    /// Most mempool transactions of one sender, pending and queued.
    #[arg(long, default_value_t = 512)]
    pub mempool_max_per_sender: usize,
    /// Most queued (behind a nonce gap) transactions of one sender.
    #[arg(long, default_value_t = 64)]
    pub mempool_max_queued_per_sender: usize,
    /// Most queued transactions in all.
    #[arg(long, default_value_t = 25_000)]
    pub mempool_max_queued: usize,
    /// Seconds a queued transaction may wait for its nonce gap to fill.
    #[arg(long, default_value_t = 3 * 3600)]
    pub mempool_queued_lifetime_secs: u64,
    /// Lowest fee (base units per transaction) admitted to the mempool or relayed; below it
    /// `sendrawtransaction` answers -26 "min relay fee not met" (Bitcoin Core's
    /// `-minrelaytxfee`). Blocks may still include cheaper transactions.
    #[arg(long, default_value_t = 1)]
    pub min_relay_fee: u64,
    /// Journal transactions submitted over JSON-RPC to DATA_DIR/mempool.journal before
    /// answering, and re-admit them at start, so that a node killed (even by SIGKILL) loses
    /// none it accepted (geth's `--txpool.journal`): `on` (the default) or `off`.
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub mempool_journal: String,
    /// JSON-RPC user name (with --rpc-password). Without both, a cookie file
    /// DATA_DIR/.cookie (user `__cookie__`, mode 0600) is written at each start. Credentials
    /// are required when --rpc binds anything but loopback, or when these are given.
    #[arg(long, env = "MESHNODE_RPC_USER", requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// JSON-RPC password (with --rpc-user).
    #[arg(long, env = "MESHNODE_RPC_PASSWORD", requires = "rpc_user")]
    pub rpc_password: Option<String>,
    /// Most JSON-RPC HTTP requests served at once; more get HTTP 429 with error -32005.
    #[arg(long, default_value_t = 256)]
    pub rpc_max_http_requests: usize,
    /// Most open JSON-RPC WebSocket connections, counted apart from HTTP requests so that
    /// subscribers never lock HTTP callers out; more get HTTP 429 with error -32005.
    #[arg(long, default_value_t = 512)]
    pub rpc_max_ws_connections: usize,
    /// How blocks this node produces are published: `compact` (BIP152-style compact blocks
    /// on /cblock/1, rebuilt by peers from their mempools), `gossip` (full blocks on
    /// /block/1) or `flood` (full blocks pushed to every peer, which push them on after
    /// verification; duplicates dropped by hash, 8 hops at most). Every node accepts all.
    #[arg(long, env = "MESHNODE_RELAY", default_value = "compact", value_parser = ["compact", "gossip", "flood"])]
    pub relay: String,
    /// gossipsub v1.2 IDONTWANT for messages of 1,000 bytes and more: `on` (the default) or
    /// `off` (only to measure what it saves).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    pub idontwant: String,
    /// Seconds a misbehaving peer stays banned: one whose gossipsub score fell below the
    /// graylist threshold or that sent 20 invalid messages within 10 s (Bitcoin Core's
    /// `-bantime`). `setban` bans by hand.
    #[arg(long, default_value_t = 24 * 3600)]
    pub bantime: u64,
    /// Threads of the node's async runtime (tokio worker threads: the swarm, its connections,
    /// JSON-RPC, timers; transaction and block validation have threads of their own). Default:
    /// one per core. `meshnode devnet` starts its nodes with 1 when it runs more nodes than
    /// the machine has cores, which share the cores anyway: measured with `bench idle --nodes
    /// 64`, 8–12 % less CPU than two threads per node (README, "Peers and scale").
    #[arg(long, env = "MESHNODE_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,
    /// Shut down cleanly when the process that started this node exits, even by SIGKILL (its
    /// parent's pidfd becomes readable; without pidfds its pid is checked every 500 ms).
    /// `meshnode devnet` starts its nodes with it.
    #[arg(long)]
    pub exit_with_parent: bool,
    /// Serve Prometheus metrics (OpenMetrics text) on http://ADDR/metrics, e.g.
    /// `127.0.0.1:9100`; port 0 picks a free port (named in node.json as `metrics_url`).
    /// Off by default.
    #[arg(long, env = "MESHNODE_METRICS")]
    pub metrics: Option<SocketAddr>,
    /// Shape every link as a wide-area network would: `wan` (8 regions, 2–220 ms one-way,
    /// 1 Gbit/s and 50 Mbit/s classes, after libp2p's gossipsub-interop scenarios), `lan`, or
    /// a profile file (format: README, "Link profiles"). This node's region is read from its
    /// --listen address (`127.0.R.x`: region R), a peer's from the address dialed; what the
    /// node sends waits the one-way delay and is paced at its class's bandwidth.
    #[arg(long, env = "MESHNODE_LINK_PROFILE")]
    pub link_profile: Option<String>,
    /// This node's bandwidth class in --link-profile (`wan`: `supernode` or `fullnode`;
    /// default: the profile's most common class).
    #[arg(long, requires = "link_profile")]
    pub link_class: Option<String>,
    /// What the node shapes itself under --link-profile (ignored without one): `all` (delays
    /// and bandwidth) or `delay` (delays only, when the kernel caps bandwidth, as in `devnet
    /// --netns`).
    #[arg(long, default_value = "all", value_parser = ["all", "delay"])]
    pub link_shaping: String,
    /// Dial from the listen port (libp2p's `PortUse::Reuse`, with `SO_REUSEPORT`), so peers
    /// see it as the source port. Off by default: every dial takes a fresh ephemeral port,
    /// which is all a devnet needs and what runs under the Shadow simulator (it has no
    /// `SO_REUSEPORT`).
    #[arg(long)]
    pub port_reuse: bool,
    /// Spend modelled validation CPU time as time, for runs under the Shadow simulator (which
    /// charges a process no simulated time for its CPU): the validation workers sleep
    /// `sig_us` per signature they verify, `relay_us + relay_tx_us × txs` before a block's
    /// verdict and `import_us + import_tx_us × txs` for its import, e.g.
    /// `sig_us=18,relay_us=1000,relay_tx_us=5,import_us=500,import_tx_us=38` (microseconds;
    /// README, "Thousands of nodes under Shadow"). Never on a real network.
    #[arg(long, value_name = "COSTS")]
    pub simulated_cost: Option<String>,
    /// Nice value of the block-validation thread (Linux, -20..=19; lower runs first), so that
    /// a block's gossip verification, relay and import do not queue behind transaction
    /// validation and the runtime when the cores are busy (Lighthouse's beacon processor
    /// likewise serves gossip blocks before all other work). Running below the process's own
    /// nice value needs CAP_SYS_NICE or a raised RLIMIT_NICE (systemd `LimitNICE=`); without
    /// either the thread keeps the process's priority and the node says so once at start.
    /// 0 leaves it alone.
    #[arg(long, env = "MESHNODE_BLOCK_NICE", default_value_t = crate::gossip::DEFAULT_BLOCK_NICE, allow_hyphen_values = true,
          value_parser = clap::value_parser!(i32).range(-20..=19))]
    pub block_nice: i32,
}

impl RunArgs {
    /// The flags as plain settings, for [`crate::config::Config::from_raw`].
    pub fn raw(&self) -> crate::config::RawConfig {
        crate::config::RawConfig {
            data_dir: self.data_dir.clone(),
            genesis: self.genesis.clone(),
            listen: self.listen.clone(),
            rpc: self.rpc,
            bootnode: self.bootnode.clone(),
            validator_key: self.validator_key.clone(),
            node_key: self.node_key.clone(),
            target_peers: self.target_peers,
            outbound_peers: self.outbound_peers,
            max_peers: self.max_peers,
            mempool_max_txs: self.mempool_max_txs,
            mempool_max_bytes: self.mempool_max_bytes,
            mempool_max_per_sender: self.mempool_max_per_sender,
            mempool_max_queued_per_sender: self.mempool_max_queued_per_sender,
            mempool_max_queued: self.mempool_max_queued,
            mempool_queued_lifetime_secs: self.mempool_queued_lifetime_secs,
            min_relay_fee: self.min_relay_fee,
            mempool_journal: self.mempool_journal == "on",
            rpc_user: self.rpc_user.clone(),
            rpc_password: self.rpc_password.clone(),
            rpc_max_http_requests: self.rpc_max_http_requests,
            rpc_max_ws_connections: self.rpc_max_ws_connections,
            relay: self.relay.clone(),
            idontwant: self.idontwant == "on",
            metrics: self.metrics,
            bantime: self.bantime,
            link_profile: self.link_profile.clone(),
            link_class: self.link_class.clone(),
            link_pace: self.link_shaping == "all",
            port_reuse: self.port_reuse,
            simulated_cost: self.simulated_cost.clone(),
            block_nice: self.block_nice,
        }
    }
}

/// `meshnode devnet`.
#[derive(Debug, Args, Clone)]
pub struct DevnetArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Directory for genesis, keys, data dirs and logs (default: a new temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Slot length in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub slot_ms: u64,
    /// Number of validators (the first K nodes). Default: every node.
    #[arg(long)]
    pub validators: Option<usize>,
    /// Genesis template (chain id, dev accounts); validators and time are rewritten
    /// (default: `genesis/devnet.json` if it exists here, else the devnet genesis built into the binary).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// First RPC port; node i listens on BASE+i. 0 picks free ports.
    #[arg(long, default_value_t = 8545)]
    pub rpc_base_port: u16,
    /// Serve the live propagation view for these nodes on http://ADDR/ (e.g.
    /// `127.0.0.1:8080`): the peer graph with each block's wave, a CDF of arrival times and
    /// mempool sizes.
    #[arg(long)]
    pub dashboard: Option<SocketAddr>,
    /// Where to serve the devnet's admin JSON-RPC (faults on demand: `meshnode fault`;
    /// loopback only). Its URL is also written to DIR/devnet.json.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub admin: SocketAddr,
    /// Spread the nodes over a link profile's regions and bandwidth classes by weight (`wan`,
    /// `lan` or a profile file; README, "Link profiles"): node i listens on 127.0.R.x, R its
    /// region, and every node delays and paces what it sends (no root needed).
    #[arg(long)]
    pub profile: Option<String>,
    /// Every node in its own network namespace (Linux, root): its own address 10.77.R.x on a
    /// bridge, bandwidth capped by `tc tbf` and loss drawn by iptables in the kernel, delays
    /// still in the nodes. Everything is removed on exit; `meshnode devnet clean` removes
    /// what a killed devnet left.
    #[arg(long)]
    pub netns: bool,
    /// With --netns: packet loss on every link, 0..1 (default: the profile's, else 0).
    #[arg(long, requires = "netns")]
    pub loss: Option<f64>,
    /// Start nothing: write a scenario for the Shadow network simulator into DIR (new or
    /// empty) — shadow.yaml with a host per node, graph.gml from --profile (default `lan`),
    /// node keys, a genesis inside Shadow's clock, run.sh — and print the command that runs it
    /// and the one that reports on it (README, "Thousands of nodes under Shadow").
    #[arg(long, value_name = "DIR", conflicts_with_all = ["netns", "dashboard", "dir"])]
    pub shadow: Option<PathBuf>,
    /// With --shadow: a load host submits this many signed transfers per second over
    /// JSON-RPC inside the simulation (`meshnode bench load`); 0 for none.
    #[arg(long, default_value_t = 0, requires = "shadow")]
    pub tps: u64,
    /// With --shadow: simulated seconds of slots after genesis.
    #[arg(long, default_value_t = 60, requires = "shadow")]
    pub seconds: u64,
    /// With --shadow: Shadow's seed.
    #[arg(long, default_value_t = 1, requires = "shadow")]
    pub seed: u64,
    /// With --shadow: every node's `run --simulated-cost` (the CPU time Shadow cannot see,
    /// spent as simulated time; see `meshnode run --help`).
    #[arg(long, requires = "shadow")]
    pub simulated_cost: Option<String>,
    /// Start nothing: write a network for Docker Swarm into DIR (new or empty) — stack.yml
    /// (`docker stack deploy`; also `docker compose`), bootnode services with fixed keys,
    /// which are also the validators (--validators, default 2), a `node` service with the
    /// other --nodes as replicas, an overlay network, the genesis as a Docker config — and
    /// print the commands that deploy and measure it (README, "Across machines: Docker Swarm").
    #[arg(long, value_name = "DIR", conflicts_with_all = ["netns", "dashboard", "dir", "shadow", "profile"])]
    pub docker: Option<PathBuf>,
    /// `clean`: remove the namespaces and bridges of netns devnets that no longer run.
    #[command(subcommand)]
    pub action: Option<DevnetAction>,
}

/// `meshnode devnet …` actions besides starting one.
#[derive(Debug, Subcommand, Clone)]
pub enum DevnetAction {
    /// Remove what killed `--netns` devnets left behind (namespaces `mn<pid>-<i>`, bridges
    /// `mn<pid>b` whose devnet process is gone) and print it.
    Clean,
}

/// `meshnode fault`.
#[derive(Debug, Args, Clone)]
pub struct FaultArgs {
    /// The devnet's directory (`devnet --dir`; its devnet.json names the admin RPC).
    #[arg(long, required_unless_present = "admin")]
    pub dir: Option<PathBuf>,
    /// The devnet's admin RPC URL, instead of --dir.
    #[arg(long)]
    pub admin: Option<String>,
    /// The fault.
    #[command(subcommand)]
    pub fault: FaultCommand,
}

/// The faults `meshnode fault` injects.
#[derive(Debug, Subcommand, Clone)]
pub enum FaultCommand {
    /// Every node: up, height, peers; the partition in force.
    Status,
    /// Split nodes into groups that cannot reach each other: `0,1,2/3,4` (nodes in no group
    /// form one more). The nodes enforce it by banning each other's peer ids.
    Partition {
        /// Groups of node indexes, `/`-separated.
        groups: String,
    },
    /// Lift the partition.
    Heal,
    /// SIGKILL a node.
    Kill {
        /// Node index.
        node: usize,
    },
    /// Start a killed or stopped node again.
    Restart {
        /// Node index.
        node: usize,
    },
    /// Stop every bootnode (`down`) or start them again (`up`).
    Bootnodes {
        /// `down` or `up`.
        #[arg(value_parser = ["down", "up"])]
        state: String,
    },
    /// Stop a node, flip a byte of its store, watch it refuse to start, `store repair`, start.
    DamageStore {
        /// Node index.
        node: usize,
    },
    /// A peer floods the node with 1,000 invalid transactions; reports when it was banned.
    Spam {
        /// Node index.
        node: usize,
    },
}

impl FaultCommand {
    /// Parses `0,1,2/3,4` into groups.
    pub fn parse_groups(s: &str) -> anyhow::Result<Vec<Vec<usize>>> {
        s.split('/')
            .map(|g| {
                g.split(',')
                    .filter(|x| !x.trim().is_empty())
                    .map(|x| {
                        x.trim()
                            .parse::<usize>()
                            .map_err(|_| anyhow::anyhow!("{x:?} is not a node index"))
                    })
                    .collect()
            })
            .collect()
    }
}

/// `meshnode dashboard`.
#[derive(Debug, Args, Clone)]
pub struct DashboardArgs {
    /// Where to serve the page.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// JSON-RPC URL of a node to watch (repeatable; HTTP URL, the page uses WebSocket on the
    /// same port). The nodes must accept WebSocket connections without credentials (loopback
    /// RPC without --rpc-user).
    #[arg(long = "rpc", required = true)]
    pub rpc: Vec<String>,
}

/// `meshnode keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a new ed25519 key file (mode 0600) and print its address.
    New {
        /// Where to write the key file (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the address and public key of a key (file, `dev:N` or `dev-validator:N`).
    Show {
        /// The key.
        key: String,
    },
}

/// `meshnode store …`.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Verify the store offline (the node must be stopped): every stored value reads back
    /// (sled checksums), the head is not below the head marker (no lost tail), the canonical
    /// chain links to genesis, every stored block hashes to its key, height and tx indexes,
    /// undo records, accounts equal a replay. Exits non-zero naming the first damage and the
    /// remedy.
    Check {
        /// The node's data directory (the one given to `meshnode run`).
        #[arg(long, env = "MESHNODE_DATA_DIR", default_value = "./meshnode-data")]
        data_dir: PathBuf,
    },
    /// Rebuild a damaged store (the node must be stopped): re-imports, fully validated, the
    /// canonical blocks that still read back, up to the first damaged one, into a fresh store
    /// that replaces the old one (like Bitcoin Core's `-reindex`). Sync refills the rest from
    /// peers when the node starts.
    Repair {
        /// The node's data directory (the one given to `meshnode run`).
        #[arg(long, env = "MESHNODE_DATA_DIR", default_value = "./meshnode-data")]
        data_dir: PathBuf,
        /// Keep nothing but genesis: sync refills the whole chain.
        #[arg(long)]
        resync: bool,
        /// The network's genesis file: needed when the store is too damaged to open (its chain
        /// spec is inside it); checked against the store otherwise.
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
}

/// The fields of a transfer, shared by `tx send` and `tx sign`.
#[derive(Debug, Args, Clone)]
pub struct TransferArgs {
    /// Sender key: `dev:N` or a key file.
    #[arg(long)]
    pub from: String,
    /// Recipient address (0x + 40 hex digits) or a key spec (`dev:N`).
    #[arg(long)]
    pub to: String,
    /// Amount, base units.
    #[arg(long)]
    pub amount: u64,
    /// Fee, base units.
    #[arg(long, default_value_t = 1)]
    pub fee: u64,
    /// Payload, hex (0x optional), at most 1,024 bytes.
    #[arg(long, default_value = "")]
    pub data: String,
}

/// `meshnode tx …`.
#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Sign a transfer and submit it through JSON-RPC; prints the transaction hash.
    Send {
        /// What to send.
        #[command(flatten)]
        transfer: TransferArgs,
        /// Nonce (default: the node's pending nonce for the sender).
        #[arg(long)]
        nonce: Option<u64>,
        /// Which node, and its credentials.
        #[command(flatten)]
        conn: RpcConnArgs,
    },
    /// Sign a transfer offline (no node) and print the raw transaction as hex, ready for
    /// `sendrawtransaction` / `eth_sendRawTransaction`. The same fields give the same bytes
    /// as `tx send` submits (ed25519 signatures are deterministic).
    Sign {
        /// What to sign.
        #[command(flatten)]
        transfer: TransferArgs,
        /// The sender's account nonce (`eth_getTransactionCount ADDR pending` on a node).
        #[arg(long)]
        nonce: u64,
        /// Chain id of the network (`eth_chainId`; the devnet's is 1337).
        #[arg(long)]
        chain_id: u64,
    },
    /// Decode a raw transaction (hex, 0x optional; `-` reads it from stdin) and print it as
    /// JSON: hash, size, chain id, nonce, sender address and public key, recipient, amount,
    /// fee, data, signature and whether it verifies. Exits non-zero if it does not decode.
    Decode {
        /// The raw transaction.
        hex: String,
    },
}

/// Where a node's JSON-RPC is and how to authenticate (`meshnode rpc`, `meshnode tx send`).
#[derive(Debug, Args, Clone)]
pub struct RpcConnArgs {
    /// Node JSON-RPC URL. Default: the `rpc_url` in DATA_DIR/node.json when --data-dir is
    /// given, else http://127.0.0.1:8545.
    #[arg(long, env = "MESHNODE_RPC_URL")]
    pub rpc: Option<String>,
    /// The node's data dir: its cookie (DATA_DIR/.cookie) and node.json are read from there.
    #[arg(long, env = "MESHNODE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Cookie file to authenticate with (default: DATA_DIR/.cookie, if it exists).
    #[arg(long)]
    pub rpc_cookie_file: Option<PathBuf>,
    /// JSON-RPC user name (instead of a cookie).
    #[arg(long, env = "MESHNODE_RPC_USER", requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// JSON-RPC password.
    #[arg(long, env = "MESHNODE_RPC_PASSWORD", requires = "rpc_user")]
    pub rpc_password: Option<String>,
}

/// `meshnode rpc METHOD [PARAMS…]`, used as `bitcoin-cli` is.
#[derive(Debug, Args, Clone)]
pub struct RpcArgs {
    /// Which node, and its credentials.
    #[command(flatten)]
    pub conn: RpcConnArgs,
    /// Method name, e.g. `getblockcount`, `eth_getBlockByNumber`.
    pub method: String,
    /// Parameters in order. Each is read as JSON when it is JSON (numbers that fit 64 bits,
    /// true/false/null, arrays, objects, "quoted strings"), else as a plain string, so
    /// `meshnode rpc getblock <hash> 2` works as with bitcoin-cli.
    pub params: Vec<String>,
}

/// `meshnode bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Start a devnet, drive signed transactions through RPC, and report how long blocks take
    /// to reach 50/95/100 % of nodes.
    Propagation(PropagationArgs),
    /// Pre-sign transactions, submit them to one node of a non-producing devnet as fast as it
    /// accepts them, and report transactions per second reaching every node's mempool next to
    /// the signature-verification ceiling measured in the same run; plus RSS at 100k pooled.
    Throughput(ThroughputArgs),
    /// Run the propagation bench at several network sizes with the same load and print, per
    /// size, t100, relay and import time, peers per node, CPU per node per block, and the
    /// ratio of t100 p95 to the smallest size; JSON and the scale curve (SVG, PNG).
    Scale(ScaleArgs),
    /// Start a devnet that carries no transactions, wait until its peer graph settles, and
    /// report the cores its nodes use together (network upkeep plus one empty block per slot,
    /// or none with --no-blocks).
    Idle(IdleArgs),
    /// Run a devnet under transaction load while a random schedule of faults hits it (SIGKILL
    /// and restart, partition and heal, bootnode loss, a spamming peer, a damaged store), then
    /// check that no accepted transaction was lost, that the nodes agree on one head within
    /// 10 s of the last fault, and that every store passes `store check`; JSON report and a
    /// timeline picture.
    Nemesis(NemesisArgs),
    /// Drive load on running nodes: signed transfers from the dev accounts (`dev:0..`, which
    /// the network's genesis must fund, as genesis/devnet.json does) at a steady rate, spread
    /// round-robin over the --rpc nodes, for --seconds; then one JSON line `{"tps", "seconds",
    /// "accepted"}`. What `bench propagation` drives, for networks it does not start (the load
    /// host of `devnet --shadow`).
    Load(LoadArgs),
    /// The attackers of `bench propagation --spam`, in their own process (which the bench
    /// starts under the `SCHED_IDLE` policy): spamming peers one after another, round-robin over
    /// the nodes in --targets, until stdin closes; one JSON line per spammer on stdout.
    #[command(hide = true)]
    Spammers(SpammersArgs),
}

/// `meshnode bench load`.
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// A node's JSON-RPC URL (repeatable; credentials as `http://user:password@host:port`).
    #[arg(long = "rpc", value_name = "URL", required = true)]
    pub rpc: Vec<String>,
    /// Signed transfers per second.
    #[arg(long, default_value_t = 100)]
    pub tps: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Dev accounts the transfers come from (`dev:0..N`, one nonce sequence each).
    #[arg(long, default_value_t = 64)]
    pub senders: u64,
    /// Seconds to wait for every node's RPC to answer before the load starts.
    #[arg(long, default_value_t = 60)]
    pub wait: u64,
}

/// `meshnode bench spammers` (internal to `bench propagation --spam`).
#[derive(Debug, Args, Clone)]
pub struct SpammersArgs {
    /// Chain id of the network.
    #[arg(long)]
    pub chain_id: u64,
    /// A JSON file holding the target nodes' node.json records (an array).
    #[arg(long)]
    pub targets: PathBuf,
}

/// `meshnode bench nemesis`.
#[derive(Debug, Args, Clone)]
pub struct NemesisArgs {
    /// Minutes of faults (fractions allowed).
    #[arg(long, default_value_t = 5.0)]
    pub minutes: f64,
    /// Number of nodes (every one a validator; the first 3 are bootnodes).
    #[arg(long, default_value_t = 8)]
    pub nodes: usize,
    /// Load: signed transfers submitted per second.
    #[arg(long, default_value_t = 20)]
    pub tps: u64,
    /// Slot length in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub slot_ms: u64,
    /// Seed of the fault schedule (default: from the clock; printed and in the report).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the report (JSON) here; the timeline goes next to it.
    #[arg(long, default_value = "nemesis.json")]
    pub out: PathBuf,
    /// Keep the devnet directory (logs, data) here instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Genesis template (default: `genesis/devnet.json` if it exists here, else the devnet genesis built into the binary).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
}

/// `meshnode bench idle`.
#[derive(Debug, Args, Clone)]
pub struct IdleArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 64)]
    pub nodes: usize,
    /// Seconds between the two CPU readings.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Slot length in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub slot_ms: u64,
    /// No validator key: no blocks at all, only the network's upkeep.
    #[arg(long)]
    pub no_blocks: bool,
    /// Write `{nodes, blocks, slot_ms, seconds, settled_after_s, cores, ms_per_node_per_s}`
    /// here.
    #[arg(long, default_value = "idle.json")]
    pub out: PathBuf,
    /// Keep the devnet directory (logs, data) here instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Genesis template (default: `genesis/devnet.json` if it exists here, else the devnet genesis built into the binary).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
}

/// `meshnode bench scale`.
#[derive(Debug, Args, Clone)]
pub struct ScaleArgs {
    /// Network sizes, comma-separated, smallest first (the ratios are to the first).
    #[arg(long, default_value = "8,16,32,64")]
    pub nodes: String,
    /// Blocks to measure at each size.
    #[arg(long, default_value_t = 10)]
    pub blocks: u64,
    /// Transactions per second submitted at every size (spread over all nodes' RPC).
    #[arg(long, default_value_t = 50)]
    pub tps: u64,
    /// Slot length in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub slot_ms: u64,
    /// Relay mode of every node (as `bench propagation --relay`).
    #[arg(long, default_value = "compact", value_parser = ["compact", "gossip", "flood"])]
    pub relay: String,
    /// Write `{relay, tps, slot_ms, blocks, sizes: [{nodes, blocks, blocks_reaching_all,
    /// t100_ms: {p50, p95, max}, …}]}` here; the scale curve goes next to it
    /// (`<stem>.curve.svg`, `.png`).
    #[arg(long, default_value = "scale.json")]
    pub out: PathBuf,
    /// Keep each size's devnet directory under this one (`nN/<mode>`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Genesis template (default: `genesis/devnet.json` if it exists here, else the devnet genesis built into the binary).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Run every size on a link profile (`wan`, `lan` or a file; as `bench propagation
    /// --profile`), applied in the nodes. Without one the nodes share loopback with no delay,
    /// and t100 measures the machine's CPU more than a network.
    #[arg(long)]
    pub profile: Option<String>,
}

/// `meshnode bench throughput`.
#[derive(Debug, Args, Clone)]
pub struct ThroughputArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Seconds of submission.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Write `{"nodes", "achieved_tps", "ceiling_tps", "ratio", "rss_100k_bytes", "details"}`
    /// as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the devnet directory (logs, data) here instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Genesis template (default: `genesis/devnet.json` if it exists here, else the devnet genesis built into the binary).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
}

/// `meshnode bench propagation`.
#[derive(Debug, Args, Clone)]
pub struct PropagationArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 8)]
    pub nodes: usize,
    /// Blocks to measure.
    #[arg(long, default_value_t = 20)]
    pub blocks: u64,
    /// Validators (block producers): the first K nodes, producing in turn (slot mod K).
    /// Default: every node, but with --compare `min(--nodes, --blocks)`, so that each mode
    /// measures one block from each of the same producers (on a link profile a block's t100
    /// depends most on where its producer is).
    #[arg(long)]
    pub validators: Option<usize>,
    /// Transactions per second submitted (spread over all nodes' RPC).
    #[arg(long, default_value_t = 200)]
    pub tps: u64,
    /// Transactions submitted together to one node (then the next node), as a wallet
    /// service or exchange posts a batch: the node announces them in one gossip message
    /// (`/txs/1`) instead of one each. 1 (the default): each transaction to the next node.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=512))]
    pub tx_batch: u64,
    /// Slot length in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub slot_ms: u64,
    /// Write the report as JSON here.
    #[arg(long, default_value = "propagation.json")]
    pub out: PathBuf,
    /// Keep the devnet directory (logs, data) here instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Genesis template (default: `genesis/devnet.json` if it exists here, else the devnet genesis built into the binary).
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// How every node publishes its blocks: `compact` or `gossip` (full blocks); a
    /// `-noidontwant` suffix also turns gossipsub IDONTWANT off.
    #[arg(long, default_value = "compact", value_parser = ["compact", "gossip", "flood", "compact-noidontwant", "gossip-noidontwant"])]
    pub relay: String,
    /// Run several relay modes one after another with the same size and load, e.g.
    /// `gossip,gossip-noidontwant,compact` (a `-noidontwant` suffix runs the nodes with
    /// `--idontwant off`), and print them side by side with ratios to the first.
    #[arg(long, conflicts_with = "relay")]
    pub compare: Option<String>,
    /// Measure `--blocks` blocks quietly, then `--blocks` more while spamming peers attack:
    /// one after another, each a fresh peer that floods a node (round-robin) with 1,000
    /// transactions with broken signatures until banned. Prints both phases' t100 and their
    /// ratio, and how fast each spammer was banned.
    #[arg(long)]
    pub spam: bool,
    /// Measure running nodes instead of starting a devnet: their JSON-RPC URLs (repeatable;
    /// credentials as `http://user:password@host:port`). The bench drives load from the dev
    /// accounts (the network's genesis must fund them, as genesis/devnet.json does), corrects
    /// each node's clock offset, and leaves the nodes running. --nodes, --relay, --profile
    /// and --validators do not apply: the network is what it is.
    #[arg(long, value_name = "URL")]
    pub attach: Vec<String>,
    /// As --attach, the URLs read from a file (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub attach_file: Option<PathBuf>,
    /// Report on a finished run from its nodes' data dirs, after the fact: each DIR's
    /// arrivals.jsonl (written by every node as blocks arrive) and node.key (its peer id, for
    /// the delivery tree). Nothing is started or attached; times are the nodes' own clocks.
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with_all = ["attach", "attach_file", "compare", "spam"])]
    pub from_dirs: Vec<PathBuf>,
    /// Run the devnet on a link profile (`wan`, `lan` or a file; see `devnet --profile`):
    /// delays between regions and bandwidth classes, applied in the nodes. The report names
    /// the profile, and its hop bound uses the profile's delays and caps.
    #[arg(long)]
    pub profile: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_bench_defaults() {
        let cli = Cli::try_parse_from(["meshnode", "bench", "propagation"]).unwrap();
        let Command::Bench(BenchCommand::Propagation(a)) = cli.command else {
            panic!()
        };
        assert_eq!((a.nodes, a.blocks, a.tps), (8, 20, 200));
    }
}
