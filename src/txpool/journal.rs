//! The local-transaction journal (geth's `--txpool.journal`, `transactions.rlp`): every
//! transaction admitted over JSON-RPC is appended to `DATA_DIR/mempool.journal` before the RPC
//! call answers, so a node that dies — even by SIGKILL, which no handler sees — still has
//! every transaction it accepted when it starts again, and announces them anew. (The write
//! reaches the kernel, not the disk: like geth's journal it survives the process, not a power
//! cut.)
//!
//! Format: entries of a 4-byte little-endian length and a transaction's canonical encoding
//! ([`SignedTx::to_bytes`]). At start the node reads the journal, re-admits its transactions
//! (every check again: some may have been mined or replaced meanwhile) and rewrites it with
//! those still in the pool or mined less than [`JOURNAL_DEPTH`] blocks ago; rotation does the
//! same periodically, as geth rotates its journal hourly, so buried transactions leave it. A damaged or cut-off tail (a crash in
//! the middle of an append) ends the reading: the entries before it are kept.

use crate::types::encoding::MAX_TX_BYTES;
use crate::types::SignedTx;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name of the journal in the data dir.
pub const JOURNAL_FILE: &str = "mempool.journal";

/// Blocks a mined local transaction stays in the journal (see
/// [`super::TxPool::rotate_journal`]).
pub const JOURNAL_DEPTH: u64 = 64;

/// What [`Journal::open`] read.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The transactions, in journal order.
    pub txs: Vec<SignedTx>,
    /// Bytes at the end that were not a whole, decodable entry (0 for a clean journal).
    pub damaged_tail: usize,
}

/// An open journal; appends are serialised.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

fn append_to(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn encode(txs: &[&SignedTx]) -> Vec<u8> {
    let mut buf = Vec::new();
    for tx in txs {
        let b = tx.to_bytes();
        buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
        buf.extend_from_slice(&b);
    }
    buf
}

/// Decodes journal bytes: the whole entries, and how many bytes after them did not decode.
pub fn decode(bytes: &[u8]) -> Loaded {
    let mut txs = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(len) = bytes
            .get(at..at + 4)
            .map(|l| u32::from_le_bytes(l.try_into().expect("4 bytes")) as usize)
        else {
            break;
        };
        if len > MAX_TX_BYTES {
            break;
        }
        let Some(Ok(tx)) = bytes
            .get(at + 4..at + 4 + len)
            .map(crate::validation::decode_tx)
        else {
            break;
        };
        txs.push(tx);
        at += 4 + len;
    }
    Loaded {
        txs,
        damaged_tail: bytes.len() - at,
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads what it holds.
    ///
    /// Errors: the file cannot be read or opened for appending.
    pub fn open(path: &Path) -> std::io::Result<(Journal, Loaded)> {
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let loaded = decode(&bytes);
        let j = Journal {
            path: path.to_path_buf(),
            file: Mutex::new(append_to(path)?),
        };
        Ok((j, loaded))
    }

    /// Appends `txs` in one write.
    pub fn append(&self, txs: &[&SignedTx]) -> std::io::Result<()> {
        if txs.is_empty() {
            return Ok(());
        }
        let buf = encode(txs);
        self.file
            .lock()
            .expect("journal lock poisoned")
            .write_all(&buf)
    }

    /// Replaces the journal with exactly `keep` (written to a temporary file, then renamed
    /// over it); later appends go to the new file.
    pub fn rotate(&self, keep: &[&SignedTx]) -> std::io::Result<()> {
        let mut file = self.file.lock().expect("journal lock poisoned");
        let tmp = self.path.with_extension("journal.new");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&encode(keep))?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)?;
        *file = append_to(&self.path)?;
        Ok(())
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(nonce: u64) -> SignedTx {
        let k = crate::crypto::Keypair::dev_account(1);
        k.sign_tx(crate::types::TxBody {
            chain_id: 1,
            nonce,
            from: k.public(),
            to: crate::crypto::Keypair::dev_account(2).address(),
            amount: 5,
            fee: 1,
            data: vec![],
        })
    }

    #[test]
    fn appends_survive_reopening_rotation_keeps_what_it_is_given_and_a_cut_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let (a, b, c) = (tx(0), tx(1), tx(2));
        {
            let (j, loaded) = Journal::open(&path).unwrap();
            assert!(loaded.txs.is_empty());
            j.append(&[&a, &b]).unwrap();
            j.append(&[&c]).unwrap();
        }
        let (j, loaded) = Journal::open(&path).unwrap();
        assert_eq!(loaded.txs, vec![a.clone(), b.clone(), c.clone()]);
        assert_eq!(loaded.damaged_tail, 0);
        j.rotate(&[&c]).unwrap();
        j.append(&[&a]).unwrap();
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(decode(&bytes).txs, vec![c.clone(), a.clone()]);
        // A crash in the middle of an append: the whole entries before it are kept.
        bytes.truncate(bytes.len() - 10);
        let d = decode(&bytes);
        assert_eq!(d.txs, vec![c]);
        assert!(d.damaged_tail > 0);
        // Garbage never panics.
        assert!(decode(&[0xff; 7]).txs.is_empty());
        assert!(decode(&[3, 0, 0, 0, 1, 2, 3]).txs.is_empty());
    }
}
