//! Genesis file format, the genesis block, the validator set and dev-account funding.
//!
//! The file is JSON; every field is described in `genesis/README.md`. The genesis block's
//! `parent` field carries the *spec hash* (sha256 over the consensus fields: chain id, genesis
//! time, slot length, validators, allocations), so two networks whose genesis differs in any of
//! these have different genesis block hashes. Bootnodes are operational and not hashed.

use crate::crypto::Keypair;
use crate::types::{encoding, Address, Block, BlockHeader, Hash, PublicKey, Signature};
use std::collections::BTreeMap;
use std::path::Path;

/// The devnet genesis built into the binary: `genesis/devnet.json` of the source tree, used
/// when no `--genesis` is given and [`DEFAULT_PATH`] does not exist, so that `meshnode` works
/// from any directory and after `cargo install`.
pub const BUILT_IN: &str = include_str!("../genesis/devnet.json");

/// Where the default genesis is looked for (relative to the working directory) before the
/// built-in one is used.
pub const DEFAULT_PATH: &str = "genesis/devnet.json";

/// The genesis file as written on disk.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisFile {
    /// Chain id; transactions and blocks carry it, and gossip topics include it.
    pub chain_id: u64,
    /// Start of slot 0, milliseconds since the Unix epoch. `meshnode devnet` rewrites it.
    pub genesis_time_ms: u64,
    /// Slot length in milliseconds.
    pub slot_ms: u64,
    /// Validators' ed25519 public keys (hex); slot `s` belongs to `validators[s % len]`.
    pub validators: Vec<String>,
    /// Explicit balances: address (0x-hex) -> balance in base units.
    #[serde(default)]
    pub alloc: BTreeMap<String, u64>,
    /// Dev accounts `dev:0 .. dev:count-1` funded with `balance` each (public keys: devnet only).
    #[serde(default)]
    pub dev_accounts: Option<DevAccounts>,
    /// Bootnode multiaddrs (`/ip4/…/tcp/…/p2p/<peer id>`), dialled at start.
    #[serde(default)]
    pub bootnodes: Vec<String>,
}

/// Dev-account funding in a genesis file.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevAccounts {
    /// How many dev accounts (`dev:0 ..`) are funded.
    pub count: u64,
    /// Balance of each, in base units.
    pub balance: u64,
}

/// A validated genesis: what the rest of the node uses.
#[derive(Clone, Debug)]
pub struct ChainSpec {
    /// Chain id.
    pub chain_id: u64,
    /// Start of slot 0, ms since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Slot length, ms (at least 50).
    pub slot_ms: u64,
    /// Validator set, in schedule order.
    pub validators: Vec<PublicKey>,
    /// Initial balances (explicit allocations plus dev accounts), sorted by address.
    pub alloc: Vec<(Address, u64)>,
    /// Bootnodes as given in the file (parsed by the p2p layer).
    pub bootnodes: Vec<String>,
}

/// Why a genesis file was refused.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("cannot read genesis file {path}: {cause}")]
    Io {
        /// Path.
        path: String,
        /// Cause (in the message; not also the error's `source()`, so it is printed once).
        cause: std::io::Error,
    },
    /// The JSON is malformed or has unknown fields.
    #[error("malformed genesis file: {0}")]
    Json(serde_json::Error),
    /// A field has an invalid value.
    #[error("invalid genesis: {0}")]
    Invalid(String),
}

impl From<serde_json::Error> for GenesisError {
    /// Its message includes the cause, so the cause is not also its `source()` (an error chain printed with `{:#}` names it once).
    fn from(e: serde_json::Error) -> Self {
        GenesisError::Json(e)
    }
}

impl GenesisFile {
    /// The genesis to use for a `--genesis` flag: the file when one is given; else
    /// [`DEFAULT_PATH`] when it exists in the working directory; else [`BUILT_IN`]. Not yet
    /// validated ([`GenesisFile::to_spec`]). Errors: the file cannot be read or parsed.
    pub fn load(path: Option<&Path>) -> Result<GenesisFile, GenesisError> {
        match path {
            Some(p) => GenesisFile::read(p),
            None if Path::new(DEFAULT_PATH).is_file() => GenesisFile::read(Path::new(DEFAULT_PATH)),
            None => Ok(serde_json::from_str(BUILT_IN)?),
        }
    }

