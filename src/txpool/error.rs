//! Why a transaction was not admitted: the pool's own refusals ([`MempoolError`]) and the
//! admission entry's error ([`SubmitError`]), each with the consequence for a gossip peer.

use crate::validation::{ValidationError, Verdict};

/// Why the mempool refused a transaction (already signature-checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// Nonce below the sender's next nonce in the chain.
    #[error("nonce too low: next nonce {expected}, transaction nonce {got}")]
    NonceTooLow {
        /// Next nonce at head.
        expected: u64,
        /// Transaction nonce.
        got: u64,
    },
    /// Balance at head does not cover amount + fee.
    #[error("insufficient funds for fee + amount: balance {balance}, cost {cost}")]
    InsufficientFunds {
        /// Balance at head.
        balance: u64,
        /// amount + fee.
        cost: u64,
    },
    /// Same sender and nonce already pooled with a fee less than 10 % lower.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The fee is below the minimum relay fee (`--min-relay-fee`; Bitcoin Core's
    /// `-minrelaytxfee`, "min relay fee not met").
    #[error("min relay fee not met, {fee} < {min}")]
    BelowMinRelayFee {
        /// Offered fee.
        fee: u64,
        /// The minimum relay fee.
        min: u64,
    },
    /// The fee is below the rolling minimum fee (Bitcoin Core's "mempool min fee not met").
    #[error("mempool min fee not met, {fee} < {min}")]
    FeeTooLow {
        /// Offered fee.
        fee: u64,
        /// Current minimum.
        min: u64,
    },
    /// The pool is full and this transaction's fee does not beat the lowest evictable one.
    #[error("mempool full: fee {fee} does not beat the lowest evictable fee {min}")]
    Full {
        /// Offered fee.
        fee: u64,
        /// Lowest fee that could be evicted.
        min: u64,
    },
    /// The sender already has [`MempoolConfig::max_per_sender`] transactions pooled.
    #[error("account limit exceeded: {limit} transactions of this sender pooled")]
    SenderLimit {
        /// The limit.
        limit: usize,
    },
    /// The transaction would be queued (nonce gap) and the sender's or the pool's queue is full.
    #[error("queue limit exceeded: {limit} queued transactions")]
    QueueFull {
        /// The limit that was hit.
        limit: usize,
    },
    /// Already included in a block.
    #[error("transaction already in block chain")]
    AlreadyInChain,
}

/// Why [`super::TxPool::add`] did not admit a transaction. The verdict a gossip message gets
/// follows [`SubmitError::verdict`]: the peer that sent it is penalised only for `Invalid`.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Failed a stateless check (chain id, size, signature). Gossip: Reject (the sender relayed
    /// something no honest node relays).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Refused by the pool's policy or the transaction's state. Gossip: Ignore (honest peers
    /// see other states and pools).
    #[error(transparent)]
    Mempool(#[from] MempoolError),
    /// Valid alone, but another transaction of the same gossip message was `Invalid`: the
    /// message is rejected whole and none of it is admitted from it. Gossip: Reject.
    #[error("another transaction of the same gossip message is invalid")]
    BatchRejected,
}

impl SubmitError {
    /// Verdict for a gossip message containing a transaction that failed with this error.
    pub fn verdict(&self) -> Verdict {
        match self {
            SubmitError::Invalid(e) => e.verdict(),
            SubmitError::BatchRejected => Verdict::Reject,
            SubmitError::Mempool(_) => Verdict::Ignore,
        }
    }
}
