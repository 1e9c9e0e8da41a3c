//! Response shapes: Bitcoin Core-style and Ethereum-style views of blocks and transactions.
//!
//! Ethereum fields that have no meaning here carry neutral values so that client libraries
//! parse the objects: gas 0, gasPrice = the fee, logsBloom all zero, difficulty 0, empty
//! uncles, nonce 0x0000000000000000, stateRoot/receiptsRoot/sha3Uncles/mixHash zero hashes.

use crate::types::{Block, Hash, SignedTx};
use serde_json::{json, Value};

/// `0x` quantity without leading zeros (execution-apis).
pub fn qty(v: u64) -> String {
    format!("{v:#x}")
}

/// Parses a 0x quantity.
pub fn parse_qty(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x")?;
    if h.is_empty() || h.len() > 16 {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

fn zero32() -> String {
    Hash::ZERO.to_0x()
}

/// A transaction as `getblock` verbosity 2 / `getrawtransaction` verbose show it.
pub fn btc_tx(tx: &SignedTx) -> Value {
    let bytes = tx.to_bytes();
    json!({
        "txid": tx.hash().to_string(),
        "hash": tx.hash().to_string(),
        "size": bytes.len(),
        "vsize": bytes.len(),
        "from": tx.sender().to_string(),
        "to": tx.body.to.to_string(),
        "amount": tx.body.amount,
        "fee": tx.body.fee,
        "nonce": tx.body.nonce,
        "hex": hex::encode(&bytes),
    })
}

/// A block in Bitcoin Core's `getblock` verbosity 1 (txids) or 2 (objects) shape.
pub fn btc_block(block: &Block, head_height: u64, next: Option<Hash>, verbosity: u8) -> Value {
    let h = &block.header;
    let txs: Vec<Value> = if verbosity >= 2 {
        block.txs.iter().map(btc_tx).collect()
    } else {
        block
            .txs
            .iter()
            .map(|t| Value::String(t.hash().to_string()))
            .collect()
    };
    let size = block.encoded_len();
    let mut v = json!({
        "hash": block.hash().to_string(),
        "confirmations": head_height.saturating_sub(h.height) + 1,
        "height": h.height,
        "version": 1,
        "merkleroot": h.tx_root.to_string(),
        "time": h.timestamp_ms / 1000,
        "mediantime": h.timestamp_ms / 1000,
        "time_ms": h.timestamp_ms,
        "slot": h.slot,
        "producer": h.producer.address().to_string(),
        "nTx": block.txs.len(),
        "size": size,
        "strippedsize": size,
        "weight": size * 4,
        "tx": txs,
    });
    if h.height > 0 {
        v["previousblockhash"] = Value::String(h.parent.to_string());
    }
    if let Some(n) = next {
        v["nextblockhash"] = Value::String(n.to_string());
    }
    v
}

/// Where a transaction sits, for Ethereum transaction objects.
pub struct TxPlace {
    /// Block hash.
    pub block: Hash,
    /// Block height.
    pub height: u64,
    /// Index.
    pub index: u32,
}

/// An Ethereum transaction object (legacy type 0x0; v/r/s carry the ed25519 signature split
/// into r = first 32 bytes, s = last 32 bytes, v = 0x0).
pub fn eth_tx(tx: &SignedTx, chain_id: u64, place: Option<TxPlace>) -> Value {
    let sig = &tx.signature.0;
    let (bh, bn, ti) = match place {
        Some(p) => (
            Value::String(p.block.to_0x()),
            Value::String(qty(p.height)),
            Value::String(qty(p.index as u64)),
        ),
        None => (Value::Null, Value::Null, Value::Null),
    };
    json!({
        "hash": tx.hash().to_0x(),
        "nonce": qty(tx.body.nonce),
        "blockHash": bh,
        "blockNumber": bn,
        "transactionIndex": ti,
        "from": tx.sender().to_string(),
        "to": tx.body.to.to_string(),
        "value": qty(tx.body.amount),
        "gas": qty(21000),
        "gasPrice": qty(tx.body.fee),
        "input": format!("0x{}", hex::encode(&tx.body.data)),
        "type": "0x0",
        "chainId": qty(chain_id),
        "v": "0x0",
        "r": format!("0x{}", hex::encode(&sig[..32])),
        "s": format!("0x{}", hex::encode(&sig[32..])),
    })
}

/// An Ethereum transaction receipt for a mined transaction. meshnode transfers always succeed
/// once included (status 0x1), emit no logs and use the neutral 21,000 gas.
pub fn eth_receipt(tx: &SignedTx, p: TxPlace) -> Value {
    json!({
        "transactionHash": tx.hash().to_0x(),
        "transactionIndex": qty(p.index as u64),
        "blockHash": p.block.to_0x(),
        "blockNumber": qty(p.height),
        "from": tx.sender().to_string(),
        "to": tx.body.to.to_string(),
        "cumulativeGasUsed": qty(21_000 * (p.index as u64 + 1)),
        "gasUsed": qty(21_000),
        "effectiveGasPrice": qty(tx.body.fee),
        "contractAddress": Value::Null,
        "logs": [],
        "logsBloom": format!("0x{}", "0".repeat(512)),
        "type": "0x0",
        "status": "0x1",
    })
}

/// An Ethereum block object; `full` puts transaction objects instead of hashes.
pub fn eth_block(block: &Block, chain_id: u64, full: bool) -> Value {
    let h = &block.header;
    let hash = block.hash();
    let txs: Vec<Value> = block
        .txs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if full {
                eth_tx(
                    t,
                    chain_id,
                    Some(TxPlace {
                        block: hash,
                        height: h.height,
                        index: i as u32,
                    }),
                )
            } else {
                Value::String(t.hash().to_0x())
            }
        })
        .collect();
    let parent = if h.height == 0 {
        zero32()
    } else {
        h.parent.to_0x()
    };
    json!({
        "number": qty(h.height),
        "hash": hash.to_0x(),
        "parentHash": parent,
        "nonce": "0x0000000000000000",
        "sha3Uncles": zero32(),
        "logsBloom": format!("0x{}", "0".repeat(512)),
        "transactionsRoot": h.tx_root.to_0x(),
        "stateRoot": zero32(),
        "receiptsRoot": zero32(),
        "miner": h.producer.address().to_string(),
        "difficulty": "0x0",
        "totalDifficulty": "0x0",
        "extraData": "0x",
        "size": qty(block.encoded_len() as u64),
        "gasLimit": qty(30_000_000),
        "gasUsed": qty(21_000 * block.txs.len() as u64),
        "timestamp": qty(h.timestamp_ms / 1000),
        "mixHash": zero32(),
        "baseFeePerGas": "0x0",
        "transactions": txs,
        "uncles": [],
    })
}
