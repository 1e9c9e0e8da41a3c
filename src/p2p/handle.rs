//! [`NetworkHandle`]: the cloneable front of the network task.

use super::codec::{SyncRequest, SyncResponse};
use super::topics::TopicKind;
use crate::validation::Verdict;
use libp2p::gossipsub::MessageId;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

/// Why a network command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// The network task has ended (the node is shutting down).
    #[error("network stopped")]
    Stopped,
    /// gossipsub refused to publish (other than "no peers" and "duplicate", which are not
    /// errors).
    #[error("publish failed: {0}")]
    Publish(String),
    /// A request-response request failed: dial failure, connection closed, or the peer does
    /// not speak the protocol (libp2p's `OutboundFailure`).
    #[error("request failed: {0}")]
    Request(String),
    /// The peer did not answer a request-response request in time (libp2p's
    /// `OutboundFailure::Timeout`).
    #[error("request timed out")]
    Timeout,
    /// The peer closed or reset the request's stream without an answer (libp2p's
    /// `OutboundFailure::Io`).
    #[error("no answer: {0}")]
    NoAnswer(String),
    /// A dial could not be started (libp2p's `DialError`, its own words).
    #[error("{0}")]
    Dial(String),
}

/// A connected peer, as `getpeerinfo` / `admin_peers` report it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PeerSummary {
    /// libp2p peer id (base58).
    pub peer_id: String,
    /// Remote address of the connection.
    pub addr: String,
    /// Whether the peer dialled us.
    pub inbound: bool,
    /// Bitcoin Core's `connection_type`: `inbound`, `outbound-full-relay`, `manual` or
    /// `addr-fetch` ([`crate::p2p::peers::ConnectionKind`]).
    pub connection_type: &'static str,
    /// Connection time, seconds since the Unix epoch.
    pub conntime: u64,
    /// Identify agent version, if received.
    pub agent: Option<String>,
    /// Gossipsub peer score (gossipsub v1.1), if scoring knows the peer.
    pub gossip_score: Option<f64>,
    /// Where the gossipsub score stands against the thresholds
    /// ([`crate::p2p::behaviour::score_state`]): `healthy`, `no-gossip`, `no-publish` or
    /// `graylisted` (about to be banned).
    pub score_state: &'static str,
    /// Application-specific score (gossipsub P5, ≤ 0; [`crate::p2p::score`]).
    pub app_score: f64,
    /// Bytes and last send/receive on this peer's connections ([`crate::p2p::traffic`]).
    pub traffic: super::traffic::TrafficSnapshot,
    /// Last ping round-trip time, milliseconds.
    pub ping_ms: Option<f64>,
    /// Smallest ping round-trip time seen on this connection, milliseconds.
    pub min_ping_ms: Option<f64>,
    /// Whether the peer is in our gossipsub mesh for the block topic.
    pub in_block_mesh: bool,
    /// Whether the peer is in our gossipsub mesh for the compact block topic.
    pub in_compact_block_mesh: bool,
    /// Whether its smallest round trip makes it a nearby peer, which gossipsub's score favours
    /// ([`crate::p2p::score::near_peers`]).
    pub nearby: bool,
}

/// Our own network identity.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NetworkInfo {
    /// Our peer id.
    pub peer_id: String,
    /// Addresses we listen on (each with `/p2p/<peer id>` appended).
    pub listen_addrs: Vec<String>,
    /// Gossip messages dropped because the validation queue was full (answered Ignore).
    pub dropped_queue_full: u64,
    /// Gossip verdicts reported: [accept, reject, ignore].
    pub verdicts: [u64; 3],
    /// Per topic (`tx`, `txs`, `block`, `cblock`): gossipsub's receive counters since start.
    pub traffic: std::collections::BTreeMap<String, TopicTraffic>,
    /// Per topic (`tx`, `txs`, `block`, `cblock`): peers in our gossipsub mesh.
    pub mesh: std::collections::BTreeMap<String, usize>,
    /// The peer manager's counts ([`crate::p2p::peers`]).
    pub peers: PeerCounts,
}

/// A peer in the Kademlia routing table (Bitcoin Core `getnodeaddresses`' view of the address
/// book).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KnownPeer {
    /// Its peer id.
    pub peer_id: String,
    /// Its addresses, each with `/p2p/<peer id>`.
    pub addrs: Vec<String>,
    /// Whether we are connected to it now.
    pub connected: bool,
}

