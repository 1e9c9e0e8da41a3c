//! The composed libp2p behaviour: gossipsub, Kademlia, identify, ping and the sync protocol.

// The derive generates `BehaviourEvent`, whose variants cannot carry doc comments.
#![allow(missing_docs)]

use super::codec::{self, SyncCodec};
use super::topics::{self, TopicKind};
use crate::types::encoding::MAX_BLOCK_BYTES;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, identity, kad, ping,
    request_response, StreamProtocol,
};
use std::time::Duration;

/// All protocols a meshnode speaks.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// The peer manager's hard limits ([`super::peers::PeerConfig::limits`]): refuses
    /// connections above the maximum before any other protocol sees them.
    pub limits: connection_limits::Behaviour,
    /// Banned peer ids ([`super::bans`]): refused on dial and on connection.
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Gossipsub v1.1 with validation before relay and peer scoring.
    pub gossipsub: gossipsub::Behaviour,
    /// Kademlia under `/meshnode/N/kad/1.0.0`; absent on a peer with discovery off.
    pub kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    /// Identify `/meshnode/id/1.0.0`: listen addresses and protocols of peers.
    pub identify: identify::Behaviour,
    /// Ping: liveness and RTT.
    pub ping: ping::Behaviour,
    /// `/meshnode/N/sync/1` request-response.
    pub sync: request_response::Behaviour<SyncCodec>,
}

/// The Kademlia protocol name for chain `chain_id`.
pub fn kad_protocol(chain_id: u64) -> StreamProtocol {
    StreamProtocol::try_from_owned(format!("/meshnode/{chain_id}/kad/1.0.0"))
        .expect("starts with /")
}

/// Weight of the application-specific score (P5); gossipsub's default, 10.
pub const APP_SCORE_WEIGHT: f64 = 10.0;

/// Gossipsub peer-score thresholds (gossipsub v1.1 spec §"Score Thresholds"), written out
/// rather than left to the library's defaults (which they equal, but for opportunistic
/// grafting): below `gossip` a peer's IHAVE/IWANT are ignored and it gets none; below
/// `publish` we publish nothing to it; below `graylist` its messages are ignored and this node
/// bans it ([`super::bans`]). Opportunistic grafting (a mesh whose median score is below 5)
/// suits the small positive scores of [`score_params`].
pub fn score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// Where `score` stands against `t` (`getpeerinfo`'s `score_state`): `healthy`, `no-gossip`
/// (below the gossip threshold), `no-publish` (below publish) or `graylisted` (below the
/// graylist threshold: banned at the next check). A peer scoring does not know is healthy.
pub fn score_state(score: Option<f64>, t: &gossipsub::PeerScoreThresholds) -> &'static str {
    match score {
        Some(s) if s < t.graylist_threshold => "graylisted",
        Some(s) if s < t.publish_threshold => "no-publish",
        Some(s) if s < t.gossip_threshold => "no-gossip",
        _ => "healthy",
    }
}

