//! Method documentation: the table behind `help` (Bitcoin Core's command list) and
//! `rpc.discover` (an OpenRPC 1.2.6 document, <https://spec.open-rpc.org>). Every method the
//! server registers must have an entry here; a test asks `rpc.discover` on a live node and
//! fails on any method without one.

use serde_json::{json, Value};

/// One method: name, parameters and a one-line summary.
///
/// `params` is a comma-separated list of `name: type`, a `?` after the name marking an
/// optional one; types are JSON Schema type names (`string`, `integer`, `boolean`, `array`,
/// `object`) or `any`.
pub struct MethodDoc {
    /// Method name.
    pub name: &'static str,
    /// Parameters, as described above.
    pub params: &'static str,
    /// What it returns, in one line.
    pub summary: &'static str,
}

const fn m(name: &'static str, params: &'static str, summary: &'static str) -> MethodDoc {
    MethodDoc {
        name,
        params,
        summary,
    }
}

/// Every method, grouped by family (the group is the text before `_`, or "bitcoin").
pub const METHODS: &[MethodDoc] = &[
    m(
        "addnode",
        "node: string, command: string",
        "add|onetry dials a /p2p/ multiaddr, remove disconnects it",
    ),
    m(
        "setban",
        "target: string, command: string, bantime?: integer, absolute?: boolean",
        "add|remove a ban of a peer id or an IP address",
    ),
    m(
        "listbanned",
        "",
        "banned peer ids and IP addresses, until when and why",
    ),
    m("clearbanned", "", "lifts every ban"),
    m("getbestblockhash", "", "hash of the head block"),
    m(
        "getblock",
        "blockhash: string, verbosity?: integer",
        "block as hex (0), with txids (1, default) or with transactions (2, 3)",
    ),
    m("getblockcount", "", "height of the head"),
    m(
        "getblockhash",
        "height: integer",
        "canonical block hash at a height",
    ),
    m(
        "getblockheader",
        "blockhash: string, verbose?: boolean",
        "header object (default) or hex",
    ),
    m(
        "getchaintips",
        "",
        "every known chain tip with its branch length and status",
    ),
    m("getconnectioncount", "", "number of connected peers"),
    m(
        "getnodeaddresses",
        "count?: number",
        "peers the node knows of (routing table), connected or not",
    ),
    m(
        "getmempoolentry",
        "txid: string",
        "one mempool entry with its nonce-chain ancestors and descendants",
    ),
    m(
        "getmempoolinfo",
        "",
        "mempool size, bytes, limits and minimum fee",
    ),
    m(
        "getnetworkinfo",
        "",
        "version, connections and local addresses",
    ),
    m(
        "getpeerinfo",
        "",
        "connected peers with ping, gossip score and mesh membership",
    ),
    m(
        "getrawmempool",
        "verbose?: boolean",
        "mempool txids, or entries by txid",
    ),
    m(
        "getrawtransaction",
        "txid: string, verbose?: any, blockhash?: string",
        "transaction hex, or object with its block",
    ),
    m(
        "help",
        "command?: string",
        "this list, or one method's usage",
    ),
    m(
        "sendrawtransaction",
        "hexstring: string",
        "submits a signed transaction; returns its txid",
    ),
    m(
        "testmempoolaccept",
        "rawtxs: array, maxfeerate?: any",
        "whether each transaction would be admitted, and why not",
    ),
    m("uptime", "", "seconds since the node started"),
    m("eth_blockNumber", "", "head height"),
    m("eth_chainId", "", "chain id"),
    m(
        "eth_getBalance",
        "address: string, block?: string",
        "balance at head",
    ),
    m(
        "eth_getBlockByHash",
        "hash: string, fullTransactions: boolean",
        "block object or null",
    ),
    m(
        "eth_getBlockByNumber",
        "block: string, fullTransactions: boolean",
        "block object or null (latest, earliest, pending or a number)",
    ),
    m(
        "eth_getBlockTransactionCountByHash",
        "hash: string",
        "number of transactions in a block",
    ),
    m(
        "eth_getBlockTransactionCountByNumber",
        "block: string",
        "number of transactions in a block",
    ),
    m(
        "eth_getTransactionByHash",
        "hash: string",
        "transaction object (pending or mined) or null",
    ),
    m(
        "eth_getTransactionCount",
        "address: string, block?: string",
        "next nonce (latest) or next nonce counting the mempool (pending)",
    ),
    m(
        "eth_getTransactionReceipt",
        "hash: string",
        "receipt of a mined transaction or null",
    ),
    m(
        "eth_sendRawTransaction",
        "data: string",
        "submits a signed transaction; returns its hash",
    ),
    m(
        "eth_subscribe",
        "kind: string, filter?: object",
        "WebSocket: newHeads or newPendingTransactions notifications",
    ),
    m("eth_syncing", "", "false, or range sync progress"),
    m("eth_unsubscribe", "id: string", "ends a subscription"),
    m("net_listening", "", "true while listening for peers"),
    m("net_peerCount", "", "number of connected peers"),
    m("net_version", "", "chain id as a decimal string"),
    m("web3_clientVersion", "", "meshnode/v<version>/<os>-<arch>"),
    m(
        "txpool_content",
        "",
        "pending and queued transactions by sender and nonce",
    ),
    m(
        "txpool_inspect",
        "",
        "pending and queued transactions as one-line summaries",
    ),
    m("txpool_status", "", "pending and queued counts"),
    m("admin_addPeer", "url: string", "dials a /p2p/ multiaddr"),
    m("admin_nodeInfo", "", "this node's id, addresses and chain"),
    m("admin_peers", "", "connected peers"),
    m(
        "admin_removePeer",
        "url: string",
        "disconnects a peer and stops dialling it",
    ),
    m(
        "meshnode_blockArrival",
        "hash: string",
        "this node's arrival record for a block (µs since the epoch)",
    ),
    m(
        "meshnode_clock",
        "",
        "this node's wall clock, µs since the epoch (for clock-offset estimates)",
    ),
    m(
        "meshnode_nodeInfo",
        "",
        "peer id, listen addresses, chain, head, mempool, gossip verdict counters",
    ),
    m(
        "meshnode_subscribe",
        "kind: string",
        "WebSocket: blockArrivals notifications",
    ),
    m(
        "meshnode_syncStatus",
        "",
        "range sync progress and blocks served per peer",
    ),
    m("meshnode_unsubscribe", "id: string", "ends a subscription"),
    m("rpc.discover", "", "this API as an OpenRPC document"),
];

