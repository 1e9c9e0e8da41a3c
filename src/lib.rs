//! meshnode: a peer-to-peer node that gossips signed transactions and blocks over libp2p and
//! measures how fast they propagate.
//!
//! # Modules
//! `types` (encoding, hashes, transactions, blocks) · `crypto` (ed25519) · `genesis` ·
//! `state` · `validation` (stateless and stateful checks -> `Verified<T>`, verdicts) ·
//! `txpool` (admission: one entry, `add(origin, txs)`; pool, signature cache, maintenance,
//! announcer) · `chain` (store, import with fork choice and reorgs, block building, fsck; emits
//! `CanonNotification`) · `producer` (the slot task) · `gossip` (validation workers: verdict +
//! peer action) · `sync` (Status, range download, BlocksByRange server, blame) · `p2p` (the
//! Swarm's task, `NetworkHandle`, topics, codecs) · `arrivals` (per-block timings) · `metrics` (Prometheus) · `rpc` ·
//! `node` (wiring and shutdown only; nothing imports it) · `config`/`cli` · `devnet` · `dashboard` (live propagation page) · `bench` · `wallet` (offline
//! signing and decoding).
//!
//! # The two flows
//! ```text
//! A transaction's way
//!   RPC sendrawtransaction / eth_sendRawTransaction (hex)            rpc::{btc,eth}
//!     -> decode (size-checked)                                         validation::decode_tx
//!     [a JSON-RPC batch: signatures verified together first]           rpc::preverify -> TxPool::preverify
//!     -> TxPool::add(Origin::Rpc, [tx])                                txpool
//!   peer: p2p event loop decodes /tx/1, /txs/1 (undecodable -> Reject)
//!     -> bounded queue (full -> Ignore) -> gossip tx worker            gossip::tx
//!     -> TxPool::preverify(burst) then TxPool::add(Origin::Gossip, msg) per message
//!   TxPool::add: Known -> validation::check_txs (fields; signatures not in the SigCache,
//!     batch-verified) -> pool (nonce, balance, replacement, limits; a low nonce found in the
//!     tx index: AlreadyInChain) -> outcome per tx; new ones -> newPendingTransactions; Rpc
//!     and Reorg ones -> announcer (txpool::announce, /txs/1 batches); Gossip ones are
//!     relayed by gossipsub on Accept
//!
//! A block's way
//!   producer (its slot, not behind a peer): Chain::produce(key, slot, |state|
//!     pool.select(state)) -> build, sign, apply, commit -> publish /block/1, record "published"
//!   peer: p2p event loop decodes /block/1 -> gossip block worker (gossip::block): record
//!     "first seen" -> Chain::import(block, signatures the pool verified): header, txs
//!     (batch-verify the rest), fork choice, state transition, commit -> verdict (Accept:
//!     gossipsub relays); unknown parent -> Ignore + SyncTrigger
//!   sync (sync::download): Status -> BlocksByRange from every claiming peer -> Chain::import;
//!     a peer serving bad ranges is blamed (SyncError::blames_peer -> NetworkHandle::penalize)
//!   every commit -> CanonNotification {applied, undone}: first to the commit observers
//!     (txpool::maintain::on_commit drops what the blocks include and re-checks senders the
//!     moment they are readable), then flush, head, broadcast -> txpool::maintain (reorg
//!     returns as Origin::Reorg), arrivals::follow ("validated"), eth_subscribe newHeads
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arrivals;
pub mod bench;
pub mod chain;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod dashboard;
pub mod devnet;
pub mod genesis;
pub mod gossip;
pub mod httpd;
pub mod metrics;
pub mod node;
pub mod p2p;
pub mod producer;
pub mod rpc;
pub mod state;
pub mod sync;
pub mod txpool;
pub mod types;
pub mod validation;
pub mod wallet;

/// Wall clock, milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Wall clock, microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
