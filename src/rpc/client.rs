//! Client helpers over the generated jsonrpsee clients: what `meshnode tx send`, the bench and
//! the tests use.

use super::api::{BitcoinApiClient, EthApiClient};
use super::types::parse_qty;
use crate::cli::{RpcArgs, RpcConnArgs};
use crate::crypto::Keypair;
use crate::types::Address;
use anyhow::Context;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde_json::Value;
use std::time::Duration;

/// An HTTP JSON-RPC client for `url` with a 30 s request timeout. Credentials in the URL
/// (`http://user:password@host:port`, as a netns devnet names its nodes with their cookie)
/// are sent as HTTP Basic auth.
pub fn http(url: &str) -> anyhow::Result<HttpClient> {
    let (url, user_pass) = split_userinfo(url);
    http_with_auth(&url, user_pass.as_deref())
}

/// `http://user:pass@host:port/…` → (`http://host:port/…`, `Some("user:pass")`); URLs
/// without credentials are returned unchanged.
pub fn split_userinfo(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => (
            format!("{scheme}://{host}{}", &rest[authority_end..]),
            Some(userinfo.to_string()),
        ),
        None => (url.to_string(), None),
    }
}

/// As [`http`], sending HTTP Basic credentials `user:password` when given.
pub fn http_with_auth(url: &str, user_pass: Option<&str>) -> anyhow::Result<HttpClient> {
    let mut headers = http::HeaderMap::new();
    if let Some(up) = user_pass {
        headers.insert(
            http::header::AUTHORIZATION,
            super::auth::basic_header(up)
                .parse()
                .context("credentials are not a valid header")?,
        );
    }
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(30))
        .max_request_size(16 * 1024 * 1024)
        .max_response_size(64 * 1024 * 1024)
        .set_headers(headers)
        .build(url)
        .with_context(|| format!("bad RPC URL {url}"))
}

/// Resolves `--rpc/--data-dir/--rpc-cookie-file/--rpc-user` into a client: the URL from
/// `--rpc`, else DATA_DIR/node.json, else http://127.0.0.1:8545; credentials from the user and
/// password, else the cookie file, else DATA_DIR/.cookie when it exists, else none.
pub fn connect(conn: &RpcConnArgs) -> anyhow::Result<HttpClient> {
    let url = match (&conn.rpc, &conn.data_dir) {
        (Some(u), _) => u.clone(),
        (None, Some(dir)) => {
            let path = dir.join("node.json");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {} (is the node running?)", path.display()))?;
            let nf: crate::config::NodeFile = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            nf.rpc_url
        }
        (None, None) => "http://127.0.0.1:8545".to_string(),
    };
    let cookie = conn.rpc_cookie_file.clone().or_else(|| {
        conn.data_dir
            .as_ref()
            .map(|d| d.join(super::auth::COOKIE_FILE))
            .filter(|p| p.exists())
    });
    let user_pass = match (&conn.rpc_user, &conn.rpc_password, cookie) {
        (Some(u), Some(p), _) => Some(format!("{u}:{p}")),
        (_, _, Some(path)) => Some(
            super::auth::read_cookie(&path)
                .with_context(|| format!("reading cookie {}", path.display()))?,
        ),
        _ => None,
    };
    http_with_auth(&url, user_pass.as_deref())
}

/// Reads one `meshnode rpc` parameter: JSON when it is JSON (except numbers that do not fit
/// 64 bits, which stay strings so long all-digit hex survives), else a plain string.
pub fn parse_cli_param(s: &str) -> Value {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Number(n))
            if n.as_u64().is_none() && n.as_i64().is_none() && !s.contains('.') =>
        {
            Value::String(s.to_string())
        }
        Ok(v) => v,
        Err(_) => Value::String(s.to_string()),
    }
}

/// `meshnode rpc METHOD [PARAMS…]`: the result, or an error "code N: message".
pub async fn call_cli(args: &RpcArgs) -> anyhow::Result<Value> {
    use jsonrpsee::core::client::ClientT;
    let client = connect(&args.conn)?;
    let mut params = jsonrpsee::core::params::ArrayParams::new();
    for p in &args.params {
        params
            .insert(parse_cli_param(p))
            .context("encoding params")?;
    }
    match client.request::<Value, _>(&args.method, params).await {
        Ok(v) => Ok(v),
        Err(jsonrpsee::core::ClientError::Call(e)) => {
            anyhow::bail!("code {}: {}", e.code(), e.message())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("calling {}", args.method))),
    }
}

/// Parses a `--data` payload: hex, `0x` optional, empty for none.
pub fn parse_data(s: &str) -> anyhow::Result<Vec<u8>> {
    let s = s.trim();
    hex::decode(s.strip_prefix("0x").unwrap_or(s)).context("--data is not hex")
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
    send_transfer_via(&http(url)?, from, to, amount, fee, nonce, vec![]).await
}

/// As [`send_transfer`], over a given client (e.g. one from [`connect`] with credentials),
/// with a `data` payload; signed by [`crate::wallet::sign_transfer`], as `tx sign` signs.
pub async fn send_transfer_via(
    client: &HttpClient,
    from: &str,
    to: &str,
    amount: u64,
    fee: u64,
    nonce: Option<u64>,
    data: Vec<u8>,
) -> anyhow::Result<String> {
    let key = Keypair::from_spec(from)?;
    let to = parse_recipient(to)?;
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
    let tx = crate::wallet::sign_transfer(
        &key,
        crate::wallet::Transfer {
            chain_id,
            nonce,
            to,
            amount,
            fee,
            data,
        },
    )?;
    let hash = client
        .sendrawtransaction(hex::encode(tx.to_bytes()))
        .await
        .context("sendrawtransaction")?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_come_out_of_urls() {
        use super::split_userinfo;
        assert_eq!(
            split_userinfo("http://__cookie__:ab12@10.77.2.2:8545"),
            (
                "http://10.77.2.2:8545".to_string(),
                Some("__cookie__:ab12".to_string())
            )
        );
        assert_eq!(
            split_userinfo("http://127.0.0.1:8545/x@y"),
            ("http://127.0.0.1:8545/x@y".to_string(), None)
        );
        assert_eq!(
            split_userinfo("127.0.0.1:1"),
            ("127.0.0.1:1".to_string(), None)
        );
    }
}