/// One parsed parameter: name, JSON Schema type, required.
fn params(doc: &MethodDoc) -> Vec<(&'static str, &'static str, bool)> {
    doc.params
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, ty) = p.split_once(':').unwrap_or((p, "any"));
            let (name, ty) = (name.trim(), ty.trim());
            match name.strip_suffix('?') {
                Some(n) => (n, ty, false),
                None => (name, ty, true),
            }
        })
        .collect()
}

fn find(name: &str) -> Option<&'static MethodDoc> {
    METHODS.iter().find(|d| d.name == name)
}

/// Usage line as Bitcoin Core prints it: `getblock "blockhash" ( verbosity )`.
fn usage(doc: &MethodDoc) -> String {
    let mut s = doc.name.to_string();
    for (name, ty, required) in params(doc) {
        let shown = if ty == "string" {
            format!("\"{name}\"")
        } else {
            name.to_string()
        };
        if required {
            s += &format!(" {shown}");
        } else {
            s += &format!(" ( {shown} )");
        }
    }
    s
}

fn family(name: &str) -> &str {
    match name.split_once('_') {
        Some((ns, _)) if !name.starts_with("rpc.") => ns,
        _ => "bitcoin",
    }
}

/// The `help` text: every method's usage grouped by family, or one method's usage and summary
/// (Bitcoin Core answers an unknown command with a message, not an error; so does this).
pub fn help(command: Option<&str>) -> String {
    if let Some(c) = command {
        return match find(c) {
            Some(d) => format!("{}\n\n{}", usage(d), d.summary),
            None => format!("help: unknown command: {c}"),
        };
    }
    let mut out = String::new();
    let mut last = "";
    for d in METHODS {
        let f = family(d.name);
        if f != last {
            if !out.is_empty() {
                out.push('\n');
            }
            out += &format!("== {f} ==\n");
            last = f;
        }
        out += &usage(d);
        out.push('\n');
    }
    out
}

/// The OpenRPC document for `names` (the methods the server registered). A method missing
/// from [`METHODS`] is listed with no parameters and the summary "undocumented".
pub fn openrpc(names: &[&str]) -> Value {
    let mut names: Vec<&str> = names.to_vec();
    names.sort_unstable();
    let methods: Vec<Value> = names
        .iter()
        .map(|n| {
            let doc = find(n);
            let ps: Vec<Value> = doc
                .map(params)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, ty, required)| {
                    let schema = if ty == "any" {
                        json!({})
                    } else {
                        json!({ "type": ty })
                    };
                    json!({ "name": name, "required": required, "schema": schema })
                })
                .collect();
            json!({
                "name": n,
                "summary": doc.map_or("undocumented", |d| d.summary),
                "params": ps,
                "result": { "name": "result", "schema": {} },
            })
        })
        .collect();
    json!({
        "openrpc": "1.2.6",
        "info": {
            "title": "meshnode JSON-RPC",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Bitcoin Core-style and Ethereum-style method families plus meshnode_ (README.md, JSON-RPC section).",
        },
        "methods": methods,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_help_shapes() {
        let d = find("getblock").unwrap();
        assert_eq!(usage(d), "getblock \"blockhash\" ( verbosity )");
        assert!(help(None).starts_with("== bitcoin ==\naddnode"));
        assert!(help(None).contains("== eth ==\neth_blockNumber"));
        assert!(help(Some("nosuch")).starts_with("help: unknown command"));
        let doc = openrpc(&["getblock", "x_undocumented"]);
        assert_eq!(doc["methods"][0]["params"][1]["required"], false);
        assert_eq!(doc["methods"][1]["summary"], "undocumented");
        let mut names: Vec<_> = METHODS.iter().map(|d| d.name).collect();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate entries");
    }
}
