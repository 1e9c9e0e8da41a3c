//! The RPC method definitions. `#[rpc(server, client)]` generates both the server traits that
//! `server.rs` implements and typed clients (used by `meshnode tx send`, the bench and tests).

use crate::arrivals::Arrival;
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

/// Bitcoin Core-style methods (names, params and result shapes follow Bitcoin Core 28; hashes
/// are plain hex, heights integers).
#[rpc(server, client)]
pub trait BitcoinApi {
    /// `sendrawtransaction hexstring` -> txid (hex). Errors: -22 decode failed, -26 rejected
    /// (reason in the message), -27 already in the chain. A transaction already in the mempool
    /// returns its txid, as Bitcoin Core does.
    #[method(name = "sendrawtransaction")]
    async fn sendrawtransaction(&self, hexstring: String) -> RpcResult<String>;

    /// `getblockcount` -> height of the head.
    #[method(name = "getblockcount")]
    fn getblockcount(&self) -> RpcResult<u64>;

    /// `getbestblockhash` -> head hash (hex).
    #[method(name = "getbestblockhash")]
    fn getbestblockhash(&self) -> RpcResult<String>;

    /// `getblockhash height` -> canonical hash at height. Error -8 if out of range.
    #[method(name = "getblockhash")]
    fn getblockhash(&self, height: u64) -> RpcResult<String>;

    /// `getblock blockhash ( verbosity )`: 0 = hex of the encoded block, 1 (default) = object
    /// with txids, 2 = object with transaction objects (3, which adds prevouts in Bitcoin Core,
    /// answers as 2). Error -5 if unknown, -8 for another verbosity.
    #[method(name = "getblock")]
    fn getblock(&self, blockhash: String, verbosity: Option<u8>) -> RpcResult<Value>;

    /// `getrawmempool ( verbose )`: txids, or (verbose) an object txid -> entry with
    /// vsize, fee, time, nonce, from, to (Bitcoin Core's verbose form plus account fields).
    #[method(name = "getrawmempool")]
    fn getrawmempool(&self, verbose: Option<bool>) -> RpcResult<Value>;

    /// `getchaintips` -> every known chain tip, Bitcoin Core's shape: `[{height, hash,
    /// branchlen, status}]`, status "active" (the head), "valid-headers" (a side branch whose
    /// headers and signatures were checked but whose state transition never ran) or "invalid".
    #[method(name = "getchaintips")]
    fn getchaintips(&self) -> RpcResult<Vec<Value>>;

    /// `addnode node command`: command "add" or "onetry" dials `node` (a multiaddr ending in
    /// `/p2p/<peer id>`); "remove" disconnects it and stops our own dialling of it. Error -8 on
    /// a bad multiaddr or command.
    #[method(name = "addnode")]
    async fn addnode(&self, node: String, command: String) -> RpcResult<Value>;

    /// `setban target command ( bantime absolute )` (Bitcoin Core): command "add" bans
    /// `target` (a peer id, or an IP address; loopback IPs are never banned) for `bantime`
    /// seconds (default `--bantime`), or until the Unix time `bantime` when `absolute` is
    /// true; "remove" lifts it. A banned peer id is disconnected and refused; connections from
    /// a banned IP are closed. Error -8 on a bad target or command, -23 "Error: Node already
    /// banned", -30 "Error: Unban failed".
    #[method(name = "setban")]
    async fn setban(
        &self,
        target: String,
        command: String,
        bantime: Option<u64>,
        absolute: Option<bool>,
    ) -> RpcResult<Value>;

    /// `listbanned` -> `[{address, ban_created, banned_until, ban_duration, time_remaining,
    /// reason}]` (Bitcoin Core's fields, seconds; `reason` says what triggered the ban).
    #[method(name = "listbanned")]
    async fn listbanned(&self) -> RpcResult<Value>;

    /// `clearbanned`: lifts every ban.
    #[method(name = "clearbanned")]
    async fn clearbanned(&self) -> RpcResult<Value>;

