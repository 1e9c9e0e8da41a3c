//! JSON-RPC middleware that refuses extra positional parameters, as geth does
//! (`eth_chainId` with `[1,2,3]`: error -32602 "too many arguments, want at most 0") and
//! Bitcoin Core does (its help text as the error). jsonrpsee's generated parsers read the
//! parameters they need and ignore the rest; the most each method takes comes from its entry
//! in the method table ([`super::discover::METHODS`]). Named parameters (an object) and
//! methods without an entry pass through.

use super::discover::METHODS;
use jsonrpsee::core::middleware::{Batch, BatchEntry, BatchEntryErr, Notification, RpcServiceT};
use jsonrpsee::types::error::INVALID_PARAMS_CODE;
use jsonrpsee::types::{ErrorObjectOwned, Request};
use jsonrpsee::MethodResponse;
use std::future::Future;

/// The middleware; see the module docs.
#[derive(Clone)]
pub struct TooManyParams<S> {
    /// The next service.
    pub inner: S,
}

/// The most positional parameters `method` takes (its documented list), or None for a
/// method without a table entry.
pub fn max_params(method: &str) -> Option<usize> {
    METHODS
        .iter()
        .find(|m| m.name == method)
        .map(|m| m.params.split(',').filter(|p| !p.trim().is_empty()).count())
}

/// The -32602 error for `req` when it passes more positional parameters than its method
/// takes.
fn check(req: &Request<'_>) -> Option<ErrorObjectOwned> {
    let max = max_params(req.method_name())?;
    let params: Vec<serde_json::Value> = req.params().parse().ok()?;
    (params.len() > max).then(|| {
        ErrorObjectOwned::owned(
            INVALID_PARAMS_CODE,
            format!("too many arguments, want at most {max}"),
            None::<()>,
        )
    })
}

impl<S> RpcServiceT for TooManyParams<S>
where
    S: RpcServiceT<MethodResponse = MethodResponse> + Clone + Send + Sync + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(&self, req: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let refused = check(&req).map(|e| MethodResponse::error(req.id().into_owned(), e));
        let inner = self.inner.clone();
        async move {
            match refused {
                Some(r) => r,
                None => inner.call(req).await,
            }
        }
    }

    fn batch<'a>(
        &self,
        mut batch: Batch<'a>,
    ) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        for entry in batch.iter_mut() {
            let refused = match entry {
                Ok(BatchEntry::Call(req)) => check(req).map(|e| (req.id().into_owned(), e)),
                _ => None,
            };
            if let Some((id, e)) = refused {
                *entry = Err(BatchEntryErr::new(id, e));
            }
        }
        self.inner.batch(batch)
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
    fn the_most_parameters_come_from_the_method_table() {
        assert_eq!(max_params("eth_chainId"), Some(0));
        assert_eq!(max_params("getblock"), Some(2));
        assert_eq!(max_params("no_such_method"), None);
    }
}
