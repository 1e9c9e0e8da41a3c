//! Stateless and stateful checks of transactions and blocks; the only builder of [`Verified`].
//!
//! Every failure is one [`ValidationError`]; [`ValidationError::verdict`] is the one place that
//! maps a failure to a gossipsub verdict and so to a peer penalty (consensus-specs
//! `p2p-interface.md`: REJECT penalises the sender, IGNORE does not).

use crate::crypto;
use crate::genesis::ChainSpec;
use crate::state::{apply_block, ApplyError, StateDiff, StateView};
use crate::types::encoding::{self, DecodeError, MAX_BLOCK_BYTES, MAX_TX_BYTES};
use crate::types::{Block, BlockHeader, CompactBlock, Hash, SignedTx, TxHashes, MAX_TX_DATA};
use std::collections::HashSet;

/// Most transactions one block may carry.
pub const MAX_BLOCK_TXS: usize = 20_000;
/// How far ahead of the local clock a block's slot may start, in milliseconds.
pub const MAX_CLOCK_DRIFT_MS: u64 = 500;

/// A value that passed validation. Only this module can build one.
#[derive(Clone, Debug)]
pub struct Verified<T>(T);

impl<T> Verified<T> {
    /// The checked value.
    pub fn inner(&self) -> &T {
        &self.0
    }
    /// Unwraps the checked value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The gossipsub verdict for a message (gossipsub v1.1 `MessageAcceptance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: relay it.
    Accept,
    /// Invalid: drop it and penalise the sender (gossipsub P4, invalid message deliveries).
    Reject,
    /// Not relayed, no penalty (duplicate, stale, or we lack context).
    Ignore,
}

/// Why a transaction or block is not valid (here, now). Each variant says what happens to the
/// peer that relayed it: "Reject" = dropped and the peer penalised; "Ignore" = dropped
/// without penalty; "Ignore + sync" = dropped and the missing data is requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Undecodable bytes. Reject.
    #[error("decode failed: {0}")]
    Decode(String),
    /// Chain id differs from ours. Reject.
    #[error("wrong chain id: expected {expected}, got {got}")]
    WrongChain {
        /// Our chain id.
        expected: u64,
        /// The message's chain id.
        got: u64,
    },
    /// Transaction `data` over [`MAX_TX_DATA`]. Reject.
    #[error("oversized data: {0} bytes")]
    DataTooLarge(usize),
    /// amount + fee overflows. Reject.
    #[error("amount + fee overflows")]
    CostOverflow,
    /// Transaction signature (or key) invalid. Reject.
    #[error("invalid transaction signature")]
    BadTxSignature,
    /// Already known (in the mempool, or a block we have). Ignore.
    #[error("already known")]
    Known,
    /// Parent block unknown. Ignore + sync.
    #[error("unknown parent {0}")]
    UnknownParent(Hash),
    /// The parent (or an ancestor) failed validation. Reject: a child of an invalid block is
    /// invalid too.
    #[error("parent {0} is invalid")]
    InvalidParent(Hash),
    /// Height is not parent height + 1. Reject.
    #[error("height {got} does not follow parent height {parent}")]
    BadHeight {
        /// Parent height.
        parent: u64,
        /// Block height.
        got: u64,
    },
    /// Slot not after the parent's slot. Reject.
    #[error("slot {got} is not after parent slot {parent}")]
    SlotNotAfterParent {
        /// Parent slot.
        parent: u64,
        /// Block slot.
        got: u64,
    },
    /// Slot starts too far in the future for our clock. Ignore (our clock may be behind).
    #[error("slot {0} is in the future")]
    FutureSlot(u64),
    /// Producer is not the validator scheduled for the slot. Reject.
    #[error("producer not scheduled for slot {0}")]
    WrongProducer(u64),
    /// Timestamp outside the block's slot. Reject.
    #[error("timestamp {0} outside its slot")]
    BadTimestamp(u64),
    /// Header signature invalid. Reject.
    #[error("invalid block signature")]
    BadBlockSignature,
    /// `tx_count` differs from the number of transactions. Reject.
    #[error("tx_count {header} but {actual} transactions")]
    TxCountMismatch {
        /// Header's count.
        header: u32,
        /// Actual count.
        actual: usize,
    },
    /// `tx_root` differs from the merkle root of the transactions. Reject.
    #[error("tx_root mismatch")]
    TxRootMismatch,
    /// More than [`MAX_BLOCK_TXS`] transactions or over [`MAX_BLOCK_BYTES`]. Reject.
    #[error("oversize block: {0}")]
    Oversize(String),
    /// The same transaction twice in one block. Reject.
    #[error("duplicate transaction {0} in block")]
    DuplicateTx(Hash),
    /// A compact block is malformed: its counts disagree with the header, a prefilled index
    /// is out of range or out of order, or a `blocktxn` answer does not fit the request.
    /// Reject.
    #[error("malformed compact block: {0}")]
    BadCompactBlock(String),
    /// A transaction in a block is invalid against the parent state. Reject.
    #[error("transaction {index} invalid: {reason}")]
    InvalidBlockTx {
        /// Index in the block.
        index: usize,
        /// Why.
        reason: String,
    },
    /// A lone transaction is invalid against the current state (nonce, balance). Ignore:
    /// state moves, so the sender may not be at fault.
    #[error("{0}")]
    State(ApplyError),
}

