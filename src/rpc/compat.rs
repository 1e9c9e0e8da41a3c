//! JSON-RPC 1.0 compatibility for Bitcoin clients, as HTTP middleware in front of jsonrpsee.
//!
//! Bitcoin clients (bitcoin-cli, python-bitcoinrpc's AuthServiceProxy, …) send JSON-RPC
//! 1.0-style bodies without `"jsonrpc":"2.0"`, which jsonrpsee rejects. For such a request this
//! layer answers as Bitcoin Core 28 does: it adds `"jsonrpc":"2.0"` (and a null `id` where
//! none is given) before jsonrpsee sees it, then returns `result` and `error` both present
//! (`error` null on success, no `jsonrpc` member), HTTP 404 for "method not found", 500 for any
//! other error, 200 otherwise (always 200 for a batch), and `Content-Type: application/json`.
//! A `"jsonrpc":"1.0"` member counts as 1.0 (what Bitcoin Core's help texts show for curl).
//! JSON-RPC 2.0 requests pass through unchanged but for the Content-Type, which becomes plain
//! `application/json` as Bitcoin Core and geth send it; GETs and WebSocket upgrades pass
//! through untouched.
//!
//! For every POST, as Bitcoin Core does, the request's Content-Type is not looked at (curl's
//! `-H 'content-type: text/plain;'` works). A body that is not JSON (invalid UTF-8 included)
//! gets error -32700 "Parse error" with id null, HTTP 200 as geth answers it. A JSON-RPC 2.0
//! notification (no `id`), or a batch of notifications only, gets no body: HTTP 204, as the
//! JSON-RPC 2.0 spec (§4.1, "the Server MUST NOT reply to a Notification") and Bitcoin Core 28.

use http_body_util::{BodyExt, Limited};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// JSON-RPC 2.0 "method not found".
const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC 2.0 "parse error".
const PARSE_ERROR: i64 = -32700;
/// jsonrpsee's "request too big" code.
const OVERSIZED_REQUEST: i32 = jsonrpsee::types::error::OVERSIZED_REQUEST_CODE;

/// The layer; see the module docs.
#[derive(Clone, Copy, Debug)]
pub struct Rpc10Layer {
    /// Largest request body read, bytes (larger ones get HTTP 413 and error -32007).
    pub max_body: usize,
}

impl<S> tower::Layer<S> for Rpc10Layer {
    type Service = Rpc10<S>;
    fn layer(&self, inner: S) -> Rpc10<S> {
        Rpc10 {
            inner,
            max_body: self.max_body,
        }
    }
}

/// The service [`Rpc10Layer`] builds.
#[derive(Clone, Debug)]
pub struct Rpc10<S> {
    inner: S,
    max_body: usize,
}

/// Whether one request object is JSON-RPC 1.0: no `"jsonrpc"` member, or one other than
/// `"2.0"` (`"1.0"` in Bitcoin Core's curl examples).
fn legacy_request(o: &serde_json::Map<String, Value>) -> bool {
    o.get("jsonrpc").and_then(Value::as_str) != Some("2.0")
}

/// Whether a parsed body is (or, for a batch, contains) a JSON-RPC 1.0 request.
fn is_legacy(v: &Value) -> bool {
    match v {
        Value::Object(o) => legacy_request(o),
        Value::Array(a) => a.iter().any(|r| r.as_object().is_some_and(legacy_request)),
        _ => false,
    }
}

/// Whether a parsed JSON-RPC 2.0 body is a notification (no `id` member) or a non-empty batch
/// of notifications only: no reply is due.
fn only_notifications(v: &Value) -> bool {
    let note = |r: &Value| r.as_object().is_some_and(|o| !o.contains_key("id"));
    match v {
        Value::Object(_) => note(v),
        Value::Array(a) => !a.is_empty() && a.iter().all(note),
        _ => false,
    }
}

fn upgrade(req: &mut Value) {
    if let Value::Object(o) = req {
        o.insert("jsonrpc".into(), Value::String("2.0".into()));
        o.entry("id").or_insert(Value::Null);
    }
}

/// Bitcoin Core's 1.0 reply shape: `{result, error, id}` with both members present.
fn downgrade(resp: &mut Value) {
    if let Value::Object(o) = resp {
        o.remove("jsonrpc");
        o.entry("result").or_insert(Value::Null);
        o.entry("error").or_insert(Value::Null);
    }
}

fn error_code(resp: &Value) -> Option<i64> {
    resp.get("error")
        .filter(|e| !e.is_null())
        .map(|e| e.get("code").and_then(Value::as_i64).unwrap_or(0))
}

/// An HTTP reply with `status` carrying a JSON-RPC 2.0 error object (`code`, `message`) with
/// `"id": null`: the shape of a reply to a request that was never parsed (JSON-RPC 2.0 §5).
pub(super) fn error_response(status: http::StatusCode, code: i64, message: &str) -> HttpResponse {
    let msg = serde_json::json!({
        "jsonrpc": "2.0",
        "error": {"code": code, "message": message},
        "id": null,
    });
    json_response(status, msg.to_string().into_bytes())
}

/// An HTTP reply with `status` and a JSON `body` (`Content-Type: application/json`).
pub(super) fn json_response(status: http::StatusCode, body: Vec<u8>) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