/// Connected peers against the peer manager's limits ([`crate::p2p::peers::PeerConfig`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerCounts {
    /// Peers that dialled us.
    pub inbound: usize,
    /// Peers in our outbound slots.
    pub outbound: usize,
    /// Short-lived connections Kademlia opened for its queries (closed after the grace
    /// period).
    pub addr_fetch: usize,
    /// Peers added by RPC.
    pub manual: usize,
    /// Peers kept; the excess is pruned (0: discovery and pruning off).
    pub target: usize,
    /// Outbound peers discovery dials and pruning keeps.
    pub outbound_target: usize,
    /// Hard limit (rust-libp2p `connection_limits`).
    pub max: usize,
    /// Peers disconnected for being above the target, since start.
    pub pruned: u64,
    /// Inbound connections refused at the hard limit, since start.
    pub denied: u64,
    /// Inbound peers disconnected to make room for refused newcomers, since start.
    pub evicted: u64,
    /// Outbound slots given to a nearer peer, since start (`crate::p2p::peers`, Perigee-style
    /// slots by ping round trip).
    #[serde(default)]
    pub nearer: u64,
}

/// gossipsub's own receive counters for one topic (libp2p-gossipsub metrics
/// `topic_msg_recv_*`, `topic_iwant_msgs`), since the node started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicTraffic {
    /// Messages received, duplicates filtered out.
    pub received: u64,
    /// Messages received, duplicates included.
    pub received_with_duplicates: u64,
    /// Message bytes received, duplicates filtered out.
    pub bytes: u64,
    /// Message bytes received, duplicates included.
    pub bytes_with_duplicates: u64,
    /// IWANT requests for this topic's messages.
    pub iwant: u64,
}

