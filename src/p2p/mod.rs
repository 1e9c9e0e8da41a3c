//! The libp2p network: one event-loop task owns the Swarm; the node talks to it through a
//! cloneable [`NetworkHandle`] (commands over mpsc, replies over oneshot).

pub mod bans;
pub mod behaviour;
pub mod codec;
pub mod event_loop;
pub mod handle;
pub mod peers;
pub mod ports;
pub mod profile;
pub mod ratelimit;
pub mod score;
pub mod shaping;
pub mod topics;
pub mod traffic;

pub use event_loop::{
    peer_id_of, start, start_with_registry, BlockPayload, GossipMessage, NetworkChannels,
    NetworkConfig, NetworkEvent,
};
pub use handle::{NetworkError, NetworkHandle, NetworkInfo, PeerCounts, PeerSummary, TopicTraffic};
pub use peers::PeerConfig;
pub use profile::LinkProfile;
pub use shaping::LinkShape;
pub use topics::TopicKind;