impl ValidationError {
    /// The gossipsub verdict (and so the penalty) for a message that failed with this error.
    pub fn verdict(&self) -> Verdict {
        use ValidationError::*;
        match self {
            Known | UnknownParent(_) | FutureSlot(_) | State(_) => Verdict::Ignore,
            _ => Verdict::Reject,
        }
    }

    /// Whether the peer that sent this is at fault (the verdict is Reject).
    pub fn is_peer_fault(&self) -> bool {
        self.verdict() == Verdict::Reject
    }
}

impl From<DecodeError> for ValidationError {
    fn from(e: DecodeError) -> Self {
        ValidationError::Decode(e.to_string())
    }
}

/// Decodes a transaction from untrusted bytes (size-limited, canonical).
pub fn decode_tx(bytes: &[u8]) -> Result<SignedTx, ValidationError> {
    Ok(encoding::decode(bytes, MAX_TX_BYTES)?)
}

/// Most transactions in one `/txs/1` gossip message.
pub const MAX_TX_BATCH: usize = 1024;

/// Decodes a gossip transaction batch from untrusted bytes: 1 to [`MAX_TX_BATCH`]
/// transactions, each within [`MAX_TX_BYTES`] (size-limited, canonical).
pub fn decode_tx_batch(bytes: &[u8]) -> Result<Vec<SignedTx>, ValidationError> {
    let txs: Vec<SignedTx> = encoding::decode(bytes, MAX_TX_BATCH * MAX_TX_BYTES + 8)?;
    if txs.is_empty() || txs.len() > MAX_TX_BATCH {
        return Err(ValidationError::Decode(format!(
            "a transaction batch holds 1 to {MAX_TX_BATCH} transactions, not {}",
            txs.len()
        )));
    }
    Ok(txs)
}

/// Decodes a block from untrusted bytes (size-limited, canonical).
pub fn decode_block(bytes: &[u8]) -> Result<Block, ValidationError> {
    Ok(encoding::decode(bytes, MAX_BLOCK_BYTES)?)
}

/// Decodes a compact block from untrusted bytes (size-limited, canonical) and checks its
/// shape: as many short ids plus prefilled transactions as the header's `tx_count` (at most
/// [`MAX_BLOCK_TXS`]), prefilled indexes strictly increasing and inside the block.
pub fn decode_compact_block(bytes: &[u8]) -> Result<CompactBlock, ValidationError> {
    let cb: CompactBlock = encoding::decode(bytes, MAX_BLOCK_BYTES)?;
    let n = cb.tx_count();
    if n != cb.header.tx_count as usize {
        return Err(ValidationError::BadCompactBlock(format!(
            "tx_count {} but {n} short ids and prefilled",
            cb.header.tx_count
        )));
    }
    if n > MAX_BLOCK_TXS {
        return Err(ValidationError::Oversize(format!("{n} transactions")));
    }
    let mut next = 0u64;
    for p in &cb.prefilled {
        if (p.index as u64) < next || p.index as usize >= n {
            return Err(ValidationError::BadCompactBlock(format!(
                "prefilled index {} out of order or range (block of {n})",
                p.index
            )));
        }
        next = p.index as u64 + 1;
    }
    Ok(cb)
}

/// The stateless checks of [`check_tx`] without the signature: chain id, data size, cost
/// overflow.
pub fn check_tx_fields(tx: &SignedTx, chain_id: u64) -> Result<(), ValidationError> {
    if tx.body.chain_id != chain_id {
        return Err(ValidationError::WrongChain {
            expected: chain_id,
            got: tx.body.chain_id,
        });
    }
    if tx.body.data.len() > MAX_TX_DATA {
        return Err(ValidationError::DataTooLarge(tx.body.data.len()));
    }
    tx.cost().ok_or(ValidationError::CostOverflow)?;
    Ok(())
}

