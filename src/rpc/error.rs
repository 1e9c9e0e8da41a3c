//! Error codes: JSON-RPC 2.0 codes, Bitcoin Core's RPC codes for the Bitcoin family, geth's
//! -32000 with geth's messages for the Ethereum family.

use crate::txpool::{MempoolError, SubmitError};
use crate::validation::ValidationError;
use jsonrpsee::types::ErrorObjectOwned;

/// Bitcoin Core `RPC_INVALID_ADDRESS_OR_KEY`: block or transaction not found.
pub const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
/// Bitcoin Core `RPC_INVALID_PARAMETER`.
pub const RPC_INVALID_PARAMETER: i32 = -8;
/// Bitcoin Core `RPC_DESERIALIZATION_ERROR`: bytes do not decode.
pub const RPC_DESERIALIZATION_ERROR: i32 = -22;
/// Bitcoin Core `RPC_VERIFY_ERROR`.
pub const RPC_VERIFY_ERROR: i32 = -25;
/// Bitcoin Core `RPC_VERIFY_REJECTED`: refused by validation or mempool policy.
pub const RPC_VERIFY_REJECTED: i32 = -26;
/// Bitcoin Core `RPC_VERIFY_ALREADY_IN_CHAIN`.
pub const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;
/// Bitcoin Core `RPC_CLIENT_NODE_ALREADY_ADDED` (`setban`: "Node already banned").
pub const RPC_CLIENT_NODE_ALREADY_ADDED: i32 = -23;
/// Bitcoin Core `RPC_CLIENT_INVALID_IP_OR_SUBNET` (`setban remove` of an address not banned).
pub const RPC_CLIENT_INVALID_IP_OR_SUBNET: i32 = -30;
/// JSON-RPC 2.0 invalid params.
pub const INVALID_PARAMS: i32 = -32602;
/// geth's generic server error code.
pub const GETH_SERVER_ERROR: i32 = -32000;
/// Internal error.
pub const INTERNAL_ERROR: i32 = -32603;

/// An error object with no data.
pub fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

/// An internal error (store failure, network stopped).
pub fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    err(INTERNAL_ERROR, e.to_string())
}

/// Bitcoin-family mapping of a submit failure (reject reasons in Bitcoin Core's style).
pub fn submit_btc(e: &SubmitError) -> ErrorObjectOwned {
    match e {
        SubmitError::Invalid(ValidationError::Decode(m)) => {
            err(RPC_DESERIALIZATION_ERROR, format!("TX decode failed: {m}"))
        }
        SubmitError::Invalid(v) => {
            let reason = match v {
                ValidationError::BadTxSignature => "bad-txns-signature".to_string(),
                ValidationError::WrongChain { .. } => format!("bad-txns-chain-id ({v})"),
                ValidationError::DataTooLarge(_) => format!("bad-txns-oversize ({v})"),
                ValidationError::CostOverflow => "bad-txns-amount-overflow".to_string(),
                other => other.to_string(),
            };
            err(RPC_VERIFY_REJECTED, reason)
        }
        SubmitError::BatchRejected => err(RPC_VERIFY_REJECTED, e.to_string()),
        SubmitError::Mempool(m) => match m {
            MempoolError::AlreadyInChain => err(
                RPC_VERIFY_ALREADY_IN_CHAIN,
                "Transaction already in block chain",
            ),
            // The account-model twin of spending a spent output: Bitcoin Core's
            // "bad-txns-inputs-missingorspent", -25.
            MempoolError::NonceTooLow { .. } => err(
                RPC_VERIFY_ERROR,
                format!("bad-txns-inputs-missingorspent ({m})"),
            ),
            MempoolError::InsufficientFunds { .. } => err(
                RPC_VERIFY_REJECTED,
                format!("bad-txns-insufficient-funds ({m})"),
            ),
            MempoolError::ReplacementUnderpriced => err(
                RPC_VERIFY_REJECTED,
                "insufficient fee (replacement transaction underpriced)",
            ),
            MempoolError::Full { .. } => err(RPC_VERIFY_REJECTED, format!("mempool full ({m})")),
            MempoolError::FeeTooLow { fee, min } => err(
                RPC_VERIFY_REJECTED,
                format!("mempool min fee not met, {fee} < {min}"),
            ),
            MempoolError::BelowMinRelayFee { .. } => err(RPC_VERIFY_REJECTED, m.to_string()),
            MempoolError::SenderLimit { limit } => err(
                RPC_VERIFY_REJECTED,
                format!("too-long-mempool-chain, too many unconfirmed transactions of this sender [limit: {limit}]"),
            ),
            MempoolError::QueueFull { limit } => err(
                RPC_VERIFY_REJECTED,
                format!("too-long-mempool-chain, too many transactions behind a nonce gap [limit: {limit}]"),
            ),
        },
    }
}

/// Ethereum-family mapping of a submit failure (geth's messages, code -32000).
pub fn submit_eth(e: &SubmitError) -> ErrorObjectOwned {
    let msg = match e {
        SubmitError::Invalid(ValidationError::Decode(m)) => {
            return err(INVALID_PARAMS, format!("invalid transaction encoding: {m}"))
        }
        SubmitError::Invalid(ValidationError::BadTxSignature) => "invalid sender".to_string(),
        SubmitError::Invalid(ValidationError::WrongChain { .. }) => {
            "invalid chain id for signer".to_string()
        }
        SubmitError::Invalid(ValidationError::DataTooLarge(_)) => "oversized data".to_string(),
        SubmitError::Invalid(other) => other.to_string(),
        SubmitError::BatchRejected => e.to_string(),
        SubmitError::Mempool(MempoolError::NonceTooLow { expected, got }) => {
            format!("nonce too low: next nonce {expected}, tx nonce {got}")
        }
        SubmitError::Mempool(MempoolError::InsufficientFunds { balance, cost }) => {
            format!("insufficient funds for gas * price + value: balance {balance}, tx cost {cost}")
        }
        SubmitError::Mempool(MempoolError::AlreadyInChain) => "already known".to_string(),
        SubmitError::Mempool(MempoolError::ReplacementUnderpriced) => {
            "replacement transaction underpriced".to_string()
        }
        SubmitError::Mempool(MempoolError::Full { .. }) => "txpool is full".to_string(),
        SubmitError::Mempool(
            MempoolError::FeeTooLow { fee, min } | MempoolError::BelowMinRelayFee { fee, min },
        ) => {
            format!("transaction underpriced: fee {fee} < minimum {min}")
        }
        SubmitError::Mempool(MempoolError::SenderLimit { .. }) => {
            "account limit exceeded".to_string()
        }
        SubmitError::Mempool(MempoolError::QueueFull { limit }) => {
            format!("txpool is full: {limit} queued transactions")
        }
    };
    err(GETH_SERVER_ERROR, msg)
}
