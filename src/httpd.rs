//! A small HTTP/1.1 server (hyper) for the node's read-only side endpoints: Prometheus
//! `/metrics` (module `metrics`) and the devnet dashboard (module `dashboard`). Each
//! connection is served on its own task; the accept loop ends at the stop signal.

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use std::future::Future;
use std::net::SocketAddr;
use tokio::sync::watch;

/// A reply body.
pub type Body = Full<Bytes>;

/// A bound server.
pub struct HttpServer {
    /// The bound address (the real port when asked for port 0).
    pub local_addr: SocketAddr,
    /// The accept loop; ends when the stop signal turns true.
    pub task: tokio::task::JoinHandle<()>,
}

/// A reply with `status`, `content_type` and `body`.
pub fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> hyper::Response<Body> {
    hyper::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

/// Binds `addr` and answers every request with `handle` until `stop` turns true.
///
/// Errors: the address cannot be bound (the message names `what` and the address).
pub async fn serve<H, F>(
    what: &str,
    addr: SocketAddr,
    handle: H,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<HttpServer>
where
    H: Fn(hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<Body>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind {what} on {addr}: {e}"))?;
    let local_addr = listener.local_addr()?;
    let what = what.to_string();
    let task = tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        tracing::warn!(server = %what, cause = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                _ = stop.changed() => return,
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let fut = handle(req);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(HttpServer { local_addr, task })
}