/// Stateless checks of a transaction: chain id, data size, cost overflow, signature.
pub fn check_tx(tx: SignedTx, chain_id: u64) -> Result<Verified<SignedTx>, ValidationError> {
    check_tx_fields(&tx, chain_id)?;
    crypto::verify_tx(&tx).map_err(|_| ValidationError::BadTxSignature)?;
    Ok(Verified(tx))
}

/// Stateless checks of many transactions at once, each as [`check_tx`]: field checks, then
/// the signatures of those whose `sig_known` flag is false. A single signature is verified
/// with `verify_strict`; more go in ed25519 batches over `threads` OS threads
/// ([`crypto::verify_txs_parallel`], each bad one found alone). `sig_known` must be as long as
/// `txs` and mark transactions whose signatures this node verified before (the pool's
/// signature cache). Results in input order.
pub fn check_txs(
    txs: Vec<SignedTx>,
    chain_id: u64,
    threads: usize,
    sig_known: &[bool],
) -> Vec<Result<Verified<SignedTx>, ValidationError>> {
    let fields: Vec<Result<(), ValidationError>> =
        txs.iter().map(|t| check_tx_fields(t, chain_id)).collect();
    let need: Vec<usize> = (0..txs.len())
        .filter(|&i| fields[i].is_ok() && !sig_known[i])
        .collect();
    let mut sig_ok = vec![true; txs.len()];
    if need.len() == 1 {
        sig_ok[need[0]] = crypto::verify_tx(&txs[need[0]]).is_ok();
    } else if !need.is_empty() {
        let refs: Vec<&SignedTx> = need.iter().map(|&i| &txs[i]).collect();
        for (i, ok) in need.iter().zip(crypto::verify_txs_parallel(&refs, threads)) {
            sig_ok[*i] = ok;
        }
    }
    txs.into_iter()
        .zip(fields)
        .zip(sig_ok)
        .map(|((tx, f), ok)| {
            f?;
            if ok {
                Ok(Verified(tx))
            } else {
                Err(ValidationError::BadTxSignature)
            }
        })
        .collect()
}

/// What a block is checked against.
pub struct BlockContext<'a> {
    /// The chain's genesis spec (chain id, schedule).
    pub spec: &'a ChainSpec,
    /// The parent's header.
    pub parent: &'a BlockHeader,
    /// Our clock, ms since the Unix epoch.
    pub now_ms: u64,
    /// State after the parent.
    pub state: &'a dyn StateView,
    /// Whether a transaction hash's signature was already verified here (the mempool).
    pub already_verified: &'a dyn Fn(&Hash) -> bool,
}

/// Header checks that need only the parent: chain id, height, slot order, future slot,
/// producer schedule, timestamp, signature.
pub fn check_header(block: &Block, ctx: &BlockContext<'_>) -> Result<(), ValidationError> {
    let h = &block.header;
    let spec = ctx.spec;
    if h.chain_id != spec.chain_id {
        return Err(ValidationError::WrongChain {
            expected: spec.chain_id,
            got: h.chain_id,
        });
    }
    if h.height != ctx.parent.height + 1 {
        return Err(ValidationError::BadHeight {
            parent: ctx.parent.height,
            got: h.height,
        });
    }
    if h.slot <= ctx.parent.slot && ctx.parent.height > 0 {
        return Err(ValidationError::SlotNotAfterParent {
            parent: ctx.parent.slot,
            got: h.slot,
        });
    }
    let start = spec.slot_start_ms(h.slot);
    if start > ctx.now_ms.saturating_add(MAX_CLOCK_DRIFT_MS) {
        return Err(ValidationError::FutureSlot(h.slot));
    }
    if h.producer != spec.producer_of(h.slot) {
        return Err(ValidationError::WrongProducer(h.slot));
    }
    if h.timestamp_ms < start || h.timestamp_ms >= start.saturating_add(spec.slot_ms) {
        return Err(ValidationError::BadTimestamp(h.timestamp_ms));
    }
    crypto::verify_block_header(block).map_err(|_| ValidationError::BadBlockSignature)
}

/// A block whose header, body commitments and transaction signatures were checked, but whose
/// state transition has not run yet (a side-branch block waiting for fork choice). Only this
/// module builds one; [`Unapplied::apply`] turns it into a [`Verified`] block.
#[derive(Clone, Debug)]
pub struct Unapplied(Block);

impl Unapplied {
    /// The block.
    pub fn inner(&self) -> &Block {
        &self.0
    }

