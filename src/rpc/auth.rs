//! RPC authentication as Bitcoin Core does it: HTTP Basic auth with either a cookie
//! (`DATA_DIR/.cookie`, `__cookie__:<64 hex digits>`, mode 0600, fresh each start, removed on
//! shutdown) or `--rpc-user`/`--rpc-password`. The check is HTTP middleware in front of
//! jsonrpsee, so it covers POST bodies and WebSocket upgrades alike.
//!
//! Auth is *required* when the RPC binds to anything but loopback, or when a user and password
//! are configured; on the default 127.0.0.1 bind without them, requests without credentials are
//! served (the cookie is still written so `meshnode rpc` works either way), but wrong
//! credentials are always refused. A refused request gets HTTP 401 with an empty body and
//! `WWW-Authenticate: Basic realm="jsonrpc"`, as Bitcoin Core answers.

use base64::Engine;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The cookie file's name in the data dir (Bitcoin Core's).
pub const COOKIE_FILE: &str = ".cookie";
/// The cookie's user name (Bitcoin Core's).
pub const COOKIE_USER: &str = "__cookie__";

/// Accepted credentials and whether any are required.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    /// SHA-256 of each accepted `user:password`.
    accepted: Arc<Vec<[u8; 32]>>,
    /// Whether requests without credentials are refused.
    required: bool,
}

fn digest(user_pass: &str) -> [u8; 32] {
    Sha256::digest(user_pass.as_bytes()).into()
}

impl AuthLayer {
    /// Accepts each `user:password` in `credentials`; `required` refuses anonymous requests.
    pub fn new(credentials: &[String], required: bool) -> AuthLayer {
        AuthLayer {
            accepted: Arc::new(credentials.iter().map(|c| digest(c)).collect()),
            required,
        }
    }

    /// Whether a request with this `Authorization` header value (if any) may pass.
    pub fn allows(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header else {
            return !self.required;
        };
        let Some(b64) = std::str::from_utf8(h)
            .ok()
            .and_then(|s| s.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let Ok(user_pass) = String::from_utf8(raw) else {
            return false;
        };
        // Compare digests: equal length, and no early exit on the secret's bytes.
        let d = digest(&user_pass);
        self.accepted.iter().fold(false, |ok, a| {
            ok | (a.iter().zip(d).fold(0u8, |x, (p, q)| x | (p ^ q)) == 0)
        })
    }
}

/// `bytes` bytes from the OS random source, as lower-case hex (2 × `bytes` characters): a
/// cookie's or a generated network's RPC password. Errors: the OS random source fails.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut secret = vec![0u8; bytes];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(secret))
}

/// Writes a fresh cookie `__cookie__:<64 hex>` to `dir/.cookie` with mode 0600 and returns its
/// path and the `user:password` line. An old cookie is replaced.
pub fn write_cookie(dir: &Path) -> std::io::Result<(PathBuf, String)> {
    let line = format!("{COOKIE_USER}:{}", random_hex(32)?);
    let path = dir.join(COOKIE_FILE);
    let tmp = dir.join(".cookie.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(line.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok((path, line))
}

/// Reads `user:password` from a cookie file.
pub fn read_cookie(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

/// The `Authorization` header value for `user:password`.
pub fn basic_header(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] builds.
#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S> tower::Service<HttpRequest> for Auth<S>
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
        let header = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !self.layer.allows(header) {
            let mut r = HttpResponse::new(HttpBody::from(Vec::new()));
            *r.status_mut() = http::StatusCode::UNAUTHORIZED;
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic realm=\"jsonrpc\""),
            );
            return Box::pin(async move { Ok(r) });
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move { inner.call(req).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_checks() {
        let open = AuthLayer::new(&["u:p".into()], false);
        assert!(open.allows(None));
        assert!(open.allows(Some(basic_header("u:p").as_bytes())));
        assert!(!open.allows(Some(basic_header("u:q").as_bytes())));
        assert!(!open.allows(Some(b"Bearer x")));
        assert!(!open.allows(Some(b"Basic !!!")));
        let closed = AuthLayer::new(&["u:p".into()], true);
        assert!(!closed.allows(None));
        assert!(closed.allows(Some(basic_header("u:p").as_bytes())));
    }

    #[test]
    fn cookie_is_private_and_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let (path, a) = write_cookie(dir.path()).unwrap();
        let (_, b) = write_cookie(dir.path()).unwrap();
        assert_ne!(a, b);
        assert_eq!(read_cookie(&path).unwrap(), b);
        assert!(b.starts_with("__cookie__:") && b.len() == 11 + 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
