//! Client helpers over the generated jsonrpsee clients: what `meshnode tx send`, the bench and
//! the tests use.

use super::api::{BitcoinApiClient, EthApiClient};
use super::types::parse_qty;
use crate::crypto::Keypair;
use crate::types::{Address, TxBody};
use anyhow::Context;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use std::time::Duration;

/// An HTTP JSON-RPC client for `url` with a 30 s request timeout.
pub fn http(url: &str) -> anyhow::Result<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .max_request_size(16 * 1024 * 1024)
        .max_response_size(64 * 1024 * 1024)
        .build(url)
        .with_context(|| format!("bad RPC URL {url}"))
}

/// Parses a recipient: a 0x address or a key spec (`dev:N`, `dev-validator:N`, key file).
pub fn parse_recipient(to: &str) -> anyhow::Result<Address> {
    if let Ok(a) = to.parse::<Address>() {
        return Ok(a);
    }
    Ok(Keypair::from_spec(to)
        .with_context(|| format!("{to:?} is neither an address nor a key"))?
        .address())
}

/// Signs a transfer from `from` (key spec) and submits it with `sendrawtransaction`. The
/// nonce defaults to the node's pending nonce for the sender. Returns the tx hash (hex).
pub async fn send_transfer(
    url: &str,
    from: &str,
    to: &str,
    amount: u64,
    fee: u64,
    nonce: Option<u64>,
) -> anyhow::Result<String> {
    let key = Keypair::from_spec(from)?;
    let to = parse_recipient(to)?;
    let client = http(url)?;
    let chain_id =
        parse_qty(&client.chain_id().await.context("eth_chainId")?).context("bad eth_chainId")?;
    let nonce = match nonce {
        Some(n) => n,
        None => {
            let n = client
                .get_transaction_count(key.address().to_string(), Some("pending".into()))
                .await
                .context("eth_getTransactionCount")?;
            parse_qty(&n).context("bad eth_getTransactionCount")?
        }
    };
    let tx = key.sign_tx(TxBody {
        chain_id,
        nonce,
        from: key.public(),
        to,
        amount,
        fee,
        data: vec![],
    });
    let hash = client
        .sendrawtransaction(hex::encode(tx.to_bytes()))
        .await
        .context("sendrawtransaction")?;
    Ok(hash)
}