    /// `getblockheader blockhash ( verbose )`: verbose true (default) = Bitcoin Core's header
    /// object (hash, confirmations, height, version, merkleroot, time, mediantime, nonce, bits,
    /// difficulty, chainwork, nTx, previousblockhash, nextblockhash; PoW fields carry neutral
    /// values: nonce 0, bits "00000000", difficulty 0, chainwork = height as 64 hex digits since
    /// fork choice weighs height); false = hex of the encoded header. Error -5 if unknown.
    #[method(name = "getblockheader")]
    fn getblockheader(&self, blockhash: String, verbose: Option<bool>) -> RpcResult<Value>;

    /// `getrawtransaction txid ( verbose blockhash )`: hex of the encoded transaction, or
    /// (verbose true / 1 / 2) the object of `getblock` verbosity 2 plus blockhash,
    /// confirmations, time, blocktime when mined. Looks in the mempool and the chain (the tx
    /// index is always on). Error -5 "No such mempool or blockchain transaction…".
    #[method(name = "getrawtransaction")]
    fn getrawtransaction(
        &self,
        txid: String,
        verbose: Option<Value>,
        blockhash: Option<String>,
    ) -> RpcResult<Value>;

    /// `testmempoolaccept ["rawtx",…] ( maxfeerate )` -> one result per transaction, Bitcoin
    /// Core's shape: `{txid, wtxid, allowed, vsize, fees: {base}}` or `{txid, wtxid, allowed:
    /// false, reject-reason}` (the reasons `sendrawtransaction` gives). Nothing is admitted.
    /// 1 to 25 transactions (Bitcoin Core's package limit), else error -8; an undecodable one
    /// is error -22.
    #[method(name = "testmempoolaccept")]
    fn testmempoolaccept(
        &self,
        rawtxs: Vec<String>,
        maxfeerate: Option<Value>,
    ) -> RpcResult<Vec<Value>>;

    /// `getmempoolinfo` -> Bitcoin Core's shape: loaded, size, bytes, usage, total_fee,
    /// maxmempool (bytes), mempoolminfee and minrelaytxfee (fee per transaction in base units:
    /// meshnode fees are per transaction, not per vbyte), incrementalrelayfee (the 10 %
    /// replacement bump, percent), unbroadcastcount 0, fullrbf true; plus meshnode's
    /// pending/queued counts, maxmempooltxs, and evicted/expired counts since start.
    #[method(name = "getmempoolinfo")]
    fn getmempoolinfo(&self) -> RpcResult<Value>;

    /// `getmempoolentry txid` -> the entry as `getrawmempool true` shows it. Error -5
    /// "Transaction not in mempool".
    #[method(name = "getmempoolentry")]
    fn getmempoolentry(&self, txid: String) -> RpcResult<Value>;

    /// `getnetworkinfo` -> Bitcoin Core's shape: version, subversion, protocolversion,
    /// localservices, localrelay, timeoffset, networkactive, connections, connections_in,
    /// connections_out, networks, relayfee, incrementalfee, localaddresses, warnings.
    #[method(name = "getnetworkinfo")]
    async fn getnetworkinfo(&self) -> RpcResult<Value>;

    /// `getconnectioncount` -> number of connected peers.
    #[method(name = "getconnectioncount")]
    async fn getconnectioncount(&self) -> RpcResult<usize>;

    /// `getnodeaddresses ( count )` (Bitcoin Core): up to `count` (default 1; 0 = all) peers
    /// the node knows of, from its Kademlia routing table, connected or not:
    /// `[{peer_id, address, addresses, connected}]` (`address` the first multiaddr, with
    /// `/p2p/<peer id>`). Error -8 for a negative count.
    #[method(name = "getnodeaddresses")]
    async fn getnodeaddresses(&self, count: Option<i64>) -> RpcResult<Value>;

