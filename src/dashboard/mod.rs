//! The live propagation view: a static page (HTML, CSS, plain JavaScript; no build step)
//! that connects to every node's JSON-RPC over WebSocket, draws the peer graph from
//! `getpeerinfo`, lights nodes in the order a block reached them (from the
//! `meshnode_subscribe("blockArrivals")` records, the delivering peer's edge marked), keeps a
//! running CDF of arrival times and shows mempool sizes. Served by `meshnode devnet
//! --dashboard ADDR` for its nodes and by `meshnode dashboard --rpc URL…` for any running
//! network; the page also takes `?rpc=URL,URL,…`.
//!
//! Routes: `/` (the page), `/dashboard.js`, `/style.css`, `/nodes.json` (`[{name, rpc_url}]`);
//! anything else is 404.

use crate::httpd::{self, HttpServer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("style.css");

/// A node the page watches.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DashboardNode {
    /// Its label on the page (`node3`).
    pub name: String,
    /// Its JSON-RPC URL (`http://…`; the page connects with `ws://…` on the same port).
    pub rpc_url: String,
}

/// Serves the page for `nodes` on `addr` until `stop` turns true.
///
/// Errors: the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    nodes: Vec<DashboardNode>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<HttpServer> {
    let list: Arc<str> = serde_json::to_string(&nodes)?.into();
    httpd::serve(
        "--dashboard",
        addr,
        move |req: hyper::Request<hyper::body::Incoming>| {
            let list = list.clone();
            async move {
                if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
                    return httpd::reply(405, "text/plain; charset=utf-8", "use GET\n");
                }
                match req.uri().path() {
                    "/" | "/index.html" => httpd::reply(200, "text/html; charset=utf-8", INDEX),
                    "/dashboard.js" => httpd::reply(200, "text/javascript; charset=utf-8", SCRIPT),
                    "/style.css" => httpd::reply(200, "text/css; charset=utf-8", STYLE),
                    "/nodes.json" => httpd::reply(200, "application/json", list.to_string()),
                    _ => httpd::reply(404, "text/plain; charset=utf-8", "not found\n"),
                }
            }
        },
        stop,
    )
    .await
}
