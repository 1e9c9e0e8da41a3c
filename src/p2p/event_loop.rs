//! The network task: owns the Swarm, turns gossip into validation work, runs discovery.
//!
//! Gossip messages are decoded here (undecodable -> Reject at once) and handed to the node's
//! validation tasks over bounded queues with `try_send`; a full queue -> Ignore, counted
//! (Lighthouse `router.rs`). Nothing is relayed until the node reports Accept.

use super::behaviour::{self, Behaviour, BehaviourEvent};
use super::codec::{SyncRequest, SyncResponse};
use super::handle::{
    Command, NetworkError, NetworkHandle, NetworkInfo, PeerCounts, PeerSummary, TopicTraffic,
};
use super::peers::{PeerConfig, PeerManager, PRUNE_INTERVAL};
use super::shaping::{LinkShape, Shaper};
use super::topics::TopicKind;
use crate::types::{Block, CompactBlock, Hash, SignedTx};
use crate::validation::{self, Verdict};
use futures::StreamExt;
use libp2p::core::Transport as _;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{identify, identity, kad, noise, ping, tcp, yamux, Multiaddr, PeerId, Swarm};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Network settings.
#[derive(Clone, Debug)]
pub struct NetworkConfig {
    /// Chain id (topic and protocol names).
    pub chain_id: u64,
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Bootnodes: `/ip4/…/tcp/…/p2p/<peer id>`.
    pub bootnodes: Vec<Multiaddr>,
    /// Peer counts: target, outbound target, maximum. A target of 0 turns discovery and
    /// pruning off (no Kademlia: the node keeps only the connections it is given).
    pub peers: PeerConfig,
    /// Capacity of each validation queue (tx, block).
    pub queue_len: usize,
    /// Whether gossipsub v1.2 IDONTWANT is sent for messages of
    /// [`behaviour::IDONTWANT_THRESHOLD`] bytes and more (true by default; off only to
    /// measure what it saves).
    pub idontwant: bool,
    /// How long a peer whose score fell below the graylist threshold, or that sent too many
    /// invalid messages, is banned ([`super::bans`]; Bitcoin Core's `-bantime`, 24 h).
    pub ban_time: Duration,
    /// Link shaping (delay and bandwidth per link, [`super::shaping`]); `None`: none.
    pub shape: Option<LinkShape>,
    /// Whether dials reuse the listen port (libp2p's `PortUse::Reuse`); false: every dial
    /// takes a fresh port ([`super::ports`]).
    pub port_reuse: bool,
}

/// A decoded gossip message waiting for the node's verdict.
pub struct GossipMessage<T> {
    /// Gossipsub message id (for the verdict).
    pub id: MessageId,
    /// The peer that forwarded it.
    pub source: PeerId,
    /// The decoded payload.
    pub payload: T,
    /// Payload size in bytes.
    pub bytes: usize,
    /// When the swarm delivered it, µs since the Unix epoch (before validation).
    pub received_us: u64,
}

/// A gossip block in either of its forms.
#[derive(Debug)]
pub enum BlockPayload {
    /// A full block (`/block/1`).
    Full(Block),
    /// A compact block (`/cblock/1`), to rebuild from the pool.
    Compact(CompactBlock),
    /// A full block pushed by a peer (`--relay flood`); `id` is synthetic and no gossipsub
    /// verdict is due.
    Flooded {
        /// The block.
        block: Block,
        /// Hops it may travel on from here.
        ttl: u8,
    },
}

/// Events the node must act on.
pub enum NetworkEvent {
    /// A connection to a new peer was established.
    PeerConnected(PeerId),
    /// The last connection to a peer closed.
    PeerDisconnected(PeerId),
    /// A peer asked us something over the sync protocol.
    SyncRequest {
        /// Who asked.
        peer: PeerId,
        /// What.
        request: SyncRequest,
        /// Where the answer goes ([`NetworkHandle::respond`]).
        channel: ResponseChannel<SyncResponse>,
    },
}

/// Receivers the node consumes.
pub struct NetworkChannels {
    /// Gossip transactions to validate.
    pub txs: mpsc::Receiver<GossipMessage<Vec<SignedTx>>>,
    /// Gossip blocks to validate.
    pub blocks: mpsc::Receiver<GossipMessage<BlockPayload>>,
    /// Other events.
    pub events: mpsc::Receiver<NetworkEvent>,
    /// The metrics registry holding libp2p's metrics (and the caller's, given to
    /// [`start_with_registry`]); for a `/metrics` endpoint.
    pub registry: std::sync::Arc<prometheus_client::registry::Registry>,
}

/// For this long after start a node looks up a random key at every walk (2 s), filling its
/// routing table (its address book) whether or not its outbound slots are full.
pub const LEARNING_PHASE: Duration = Duration::from_secs(30);

/// While a node has peers but no other candidate for a free outbound slot, it dials each
/// bootnode it is not connected to at most this often.
pub const BOOTNODE_REDIAL: Duration = Duration::from_secs(10);

