//! ed25519 keys, key files, signing and (batch) verification: the only user of ed25519-dalek.

use crate::types::{Address, Block, PublicKey, Signature, SignedTx, TxBody};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Why a signature or key was refused.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The public key bytes are not a valid ed25519 point.
    #[error("invalid public key")]
    BadPublicKey,
    /// The signature does not verify (strict RFC 8032 checks).
    #[error("invalid signature")]
    BadSignature,
    /// A key file could not be read, parsed or written.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// File path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// An ed25519 signing key.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.address())
    }
}

/// JSON form of a key file: `{"secret_key": hex32, "public_key": hex32, "address": "0x…"}`.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyFile {
    secret_key: String,
    public_key: String,
    address: String,
}

impl Keypair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Keypair {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        Keypair::from_seed(seed)
    }

    /// The key whose 32-byte secret is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair(SigningKey::from_bytes(&seed))
    }

    /// Dev account `i` (`dev:i`): secret = sha256("meshnode/dev-account/" || i as u64 LE).
    ///
    /// Deterministic and PUBLIC, like Anvil's and Hardhat's test accounts: for devnets only.
    pub fn dev_account(i: u64) -> Keypair {
        Keypair::from_seed(crate::types::sha256(&[b"meshnode/dev-account/", &i.to_le_bytes()]).0)
    }

    /// Dev validator `i` (`dev-validator:i`): secret = sha256("meshnode/dev-validator/" || i LE).
    /// PUBLIC, for devnets only.
    pub fn dev_validator(i: u64) -> Keypair {
        Keypair::from_seed(crate::types::sha256(&[b"meshnode/dev-validator/", &i.to_le_bytes()]).0)
    }

    /// Resolves a key spec: `dev:N`, `dev-validator:N`, or a key file path.
    ///
    /// Errors: [`CryptoError::KeyFile`] for an unreadable or malformed file or a bad index.
    pub fn from_spec(spec: &str) -> Result<Keypair, CryptoError> {
        let bad = |reason: String| CryptoError::KeyFile {
            path: spec.to_string(),
            reason,
        };
        if let Some(i) = spec.strip_prefix("dev:") {
            return i
                .parse()
                .map(Keypair::dev_account)
                .map_err(|e| bad(format!("{e}")));
        }
        if let Some(i) = spec.strip_prefix("dev-validator:") {
            return i
                .parse()
                .map(Keypair::dev_validator)
                .map_err(|e| bad(format!("{e}")));
        }
        Keypair::read_file(Path::new(spec))
    }

    /// The secret key bytes (to derive the libp2p identity of a node key).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Account address of the public key.
    pub fn address(&self) -> Address {
        self.public().address()
    }

    /// Signs `msg` (already domain-separated by the caller).
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }

    /// Signs a transaction body.
    pub fn sign_tx(&self, body: TxBody) -> SignedTx {
        let signature = self.sign(&body.signing_bytes());
        SignedTx { body, signature }
    }

    /// Signs `block.header` in place.
    pub fn sign_block(&self, block: &mut Block) {
        block.signature = self.sign(&block.header.signing_bytes());
    }

    /// Writes the key as JSON to `path`, created with mode 0600 (owner read/write only);
    /// refuses to overwrite an existing file.
    pub fn write_file(&self, path: &Path) -> Result<(), CryptoError> {
        let err = |e: std::io::Error| CryptoError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let kf = KeyFile {
            secret_key: hex::encode(self.secret_bytes()),
            public_key: hex::encode(self.public().0),
            address: self.address().to_string(),
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(err)?;
        let json = serde_json::to_string_pretty(&kf).expect("key file serializes");
        f.write_all(json.as_bytes()).map_err(err)?;
        f.write_all(b"\n").map_err(err)?;
        f.sync_all().map_err(err)
    }

    /// Reads a key file written by [`Keypair::write_file`]; checks the public key matches.
    pub fn read_file(path: &Path) -> Result<Keypair, CryptoError> {
        let bad = |reason: String| CryptoError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let kf: KeyFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let seed = crate::types::parse_hex_array::<32>(&kf.secret_key).map_err(bad)?;
        let kp = Keypair::from_seed(seed);
        if hex::encode(kp.public().0) != kf.public_key.trim_start_matches("0x").to_lowercase() {
            return Err(bad("public_key does not match secret_key".into()));
        }
        Ok(kp)
    }
}

/// Most decompressed public keys kept by [`verifying_keys`] (the cache starts over when full).
pub const KEY_CACHE: usize = 65_536;

/// Decompressed keys of recent signers. Decompressing a public key (a field square root) costs
/// about a third of a single verification and senders repeat, so each is done once.
static KEYS: std::sync::LazyLock<std::sync::Mutex<HashMap<[u8; 32], VerifyingKey>>> =
    std::sync::LazyLock::new(Default::default);

