//! JSON-RPC middleware that times each call into `meshnode_rpc_request_duration_seconds`
//! (Prometheus, [`crate::metrics::NodeMetrics::rpc_duration`]), labelled by method. Method
//! names outside the node's method table are labelled `other`, so a caller cannot create
//! label values at will; a batch is timed once, as `batch`.

use super::discover::METHODS;
use crate::metrics::{HistogramFn, MethodLabel};
use jsonrpsee::core::middleware::{Batch, Notification, RpcServiceT};
use jsonrpsee::types::Request;
use jsonrpsee::MethodResponse;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::future::Future;
use std::time::Instant;

/// The middleware; see the module docs.
#[derive(Clone)]
pub struct Timing<S> {
    /// The next service.
    pub inner: S,
    /// Where durations go, seconds.
    pub durations: Family<MethodLabel, Histogram, HistogramFn>,
}

/// The label for `method`: itself when the node serves it, else `other`.
pub fn method_label(method: &str) -> MethodLabel {
    let known = METHODS.iter().any(|m| m.name == method) || method == "rpc.discover";
    MethodLabel {
        method: if known { method } else { "other" }.to_string(),
    }
}

impl<S> RpcServiceT for Timing<S>
where
    S: RpcServiceT<MethodResponse = MethodResponse> + Clone + Send + Sync + 'static,
    S::BatchResponse: Send,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let label = method_label(req.method_name());
        let (inner, durations) = (self.inner.clone(), self.durations.clone());
        async move {
            let t0 = Instant::now();
            let r = inner.call(req).await;
            durations
                .get_or_create(&label)
                .observe(t0.elapsed().as_secs_f64());
            r
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let (inner, durations) = (self.inner.clone(), self.durations.clone());
        async move {
            let t0 = Instant::now();
            let r = inner.batch(batch).await;
            durations
                .get_or_create(&MethodLabel {
                    method: "batch".into(),
                })
                .observe(t0.elapsed().as_secs_f64());
            r
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("eth_chainId").method, "eth_chainId");
        assert_eq!(method_label("x_anything_at_all").method, "other");
    }
}