    /// `uptime` -> seconds since the node started.
    #[method(name = "uptime")]
    fn uptime(&self) -> RpcResult<u64>;

    /// `help ( "command" )` -> every method, one line each with its parameters, grouped by
    /// family (as Bitcoin Core's `help`); with a command, that method's usage and summary.
    #[method(name = "help")]
    fn help(&self, command: Option<String>) -> RpcResult<String>;

    /// `getpeerinfo` -> connected peers (Bitcoin Core's fields id, addr, inbound, connection_type, conntime,
    /// subver, pingtime, minping (seconds), bytessent, bytesrecv, lastsend, lastrecv (Unix
    /// seconds), plus peer_id, gossip_score, app_score, score_state, in_block_mesh,
    /// in_compact_block_mesh, nearby).
    #[method(name = "getpeerinfo")]
    async fn getpeerinfo(&self) -> RpcResult<Vec<Value>>;
}

/// Ethereum execution-API-style methods (quantities 0x-hex, hashes 0x + 64 hex digits,
/// addresses 0x + 40). Errors use geth's -32000 code and messages.
#[rpc(server, client, namespace = "eth")]
pub trait EthApi {
    /// `eth_sendRawTransaction(data)` -> tx hash. geth errors: "nonce too low",
    /// "insufficient funds for gas * price + value", "already known", …
    #[method(name = "sendRawTransaction")]
    async fn send_raw_transaction(&self, data: String) -> RpcResult<String>;

    /// `eth_chainId` -> chain id.
    #[method(name = "chainId")]
    fn chain_id(&self) -> RpcResult<String>;

    /// `eth_blockNumber` -> head height.
    #[method(name = "blockNumber")]
    fn block_number(&self) -> RpcResult<String>;

    /// `eth_getBlockByNumber(block, fullTransactions)`: block is a 0x quantity or
    /// "latest" / "earliest" / "pending" ("pending" answers the head, as geth does when it is
    /// not mining). `null` if none. meshnode's fork choice has no finality, so "safe" and
    /// "finalized" get geth's answer on such a chain: error -32000 "safe block not found" /
    /// "finalized block not found".
    #[method(name = "getBlockByNumber")]
    fn get_block_by_number(&self, block: String, full: bool) -> RpcResult<Option<Value>>;

    /// `eth_getBlockTransactionCountByNumber(block)` -> number of transactions (0x quantity),
    /// `null` if there is no such block. Tags as `eth_getBlockByNumber`.
    #[method(name = "getBlockTransactionCountByNumber")]
    fn get_block_transaction_count_by_number(&self, block: String) -> RpcResult<Option<String>>;

    /// `eth_getBlockTransactionCountByHash(hash)` -> number of transactions, `null` if unknown.
    #[method(name = "getBlockTransactionCountByHash")]
    fn get_block_transaction_count_by_hash(&self, hash: String) -> RpcResult<Option<String>>;

    /// `eth_getBlockByHash(hash, fullTransactions)`; `null` if unknown.
    #[method(name = "getBlockByHash")]
    fn get_block_by_hash(&self, hash: String, full: bool) -> RpcResult<Option<Value>>;

    /// `eth_getBalance(address, block)` -> balance at head (only "latest"/"pending" state is
    /// kept).
    #[method(name = "getBalance")]
    fn get_balance(&self, address: String, block: Option<String>) -> RpcResult<String>;

    /// `eth_getTransactionCount(address, block)` -> next nonce; "pending" counts the mempool.
    #[method(name = "getTransactionCount")]
    fn get_transaction_count(&self, address: String, block: Option<String>) -> RpcResult<String>;

    /// `eth_getTransactionReceipt(hash)` -> receipt of a mined transaction (execution-apis
    /// shape: status 0x1, blockHash, blockNumber, transactionIndex, from, to, gasUsed 21000,
    /// no logs), or `null` while pending or unknown.
    #[method(name = "getTransactionReceipt")]
    fn get_transaction_receipt(&self, hash: String) -> RpcResult<Option<Value>>;