/// The decompressed keys of `pks` (None for bytes that are not a curve point), through the
/// cache.
pub fn verifying_keys<'a>(pks: impl Iterator<Item = &'a PublicKey>) -> Vec<Option<VerifyingKey>> {
    let mut cache = KEYS.lock().unwrap_or_else(|p| p.into_inner());
    pks.map(|pk| {
        if let Some(k) = cache.get(&pk.0) {
            return Some(*k);
        }
        let k = VerifyingKey::from_bytes(&pk.0).ok()?;
        if cache.len() >= KEY_CACHE {
            cache.clear();
        }
        cache.insert(pk.0, k);
        Some(k)
    })
    .collect()
}

/// Verifies one signature with RFC 8032 strict checks (no malleable or small-order keys).
pub fn verify(pk: &PublicKey, msg: &[u8], sig: &Signature) -> Result<(), CryptoError> {
    let vk = verifying_keys(std::iter::once(pk))
        .pop()
        .flatten()
        .ok_or(CryptoError::BadPublicKey)?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
    vk.verify_strict(msg, &sig)
        .map_err(|_| CryptoError::BadSignature)
}

/// Verifies a transaction's signature.
pub fn verify_tx(tx: &SignedTx) -> Result<(), CryptoError> {
    verify(&tx.body.from, &tx.body.signing_bytes(), &tx.signature)
}

/// Whether each transaction's signature verifies: one ed25519 batch first (weak keys refused,
/// as `verify_strict` does), and only if the batch fails, each signature alone to find the bad
/// ones. `verify_batch` does not refuse small-order `R` components as `verify_strict` does; a
/// transaction hash covers its signature, so such a variant can only compete with the original
/// as a same-nonce replacement (which needs a higher fee).
pub fn verify_txs_each(txs: &[&SignedTx]) -> Vec<bool> {
    if verify_txs_batch(txs).is_ok() {
        return vec![true; txs.len()];
    }
    txs.iter().map(|t| verify_tx(t).is_ok()).collect()
}

/// [`verify_txs_each`] over up to `threads` OS threads, in contiguous chunks of at least 64
/// (the batch size where batching pays off); results in input order.
pub fn verify_txs_parallel(txs: &[&SignedTx], threads: usize) -> Vec<bool> {
    let chunk = txs.len().div_ceil(threads.max(1)).max(64);
    if txs.len() <= chunk {
        return verify_txs_each(txs);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = txs
            .chunks(chunk)
            .map(|c| s.spawn(move || verify_txs_each(c)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signature verification does not panic"))
            .collect()
    })
}

/// Verifies a block header's signature by its producer.
pub fn verify_block_header(block: &Block) -> Result<(), CryptoError> {
    verify(
        &block.header.producer,
        &block.header.signing_bytes(),
        &block.signature,
    )
}

/// Verifies many transaction signatures at once (ed25519-dalek batch verification, about
/// twice the single-signature rate). On a batch failure falls back to verifying one by one
/// and returns the index of the first bad signature.
pub fn verify_txs_batch(txs: &[&SignedTx]) -> Result<(), (usize, CryptoError)> {
    if txs.is_empty() {
        return Ok(());
    }
    let msgs: Vec<Vec<u8>> = txs.iter().map(|t| t.body.signing_bytes()).collect();
    let mut keys = Vec::with_capacity(txs.len());
    for (i, k) in verifying_keys(txs.iter().map(|t| &t.body.from))
        .into_iter()
        .enumerate()
    {
        keys.push(k.ok_or((i, CryptoError::BadPublicKey))?);
    }
    let sigs: Vec<ed25519_dalek::Signature> = txs
        .iter()
        .map(|t| ed25519_dalek::Signature::from_bytes(&t.signature.0))
        .collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    if ed25519_dalek::verify_batch(&refs, &sigs, &keys).is_ok() {
        // Batch verification is not "strict": also refuse weak keys, as verify_strict does.
        if let Some(i) = keys.iter().position(|k| k.is_weak()) {
            return Err((i, CryptoError::BadPublicKey));
        }
        return Ok(());
    }
    for (i, t) in txs.iter().enumerate() {
        verify_tx(t).map_err(|e| (i, e))?;
    }
    // The batch failed but every signature verifies alone: treat as failure of the first.
    Err((0, CryptoError::BadSignature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_are_deterministic_and_distinct() {
        assert_eq!(
            Keypair::dev_account(0).address(),
            Keypair::dev_account(0).address()
        );
        assert_ne!(
            Keypair::dev_account(0).address(),
            Keypair::dev_account(1).address()
        );
        assert_ne!(
            Keypair::dev_account(0).address(),
            Keypair::dev_validator(0).address()
        );
    }

    #[test]
    fn key_file_round_trip_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        let kp = Keypair::generate();
        kp.write_file(&p).unwrap();
        assert_eq!(Keypair::read_file(&p).unwrap().address(), kp.address());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(kp.write_file(&p).is_err(), "must not overwrite");
    }
}
