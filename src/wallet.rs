//! Offline transaction signing and decoding (`meshnode tx sign`, `meshnode tx decode`), and
//! the one place a transfer is built and signed, so that `tx sign` and `tx send` produce the
//! same bytes for the same fields (ed25519 signatures are deterministic, RFC 8032 §5.1.6).
//!
//! Like `cast mktx` / `cast decode-transaction` (Foundry) and Bitcoin Core's
//! `signrawtransactionwithkey` / `decoderawtransaction`: signing needs no node, so the chain id
//! and the nonce are given, not looked up.

use crate::crypto::Keypair;
use crate::types::{Address, SignedTx, TxBody, MAX_TX_DATA};
use anyhow::{bail, Context};
use serde_json::{json, Value};

/// The fields of a transfer to sign.
#[derive(Clone, Debug)]
pub struct Transfer {
    /// Chain id of the network (replay protection; the devnet's is 1337).
    pub chain_id: u64,
    /// The sender's account nonce.
    pub nonce: u64,
    /// Recipient.
    pub to: Address,
    /// Amount, base units.
    pub amount: u64,
    /// Fee, base units.
    pub fee: u64,
    /// Payload, at most [`MAX_TX_DATA`] bytes.
    pub data: Vec<u8>,
}

/// Signs `t` with `key`. Errors: `data` longer than [`MAX_TX_DATA`] bytes (the node would
/// reject it).
pub fn sign_transfer(key: &Keypair, t: Transfer) -> anyhow::Result<SignedTx> {
    if t.data.len() > MAX_TX_DATA {
        bail!(
            "data is {} bytes; a transaction carries at most {MAX_TX_DATA}",
            t.data.len()
        );
    }
    Ok(key.sign_tx(TxBody {
        chain_id: t.chain_id,
        nonce: t.nonce,
        from: key.public(),
        to: t.to,
        amount: t.amount,
        fee: t.fee,
        data: t.data,
    }))
}

/// Parses a raw transaction given as hex (with or without `0x`, surrounding whitespace
/// ignored), as `sendrawtransaction` takes it. Errors: not hex, or not one canonical encoded
/// transaction within `MAX_TX_BYTES` (the node's own decoder, so what decodes here is what
/// the node accepts for decoding).
pub fn parse_raw(hex_str: &str) -> anyhow::Result<SignedTx> {
    let s = hex_str.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let bytes = hex::decode(s).context("the transaction is not hex")?;
    crate::validation::decode_tx(&bytes).context("the bytes are not a meshnode transaction")
}

/// A transaction as JSON: `{hash, size, chainId, nonce, from (address), publicKey, to,
/// amount, fee, data (0x hex), signature, signatureValid, hex}`. `signatureValid` is the
/// ed25519 check over `TX_SIGNING_DOMAIN || encode(body)`; numbers are plain JSON numbers.
pub fn describe(tx: &SignedTx) -> Value {
    let bytes = tx.to_bytes();
    json!({
        "hash": tx.hash().to_string(),
        "size": bytes.len(),
        "chainId": tx.body.chain_id,
        "nonce": tx.body.nonce,
        "from": tx.sender().to_string(),
        "publicKey": hex::encode(tx.body.from.0),
        "to": tx.body.to.to_string(),
        "amount": tx.body.amount,
        "fee": tx.body.fee,
        "data": format!("0x{}", hex::encode(&tx.body.data)),
        "signature": hex::encode(tx.signature.0),
        "signatureValid": crate::crypto::verify_tx(tx).is_ok(),
        "hex": hex::encode(&bytes),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer() -> Transfer {
        Transfer {
            chain_id: 1337,
            nonce: 7,
            to: Keypair::dev_account(2).address(),
            amount: 1000,
            fee: 3,
            data: vec![1, 2, 3],
        }
    }

    #[test]
    fn signing_is_deterministic_and_decodes_back() {
        let key = Keypair::dev_account(1);
        let a = sign_transfer(&key, transfer()).unwrap();
        let b = sign_transfer(&key, transfer()).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        let back = parse_raw(&format!(" 0x{}\n", hex::encode(a.to_bytes()))).unwrap();
        assert_eq!(back, a);
        let d = describe(&back);
        assert_eq!(d["hash"], a.hash().to_string());
        assert_eq!(d["from"], key.address().to_string());
        assert_eq!(d["nonce"], 7);
        assert_eq!(d["data"], "0x010203");
        assert_eq!(d["signatureValid"], true);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(parse_raw("zz").is_err());
        assert!(parse_raw("").is_err());
        let mut bytes = sign_transfer(&Keypair::dev_account(1), transfer())
            .unwrap()
            .to_bytes();
        bytes.push(0);
        assert!(parse_raw(&hex::encode(&bytes)).is_err(), "trailing byte");
        let long = Transfer {
            data: vec![0; MAX_TX_DATA + 1],
            ..transfer()
        };
        assert!(sign_transfer(&Keypair::dev_account(1), long).is_err());
        // A flipped signature bit still decodes, and says the signature is invalid.
        let mut tx = sign_transfer(&Keypair::dev_account(1), transfer()).unwrap();
        tx.signature.0[0] ^= 1;
        assert_eq!(describe(&tx)["signatureValid"], false);
    }
}
