//! Bad input over HTTP JSON-RPC gets its documented error and never hurts the node: malformed
//! JSON, invalid requests, unknown methods, wrong parameter types, an oversize body, a batch
//! over the limit, garbage hex in both submit methods, unknown blocks and transactions. After
//! all of it the node still serves and its chain still grows. Also: `rpc.discover` lists every
//! registered method with its documentation, `help` answers, and the 257th connection gets
//! HTTP 429 until others close. Conformance as Bitcoin Core and geth answer: a `"jsonrpc":
//! "1.0"` request sent as `text/plain` (Bitcoin Core's curl examples), a notification (HTTP
//! 204, no body), extra parameters (-32602), a body that is not JSON or not UTF-8 (-32700).

mod common;
use common::*;
use meshnode::rpc::api::BitcoinApiClient;
use serde_json::{json, Value};
use std::time::Duration;

/// POSTs `body` and returns the HTTP status and the parsed reply (Null if the body is empty).
fn post(url: &str, body: &[u8]) -> (u16, Value) {
    let (status, _, text) = post_as(url, "application/json", body);
    let v = if status == 429 {
        Value::String(text) // jsonrpsee's plain-text "Too many connections"
    } else if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text}"))
    };
    (status, v)
}

/// POSTs `body` with `content_type`; returns the HTTP status, Content-Type and body text.
fn post_as(url: &str, content_type: &str, body: &[u8]) -> (u16, String, String) {
    let resp = match ureq::post(url)
        .set("Content-Type", content_type)
        .send_bytes(body)
    {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let ct = resp.content_type().to_string();
    (status, ct, resp.into_string().unwrap())
}

/// POSTs an oversize `body` over a raw TCP connection, with a `Content-Length` or `chunked`,
/// writing it on another thread while this one reads the reply (ureq writes the whole body
/// first and fails on the broken pipe a server that stops reading leaves). Returns the HTTP
/// status and the parsed reply body.
fn post_oversize(url: &str, body: &[u8], chunked: bool) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).expect("connect to the RPC port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let length = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut w = s.try_clone().unwrap();
    let body = body.to_vec();
    // Write errors are expected once the server has answered and closed.
    let writer = std::thread::spawn(move || {
        for piece in body.chunks(64 * 1024) {
            let r = if chunked {
                w.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .and_then(|_| w.write_all(piece))
                    .and_then(|_| w.write_all(b"\r\n"))
            } else {
                w.write_all(piece)
            };
            if r.is_err() {
                return;
            }
        }
        if chunked {
            let _ = w.write_all(b"0\r\n\r\n");
        }
    });
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let (status, text) = loop {
        match s.read(&mut buf) {
            Ok(0) => panic!("connection closed before a whole reply: {raw:?}"),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the reply: {e}; so far {raw:?}"),
        }
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status line");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("a Content-Length on the reply");
        if raw.len() >= end + 4 + len {
            break (
                status,
                String::from_utf8_lossy(&raw[end + 4..end + 4 + len]).to_string(),
            );
        }
    };
    drop(s);
    writer.join().unwrap();
    let v =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {text}"));
    (status, v)
}

fn call(url: &str, method: &str, params: Value) -> (u16, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    post(url, body.to_string().as_bytes())
}

