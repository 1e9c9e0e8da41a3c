//! Gossipsub topic names and the content-derived message id.

use crate::types::sha256;
use libp2p::gossipsub::{IdentTopic, Message, MessageId, TopicHash};

/// What a gossip topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// Signed transactions: `/meshnode/N/tx/1`.
    Tx,
    /// Full blocks: `/meshnode/N/block/1`.
    Block,
}

impl TopicKind {
    /// The topic for chain `chain_id`.
    pub fn topic(self, chain_id: u64) -> IdentTopic {
        match self {
            TopicKind::Tx => IdentTopic::new(format!("/meshnode/{chain_id}/tx/1")),
            TopicKind::Block => IdentTopic::new(format!("/meshnode/{chain_id}/block/1")),
        }
    }

    /// Which kind `hash` is, for chain `chain_id`.
    pub fn of(hash: &TopicHash, chain_id: u64) -> Option<TopicKind> {
        [TopicKind::Tx, TopicKind::Block]
            .into_iter()
            .find(|k| k.topic(chain_id).hash() == *hash)
    }
}

/// Message id = first 20 bytes of sha256(topic || data), so identical payloads on a topic are
/// one message network-wide (as Ethereum's consensus layer derives ids from content).
pub fn message_id(msg: &Message) -> MessageId {
    let h = sha256(&[msg.topic.as_str().as_bytes(), &msg.data]);
    MessageId::new(&h.0[..20])
}
