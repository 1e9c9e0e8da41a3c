//! Gossipsub topic names and the content-derived message id.

use crate::types::sha256;
use libp2p::gossipsub::{IdentTopic, Message, MessageId, TopicHash};

/// What a gossip topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// One signed transaction per message: `/meshnode/N/tx/1`.
    Tx,
    /// Batches of signed transactions (1 to [`crate::validation::MAX_TX_BATCH`] per message,
    /// bincode `Vec<SignedTx>`): `/meshnode/N/txs/1`. What nodes announce on; batching keeps
    /// gossipsub's per-message cost off each transaction, as devp2p's `Transactions` message
    /// carries many.
    TxBatch,
    /// Full blocks: `/meshnode/N/block/1` (`--relay gossip`).
    Block,
    /// Compact blocks (BIP152 after; [`crate::types::CompactBlock`]):
    /// `/meshnode/N/cblock/1` (`--relay compact`).
    CompactBlock,
}

impl TopicKind {
    /// Every topic a node subscribes to.
    pub const ALL: [TopicKind; 4] = [
        TopicKind::Tx,
        TopicKind::TxBatch,
        TopicKind::Block,
        TopicKind::CompactBlock,
    ];
}

impl TopicKind {
    /// The topic's short name: `tx`, `txs`, `block`, `cblock`.
    pub fn short_name(self) -> &'static str {
        match self {
            TopicKind::Tx => "tx",
            TopicKind::TxBatch => "txs",
            TopicKind::Block => "block",
            TopicKind::CompactBlock => "cblock",
        }
    }

    /// The topic for chain `chain_id`.
    pub fn topic(self, chain_id: u64) -> IdentTopic {
        match self {
            TopicKind::Tx => IdentTopic::new(format!("/meshnode/{chain_id}/tx/1")),
            TopicKind::TxBatch => IdentTopic::new(format!("/meshnode/{chain_id}/txs/1")),
            TopicKind::Block => IdentTopic::new(format!("/meshnode/{chain_id}/block/1")),
            TopicKind::CompactBlock => IdentTopic::new(format!("/meshnode/{chain_id}/cblock/1")),
        }
    }

    /// Which kind `hash` is, for chain `chain_id`.
    pub fn of(hash: &TopicHash, chain_id: u64) -> Option<TopicKind> {
        TopicKind::ALL
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