struct EventLoop {
    swarm: Swarm<Behaviour>,
    chain_id: u64,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    txs: mpsc::Sender<GossipMessage<Vec<SignedTx>>>,
    blocks: mpsc::Sender<GossipMessage<BlockPayload>>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<SyncResponse, NetworkError>>>,
    peers: PeerManager,
    /// Bootnode addresses, dialled again whenever the node has no peer at all.
    bootnodes: Vec<Multiaddr>,
    /// Walks that found no peer to dial (the random-walk query throttle).
    walks_without_candidates: u64,
    /// When each bootnode may be dialled again while the node has peers
    /// ([`BOOTNODE_REDIAL`]).
    bootnode_redial: HashMap<PeerId, std::time::Instant>,
    /// Whether the Kademlia bootstrap has run (once, when the first peer is connected).
    bootstrapped: bool,
    /// The peer ids banned now, shared with [`NetworkHandle::is_banned`].
    banned_view: std::sync::Arc<std::sync::RwLock<HashSet<PeerId>>>,
    /// When the network task started (see [`LEARNING_PHASE`]).
    started: std::time::Instant,
    listen_addrs: Vec<Multiaddr>,
    dropped_queue_full: u64,
    verdicts: [u64; 3],
    /// Application-specific scores (P5), kept across reconnects ([`super::score`]).
    app_scores: super::score::AppScores,
    /// Bytes and last send/receive per connected peer ([`super::traffic`]).
    traffic: super::traffic::TrafficBook,
    /// Banned peers and IPs, and recent Rejects per peer ([`super::bans`]).
    bans: super::bans::BanList,
    /// Inbound sync request quotas per peer ([`super::ratelimit`]).
    limiter: super::ratelimit::RateLimiter,
    /// How long a misbehaving peer is banned.
    ban_time: Duration,
    /// libp2p's own metrics (gossipsub's counters), read for [`NetworkInfo::traffic`].
    metrics: std::sync::Arc<prometheus_client::registry::Registry>,
    /// libp2p-metrics' event recorder, when the metrics are exported.
    recorder: Option<libp2p::metrics::Metrics>,
    /// Flooded blocks seen (by hash), oldest first in `flood_order`.
    flood_seen: HashSet<Hash>,
    flood_order: std::collections::VecDeque<Hash>,
    /// Receive counters of `--relay flood` (the `flood` entry of [`NetworkInfo::traffic`]).
    flood_traffic: TopicTraffic,
}

/// Flooded block hashes remembered for dropping duplicates.
const FLOOD_SEEN: usize = 1024;

/// Builds the swarm, starts listening and dialling bootnodes, and spawns the network task.
///
/// Returns the handle, the node's receivers and the task's join handle; the task ends when
/// `shutdown` resolves or every handle is dropped. libp2p's metrics go to a private registry
/// (gossipsub's counters, read for [`NetworkInfo::traffic`]); see [`start_with_registry`].
pub fn start(
    key: identity::Keypair,
    cfg: NetworkConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(NetworkHandle, NetworkChannels, tokio::task::JoinHandle<()>)> {
    start_with_registry(key, cfg, None, shutdown)
}

/// As [`start`]; with `Some(registry)` every libp2p metric is registered there as well:
/// gossipsub's own (`gossipsub_*`), libp2p-metrics' swarm, Kademlia, identify and ping
/// (`libp2p_*`), and bytes per protocol and direction (`libp2p_bandwidth_bytes_total`, from
/// the transport). The registry, shared and read-only from then on, is returned in
/// [`NetworkChannels::registry`].
pub fn start_with_registry(
    key: identity::Keypair,
    cfg: NetworkConfig,
    registry: Option<prometheus_client::registry::Registry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(NetworkHandle, NetworkChannels, tokio::task::JoinHandle<()>)> {
    let chain_id = cfg.chain_id;
    cfg.peers.validate().map_err(anyhow::Error::msg)?;
    let exported = registry.is_some();
    let mut metrics = registry.unwrap_or_default();
    let idontwant = cfg.idontwant;
    let peers_cfg = cfg.peers;
    let ping_interval = if cfg.shape.is_some() {
        SHAPED_PING_INTERVAL
    } else {
        PING_INTERVAL
    };
    let make = |key: &identity::Keypair, metrics: &mut prometheus_client::registry::Registry| {
        behaviour::build(key, chain_id, peers_cfg, idontwant, ping_interval, metrics)
            .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })
    };
    let shaper = cfg.shape.clone().map(Shaper::new);
    let traffic = super::traffic::TrafficBook::default();
    let port_reuse = cfg.port_reuse;
    let book = traffic.clone();
    let builder = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(
            move |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                // TCP, shaped when a link profile is in force, then noise and yamux: what
                // `SwarmBuilder::with_tcp` builds, with the shaper between TCP and noise.
                let tcp = super::ports::FreshPorts::new(
                    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)),
                    port_reuse,
                )
                .map(move |stream, endpoint| match &shaper {
                    Some(s) => s.wrap(stream, &endpoint),
                    None => futures::future::Either::Left(stream),
                });
                // `/dns4/…` and `/dns/…` addresses (bootnodes by service name in Docker), resolved
                // with the system's resolver before the TCP dial; the shaper above sees the IP.
                let tcp = dns_transport(tcp)?;
                Ok(tcp
                    .upgrade(libp2p::core::upgrade::Version::V1Lazy)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default())
                    .map(move |(peer, muxer), _| (peer, book.wrap(peer, muxer))))
            },
        )?;
    let swarm_config =
        |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(3600));
    let (mut swarm, recorder) = if exported {
        let recorder = libp2p::metrics::Metrics::new(&mut metrics);
        let b = builder.with_bandwidth_metrics(&mut metrics);
        let swarm = b
            .with_behaviour(|key| make(key, &mut metrics))?
            .with_swarm_config(swarm_config)
            .build();
        (swarm, Some(recorder))
    } else {
        let swarm = builder
            .with_behaviour(|key| make(key, &mut metrics))?
            .with_swarm_config(swarm_config)
            .build();
        (swarm, None)
    };
    let metrics = std::sync::Arc::new(metrics);
    for kind in TopicKind::ALL {
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&kind.topic(chain_id))?;
    }
    for addr in &cfg.listen {
        swarm.listen_on(addr.clone())?;
    }
    let local = *swarm.local_peer_id();
    for addr in &cfg.bootnodes {
        match peer_id_of(addr) {
            Some(p) if p == local => continue,
            Some(p) => {
                if let Some(kad) = swarm.behaviour_mut().kad.as_mut() {
                    kad.add_address(&p, strip_p2p(addr));
                }
            }
            None => warn!(%addr, "bootnode address has no /p2p/<peer id>; dialling anyway"),
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(%addr, cause = %e, "cannot dial bootnode");
        }
    }
    let (cmd_tx, commands) = mpsc::channel(1024);
    let (ev_tx, events) = mpsc::channel(256);
    let (tx_tx, txs) = mpsc::channel(cfg.queue_len);
    let (block_tx, blocks) = mpsc::channel(cfg.queue_len.min(256));
    let banned_view: std::sync::Arc<std::sync::RwLock<HashSet<PeerId>>> = Default::default();
    let el = EventLoop {
        swarm,
        chain_id,
        commands,
        events: ev_tx,
        txs: tx_tx,
        blocks: block_tx,
        pending: HashMap::new(),
        peers: {
            let mut m = PeerManager::new(cfg.peers);
            for p in cfg.bootnodes.iter().filter_map(peer_id_of) {
                m.add_bootnode(p);
            }
            m
        },
        bootnodes: cfg.bootnodes.clone(),
        walks_without_candidates: 0,
        bootnode_redial: HashMap::new(),
        bootstrapped: false,
        started: std::time::Instant::now(),
        listen_addrs: Vec::new(),
        dropped_queue_full: 0,
        verdicts: [0; 3],
        app_scores: Default::default(),
        traffic,
        bans: Default::default(),
        limiter: Default::default(),
        ban_time: cfg.ban_time,
        metrics: metrics.clone(),
        recorder,
        flood_seen: HashSet::new(),
        flood_order: Default::default(),
        flood_traffic: TopicTraffic::default(),
        banned_view: banned_view.clone(),
    };
    let task = tokio::spawn(el.run(shutdown));
    Ok((
        NetworkHandle {
            tx: cmd_tx,
            banned: banned_view,
        },
        NetworkChannels {
            txs,
            blocks,
            events,
            registry: metrics,
        },
        task,
    ))
}

