//! JSON-RPC middleware that verifies the signatures of a batch's submissions together.
//!
//! jsonrpsee runs the calls of a JSON-RPC batch one after another, so each
//! `sendrawtransaction` / `eth_sendRawTransaction` would verify its signature alone
//! (`verify_strict`, about twice the per-signature cost of a batch). Before the calls run, this
//! layer decodes every submission in the batch and verifies their signatures as one ed25519
//! batch over every core ([`crate::crypto::verify_txs_parallel`]), on a blocking thread; the
//! hashes that passed go to the pool's signature cache ([`TxPool::preverify`]), and each call
//! then skips its own signature check. Anything that does not decode or verify is left to the call, which answers
//! with its usual error. Single calls pass through untouched.

use crate::txpool::TxPool;
use crate::types::SignedTx;
use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::types::Request;
use std::future::Future;

/// Methods whose first parameter is a raw transaction (hex).
const SUBMIT_METHODS: [&str; 2] = ["sendrawtransaction", "eth_sendRawTransaction"];

/// The middleware; see the module docs.
#[derive(Clone)]
pub struct PreVerify<S> {
    /// The next service.
    pub inner: S,
    /// The pool whose signature cache the batch fills.
    pub txpool: TxPool,
}

fn submitted_tx(req: &Request<'_>) -> Option<SignedTx> {
    if !SUBMIT_METHODS.contains(&req.method_name()) {
        return None;
    }
    let params: Vec<serde_json::Value> = req.params().parse().ok()?;
    let hex_str = params.first()?.as_str()?;
    let bytes = hex::decode(hex_str.strip_prefix("0x").unwrap_or(hex_str)).ok()?;
    crate::validation::decode_tx(&bytes).ok()
}

impl<S> RpcServiceT for PreVerify<S>
where
    S: RpcServiceT + Clone + Send + Sync + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        self.inner.call(req)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let txs: Vec<SignedTx> = batch
            .iter()
            .filter_map(|e| match e {
                Ok(BatchEntry::Call(req)) => submitted_tx(req),
                _ => None,
            })
            .collect();
        let (inner, txpool) = (self.inner.clone(), self.txpool.clone());
        async move {
            if txs.len() > 1 {
                let _ = tokio::task::spawn_blocking(move || {
                    txpool.preverify(&txs.iter().collect::<Vec<_>>())
                })
                .await;
            }
            inner.batch(batch).await
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