/// One topic's score parameters (gossipsub v1.1 spec §"Topic Parameter Calculation"), per
/// [`TopicKind`]:
///
/// | topic | weight | first deliveries (P2) weight / cap / decay | invalid (P4) weight |
/// |---|---|---|---|
/// | `block`, `cblock` | 1.0 | 1.0 / 10 / 0.99 | -40 |
/// | `tx`, `txs` | 0.5 | 0.05 / 200 (`txs`: 50) / 0.9 | -10 |
///
/// P4 counts are squared: one block we Reject costs 40 (below the gossip threshold), two cost
/// 160 (graylisted: banned); invalid transactions cost 5 × count², so 4 within their decay
/// (0.9 per second) graylist the peer. An honest peer never relays what we Reject, since
/// every message is validated before it is forwarded; state-dependent failures (a nonce
/// already used, a block whose parent is unknown) are Ignored and cost nothing. Blocks arrive
/// once per slot, so being first with one is worth more (P2, at most 10 per block topic) than
/// being first with a transaction (at most 5 for `tx`). P3 (mesh delivery rate) stays off: a
/// block topic carries one message per slot, too few for a rate.
fn topic_params(kind: TopicKind) -> gossipsub::TopicScoreParams {
    let (weight, first_weight, first_cap, first_decay, invalid_weight) = match kind {
        TopicKind::Block | TopicKind::CompactBlock => (1.0, 1.0, 10.0, 0.99, -40.0),
        TopicKind::Tx => (0.5, 0.05, 200.0, 0.9, -10.0),
        TopicKind::TxBatch => (0.5, 0.05, 50.0, 0.9, -10.0),
    };
    gossipsub::TopicScoreParams {
        topic_weight: weight,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 10.0,
        first_message_deliveries_weight: first_weight,
        first_message_deliveries_decay: first_decay,
        first_message_deliveries_cap: first_cap,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: invalid_weight,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}

/// Gossipsub peer-score parameters (gossipsub v1.1 spec §"Peer Scoring") and thresholds
/// ([`score_thresholds`]).
///
/// Only P4 (invalid message deliveries, per topic: [`topic_params`]), P5
/// (application-specific: bad range-sync replies, sync timeouts, invalid transactions in a
/// mempool reconciliation, bans by RPC; see [`super::score`]) and P7 (behaviour penalties)
/// lower a score, so a peer's score falls exactly when it relays messages we Reject or serves
/// what we cannot use. P3 (mesh delivery rate) is off because block traffic is one message
/// per slot; IP colocation (P6) is off because devnets put every node on 127.0.0.1. Positive
/// topic scores are capped at 20 in all and P5 adds at most 5 for a nearby peer
/// ([`super::score::NEAR_BONUS`]), 25 in all, so a good record can offset one invalid block
/// (40) only partly and never two (160).
pub fn score_params(chain_id: u64) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        app_specific_weight: APP_SCORE_WEIGHT,
        topic_score_cap: 20.0,
        ..Default::default()
    };
    for kind in TopicKind::ALL {
        params
            .topics
            .insert(kind.topic(chain_id).hash(), topic_params(kind));
    }
    (params, score_thresholds())
}

/// Gossipsub mesh degree D (target peers per topic mesh); gossipsub's default is 6.
pub const MESH_D: usize = 4;
/// D_lo: below this, the heartbeat grafts peers (default 5).
pub const MESH_D_LOW: usize = 3;
/// D_hi: above this, the heartbeat prunes peers (default 12).
pub const MESH_D_HIGH: usize = 8;

/// The compact block topic's mesh degree D (its D_lo is [`CBLOCK_MESH_D_LOW`], its D_hi
/// [`MESH_D_HIGH`]); every other topic keeps [`MESH_D`]. A compact block is small (about
/// 6.5 KB for 1,000 transactions), so a wider mesh costs little in duplicates and takes a hop
/// off the delivery tree. `bench propagation --nodes 32 --profile wan --relay compact --tps 62
/// --slot-ms 16000 --tx-batch 16`, D 4 and 6 alternating within 40 minutes (three runs each,
/// 6 + 10 + 10 blocks): t100 p50 274 / 288 / 267 ms with 4 and 239 / 232 / 217 ms with 6,
/// p95 328 / 411 / 394 against 360 / 305 / 344 ms (medians −15 % and −13 %); hops p50 3, 3, 2
/// against 2, 2, 2; duplicates per node per block 2.1–2.6 → 3.0–3.4, bytes with duplicates
/// 19–21 → 24–27 KB per node per block.
pub const CBLOCK_MESH_D: usize = 6;
/// D_lo of the compact block topic's mesh.
pub const CBLOCK_MESH_D_LOW: usize = 4;