    /// Reads and parses a genesis file (not yet validated: see [`GenesisFile::to_spec`]).
    pub fn read(path: &Path) -> Result<GenesisFile, GenesisError> {
        let text = std::fs::read_to_string(path).map_err(|cause| GenesisError::Io {
            path: path.display().to_string(),
            cause,
        })?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Writes the file as pretty JSON.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).expect("genesis serializes");
        std::fs::write(path, json + "\n")
    }

    /// Validates the fields and resolves dev accounts.
    pub fn to_spec(&self) -> Result<ChainSpec, GenesisError> {
        let invalid = |m: String| GenesisError::Invalid(m);
        if self.slot_ms < 50 {
            return Err(invalid(format!("slot_ms {} is below 50", self.slot_ms)));
        }
        if self.validators.is_empty() {
            return Err(invalid("validators is empty".into()));
        }
        let mut validators = Vec::new();
        for v in &self.validators {
            let pk = crate::types::parse_hex_array::<32>(v)
                .map_err(|e| invalid(format!("validator {v}: {e}")))?;
            validators.push(PublicKey(pk));
        }
        let mut alloc: BTreeMap<Address, u64> = BTreeMap::new();
        for (a, bal) in &self.alloc {
            let addr: Address = a.parse().map_err(|e| invalid(format!("alloc {a}: {e}")))?;
            alloc.insert(addr, *bal);
        }
        if let Some(dev) = &self.dev_accounts {
            for i in 0..dev.count {
                alloc.insert(Keypair::dev_account(i).address(), dev.balance);
            }
        }
        Ok(ChainSpec {
            chain_id: self.chain_id,
            genesis_time_ms: self.genesis_time_ms,
            slot_ms: self.slot_ms,
            validators,
            alloc: alloc.into_iter().collect(),
            bootnodes: self.bootnodes.clone(),
        })
    }
}

/// The consensus fields of a genesis in canonical encoding: what the spec hash covers and
/// what the store keeps so that `store check` can replay from genesis on its own.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ConsensusSpec {
    /// Chain id.
    pub chain_id: u64,
    /// Start of slot 0, ms.
    pub genesis_time_ms: u64,
    /// Slot length, ms.
    pub slot_ms: u64,
    /// Validators.
    pub validators: Vec<PublicKey>,
    /// Initial balances, sorted by address.
    pub alloc: Vec<(Address, u64)>,
}

impl ChainSpec {
    /// The consensus fields (everything but bootnodes).
    pub fn consensus(&self) -> ConsensusSpec {
        ConsensusSpec {
            chain_id: self.chain_id,
            genesis_time_ms: self.genesis_time_ms,
            slot_ms: self.slot_ms,
            validators: self.validators.clone(),
            alloc: self.alloc.clone(),
        }
    }

    /// The spec of stored consensus fields (no bootnodes).
    pub fn from_consensus(c: ConsensusSpec) -> ChainSpec {
        ChainSpec {
            chain_id: c.chain_id,
            genesis_time_ms: c.genesis_time_ms,
            slot_ms: c.slot_ms,
            validators: c.validators,
            alloc: c.alloc,
            bootnodes: vec![],
        }
    }

    /// sha256("meshnode/genesis/v1" || encode(consensus fields)); not bootnodes.
    pub fn spec_hash(&self) -> Hash {
        crate::types::sha256(&[b"meshnode/genesis/v1", &encoding::encode(&self.consensus())])
    }