/// The IP address of a multiaddr (`/ip4/…` or `/ip6/…`), if it has one.
fn ip_of(addr: &Multiaddr) -> Option<std::net::IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    })
}

/// The `/p2p/<peer id>` component of an address.
pub fn peer_id_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

fn strip_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

impl EventLoop {
    async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Random walk every 2 s while outbound slots are free (Kademlia's own periodic
        // bootstrap is off: see `behaviour`).
        let mut walk = tokio::time::interval(Duration::from_secs(2));
        walk.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prune = tokio::time::interval(PRUNE_INTERVAL);
        prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                cmd = self.commands.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                _ = walk.tick() => self.walk(),
                _ = prune.tick() => self.prune(),
            }
        }
        debug!("network task stopped");
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { kind, data, reply } => {
                let topic = kind.topic(self.chain_id);
                let r = match self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
                    Ok(_) => Ok(()),
                    Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => Ok(()),
                    Err(gossipsub::PublishError::Duplicate) => Ok(()),
                    Err(e) => Err(NetworkError::Publish(e.to_string())),
                };
                let _ = reply.send(r);
            }
            Command::Report {
                id,
                source,
                verdict,
            } => self.report(&id, &source, verdict),
            Command::Peers { reply } => {
                let block_topic = TopicKind::Block.topic(self.chain_id).hash();
                let gs = &self.swarm.behaviour().gossipsub;
                let mesh: HashSet<PeerId> = gs.mesh_peers(&block_topic).copied().collect();
                let cblock_topic = TopicKind::CompactBlock.topic(self.chain_id).hash();
                let cmesh: HashSet<PeerId> = gs.mesh_peers(&cblock_topic).copied().collect();
                let thresholds = super::behaviour::score_thresholds();
                let now = std::time::Instant::now();
                let list = self
                    .peers
                    .peers
                    .iter()
                    .map(|(id, p)| PeerSummary {
                        peer_id: id.to_string(),
                        addr: p.addr.to_string(),
                        inbound: p.inbound,
                        connection_type: p.kind.as_str(),
                        conntime: p.conntime,
                        agent: p.agent.clone(),
                        gossip_score: gs.peer_score(id),
                        score_state: super::behaviour::score_state(gs.peer_score(id), &thresholds),
                        app_score: self.app_scores.get(id, now),
                        traffic: self.traffic.get(id).unwrap_or_default(),
                        ping_ms: p.rtt.map(|d| d.as_secs_f64() * 1e3),
                        min_ping_ms: p.min_rtt.map(|d| d.as_secs_f64() * 1e3),
                        in_block_mesh: mesh.contains(id),
                        in_compact_block_mesh: cmesh.contains(id),
                        nearby: self.app_scores.is_near(id),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::KnownPeers { reply } => {
                let connected: HashSet<PeerId> = self.peers.peers.keys().copied().collect();
                let known = match self.swarm.behaviour_mut().kad.as_mut() {
                    Some(kad) => kad
                        .kbuckets()
                        .flat_map(|b| {
                            b.iter()
                                .map(|e| {
                                    let p = *e.node.key.preimage();
                                    super::handle::KnownPeer {
                                        peer_id: p.to_string(),
                                        addrs: e
                                            .node
                                            .value
                                            .iter()
                                            .map(|a| a.clone().with(Protocol::P2p(p)).to_string())
                                            .collect(),
                                        connected: connected.contains(&p),
                                    }
                                })
                                .collect::<Vec<_>>()
                        })
                        .collect(),
                    None => Vec::new(),
                };
                let _ = reply.send(known);
            }
            Command::Info { reply } => {
                let me = *self.swarm.local_peer_id();
                let _ = reply.send(NetworkInfo {
                    peer_id: me.to_string(),
                    listen_addrs: self
                        .listen_addrs
                        .iter()
                        .map(|a| a.clone().with(Protocol::P2p(me)).to_string())
                        .collect(),
                    dropped_queue_full: self.dropped_queue_full,
                    verdicts: self.verdicts,
                    traffic: self.traffic(),
                    mesh: self.mesh_sizes(),
                    peers: self.peer_counts(),
                });
            }
            Command::Request { peer, req, reply } => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, req);
                self.pending.insert(id, reply);
            }
            Command::Respond { channel, resp } => {
                let _ = self.swarm.behaviour_mut().sync.send_response(channel, resp);
            }
            Command::Remove { peer, reply } => {
                self.peers.on_removed(peer);
                if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                    kad.remove_peer(&peer);
                }
                let _ = reply.send(self.swarm.disconnect_peer_id(peer).is_ok());
            }
            Command::Dial { addr, reply } => {
                if let Some(p) = peer_id_of(&addr) {
                    self.peers.on_added(p);
                }
                if let (Some(p), Some(kad)) =
                    (peer_id_of(&addr), self.swarm.behaviour_mut().kad.as_mut())
                {
                    kad.add_address(&p, strip_p2p(&addr));
                }
                let _ = reply.send(
                    self.swarm
                        .dial(addr)
                        .map_err(|e| NetworkError::Dial(e.to_string())),
                );
            }
            Command::Flood {
                hash,
                data,
                ttl,
                except,
            } => self.flood(hash, data, ttl, except),
            Command::RequestFailed { peer } => {
                let gossip = self.app_scores.failed(peer, std::time::Instant::now());
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .set_application_score(&peer, gossip);
                debug!(%peer, app_score = gossip, "sync request unanswered");
                self.ban_if_graylisted(&peer);
            }
            Command::Penalize { peer, by } => {
                let score = self
                    .app_scores
                    .penalize(peer, by, std::time::Instant::now());
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .set_application_score(&peer, score);
                debug!(%peer, app_score = score, "peer penalised");
                self.ban_if_graylisted(&peer);
            }
            Command::Ban {
                target,
                duration,
                reason,
                reply,
            } => {
                // Requested by RPC (`setban`): the peer's application score goes to the floor
                // as well, where it stays until the ban is lifted.
                if let super::bans::BanTarget::Peer(p) = target {
                    self.app_scores.set_min(p, std::time::Instant::now());
                }
                let _ = reply.send(self.ban(target, duration, reason));
            }
            Command::Unban { target, reply } => {
                let _ = reply.send(self.unban(target));
            }
            Command::ListBanned { reply } => {
                let _ = reply.send(self.bans.list(std::time::Instant::now()));
            }
            Command::ClearBanned { reply } => {
                let all = self.bans.clear();
                for t in &all {
                    self.lift(t);
                }
                let _ = reply.send(all.len());
            }
        }
    }

    fn report(&mut self, id: &MessageId, source: &PeerId, verdict: Verdict) {
        let (acc, i) = match verdict {
            Verdict::Accept => (MessageAcceptance::Accept, 0),
            Verdict::Reject => (MessageAcceptance::Reject, 1),
            Verdict::Ignore => (MessageAcceptance::Ignore, 2),
        };
        self.verdicts[i] += 1;
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, source, acc);
        if verdict == Verdict::Reject {
            if self.bans.on_reject(*source, std::time::Instant::now()) {
                let reason = format!(
                    "{} invalid gossip messages within {} s",
                    super::bans::REJECTS_TO_BAN,
                    super::bans::REJECT_WINDOW.as_secs()
                );
                self.ban(super::bans::BanTarget::Peer(*source), self.ban_time, reason);
            } else {
                self.ban_if_graylisted(source);
            }
        }
    }

    /// Whether `request` is over `peer`'s quota ([`super::ratelimit`]); bans a peer that
    /// keeps asking after refusals.
    fn over_quota(&mut self, peer: PeerId, request: &SyncRequest) -> bool {
        use super::ratelimit::{Decision, REFUSALS_TO_BAN, REFUSAL_WINDOW};
        match self
            .limiter
            .decide(peer, request, std::time::Instant::now())
        {
            Decision::Answer => false,
            Decision::Refuse => {
                let (kind, cost) = super::ratelimit::Kind::of(request);
                debug!(peer = %peer, ?kind, cost, "sync request over its quota: not answered");
                true
            }
            Decision::Ban => {
                let reason = format!(
                    "{REFUSALS_TO_BAN} sync requests over quota within {} s",
                    REFUSAL_WINDOW.as_secs()
                );
                self.ban(super::bans::BanTarget::Peer(peer), self.ban_time, reason);
                true
            }
        }
    }

    /// Bans `peer` if its gossipsub score is below the graylist threshold.
    fn ban_if_graylisted(&mut self, peer: &PeerId) {
        // Banned already, its disconnect under way: its score keeps falling meanwhile.
        if self.bans.is_peer_banned(peer) {
            return;
        }
        let score = self.swarm.behaviour().gossipsub.peer_score(peer);
        // The thresholds alone: the topic parameters would be built for nothing.
        let graylist = super::behaviour::score_thresholds().graylist_threshold;
        if let Some(s) = score.filter(|s| *s < graylist) {
            let reason = format!("gossipsub score {s:.1} below the graylist threshold {graylist}");
            self.ban(super::bans::BanTarget::Peer(*peer), self.ban_time, reason);
        }
    }

    /// Bans `target`: refuses and disconnects a peer id, closes connections from an IP.
    fn ban(&mut self, target: super::bans::BanTarget, duration: Duration, reason: String) -> bool {
        use super::bans::BanTarget;
        if !self
            .bans
            .ban(target, duration, reason.clone(), std::time::Instant::now())
        {
            return false;
        }
        warn!(%target, %reason, secs = duration.as_secs(), "banned");
        match target {
            BanTarget::Peer(p) => {
                self.banned_view
                    .write()
                    .expect("banned view lock poisoned")
                    .insert(p);
                self.swarm.behaviour_mut().blocked.block_peer(p);
                let _ = self.swarm.disconnect_peer_id(p);
            }
            BanTarget::Ip(ip) => {
                let victims: Vec<PeerId> = self
                    .peers
                    .peers
                    .iter()
                    .filter(|(_, info)| ip_of(&info.addr) == Some(ip))
                    .map(|(p, _)| *p)
                    .collect();
                for p in victims {
                    let _ = self.swarm.disconnect_peer_id(p);
                }
            }
        }
        true
    }

    fn unban(&mut self, target: super::bans::BanTarget) -> bool {
        let had = self.bans.unban(&target);
        self.lift(&target);
        had
    }

    /// Undoes what [`EventLoop::ban`] set in the swarm.
    fn lift(&mut self, target: &super::bans::BanTarget) {
        if let super::bans::BanTarget::Peer(p) = target {
            // It starts again at 0: a score at the floor would ban it again at once.
            self.app_scores.reset(p);
            self.swarm.behaviour_mut().blocked.unblock_peer(*p);
            self.banned_view
                .write()
                .expect("banned view lock poisoned")
                .remove(p);
        }
        info!(%target, "ban lifted");
    }

    /// A block pushed by `peer` (`--relay flood`): duplicates (by block hash) are counted and
    /// dropped here; a new one goes to the block worker, which relays it on after its gossip
    /// verification.
    fn on_flooded(&mut self, peer: PeerId, ttl: u8, data: Vec<u8>) {
        let received_us = crate::now_us();
        let bytes = data.len();
        let t = &mut self.flood_traffic;
        t.received_with_duplicates += 1;
        t.bytes_with_duplicates += bytes as u64;
        let block = match validation::decode_block(&data) {
            Ok(b) => b,
            Err(e) => {
                debug!(%peer, cause = %e, "undecodable flooded block");
                return;
            }
        };
        if !self.flood_seen.insert(block.hash()) {
            return;
        }
        self.flood_order.push_back(block.hash());
        if self.flood_order.len() > FLOOD_SEEN {
            if let Some(old) = self.flood_order.pop_front() {
                self.flood_seen.remove(&old);
            }
        }
        let t = &mut self.flood_traffic;
        t.received += 1;
        t.bytes += bytes as u64;
        let msg = GossipMessage {
            id: MessageId::new(&block.hash().0[..20]),
            source: peer,
            payload: BlockPayload::Flooded { block, ttl },
            bytes,
            received_us,
        };
        if self.blocks.try_send(msg).is_err() {
            self.dropped_queue_full += 1;
        }
    }

    /// Sends an encoded block to every connected peer but `except` (`--relay flood`), and
    /// remembers it so that echoes are dropped.
    fn flood(&mut self, hash: Hash, data: Vec<u8>, ttl: u8, except: Option<PeerId>) {
        if self.flood_seen.insert(hash) {
            self.flood_order.push_back(hash);
        }
        let peers: Vec<PeerId> = self
            .peers
            .peers
            .keys()
            .filter(|p| Some(**p) != except)
            .copied()
            .collect();
        for p in peers {
            let req = SyncRequest::NewBlock {
                ttl,
                block: data.clone(),
            };
            self.swarm.behaviour_mut().sync.send_request(&p, req);
        }
    }

    /// Per topic kind, gossipsub's own receive counters (libp2p-gossipsub metrics), read from
    /// its registry's text encoding.
    fn traffic(&self) -> std::collections::BTreeMap<String, TopicTraffic> {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.metrics).is_err() {
            return Default::default();
        }
        let mut out: std::collections::BTreeMap<String, TopicTraffic> = Default::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name_labels, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = name_labels.split_once('{').unwrap_or((name_labels, ""));
            let topic = labels.split('"').nth(1).unwrap_or("");
            let Some(kind) = TopicKind::ALL
                .into_iter()
                .find(|k| k.topic(self.chain_id).to_string() == topic)
            else {
                continue;
            };
            let t = out.entry(kind.short_name().to_string()).or_default();
            let v = value as u64;
            match name {
                "gossipsub_topic_msg_recv_counts_total" => t.received = v,
                "gossipsub_topic_msg_recv_counts_unfiltered_total" => {
                    t.received_with_duplicates = v
                }
                "gossipsub_topic_msg_recv_bytes_total" => t.bytes = v,
                "gossipsub_topic_msg_recv_bytes_unfiltered_total" => t.bytes_with_duplicates = v,
                "gossipsub_topic_iwant_msgs_total" => t.iwant = v,
                _ => {}
            }
        }
        if self.flood_traffic != TopicTraffic::default() {
            out.insert("flood".to_string(), self.flood_traffic);
        }
        out
    }

    fn on_gossip(&mut self, id: MessageId, source: PeerId, message: gossipsub::Message) {
        let received_us = crate::now_us();
        let bytes = message.data.len();
        // Queues a decoded payload for its worker; true when the queue is full.
        fn queue<T>(
            tx: &mpsc::Sender<GossipMessage<T>>,
            id: &MessageId,
            source: PeerId,
            payload: T,
            bytes: usize,
            received_us: u64,
        ) -> bool {
            tx.try_send(GossipMessage {
                id: id.clone(),
                source,
                payload,
                bytes,
                received_us,
            })
            .is_err()
        }
        let full = match TopicKind::of(&message.topic, self.chain_id) {
            Some(kind @ (TopicKind::Tx | TopicKind::TxBatch)) => match if kind == TopicKind::Tx {
                validation::decode_tx(&message.data).map(|t| vec![t])
            } else {
                validation::decode_tx_batch(&message.data)
            } {
                Ok(payload) => queue(&self.txs, &id, source, payload, bytes, received_us),
                Err(e) => {
                    debug!(peer = %source, cause = %e, "undecodable gossip tx");
                    return self.report(&id, &source, Verdict::Reject);
                }
            },
            Some(kind @ (TopicKind::Block | TopicKind::CompactBlock)) => {
                match if kind == TopicKind::Block {
                    validation::decode_block(&message.data).map(BlockPayload::Full)
                } else {
                    validation::decode_compact_block(&message.data).map(BlockPayload::Compact)
                } {
                    Ok(payload) => queue(&self.blocks, &id, source, payload, bytes, received_us),
                    Err(e) => {
                        warn!(peer = %source, cause = %e, "undecodable gossip block");
                        return self.report(&id, &source, Verdict::Reject);
                    }
                }
            }
            None => return self.report(&id, &source, Verdict::Reject),
        };
        if full {
            self.dropped_queue_full += 1;
            self.report(&id, &source, Verdict::Ignore);
        }
    }

    fn maybe_dial(&mut self, peer: PeerId) {
        let local = *self.swarm.local_peer_id();
        if !self.peers.should_dial(peer, local) {
            return;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if self.swarm.dial(opts).is_err() {
            self.peers.dial_not_started(peer);
        }
    }

    /// Fills free outbound slots: first with `addr-fetch` connections already open, then by
    /// dialling peers of the routing table, and only then with a Kademlia random walk (its
    /// query dials every peer it asks). The bootnodes are dialled again when the node has no
    /// peer at all (every one of them was full or down).
    fn walk(&mut self) {
        // Each topic against its own D_lo (the compact block topic's is higher).
        let gs = &self.swarm.behaviour().gossipsub;
        let missing = TopicKind::ALL
            .into_iter()
            .map(|k| {
                let have = gs.mesh_peers(&k.topic(self.chain_id).hash()).count();
                super::behaviour::mesh_degree(k).0.saturating_sub(have)
            })
            .max()
            .unwrap_or(0);
        self.peers
            .set_mesh_deficit(missing, std::time::Instant::now());
        // Kademlia's bootstrap, once the first peer is connected (a joining node): a lookup
        // of our own id, then one per bucket beyond our closest neighbours, so the routing
        // table — the node's address book, `getnodeaddresses` — learns most of a network of
        // a few hundred nodes at once. (The periodic re-bootstrap is off: see `behaviour`.)
        if !self.peers.peers.is_empty() {
            let learning = self.started.elapsed() < LEARNING_PHASE;
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                if !self.bootstrapped {
                    self.bootstrapped = kad.bootstrap().is_ok();
                } else if learning {
                    // Bitcoin Core asks each new outbound peer for addresses (`getaddr`); a
                    // young node here looks up a random key every walk, slots full or not.
                    kad.get_closest_peers(PeerId::random());
                }
            }
        }
        if !self.peers.config().discovery() || self.peers.outbound_full() {
            return;
        }
        if self.peers.promote_addr_fetch(false) > 0 && self.peers.outbound_full() {
            return;
        }
        let known: Vec<PeerId> = match self.swarm.behaviour_mut().kad.as_mut() {
            Some(kad) => kad
                .kbuckets()
                .flat_map(|b| b.iter().map(|e| *e.node.key.preimage()).collect::<Vec<_>>())
                .collect(),
            None => Vec::new(),
        };
        if !known.is_empty() {
            // Start at a pseudo-random place so that nodes do not all dial the same peers.
            let start = (crate::now_us() as usize) % known.len();
            for i in 0..known.len() {
                if self.peers.outbound_full() {
                    return;
                }
                self.maybe_dial(known[(start + i) % known.len()]);
            }
        }
        if self.peers.outbound_full() {
            return;
        }
        // No other candidate: ask the bootnodes we are not connected to (they may have come
        // back after an outage, or know peers we do not): at once when we have no peer at
        // all, else each at most every BOOTNODE_REDIAL. Their connections are addr-fetch ones.
        let now = std::time::Instant::now();
        let alone = self.peers.peers.is_empty();
        for addr in self.bootnodes.clone() {
            let Some(p) = peer_id_of(&addr) else {
                continue;
            };
            if p == *self.swarm.local_peer_id()
                || self.peers.peers.contains_key(&p)
                || (!alone && self.bootnode_redial.get(&p).is_some_and(|t| now < *t))
            {
                continue;
            }
            self.bootnode_redial.insert(p, now + BOOTNODE_REDIAL);
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                kad.add_address(&p, strip_p2p(&addr));
            }
            let _ = self.swarm.dial(addr);
        }
        // Nobody else known: bootnodes may take the free slots.
        if self.peers.promote_addr_fetch(true) > 0 && self.peers.outbound_full() {
            return;
        }
        // Every known peer is connected or backing off: look for new ones — at every walk
        // while the routing table holds fewer peers than the target (a node that has just
        // joined), else only every 30 s (a small network stays this way for good).
        self.walks_without_candidates += 1;
        if self.peers.peers.is_empty()
            || known.len() < self.peers.config().target
            || self.walks_without_candidates % 15 == 1
        {
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                kad.get_closest_peers(PeerId::random());
            }
        }
    }

    /// Disconnects the excess above the target ([`PeerManager::prune_candidates`]).
    fn prune(&mut self) {
        let now = std::time::Instant::now();
        for t in self.bans.expire(now) {
            self.lift(&t);
        }
        for (peer, score) in self.app_scores.decay(now) {
            if self.peers.peers.contains_key(&peer) {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .set_application_score(&peer, score);
            }
        }
        let connected: Vec<PeerId> = self.peers.peers.keys().copied().collect();
        for p in connected {
            self.ban_if_graylisted(&p);
        }
        let mesh = self.mesh_members();
        let gs = &self.swarm.behaviour().gossipsub;
        let victims = self.peers.prune_candidates(
            std::time::Instant::now(),
            |p| mesh.contains(p),
            |p| gs.peer_score(p).unwrap_or(0.0),
        );
        if victims.is_empty() {
            return;
        }
        debug!(
            count = victims.len(),
            peers = self.peers.peers.len(),
            "pruning peers above target"
        );
        self.peers.record_pruned(victims.len());
        for p in victims {
            let _ = self.swarm.disconnect_peer_id(p);
        }
    }

    /// Disconnects one peer after an inbound connection was refused at a full limit, so that
    /// the newcomer's next attempt finds room ([`PeerManager::eviction_candidate`]).
    fn evict_for_newcomer(&mut self) {
        let cfg = self.peers.config();
        let counters = self.swarm.network_info().connection_counters().clone();
        let inbound_full =
            counters.num_established_incoming() as usize >= cfg.max.saturating_sub(cfg.outbound);
        let total_full = counters.num_established() as usize >= cfg.max;
        if !inbound_full && !total_full {
            return;
        }
        let mesh = self.mesh_members();
        let gs = &self.swarm.behaviour().gossipsub;
        let Some(victim) = self.peers.eviction_candidate(
            std::time::Instant::now(),
            inbound_full,
            super::behaviour::MESH_D,
            |p| mesh.contains(p),
            |p| gs.peer_score(p).unwrap_or(0.0),
        ) else {
            return;
        };
        debug!(peer = %victim, inbound_full, "evicting a peer to make room for a newcomer");
        let _ = self.swarm.disconnect_peer_id(victim);
    }

    /// Peers in the gossipsub mesh of any of our topics.
    fn mesh_members(&self) -> HashSet<PeerId> {
        let gs = &self.swarm.behaviour().gossipsub;
        TopicKind::ALL
            .into_iter()
            .flat_map(|k| {
                gs.mesh_peers(&k.topic(self.chain_id).hash())
                    .copied()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Gossipsub mesh size per topic (short name).
    fn mesh_sizes(&self) -> std::collections::BTreeMap<String, usize> {
        let gs = &self.swarm.behaviour().gossipsub;
        TopicKind::ALL
            .into_iter()
            .map(|k| {
                (
                    k.short_name().to_string(),
                    gs.mesh_peers(&k.topic(self.chain_id).hash()).count(),
                )
            })
            .collect()
    }

    fn peer_counts(&self) -> PeerCounts {
        let cfg = self.peers.config();
        let outbound = self.peers.outbound();
        PeerCounts {
            inbound: self.peers.count(super::peers::ConnectionKind::Inbound),
            outbound,
            addr_fetch: self.peers.count(super::peers::ConnectionKind::AddrFetch),
            manual: self.peers.count(super::peers::ConnectionKind::Manual),
            target: cfg.target,
            outbound_target: cfg.outbound,
            max: cfg.max,
            pruned: self.peers.pruned,
            denied: self.peers.denied,
            evicted: self.peers.evicted,
            nearer: self.peers.nearer,
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        if let Some(r) = &self.recorder {
            use libp2p::metrics::Recorder;
            match &ev {
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => r.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => r.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => r.record(e),
                SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => r.record(e),
                _ => {}
            }
            r.record(&ev);
        }
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                connection_id,
                ..
            } => {
                if let Some(ip) = ip_of(endpoint.get_remote_address()) {
                    if self.bans.is_ip_banned(&ip) {
                        debug!(peer = %peer_id, %ip, "connection from a banned IP closed");
                        self.swarm.close_connection(connection_id);
                        return;
                    }
                }
                let first = self.peers.on_connected(
                    peer_id,
                    endpoint.get_remote_address().clone(),
                    endpoint.is_listener(),
                );
                debug!(
                    peer = %peer_id,
                    inbound = endpoint.is_listener(),
                    total = self.swarm.network_info().connection_counters().num_established(),
                    "connection established"
                );
                if first {
                    debug!(peer = %peer_id, "connected");
                    // A score kept from an earlier connection (decayed meanwhile).
                    let app = self.app_scores.gossip(&peer_id, std::time::Instant::now());
                    if app != 0.0 {
                        self.swarm
                            .behaviour_mut()
                            .gossipsub
                            .set_application_score(&peer_id, app);
                    }
                    let _ = self.events.try_send(NetworkEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                debug!(peer = %peer_id, cause = ?cause, "connection closed");
                if self.peers.on_closed(peer_id, num_established as usize) {
                    self.traffic.forget(&peer_id);
                    self.bans.forget(&peer_id);
                    self.limiter.forget(&peer_id);
                    debug!(peer = %peer_id, "disconnected");
                    let _ = self
                        .events
                        .try_send(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(p),
                error,
                ..
            } => {
                self.peers.on_dial_failed(p);
                debug!(peer = %p, cause = %error, "dial failed");
            }
            SwarmEvent::IncomingConnectionError {
                error: libp2p::swarm::ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                self.peers.denied += 1;
                // `connection_limits` says which limit (its `Exceeded`); a ban says nothing more.
                let limit = cause
                    .downcast_ref::<libp2p::connection_limits::Exceeded>()
                    .map(|e| e.to_string());
                debug!(addr = %send_back_addr, %cause, limit = ?limit, "inbound connection refused");
                if limit.is_some() {
                    self.evict_for_newcomer();
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(message_id, propagation_source, message),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let Some(p) = self.peers.peers.get_mut(&peer_id) {
                    p.agent = Some(info.agent_version.clone());
                }
                let kad_proto = behaviour::kad_protocol(self.chain_id);
                if let (true, Some(kad)) = (
                    info.protocols.contains(&kad_proto),
                    self.swarm.behaviour_mut().kad.as_mut(),
                ) {
                    for addr in info.listen_addrs {
                        kad.add_address(&peer_id, addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => {
                if let Some(p) = self.peers.peers.get_mut(&peer) {
                    p.rtt = Some(rtt);
                    p.min_rtt = Some(p.min_rtt.map_or(rtt, |m| m.min(rtt)));
                }
                // Half of the outbound slots go to the nearest peers met (`super::peers`).
                if let Some((newcomer, replaced)) = self.peers.take_nearer_slot() {
                    debug!(peer = %newcomer, replaced = %replaced, "a nearer peer takes an outbound slot");
                }
                // Nearby peers by round trip (a gossipsub score bonus: `super::score`).
                let rtts: Vec<(PeerId, std::time::Duration)> = self
                    .peers
                    .peers
                    .iter()
                    .filter_map(|(id, p)| Some((*id, p.min_rtt?)))
                    .collect();
                for (p, score) in self
                    .app_scores
                    .set_round_trips(&rtts, std::time::Instant::now())
                {
                    debug!(peer = %p, app_score = score, near = self.app_scores.is_near(&p), "nearby peers changed");
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .set_application_score(&p, score);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => match ev {
                kad::Event::RoutingUpdated { peer, .. } => self.maybe_dial(peer),
                kad::Event::OutboundQueryProgressed {
                    result: kad::QueryResult::GetClosestPeers(Ok(ok)),
                    ..
                } => {
                    // What a walk found goes into the routing table (connected or not: the
                    // node's address book, `getnodeaddresses`), then fills free slots.
                    let me = *self.swarm.local_peer_id();
                    for p in ok.peers {
                        if p.peer_id == me {
                            continue;
                        }
                        if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() {
                            for a in &p.addrs {
                                kad.add_address(&p.peer_id, a.clone());
                            }
                        }
                        self.maybe_dial(p.peer_id);
                    }
                }
                _ => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(ev)) => match ev {
                request_response::Event::Message { peer, message, .. } => match message {
                    request_response::Message::Request { request, .. }
                        if self.over_quota(peer, &request) =>
                    {
                        // Not answered: dropping the channel fails the peer's request.
                    }
                    request_response::Message::Request {
                        request: SyncRequest::NewBlock { ttl, block },
                        channel,
                        ..
                    } => {
                        let _ = self
                            .swarm
                            .behaviour_mut()
                            .sync
                            .send_response(channel, SyncResponse::Ack);
                        self.on_flooded(peer, ttl, block);
                    }
                    request_response::Message::Request {
                        request, channel, ..
                    } => {
                        let ev = NetworkEvent::SyncRequest {
                            peer,
                            request,
                            channel,
                        };
                        if self.events.try_send(ev).is_err() {
                            debug!(peer = %peer, "sync request dropped: node busy");
                        }
                    }
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => {
                        if let Some(reply) = self.pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                },
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let e = match error {
                            request_response::OutboundFailure::Timeout => NetworkError::Timeout,
                            request_response::OutboundFailure::Io(e) => {
                                NetworkError::NoAnswer(e.to_string())
                            }
                            other => NetworkError::Request(other.to_string()),
                        };
                        let _ = reply.send(Err(e));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// How often a node pings each peer (libp2p ping, `/ipfs/ping/1.0.0`) on links it does not
/// shape: every 2 minutes, Bitcoin Core's `PING_INTERVAL` (`net_processing.cpp`). The first
/// ping goes out as the connection opens, so `getpeerinfo`'s `pingtime` is there at once. Nothing
/// here acts on a failed ping (libp2p ping no longer closes connections): it only measures.
/// libp2p's default is 15 s, and every ping wakes both ends. `bench idle --nodes 64`: the
/// runtime threads woke 9.7–10.0 times per node per second with 120 s against 10.7–11.1 with
/// 15 s (four runs against eight); the cores moved less than the machine's noise (0.137
/// against 0.140 side by side; 0.138–0.151 against 0.138–0.160 alternating).
pub const PING_INTERVAL: Duration = Duration::from_secs(120);

/// The ping interval on shaped links (`--link-profile`): every 5 s, so that `minping` shows
/// a link's own round trip within a minute (a ping's time includes the hosts', which varies
/// from one ping to the next). Every 2 s cost an idle 32-node `wan` devnet a quarter of its
/// CPU (0.253 against 0.192 cores, side by side): each ping crosses four shaped pipes.
pub const SHAPED_PING_INTERVAL: Duration = Duration::from_secs(5);

/// Wraps `inner` in libp2p's DNS transport (`libp2p-dns`, hickory) so that `/dns4`, `/dns6`
/// and `/dns` multiaddrs can be dialled (bootnodes named by Docker service name). The
/// resolver follows `/etc/resolv.conf` (Docker's embedded DNS inside a container); where
/// that file does not exist, an empty configuration, so the node still starts and only names
/// fail to resolve. Errors: an `/etc/resolv.conf` that exists but cannot be read or parsed.
fn dns_transport<T>(inner: T) -> std::io::Result<libp2p::dns::tokio::Transport<T>> {
    use libp2p::dns::{tokio::Transport, ResolverConfig, ResolverOpts};
    if std::path::Path::new("/etc/resolv.conf").exists() {
        Transport::system(inner)
            .map_err(|e| std::io::Error::other(format!("reading /etc/resolv.conf: {e}")))
    } else {
        Ok(Transport::custom(
            inner,
            ResolverConfig::from_name_servers(Vec::new()),
            ResolverOpts::default(),
        ))
    }
}