    /// `eth_syncing` -> `false`, or while a range download runs `{startingBlock, currentBlock,
    /// highestBlock}` (0x quantities), as geth answers.
    #[method(name = "syncing")]
    fn syncing(&self) -> RpcResult<Value>;

    /// `eth_getTransactionByHash(hash)` -> transaction object (with blockHash/blockNumber
    /// null while pending) or `null`.
    #[method(name = "getTransactionByHash")]
    fn get_transaction_by_hash(&self, hash: String) -> RpcResult<Option<Value>>;
}

/// Ethereum push subscriptions over WebSocket (geth's `eth_subscribe`; notifications are
/// `eth_subscription` messages `{subscription, result}`, ids are 0x-hex strings).
#[rpc(server, client, namespace = "eth")]
pub trait EthPubSubApi {
    /// `eth_subscribe("newHeads")`: each new canonical block's header object (the
    /// `eth_getBlockByNumber` object without transactions and uncles), in chain order, also
    /// for each block of a branch a reorg switches to. `eth_subscribe("newPendingTransactions")`:
    /// the 0x hash of each transaction newly admitted to the mempool. Other kinds: error -32602
    /// (`logs` and `syncing` are not offered). `eth_unsubscribe(id)` -> true.
    #[subscription(name = "subscribe" => "subscription", unsubscribe = "unsubscribe", item = Value)]
    async fn subscribe_eth(&self, kind: String, filter: Option<Value>) -> SubscriptionResult;
}

/// geth's `txpool_` namespace (pending = executable now, queued = behind a nonce gap).
#[rpc(server, client, namespace = "txpool")]
pub trait TxpoolApi {
    /// `txpool_status` -> `{pending, queued}` counts (0x quantities).
    #[method(name = "status")]
    fn status(&self) -> RpcResult<Value>;

    /// `txpool_content` -> `{pending: {address: {nonce: tx}}, queued: {…}}`; nonces are decimal
    /// strings, transactions as `eth_getTransactionByHash` shows them.
    #[method(name = "content")]
    fn content(&self) -> RpcResult<Value>;

    /// `txpool_inspect` -> the same tree with geth's one-line summaries
    /// `"<to>: <value> wei + 21000 gas × <fee> wei"`.
    #[method(name = "inspect")]
    fn inspect(&self) -> RpcResult<Value>;
}

/// `net_` methods.
#[rpc(server, client, namespace = "net")]
pub trait NetApi {
    /// `net_peerCount` -> number of connected peers (0x quantity).
    #[method(name = "peerCount")]
    async fn peer_count(&self) -> RpcResult<String>;

    /// `net_version` -> the chain id as a decimal string (as geth answers).
    #[method(name = "version")]
    fn version(&self) -> RpcResult<String>;

    /// `net_listening` -> true while the node listens for peers.
    #[method(name = "listening")]
    fn listening(&self) -> RpcResult<bool>;
}

/// `web3_` methods.
#[rpc(server, client, namespace = "web3")]
pub trait Web3Api {
    /// `web3_clientVersion` -> `meshnode/v<version>/<os>-<arch>`, geth's format.
    #[method(name = "clientVersion")]
    fn client_version(&self) -> RpcResult<String>;
}

/// meshnode's own methods.
#[rpc(server, client, namespace = "meshnode")]
pub trait MeshnodeApi {
    /// `meshnode_blockArrival(hash)` -> this node's arrival record for a block: `firstSeenUs`
    /// (gossip delivery, before validation), `validatedUs`, and on the producer `publishedUs`;
    /// microseconds since the Unix epoch. `null` if the node has no record.
    #[method(name = "blockArrival")]
    fn block_arrival(&self, hash: String) -> RpcResult<Option<Arrival>>;

