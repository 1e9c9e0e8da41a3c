//! Separate limits for HTTP requests and WebSocket connections, as HTTP middleware in front of
//! jsonrpsee.
//!
//! jsonrpsee counts open WebSocket connections and HTTP requests in flight against one limit,
//! so long-lived subscribers could take every slot and lock HTTP callers out with 429. Here a
//! WebSocket upgrade takes a slot of its own pool for the connection's life (the permit rides
//! in the request's extensions, which jsonrpsee keeps until the connection's task ends) and an
//! HTTP request takes a slot of another pool while it is served. jsonrpsee's own limit is set
//! to the sum, so it never refuses first. A refusal is HTTP 429 with `Retry-After: 1` and a
//! JSON-RPC error body, code -32005 "limit exceeded" (EIP-1474), id null.

use jsonrpsee::server::{HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// EIP-1474 "limit exceeded".
pub const LIMIT_EXCEEDED: i64 = -32005;

/// A WebSocket connection's slot, held in its upgrade request's extensions.
#[derive(Clone)]
struct WsSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// The layer; see the module docs.
#[derive(Clone, Debug)]
pub struct LimitsLayer {
    http: Arc<Semaphore>,
    ws: Arc<Semaphore>,
    max_http: usize,
    max_ws: usize,
}

impl LimitsLayer {
    /// At most `max_http` HTTP requests in flight and `max_ws` open WebSocket connections.
    pub fn new(max_http: usize, max_ws: usize) -> LimitsLayer {
        LimitsLayer {
            http: Arc::new(Semaphore::new(max_http)),
            ws: Arc::new(Semaphore::new(max_ws)),
            max_http,
            max_ws,
        }
    }
}

impl<S> tower::Layer<S> for LimitsLayer {
    type Service = Limits<S>;
    fn layer(&self, inner: S) -> Limits<S> {
        Limits {
            inner,
            limits: self.clone(),
        }
    }
}

/// The service [`LimitsLayer`] builds.
#[derive(Clone, Debug)]
pub struct Limits<S> {
    inner: S,
    limits: LimitsLayer,
}

/// Whether `req` asks to become a WebSocket (RFC 6455 §4.1: `Upgrade: websocket`).
pub fn is_websocket_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(http::header::UPGRADE)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|s| s.to_ascii_lowercase().contains("websocket"))
        })
}

/// The 429 reply: JSON-RPC error -32005 naming the limit.
pub fn too_many(what: &str, max: usize) -> HttpResponse {
    let mut r = super::compat::error_response(
        http::StatusCode::TOO_MANY_REQUESTS,
        LIMIT_EXCEEDED,
        &format!("limit exceeded: {max} {what} at most; try again later"),
    );
    r.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    r
}

impl<S> tower::Service<HttpRequest> for Limits<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: HttpRequest) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if is_websocket_upgrade(&req) {
            let Ok(permit) = self.limits.ws.clone().try_acquire_owned() else {
                let max = self.limits.max_ws;
                return Box::pin(async move { Ok(too_many("WebSocket connections", max)) });
            };
            req.extensions_mut().insert(WsSlot(Arc::new(permit)));
            return Box::pin(inner.call(req));
        }
        let Ok(permit) = self.limits.http.clone().try_acquire_owned() else {
            let max = self.limits.max_http;
            return Box::pin(async move { Ok(too_many("HTTP requests in flight", max)) });
        };
        Box::pin(async move {
            let r = inner.call(req).await;
            drop(permit);
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonrpsee::server::HttpBody;
    use tower::{Layer, Service, ServiceExt};

    /// An inner service that answers 200 once `gate` opens.
    #[derive(Clone)]
    struct Gated(Arc<tokio::sync::Notify>);

    impl Service<HttpRequest> for Gated {
        type Response = HttpResponse;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: HttpRequest) -> Self::Future {
            let gate = self.0.clone();
            Box::pin(async move {
                gate.notified().await;
                Ok(HttpResponse::new(HttpBody::empty()))
            })
        }
    }

    fn post() -> HttpRequest {
        http::Request::post("/").body(HttpBody::empty()).unwrap()
    }

    #[tokio::test]
    async fn http_over_its_limit_gets_a_json_429_and_a_slot_frees_when_a_request_ends() {
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut svc = LimitsLayer::new(1, 1).layer(Gated(gate.clone()));
        let first = tokio::spawn(svc.clone().oneshot(post()));
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let refused = svc.ready().await.unwrap().call(post()).await.unwrap();
        assert_eq!(refused.status(), 429);
        assert_eq!(
            refused.headers()[http::header::CONTENT_TYPE],
            "application/json"
        );
        let body = http_body_util::BodyExt::collect(refused.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], LIMIT_EXCEEDED);
        assert!(v["id"].is_null());
        gate.notify_waiters();
        assert_eq!(first.await.unwrap().unwrap().status(), 200);
        let again = tokio::spawn(svc.clone().oneshot(post()));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_waiters();
        assert_eq!(again.await.unwrap().unwrap().status(), 200);
    }
}
