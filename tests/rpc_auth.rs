//! RPC exposure and `meshnode rpc`: a node bound off loopback (0.0.0.0, reached here only
//! through 127.0.0.1) requires credentials — its cookie (DATA_DIR/.cookie, `__cookie__`, mode
//! 0600, removed at shutdown) or `--rpc-user/--rpc-password` — for HTTP and WebSocket alike;
//! `meshnode rpc` reads the cookie, prints pretty JSON, and exits non-zero with the error.

mod common;
use common::*;
use jsonrpsee::ws_client::WsClientBuilder;
use meshnode::rpc::auth::basic_header;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

fn status_of(url: &str, auth: Option<&str>) -> (u16, String) {
    let mut req = ureq::post(url).set("Content-Type", "application/json");
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    match req.send_string(r#"{"jsonrpc":"2.0","id":1,"method":"getblockcount","params":[]}"#) {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => {
            let www = r.header("WWW-Authenticate").unwrap_or_default().to_string();
            (code, www)
        }
        Err(e) => panic!("transport error: {e}"),
    }
}

async fn cli(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_meshnode"))
        .arg("rpc")
        .args(args)
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_rpc_requires_credentials_and_meshnode_rpc_uses_the_cookie() {
    let (mut net, genesis, _) = custom_net(&[0], 300, meshnode::now_ms());
    let wild = |extra: &[&str]| {
        let mut v: Vec<String> = vec!["--rpc".into(), "0.0.0.0:0".into()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let a = add_ready(
        &mut net,
        &genesis,
        None,
        wild(&["--validator-key", "dev-validator:0"]),
    )
    .await;
    let b = add_ready(
        &mut net,
        &genesis,
        Some(a),
        wild(&["--rpc-user", "alice", "--rpc-password", "s3cret"]),
    )
    .await;
    let (dir_a, dir_b) = (net.net.nodes[a].dir.clone(), net.net.nodes[b].dir.clone());
    let (url_a, url_b) = (
        net.net.nodes[a].rpc_url().to_string(),
        net.net.nodes[b].rpc_url().to_string(),
    );
    assert!(url_a.starts_with("http://127.0.0.1:"), "{url_a}");

    // The cookie: Bitcoin Core's format, private, only where no user/password is set.
    let cookie_path = dir_a.join(".cookie");
    let cookie = std::fs::read_to_string(&cookie_path).unwrap();
    assert!(
        cookie.starts_with("__cookie__:") && cookie.len() == 11 + 64,
        "{cookie}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&cookie_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!dir_b.join(".cookie").exists());

    let (u, ck) = (url_a.clone(), cookie.clone());
    let ub = url_b.clone();
    tokio::task::spawn_blocking(move || {
        let (code, www) = status_of(&u, None);
        assert_eq!((code, www.as_str()), (401, "Basic realm=\"jsonrpc\""));
        assert_eq!(
            status_of(&u, Some(&basic_header("__cookie__:wrong"))).0,
            401
        );
        let (code, body) = status_of(&u, Some(&basic_header(&ck)));
        assert_eq!(code, 200, "{body}");
        assert!(body.contains("\"result\""), "{body}");
        assert_eq!(status_of(&ub, None).0, 401);
        assert_eq!(status_of(&ub, Some(&basic_header("alice:wrong"))).0, 401);
        assert_eq!(status_of(&ub, Some(&basic_header("alice:s3cret"))).0, 200);
    })
    .await
    .unwrap();

    // WebSocket upgrades go through the same check.
    let ws_url = url_a.replacen("http://", "ws://", 1);
    assert!(
        WsClientBuilder::default().build(&ws_url).await.is_err(),
        "anonymous WebSocket accepted"
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("Authorization", basic_header(&cookie).parse().unwrap());
    WsClientBuilder::default()
        .set_headers(headers)
        .build(&ws_url)
        .await
        .expect("WebSocket with the cookie");

    // meshnode rpc: cookie and URL from the data dir; results as pretty JSON / bare strings.
    let d = dir_a.display().to_string();
    let o = cli(&["--data-dir", &d, "getblockcount"]).await;
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let h: u64 = out.trim().parse().unwrap_or_else(|_| panic!("{out}"));
    let o = cli(&["--data-dir", &d, "getblockhash", &h.to_string()]).await;
    let (hash, _) = text(&o);
    assert_eq!(hash.trim().len(), 64, "bare string: {hash}");
    let o = cli(&["--data-dir", &d, "getblock", hash.trim(), "2"]).await;
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.starts_with("{\n  \""), "pretty JSON: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hash"].as_str(), Some(hash.trim()));
    // A failing call: non-zero exit, the code and message on stderr.
    let o = cli(&["--data-dir", &d, "getblock", &"00".repeat(32)]).await;
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("code -5") && err.contains("Block not found"),
        "{err}"
    );
    let o = cli(&["--data-dir", &d, "nosuchmethod"]).await;
    assert!(!o.status.success() && text(&o).1.contains("code -32601"));
    // Without credentials, a clear failure.
    let o = cli(&["--rpc", &url_a, "getblockcount"]).await;
    let (_, err) = text(&o);
    assert!(!o.status.success() && err.contains("401"), "{err}");
    // User and password for node b (which connects to node a by itself).
    wait_for(
        "node b to count node a as a peer",
        Duration::from_secs(30),
        || {
            let url_b = url_b.clone();
            async move {
                let o = cli(&[
                    "--rpc",
                    &url_b,
                    "--rpc-user",
                    "alice",
                    "--rpc-password",
                    "s3cret",
                    "getconnectioncount",
                ])
                .await;
                let (out, err) = text(&o);
                assert!(o.status.success(), "{err}");
                (out.trim() == "1").then_some(())
            }
        },
    )
    .await;

    // The cookie goes with the node.
    net.net.stop_node(a);
    assert!(
        !Path::new(&cookie_path).exists(),
        "cookie left after shutdown"
    );
}