    /// The genesis block: height 0, slot 0, parent = spec hash, no producer, no signature,
    /// no transactions.
    pub fn genesis_block(&self) -> Block {
        Block {
            header: BlockHeader {
                chain_id: self.chain_id,
                height: 0,
                slot: 0,
                parent: self.spec_hash(),
                timestamp_ms: self.genesis_time_ms,
                producer: PublicKey([0; 32]),
                tx_root: Hash::ZERO,
                tx_count: 0,
            },
            signature: Signature([0; 64]),
            txs: vec![],
        }
    }

    /// Slot in progress at `now_ms` (0 before genesis).
    pub fn slot_at(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.genesis_time_ms) / self.slot_ms
    }

    /// Start of `slot`, ms since the Unix epoch (saturating: `slot` may come from an
    /// untrusted block).
    pub fn slot_start_ms(&self, slot: u64) -> u64 {
        self.genesis_time_ms
            .saturating_add(slot.saturating_mul(self.slot_ms))
    }

    /// The validator scheduled for `slot`: `validators[slot % len]`.
    pub fn producer_of(&self, slot: u64) -> PublicKey {
        self.validators[(slot % self.validators.len() as u64) as usize]
    }
}

/// The public keys (hex, as in a genesis file's `validators`) of `dev-validator:0` ..
/// `dev-validator:count-1`, the devnet's public validator keys.
pub fn dev_validators(count: usize) -> Vec<String> {
    (0..count as u64)
        .map(|i| hex::encode(Keypair::dev_validator(i).public().0))
        .collect()
}

/// Test fixture: chain `chain_id`, genesis time 0, 1 s slots, validators `dev-validator:i`
/// for `i` in `0..validators`, and `dev:0 .. dev:accounts-1` funded with `balance` each.
#[cfg(test)]
pub(crate) fn test_spec(chain_id: u64, validators: u64, accounts: u64, balance: u64) -> ChainSpec {
    GenesisFile {
        chain_id,
        genesis_time_ms: 0,
        slot_ms: 1000,
        validators: dev_validators(validators as usize),
        alloc: BTreeMap::new(),
        dev_accounts: Some(DevAccounts {
            count: accounts,
            balance,
        }),
        bootnodes: vec![],
    }
    .to_spec()
    .expect("fixture is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> GenesisFile {
        GenesisFile {
            chain_id: 7,
            genesis_time_ms: 1_000,
            slot_ms: 500,
            validators: vec![hex::encode(Keypair::dev_validator(0).public().0)],
            alloc: BTreeMap::new(),
            dev_accounts: Some(DevAccounts {
                count: 3,
                balance: 10,
            }),
            bootnodes: vec![],
        }
    }

    #[test]
    fn committed_devnet_genesis_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("genesis/devnet.json");
        let spec = GenesisFile::read(&path).unwrap().to_spec().unwrap();
        assert!(!spec.validators.is_empty());
        assert!(spec
            .alloc
            .iter()
            .any(|(a, _)| *a == Keypair::dev_account(0).address()));
    }

    #[test]
    fn spec_hash_binds_consensus_fields_not_bootnodes() {
        let a = file().to_spec().unwrap();
        let mut f = file();
        f.bootnodes.push("/ip4/127.0.0.1/tcp/1".into());
        assert_eq!(
            a.genesis_block().hash(),
            f.to_spec().unwrap().genesis_block().hash()
        );
        f.genesis_time_ms += 1;
        assert_ne!(
            a.genesis_block().hash(),
            f.to_spec().unwrap().genesis_block().hash()
        );
        let mut g = file();
        g.dev_accounts = Some(DevAccounts {
            count: 3,
            balance: 11,
        });
        assert_ne!(a.spec_hash(), g.to_spec().unwrap().spec_hash());
    }

    #[test]
    fn slot_schedule() {
        let s = file().to_spec().unwrap();
        assert_eq!(s.slot_at(0), 0);
        assert_eq!(s.slot_at(1_499), 0);
        assert_eq!(s.slot_at(1_500), 1);
        assert_eq!(s.slot_start_ms(3), 2_500);
        assert_eq!(
            s.slot_start_ms(u64::MAX),
            u64::MAX,
            "an untrusted slot cannot overflow"
        );
    }
}