/// The full block topic's mesh (`--relay gossip`): D 3, D_lo [`BLOCK_MESH_D_LOW`] (2), D_hi
/// [`BLOCK_MESH_D_HIGH`] (5), against (3, 4, 8) for transactions. A full block is the largest
/// message by far, and each mesh peer beyond the first that pushes it before this node's
/// IDONTWANT reaches it (gossipsub v1.2) costs a duplicate of the whole block. Bitcoin Core
/// pushes whole blocks unasked to 3 peers (BIP152 high-bandwidth mode).
///
/// Measured with `bench propagation --nodes 16 --tps 1000 --compare gossip,gossip-noidontwant`
/// on a 2-core host (session 29; every block reached all 16): duplicates per node per block
/// 1.68 / 1.79 / 1.77 with (3, 4, 8), 1.56 / 1.29 with (3, 4, 6), 1.36 / 1.40 with (3, 4, 5)
/// (IDONTWANT off: 2.53–2.64, 1.83–2.27, 1.75–1.87). But (3, 4, 5) churned: gossipsub's
/// heartbeat prunes a mesh of D_hi or more back to D, so with D_hi = D + 1 every accepted
/// GRAFT beyond D pruned a peer at the next heartbeat, and a pruned peer at D_lo fell below
/// it; in a 64-node devnet 5 nodes at a time held 2 peers (`tests/peer_manager.rs`, session
/// 30). D 3 leaves room for two inbound GRAFTs before a prune.
pub const BLOCK_MESH_D: usize = 3;
/// D_lo of the full block topic's mesh.
pub const BLOCK_MESH_D_LOW: usize = 2;
/// D_hi of the full block topic's mesh.
pub const BLOCK_MESH_D_HIGH: usize = 5;

/// A topic's mesh bounds `(D_lo, D, D_hi)` (gossipsub v1.1 spec §parameters).
pub fn mesh_degree(kind: TopicKind) -> (usize, usize, usize) {
    match kind {
        TopicKind::CompactBlock => (CBLOCK_MESH_D_LOW, CBLOCK_MESH_D, MESH_D_HIGH),
        TopicKind::Block => (BLOCK_MESH_D_LOW, BLOCK_MESH_D, BLOCK_MESH_D_HIGH),
        TopicKind::Tx | TopicKind::TxBatch => (MESH_D_LOW, MESH_D, MESH_D_HIGH),
    }
}

/// D_lazy: peers outside the mesh that each heartbeat sends IHAVE for the recent messages
/// (gossipsub v1.1 spec §gossip emission; gossipsub's default is 6). Gossip repairs what eager
/// push through the mesh missed; here it stays below the mesh degree D. With 6, a node of a
/// 64-node devnet (about 8 peers, 4 in the mesh) sent IHAVE to every other peer every second:
/// 6 of its 15 TCP writes a second when idle. 3 keeps Ethereum's ratio (D_lazy 6 of D 8). Two
/// idle 64-node devnets side by side (40 s of thread CPU): 0.164 cores with 6, 0.139 with 3;
/// two `bench idle --nodes 64` at once: 0.230 and 0.215.
pub const GOSSIP_LAZY: usize = 3;

/// Heartbeats between opportunistic grafts (gossipsub v1.1 spec §"Opportunistic Grafting";
/// the default is 60, a minute): a mesh whose median peer score is below 5 grafts 2 peers
/// scoring above that median. Nearby peers score 5 more ([`super::score::NEAR_BONUS`]), so
/// this is what brings them into a mesh; every 10 s a devnet's meshes take them in within
/// its first blocks rather than its first minutes.
pub const OPPORTUNISTIC_GRAFT_TICKS: u64 = 10;

/// gossipsub's default IDONTWANT threshold (gossipsub v1.2): messages from this size on are
/// announced with IDONTWANT to mesh peers as soon as they arrive, so those peers do not send
/// them again.
pub const IDONTWANT_THRESHOLD: usize = 1000;

