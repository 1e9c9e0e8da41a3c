//! meshnode: a peer-to-peer node that gossips signed transactions and blocks over libp2p and
//! measures how fast they propagate.
//!
//! ```text
//! A transaction's way
//!   RPC sendrawtransaction / eth_sendRawTransaction (hex)
//!     -> decode (size-checked) -> validation::check_tx (chain id, data size, signature)
//!     -> Mempool::insert (nonce vs state, balance, replacement, bound) -> New | Known | error
//!     -> New: NetworkHandle::publish(/meshnode/N/tx/1)
//!   peer: event loop decodes (undecodable -> Reject) -> bounded queue (full -> Ignore)
//!     -> tx validation task: same check_tx + Mempool::insert -> Accept | Reject | Ignore
//!     -> gossipsub relays on Accept only
//!
//! A block's way
//!   producer (its slot): Mempool::select -> build, sign -> apply -> ChainStore commit (one sled
//!     transaction, flushed) -> prune mempool -> publish(/meshnode/N/block/1), record "published"
//!   peer: event loop records arrival time, decodes -> block validation task:
//!     header (slot owner, signature, parent, timestamp) -> transactions (batch-verify those
//!     not already verified in the mempool) -> state transition -> commit -> Accept
//!     -> prune mempool, record "validated"; unknown parent -> Ignore + range sync
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arrivals;
pub mod bench;
pub mod chain;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod devnet;
pub mod events;
pub mod genesis;
pub mod mempool;
pub mod node;
pub mod p2p;
pub mod rpc;
pub mod state;
pub mod sync;
pub mod types;
pub mod validation;

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