    /// Runs the state transition on `state` (the parent's state).
    ///
    /// Errors: [`ValidationError::InvalidBlockTx`] for the first transaction that does not
    /// apply (nonce, balance, overflow).
    pub fn apply(
        self,
        state: &dyn StateView,
    ) -> Result<(Verified<Block>, StateDiff), ValidationError> {
        let diff =
            apply_block(state, &self.0).map_err(|(index, e)| ValidationError::InvalidBlockTx {
                index,
                reason: e.to_string(),
            })?;
        Ok((Verified(self.0), diff))
    }
}

/// Everything but the state transition: header ([`check_header`]), size, `tx_count`,
/// `tx_root`, duplicates, transaction fields, and the signatures not already verified here
/// (batch-verified).
pub fn check_block_stateless(
    block: Block,
    ctx: &BlockContext<'_>,
) -> Result<Unapplied, ValidationError> {
    check_block_stateless_hashed(block, None, ctx)
}

/// [`check_block_stateless`] with the transactions' hashes (and their merkle root) already
/// computed where the caller has them: the i-th hash is `block.txs[i].hash()`, computed
/// locally from those very transactions (a compact block rebuilt from the mempool, which
/// hashed each transaction when it admitted it), never taken from a peer. Saves hashing every
/// transaction and the tree again on the relay path (about 0.5 ms per 1,000 transactions
/// here). Hashes of another count than the transactions are ignored and computed afresh.
pub fn check_block_stateless_hashed(
    block: Block,
    tx_hashes: Option<&TxHashes>,
    ctx: &BlockContext<'_>,
) -> Result<Unapplied, ValidationError> {
    check_header(&block, ctx)?;
    if block.txs.len() > MAX_BLOCK_TXS {
        return Err(ValidationError::Oversize(format!(
            "{} transactions",
            block.txs.len()
        )));
    }
    let size = block.encoded_len();
    if size > MAX_BLOCK_BYTES {
        return Err(ValidationError::Oversize(format!("{size} bytes")));
    }
    if block.header.tx_count as usize != block.txs.len() {
        return Err(ValidationError::TxCountMismatch {
            header: block.header.tx_count,
            actual: block.txs.len(),
        });
    }
    let computed;
    let hashed = match tx_hashes {
        Some(h) if h.hashes().len() == block.txs.len() => h,
        _ => {
            computed = TxHashes::of(&block);
            &computed
        }
    };
    let hashes = hashed.hashes();
    if hashed.root() != block.header.tx_root {
        return Err(ValidationError::TxRootMismatch);
    }
    let mut seen = HashSet::with_capacity(hashes.len());
    let mut to_verify = Vec::new();
    for (i, (tx, h)) in block.txs.iter().zip(hashes).enumerate() {
        if !seen.insert(*h) {
            return Err(ValidationError::DuplicateTx(*h));
        }
        check_tx_fields(tx, ctx.spec.chain_id).map_err(|e| ValidationError::InvalidBlockTx {
            index: i,
            reason: e.to_string(),
        })?;
        if !(ctx.already_verified)(h) {
            to_verify.push((i, tx));
        }
    }
    let refs: Vec<&SignedTx> = to_verify.iter().map(|(_, t)| *t).collect();
    if let Err((j, e)) = crypto::verify_txs_batch(&refs) {
        return Err(ValidationError::InvalidBlockTx {
            index: to_verify[j].0,
            reason: e.to_string(),
        });
    }
    Ok(Unapplied(block))
}

/// Full block check: [`check_block_stateless`] then the state transition on `ctx.state`.
/// Returns the state diff to commit.
pub fn check_block(
    block: Block,
    ctx: &BlockContext<'_>,
) -> Result<(Verified<Block>, StateDiff), ValidationError> {
    check_block_stateless(block, ctx)?.apply(ctx.state)
}

/// Marks a transaction verified whose fields passed [`check_tx_fields`] and whose signature a
/// batch verification accepted, or that came out of a block this node validated (a reorg
/// returning it to the mempool).
pub(crate) fn verified_tx(tx: SignedTx) -> Verified<SignedTx> {
    Verified(tx)
}

/// Marks a block this node built itself (from mempool transactions it verified) as verified.
/// The producer still runs the state transition; only signatures are trusted.
pub(crate) fn own_block(block: Block) -> Verified<Block> {
    Verified(block)
}

/// A side-branch block read back from our own store: it passed [`check_block_stateless`]
/// before it was stored.
pub(crate) fn stored_side_block(block: Block) -> Unapplied {
    Unapplied(block)
}

/// Marks a block read back from our own store as verified (it was checked before commit).
pub(crate) fn stored_block(block: Block) -> Verified<Block> {
    Verified(block)
}