    /// `meshnode_syncStatus` -> `{active, startingBlock, currentBlock, highestBlock, servedBy:
    /// {peer id: blocks}, lastBlocks, lastSeconds}`: range sync progress, which peers served
    /// how many blocks, and the last download's size and duration.
    #[method(name = "syncStatus")]
    fn sync_status(&self) -> RpcResult<Value>;

    /// `meshnode_nodeInfo` -> `{peerId, listenAddrs, chainId, genesisHash, head: {height, hash,
    /// slot}, mempool: {size, bytes}, gossip: {accepted, rejected, ignored, droppedQueueFull,
    /// relayedNotImported, topics, mesh}, peers: {inbound, outbound, target, outboundTarget,
    /// max, pruned, denied, evicted}, uptime}` (uptime in seconds; the gossip counters are this node's
    /// verdicts; `relayedNotImported` counts blocks that passed gossip verification, were
    /// relayed, then failed their state transition; `mesh` is the gossipsub mesh size per
    /// topic; `peers` is the peer manager's view, see `--target-peers`; `link` is null or
    /// `{profile, region, class, upBytesPerS, downBytesPerS, delayMs, regions}` under
    /// `--link-profile`, `delayMs` the one-way delays from this node's region to each region).
    #[method(name = "nodeInfo")]
    async fn node_info(&self) -> RpcResult<Value>;

    /// `meshnode_clock` -> `{unixMicros}`: this node's wall clock, µs since the Unix epoch —
    /// the clock its arrival records are stamped with. A bench measuring nodes on other
    /// machines reads it many times and keeps the lowest-round-trip samples to estimate each
    /// node's clock offset (NTP's on-wire method, RFC 5905 §8).
    #[method(name = "clock")]
    fn clock(&self) -> RpcResult<Value>;
}

/// meshnode's push subscriptions over WebSocket (notifications are `meshnode_subscription`).
#[rpc(server, client, namespace = "meshnode")]
pub trait MeshnodePubSubApi {
    /// `meshnode_subscribe("blockArrivals")`: each block's arrival record (as
    /// `meshnode_blockArrival`, plus `hash`) the moment it is validated here (on its producer:
    /// the moment it is produced), so a propagation monitor needs no polling. Other kinds: error
    /// -32602. `meshnode_unsubscribe(id)` -> true.
    #[subscription(name = "subscribe" => "subscription", unsubscribe = "unsubscribe", item = Value)]
    async fn subscribe_meshnode(&self, kind: String) -> SubscriptionResult;
}

/// geth's `admin_` peer methods.
#[rpc(server, client, namespace = "admin")]
pub trait AdminApi {
    /// `admin_addPeer(url)`: dial a multiaddr ending in `/p2p/<peer id>`; true if the dial
    /// started. Error -32602 on a bad multiaddr.
    #[method(name = "addPeer")]
    async fn add_peer(&self, url: String) -> RpcResult<bool>;

    /// `admin_peers` -> geth's shape per connected peer: `{id, name, enode, caps, network:
    /// {localAddress, remoteAddress, inbound, trusted, static}, protocols: {meshnode: {…}}}`;
    /// `enode` carries the peer's multiaddr (meshnode speaks libp2p, not devp2p).
    #[method(name = "peers")]
    async fn admin_peers(&self) -> RpcResult<Vec<Value>>;

    /// `admin_nodeInfo` -> geth's shape: `{id, name, enode, enr: null, ip, listenAddr, ports:
    /// {discovery, listener}, protocols: {meshnode: {network, genesis, head, height}}}`;
    /// `enode` is our first listen multiaddr with `/p2p/<peer id>`.
    #[method(name = "nodeInfo")]
    async fn admin_node_info(&self) -> RpcResult<Value>;

    /// `admin_removePeer(url)`: disconnect the peer and stop our own dialling of it; true if it
    /// was connected.
    #[method(name = "removePeer")]
    async fn remove_peer(&self, url: String) -> RpcResult<bool>;
}