/// Builds the behaviour for `key` on chain `chain_id` with the peer limits of `peers`.
/// Without discovery (`peers.target == 0`) there is no Kademlia at all (its queries dial
/// every peer they ask): the node keeps only the connections it is given.
pub fn build(
    key: &identity::Keypair,
    chain_id: u64,
    peers: super::peers::PeerConfig,
    idontwant: bool,
    ping_interval: Duration,
    metrics: &mut prometheus_client::registry::Registry,
) -> Result<Behaviour, String> {
    let peer_id = key.public().to_peer_id();
    let cblock = TopicKind::CompactBlock.topic(chain_id).hash();
    let block = TopicKind::Block.topic(chain_id).hash();
    let (cblock_lo, cblock_d, cblock_hi) = mesh_degree(TopicKind::CompactBlock);
    let gs_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(topics::message_id)
        .max_transmit_size(MAX_BLOCK_BYTES + 64 * 1024)
        // gossipsub's default heartbeat (1 s): mesh upkeep and IHAVE gossip once a second;
        // blocks travel by eager push through the mesh, never waiting for a heartbeat.
        .heartbeat_interval(Duration::from_secs(1))
        // IHAVE gossip to 3 peers outside the mesh per heartbeat ([`GOSSIP_LAZY`]).
        .gossip_lazy(GOSSIP_LAZY)
        .opportunistic_graft_ticks(OPPORTUNISTIC_GRAFT_TICKS)
        // A publisher sends to its mesh only, and the mesh degree is 4 (gossipsub's default
        // is 6, D_lo 5, D_hi 12). Measured with `bench propagation --nodes 16 --tps 1000
        // --compare gossip,compact` on a 2-core host: duplicates per node per block fell
        // from 2.71 (defaults) and 2.01 (flood publish off) to 1.01 for full blocks and to
        // 0.60 for compact blocks, with the same t100; the delivery tree gets about one hop
        // deeper at most.
        .flood_publish(false)
        .mesh_n(MESH_D)
        .mesh_n_low(MESH_D_LOW)
        .mesh_n_high(MESH_D_HIGH)
        .mesh_outbound_min(2)
        .mesh_n_for_topic(cblock_d, cblock.clone())
        .mesh_n_low_for_topic(cblock_lo, cblock.clone())
        .mesh_n_high_for_topic(cblock_hi, cblock.clone())
        .mesh_outbound_min_for_topic(2, cblock)
        // A topic's own mesh settings start from gossipsub's defaults: set all four.
        .mesh_n_for_topic(BLOCK_MESH_D, block.clone())
        .mesh_n_low_for_topic(BLOCK_MESH_D_LOW, block.clone())
        .mesh_n_high_for_topic(BLOCK_MESH_D_HIGH, block.clone())
        // gossipsub requires 2 × mesh_outbound_min ≤ D.
        .mesh_outbound_min_for_topic(1, block)
        .idontwant_message_size_threshold(if idontwant {
            IDONTWANT_THRESHOLD
        } else {
            usize::MAX
        })
        .build()
        .map_err(|e| e.to_string())?;
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gs_config)?
            .with_metrics(
                metrics.sub_registry_with_prefix("gossipsub"),
                Default::default(),
            );
    let (params, thresholds) = score_params(chain_id);
    gossipsub.with_peer_score(params, thresholds)?;

    let mut kad_cfg = kad::Config::new(kad_protocol(chain_id));
    kad_cfg.set_query_timeout(Duration::from_secs(30));
    // No periodic bootstrap (default every 5 min): each one queries every bucket and opens a
    // burst of short-lived connections on a node whose slots are full. The peer manager's
    // random walk runs whenever an outbound slot is free instead.
    kad_cfg.set_periodic_bootstrap_interval(None);
    let mut kad =
        kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_cfg);
    kad.set_mode(Some(kad::Mode::Server));
    let kad = Toggle::from(peers.discovery().then_some(kad));

    let identify = identify::Behaviour::new(
        identify::Config::new("/meshnode/id/1.0.0".into(), key.public())
            .with_agent_version(format!("meshnode/{}", env!("CARGO_PKG_VERSION"))),
    );
    // `ping_interval`: Bitcoin Core's 2 minutes unless shaping asks for more samples
    // (`event_loop::PING_INTERVAL`): every ping wakes both ends, and an idle devnet of 64
    // nodes pays it on every connection.
    let ping = ping::Behaviour::new(ping::Config::new().with_interval(ping_interval));
    let sync = request_response::Behaviour::new(
        [(
            codec::protocol(chain_id),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
    );
    Ok(Behaviour {
        limits: connection_limits::Behaviour::new(peers.limits()),
        blocked: Default::default(),
        gossipsub,
        kad,
        identify,
        ping,
        sync,
    })
}