/// Asserts a JSON-RPC 2.0 error reply with `code`; returns its message.
fn expect_code(reply: &(u16, Value), code: i64, what: &str) -> String {
    let (status, v) = reply;
    let e = &v["error"];
    assert_eq!(e["code"].as_i64(), Some(code), "{what}: HTTP {status} {v}");
    assert!(
        v.get("result").is_none(),
        "{what}: 2.0 error replies carry no result: {v}"
    );
    e["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_documented_errors_and_the_node_keeps_serving() {
    let net = start_net_with(1, 1, 300, &["--rpc-max-ws-connections", "300"]).await;
    let url = net.net.nodes[0].rpc_url().to_string();
    let c = client(&net, 0);
    let h0 = height(&c).await;

    let u = url.clone();
    let report = tokio::task::spawn_blocking(move || {
        let url = u.as_str();
        let mut report = Vec::new();
        let mut note =
            |what: &str, r: &(u16, Value)| report.push(format!("{what}: HTTP {} {}", r.0, r.1));

        // JSON-RPC 2.0 codes.
        let r = post(url, br#"{"jsonrpc":"2.0","id":1,"method":"getblockcount""#);
        expect_code(&r, -32700, "malformed JSON");
        note("malformed JSON", &r);
        let r = post(url, br#"{"jsonrpc":"2.0","id":1}"#);
        expect_code(&r, -32600, "no method");
        note("no method", &r);
        let r = post(url, br#"[]"#);
        expect_code(&r, -32600, "empty batch");
        let r = call(url, "nosuchmethod", json!([]));
        expect_code(&r, -32601, "unknown method");
        note("unknown method", &r);
        let r = call(url, "getblockhash", json!(["ten"]));
        expect_code(&r, -32602, "string for an integer");
        note("wrong type", &r);
        let r = call(url, "eth_getBlockByNumber", json!([1, "yes"]));
        expect_code(&r, -32602, "number for a tag, string for a bool");
        let r = call(url, "getblock", json!([]));
        expect_code(&r, -32602, "missing required parameter");
        let r = call(url, "eth_getBlockByNumber", json!(["0xzz", false]));
        expect_code(&r, -32602, "bad quantity");
        let r = call(url, "eth_getBalance", json!(["0x1234", "latest"]));
        expect_code(&r, -32602, "short address");

        // Conformance. Bitcoin Core's curl example, verbatim: 1.0, text/plain.
        let (status, ct, text) = post_as(
            url,
            "text/plain;",
            br#"{"jsonrpc":"1.0","id":"curltest","method":"getblockcount","params":[]}"#,
        );
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(
            status == 200 && ct == "application/json" && v["result"].is_u64() && v["error"].is_null(),
            "1.0 request as text/plain: HTTP {status} {ct} {text}"
        );
        assert_eq!(v["id"], json!("curltest"));
        // A 2.0 request as text/plain is answered too.
        let (status, _, text) = post_as(
            url,
            "text/plain",
            br#"{"jsonrpc":"2.0","id":2,"method":"getblockcount","params":[]}"#,
        );
        assert!(status == 200 && text.contains("\"result\""), "HTTP {status} {text}");
        // A notification, and a batch of them: no reply.
        for body in [
            &br#"{"jsonrpc":"2.0","method":"getblockcount","params":[]}"#[..],
            br#"[{"jsonrpc":"2.0","method":"getblockcount"},{"jsonrpc":"2.0","method":"uptime"}]"#,
        ] {
            let (status, _, text) = post_as(url, "application/json", body);
            assert!(status == 204 && text.is_empty(), "notification: HTTP {status} {text:?}");
        }
        // Extra parameters, single and in a batch.
        let r = call(url, "eth_chainId", json!([1, 2, 3]));
        let m = expect_code(&r, -32602, "extra parameters");
        assert_eq!(m, "too many arguments, want at most 0");
        note("extra parameters", &r);
        let r = call(url, "getblockhash", json!([0, 1]));
        expect_code(&r, -32602, "one parameter too many");
        let r = post(
            url,
            br#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[1]},{"jsonrpc":"2.0","id":2,"method":"eth_chainId","params":[]}]"#,
        );
        let batch = r.1.as_array().expect("batch reply");
        let by_id = |id: i64| batch.iter().find(|x| x["id"] == json!(id)).unwrap();
        assert_eq!(by_id(1)["error"]["code"], json!(-32602), "{}", r.1);
        assert!(by_id(2)["result"].is_string(), "{}", r.1);
        // Not JSON, not UTF-8, cut short: -32700 with HTTP 200, as JSON, every time.
        for body in [&b"{nope"[..], b"\xff\xfe{}", br#"{"jsonrpc":"2.0","id":1,"#, b"hello"] {
            let (status, ct, text) = post_as(url, "application/json", body);
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert!(
                status == 200 && ct == "application/json" && v["error"]["code"] == json!(-32700),
                "{body:?}: HTTP {status} {ct} {text}"
            );
        }

        // Bitcoin Core's own codes on the Bitcoin family.
        let r = call(url, "sendrawtransaction", json!(["zz"]));
        let m = expect_code(&r, -22, "garbage hex");
        assert!(m.starts_with("TX decode failed"), "{m}");
        note("sendrawtransaction garbage hex", &r);
        let r = call(url, "sendrawtransaction", json!(["00"]));
        expect_code(&r, -22, "short tx bytes");
        let r = call(
            url,
            "sendrawtransaction",
            json!([hex::encode(vec![0xab; 64 * 1024])]),
        );
        expect_code(&r, -22, "oversized tx bytes");
        let r = call(url, "testmempoolaccept", json!([["zz"]]));
        expect_code(&r, -22, "testmempoolaccept garbage hex");
        let r = call(url, "testmempoolaccept", json!([[]]));
        expect_code(&r, -8, "testmempoolaccept empty");
        let r = call(url, "getblock", json!(["00".repeat(32)]));
        expect_code(&r, -5, "unknown block");
        let r = call(url, "getblock", json!(["xyz"]));
        expect_code(&r, -8, "malformed block hash");
        let r = call(url, "getblock", json!([&"00".repeat(32), 9]));
        expect_code(&r, -5, "unknown block before verbosity");
        let r = call(url, "getblockhash", json!([1u64 << 40]));
        expect_code(&r, -8, "height out of range");
        let r = call(url, "getrawtransaction", json!(["11".repeat(32)]));
        expect_code(&r, -5, "unknown transaction");
        let r = call(url, "getmempoolentry", json!(["11".repeat(32)]));
        expect_code(&r, -5, "not in mempool");
        let r = call(url, "addnode", json!(["not-a-multiaddr", "add"]));
        expect_code(&r, -8, "bad addnode");

        // geth's words on the Ethereum family.
        let r = call(url, "eth_sendRawTransaction", json!(["0xzz"]));
        let m = expect_code(&r, -32602, "eth garbage hex");
        assert!(m.starts_with("invalid transaction encoding"), "{m}");
        note("eth_sendRawTransaction garbage hex", &r);
        let r = call(url, "eth_getBlockByNumber", json!(["finalized", false]));
        let m = expect_code(&r, -32000, "finalized on a chain without finality");
        assert_eq!(m, "finalized block not found");

        // Limits: the body (5 MiB) and the batch (1,000 requests). The server answers 413
        // while the client is still sending (declared length: before the body; chunked: where
        // it passes the limit) and then closes, so the reply is read while the body is written.
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"sendrawtransaction","params":["{}"]}}"#,
            "ab".repeat(3 * 1024 * 1024)
        );
        for chunked in [false, true] {
            let r = post_oversize(url, big.as_bytes(), chunked);
            assert_eq!(r.0, 413, "oversize body (chunked {chunked}): {:?}", r.0);
            expect_code(&r, -32007, "oversize body");
            note(&format!("oversize body, chunked {chunked}"), &r);
        }
        let batch = |n: usize| {
            let reqs: Vec<Value> = (0..n)
                .map(
                    |i| json!({"jsonrpc": "2.0", "id": i, "method": "getblockcount", "params": []}),
                )
                .collect();
            post(url, Value::Array(reqs).to_string().as_bytes())
        };
        let (status, v) = batch(1000);
        assert_eq!(status, 200);
        let replies = v.as_array().expect("a batch reply is an array");
        assert_eq!(replies.len(), 1000);
        assert!(replies.iter().all(|r| r["result"].is_u64()));
        let r = batch(1001);
        expect_code(&r, -32010, "batch over the limit");
        note("batch of 1001", &(r.0, json!(r.1["error"])));
        report
    })
    .await
    .unwrap();
    for line in &report {
        eprintln!("{line}");
    }

    // Still serving, still producing, nothing lost.
    let c2 = c.clone();
    wait_for(
        "the chain to grow after the bad input",
        Duration::from_secs(30),
        || {
            let c = c2.clone();
            async move { (height(&c).await >= h0 + 3).then_some(()) }
        },
    )
    .await;
    assert_eq!(c.getblockhash(0).await.unwrap().len(), 64);

    // rpc.discover documents every method the server registered; help lists them.
    let u = url.clone();
    let (doc, help, help_one) = tokio::task::spawn_blocking(move || {
        (
            call(&u, "rpc.discover", json!([])).1["result"].clone(),
            call(&u, "help", json!([])).1["result"].clone(),
            call(&u, "help", json!(["getblock"])).1["result"].clone(),
        )
    })
    .await
    .unwrap();
    assert_eq!(doc["openrpc"], "1.2.6");
    let methods = doc["methods"].as_array().unwrap();
    let undocumented: Vec<&Value> = methods
        .iter()
        .filter(|m| m["summary"] == "undocumented")
        .map(|m| &m["name"])
        .collect();
    assert!(
        undocumented.is_empty(),
        "methods without docs: {undocumented:?}"
    );
    let names: Vec<&str> = methods
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    for needed in [
        "getblockheader",
        "eth_subscribe",
        "txpool_content",
        "admin_peers",
        "rpc.discover",
    ] {
        assert!(
            names.contains(&needed),
            "{needed} missing from rpc.discover"
        );
    }
    let help = help.as_str().unwrap();
    for name in &names {
        assert!(help.contains(name), "help does not list {name}");
    }
    assert!(help_one
        .as_str()
        .unwrap()
        .starts_with("getblock \"blockhash\" ( verbosity )"));
    eprintln!("rpc.discover lists {} methods, all documented", names.len());

    // WebSocket connections have their own limit (300 here): with all of them open (more
    // than the 256 slots HTTP and WebSocket used to share) HTTP callers are still served, one
    // more WebSocket gets 429 with a JSON-RPC error, and a closed one frees its slot.
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(
            jsonrpsee::ws_client::WsClientBuilder::default()
                .build(&ws_url)
                .await
                .expect("a WebSocket connection below the limit"),
        );
    }
    let u = url.clone();
    let (status, body) = tokio::task::spawn_blocking(move || call(&u, "getblockcount", json!([])))
        .await
        .unwrap();
    assert_eq!(status, 200, "HTTP with every WebSocket slot taken: {body}");
    let u = url.clone();
    let (status, content_type, body) = tokio::task::spawn_blocking(move || {
        match ureq::get(&u)
            .set("Connection", "Upgrade")
            .set("Upgrade", "websocket")
            .set("Sec-WebSocket-Version", "13")
            .set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .call()
        {
            Ok(r) | Err(ureq::Error::Status(_, r)) => (
                r.status(),
                r.header("content-type").unwrap_or("").to_string(),
                r.into_string().unwrap(),
            ),
            Err(e) => panic!("{e}"),
        }
    })
    .await
    .unwrap();
    assert_eq!(status, 429, "{body}");
    assert_eq!(content_type, "application/json");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32005, "{body}");
    assert!(v["id"].is_null(), "{body}");
    held.pop();
    wait_for(
        "a WebSocket slot to free after a client closes",
        Duration::from_secs(30),
        || {
            let ws_url = ws_url.clone();
            async move {
                jsonrpsee::ws_client::WsClientBuilder::default()
                    .build(&ws_url)
                    .await
                    .ok()
            }
        },
    )
    .await;
    drop(held);
}