impl<S> tower::Service<HttpRequest> for Rpc10<S>
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

    fn call(&mut self, req: HttpRequest) -> Self::Future {
        // The clone that was polled ready handles this call (tower's documented pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max_body = self.max_body;
        Box::pin(async move {
            let upgrade_req = req.headers().contains_key(http::header::UPGRADE);
            if req.method() != http::Method::POST || upgrade_req {
                return inner.call(req).await;
            }
            let (mut parts, body) = req.into_parts();
            // Bitcoin Core reads the body whatever the Content-Type says.
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            // jsonrpsee's own code for an oversize body (-32007), before the body is parsed,
            // so in the 2.0 shape whatever the client speaks.
            let too_large = || {
                let mut r = error_response(
                    http::StatusCode::PAYLOAD_TOO_LARGE,
                    OVERSIZED_REQUEST.into(),
                    &format!("Request body too large (limit {max_body} bytes)"),
                );
                // The rest of the body is never read, so this connection ends here.
                r.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
                r
            };
            // A declared length over the limit is refused before a byte of the body is read
            // (as jsonrpsee's own `read_body` does), so the client can read the 413 while it
            // is still sending; a chunked body is cut off where it passes the limit.
            let declared = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > max_body as u64) {
                return Ok(too_large());
            }
            let bytes = match Limited::new(body, max_body).collect().await {
                Ok(c) => c.to_bytes(),
                Err(_) => return Ok(too_large()),
            };
            let Ok(parsed) = serde_json::from_slice::<Value>(&bytes) else {
                return Ok(error_response(
                    http::StatusCode::OK,
                    PARSE_ERROR,
                    "Parse error",
                ));
            };
            let notification = only_notifications(&parsed);
            let Some(mut v) = Some(parsed).filter(is_legacy) else {
                // JSON-RPC 2.0 (or not JSON at all): jsonrpsee answers as it does, with the
                // plain `application/json` Bitcoin Core and geth send (JSON is UTF-8 by
                // definition, RFC 8259; some clients compare the header exactly).
                let mut resp = inner
                    .call(HttpRequest::from_parts(
                        parts,
                        HttpBody::from(bytes.to_vec()),
                    ))
                    .await?;
                if notification && resp.status().is_success() {
                    let mut empty = HttpResponse::new(HttpBody::empty());
                    *empty.status_mut() = http::StatusCode::NO_CONTENT;
                    return Ok(empty);
                }
                let json = resp
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/json"));
                if json {
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                }
                return Ok(resp);
            };
            match &mut v {
                Value::Array(a) => a.iter_mut().for_each(upgrade),
                other => upgrade(other),
            }
            let body = serde_json::to_vec(&v)?;
            let resp = inner
                .call(HttpRequest::from_parts(parts, HttpBody::from(body)))
                .await?;
            let (rparts, rbody) = resp.into_parts();
            let rbytes = rbody.collect().await?.to_bytes();
            let Ok(mut out) = serde_json::from_slice::<Value>(&rbytes) else {
                return Ok(HttpResponse::from_parts(
                    rparts,
                    HttpBody::from(rbytes.to_vec()),
                ));
            };
            let status = match &mut out {
                Value::Array(a) => {
                    a.iter_mut().for_each(downgrade);
                    http::StatusCode::OK
                }
                single => {
                    downgrade(single);
                    match error_code(single) {
                        None => http::StatusCode::OK,
                        Some(METHOD_NOT_FOUND) => http::StatusCode::NOT_FOUND,
                        Some(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
                    }
                }
            };
            Ok(json_response(status, serde_json::to_vec(&out)?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_detection_and_reply_shape() {
        assert!(is_legacy(
            &serde_json::json!({"method": "getblockcount", "params": [], "id": 1})
        ));
        assert!(!is_legacy(
            &serde_json::json!({"jsonrpc": "2.0", "method": "x", "id": 1})
        ));
        assert!(is_legacy(
            &serde_json::json!([{"jsonrpc": "2.0", "method": "x", "id": 1}, {"method": "y", "id": 2}])
        ));
        assert!(is_legacy(
            &serde_json::json!({"jsonrpc": "1.0", "id": "curltest", "method": "getblockcount"})
        ));
        assert!(only_notifications(
            &serde_json::json!({"jsonrpc": "2.0", "method": "x"})
        ));
        assert!(!only_notifications(
            &serde_json::json!([{"jsonrpc": "2.0", "method": "x"}, {"jsonrpc": "2.0", "method": "x", "id": null}])
        ));
        assert!(!only_notifications(&serde_json::json!([])));
        let mut r = serde_json::json!({"jsonrpc": "2.0", "result": 5, "id": 1});
        downgrade(&mut r);
        assert_eq!(r, serde_json::json!({"result": 5, "error": null, "id": 1}));
        let mut e = serde_json::json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "m"}, "id": 1});
        downgrade(&mut e);
        assert_eq!(error_code(&e), Some(METHOD_NOT_FOUND));
        assert!(e["result"].is_null());
        let mut req = Value::Object(serde_json::Map::new());
        upgrade(&mut req);
        assert_eq!(req, serde_json::json!({"jsonrpc": "2.0", "id": null}));
    }
}