pub(crate) enum Command {
    Publish {
        kind: TopicKind,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Report {
        id: MessageId,
        source: PeerId,
        verdict: Verdict,
    },
    KnownPeers {
        reply: oneshot::Sender<Vec<KnownPeer>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerSummary>>,
    },
    Info {
        reply: oneshot::Sender<NetworkInfo>,
    },
    Request {
        peer: PeerId,
        req: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, NetworkError>>,
    },
    Respond {
        channel: ResponseChannel<SyncResponse>,
        resp: SyncResponse,
    },
    Remove {
        peer: PeerId,
        reply: oneshot::Sender<bool>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Penalize {
        peer: PeerId,
        by: f64,
    },
    RequestFailed {
        peer: PeerId,
    },
    Ban {
        target: super::bans::BanTarget,
        duration: std::time::Duration,
        reason: String,
        reply: oneshot::Sender<bool>,
    },
    Unban {
        target: super::bans::BanTarget,
        reply: oneshot::Sender<bool>,
    },
    ListBanned {
        reply: oneshot::Sender<Vec<super::bans::BanInfo>>,
    },
    ClearBanned {
        reply: oneshot::Sender<usize>,
    },
    Flood {
        hash: crate::types::Hash,
        data: Vec<u8>,
        ttl: u8,
        except: Option<PeerId>,
    },
}

/// Cloneable handle to the network task. Every method fails with [`NetworkError::Stopped`]
/// once the task has ended.
#[derive(Clone)]
pub struct NetworkHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    /// Peer ids banned now, kept by the network task: read by the gossip workers so that a
    /// banned peer's messages still queued for validation are dropped unvalidated.
    pub(crate) banned: std::sync::Arc<std::sync::RwLock<std::collections::HashSet<PeerId>>>,
}

impl NetworkHandle {
    /// Whether `peer` is banned by its peer id now (no round trip to the network task).
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned
            .read()
            .expect("banned view lock poisoned")
            .contains(peer)
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Publishes `data` on a topic. Having no subscribed peer is not an error.
    pub async fn publish(&self, kind: TopicKind, data: Vec<u8>) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Publish { kind, data, reply })
            .await?
    }

    /// Reports our verdict on a gossip message (gossipsub relays only on Accept).
    pub async fn report(&self, id: MessageId, source: PeerId, verdict: Verdict) {
        let _ = self
            .tx
            .send(Command::Report {
                id,
                source,
                verdict,
            })
            .await;
    }

    /// Bans `target` for `duration` (Bitcoin Core `setban … add`): a banned peer id is
    /// disconnected and refused, connections from a banned IP are closed. False for a
    /// loopback IP, which is never banned.
    pub async fn ban(
        &self,
        target: super::bans::BanTarget,
        duration: std::time::Duration,
        reason: String,
    ) -> Result<bool, NetworkError> {
        self.ask(|reply| Command::Ban {
            target,
            duration,
            reason,
            reply,
        })
        .await
    }

    /// Lifts a ban (`setban … remove`); whether there was one.
    pub async fn unban(&self, target: super::bans::BanTarget) -> Result<bool, NetworkError> {
        self.ask(|reply| Command::Unban { target, reply }).await
    }

    /// Every ban (`listbanned`).
    pub async fn list_banned(&self) -> Result<Vec<super::bans::BanInfo>, NetworkError> {
        self.ask(|reply| Command::ListBanned { reply }).await
    }

    /// Lifts every ban (`clearbanned`); how many there were.
    pub async fn clear_banned(&self) -> Result<usize, NetworkError> {
        self.ask(|reply| Command::ClearBanned { reply }).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerSummary>, NetworkError> {
        self.ask(|reply| Command::Peers { reply }).await
    }

    /// Our identity and listen addresses.
    pub async fn info(&self) -> Result<NetworkInfo, NetworkError> {
        self.ask(|reply| Command::Info { reply }).await
    }

    /// Every peer in the Kademlia routing table, connected or not (what the node has found).
    pub async fn known_peers(&self) -> Result<Vec<KnownPeer>, NetworkError> {
        self.ask(|reply| Command::KnownPeers { reply }).await
    }

    /// Sends a sync request to `peer` and waits for its response (or failure / timeout).
    pub async fn request(
        &self,
        peer: PeerId,
        req: SyncRequest,
    ) -> Result<SyncResponse, NetworkError> {
        self.ask(|reply| Command::Request { peer, req, reply })
            .await?
    }

    /// Answers an inbound sync request.
    pub async fn respond(&self, channel: ResponseChannel<SyncResponse>, resp: SyncResponse) {
        let _ = self.tx.send(Command::Respond { channel, resp }).await;
    }

    /// Disconnects `peer`, forgets its Kademlia addresses and stops dialling it by ourselves
    /// (it may still dial us). Returns whether it was connected.
    pub async fn remove(&self, peer: PeerId) -> Result<bool, NetworkError> {
        self.ask(|reply| Command::Remove { peer, reply }).await
    }

    /// Lowers `peer`'s application-specific score (gossipsub v1.1 spec §peer scoring, P5) by
    /// `by` (weighted ×[`super::behaviour::APP_SCORE_WEIGHT`]): for misbehaviour outside
    /// gossip, such as serving invalid blocks to our range sync (a fault, [`super::score`]).
    /// It decays back with a 10-minute half-life. Fire and forget.
    pub async fn penalize(&self, peer: PeerId, by: f64) {
        let _ = self.tx.send(Command::Penalize { peer, by }).await;
    }

    /// Records a sync request `peer` left unanswered (timed out, or its stream closed without
    /// an answer): a small penalty that reaches gossipsub only past a tolerance
    /// ([`super::score::FAILURE_TOLERANCE`]). Fire and forget.
    pub async fn request_failed(&self, peer: PeerId) {
        let _ = self.tx.send(Command::RequestFailed { peer }).await;
    }

    /// `--relay flood`: pushes an encoded block (hash `hash`) to every connected peer but
    /// `except` with `ttl` hops left (request-response `NewBlock`); echoes of it are then
    /// dropped as duplicates. Fire and forget.
    pub fn flood_blocking(
        &self,
        hash: crate::types::Hash,
        data: Vec<u8>,
        ttl: u8,
        except: Option<PeerId>,
    ) {
        let _ = self.tx.blocking_send(Command::Flood {
            hash,
            data,
            ttl,
            except,
        });
    }

    /// [`NetworkHandle::flood_blocking`] from async code.
    pub async fn flood(&self, hash: crate::types::Hash, data: Vec<u8>, ttl: u8) {
        let _ = self
            .tx
            .send(Command::Flood {
                hash,
                data,
                ttl,
                except: None,
            })
            .await;
    }

    /// Dials a multiaddr (which should end in `/p2p/<peer id>`); a removed peer may be
    /// dialled by us again afterwards.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetworkError> {
        self.ask(|reply| Command::Dial { addr, reply }).await?
    }
}

impl NetworkHandle {
    /// Publishes from a non-async thread without waiting for the outcome (errors are logged
    /// by nobody: use for best-effort re-announcements).
    pub fn publish_blocking(&self, kind: TopicKind, data: Vec<u8>) {
        let (reply, _) = oneshot::channel();
        let _ = self
            .tx
            .blocking_send(Command::Publish { kind, data, reply });
    }

    /// [`NetworkHandle::report`] from a non-async thread (the validation threads).
    pub fn report_blocking(&self, id: MessageId, source: PeerId, verdict: Verdict) {
        let _ = self.tx.blocking_send(Command::Report {
            id,
            source,
            verdict,
        });
    }
}
