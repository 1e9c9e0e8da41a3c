//! Block bodies in append-only files beside the sled tree, as Bitcoin Core keeps blocks in
//! `blocks/blk*.dat` (`node/blockstorage.cpp`) and reth in its static files, out of their
//! key-value stores. sled keeps everything else, and under each block's hash the
//! [`BlockPos`] of its bytes: the block's index entry, state and head still go in one atomic
//! sled batch.
//!
//! **Why.** sled 0.34 copies a whole leaf node on every insert (`PageCache::link` clones the
//! node it links a change to), and a leaf splits only above 16 entries. A leaf of block keys
//! held up to 16 blocks of about 156 KB, so storing one 1,000-transaction block copied about
//! 2 MB, and sled wrote such leaves to its log as multi-megabyte blobs. Measured with
//! `bench propagation --nodes 16 --tps 1000 --relay compact` (the nodes' `store write
//! timing` debug lines, the imports of blocks over 500 transactions, one run each in the
//! same 10 minutes): the store write's CPU p50 0.95 -> 0.83 ms, mean 1.27 -> 0.97 ms; import
//! (relayed -> imported) p95 25 -> 16 ms.
//!
//! **Files.** `DATA_DIR/chain/blocks/blk00000.dat`, `blk00001.dat`, …; a file takes records
//! until the next would pass [`MAX_FILE_BYTES`]. A record is the magic `MNBK`, the length
//! (u32 little-endian) and the block's canonical encoding, so the files can be read without
//! the index. Bytes past the last indexed record (a crash between an append and its sled
//! batch) are never referenced and are left as Bitcoin Core leaves them.
//!
//! **Durability.** A block's record is appended (written to the file, in the page cache, so
//! it outlives the process) before the sled batch that indexes it, and [`BlockFiles::sync`]
//! (`fdatasync`) runs before every sled flush, so the index on disk points only at synced
//! bytes.
//!
//! **Integrity.** [`BlockPos`] holds the record's CRC-32 (as sled checks one on each of its
//! own messages). A read checks the magic, the length and the CRC; a missing file, a short
//! record or a mismatch is damage ([`ReadError::Damaged`]), which `store check` and opening a
//! store find (they read every indexed record) and `store repair` handles like any other.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A block file takes records until the next one would pass this size: 128 MiB (Bitcoin
/// Core's `MAX_BLOCKFILE_SIZE`).
pub const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// The directory of the block files, inside the store directory.
pub const BLOCKS_DIR: &str = "blocks";

/// The first 4 bytes of every record.
const MAGIC: &[u8; 4] = b"MNBK";

/// Bytes before a record's block: the magic and the length.
const RECORD_HEADER: u64 = 8;

/// Where a block's record lies: file number, byte offset of the record in that file, length
/// of the block's bytes (the record is 8 bytes longer) and their CRC-32 (IEEE, as
/// `crc32fast`). Stored in sled under the block's hash (20 bytes, bincode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct BlockPos {
    /// File number: `blk{file:05}.dat`.
    pub file: u32,
    /// Offset of the record (its magic) in the file, bytes.
    pub offset: u64,
    /// Length of the block's bytes.
    pub len: u32,
    /// CRC-32 of the block's bytes.
    pub crc: u32,
}

/// A failed read of a record.
#[derive(Debug)]
pub enum ReadError {
    /// The record is missing, short, or does not match its position (magic, length, CRC).
    Damaged(String),
    /// The file could not be read (permissions, a disk error).
    Io(PathBuf, std::io::Error),
}

/// The file being appended to.
struct Writer {
    /// Open on the first append.
    file: Option<File>,
    /// Its number.
    num: u32,
    /// Its length, bytes.
    len: u64,
    /// Whether it has writes not yet synced.
    dirty: bool,
}

/// The block files of one store: appends under a lock, reads from any thread.
pub struct BlockFiles {
    dir: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<HashMap<u32, Arc<File>>>,
}

impl std::fmt::Debug for BlockFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockFiles")
            .field("dir", &self.dir)
            .finish()
    }
}

fn file_name(num: u32) -> String {
    format!("blk{num:05}.dat")
}

impl BlockFiles {
    /// Opens the block files in `store_dir/blocks` (creating the directory): appends go to
    /// the highest-numbered file, after its last byte.
    ///
    /// Errors: the directory cannot be created or listed.
    pub fn open(store_dir: &Path) -> std::io::Result<BlockFiles> {
        let dir = store_dir.join(BLOCKS_DIR);
        std::fs::create_dir_all(&dir)?;
        let mut last: Option<(u32, u64)> = None;
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            let Some(num) = name
                .strip_prefix("blk")
                .and_then(|n| n.strip_suffix(".dat"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if last.is_none_or(|(n, _)| num > n) {
                last = Some((num, e.metadata()?.len()));
            }
        }
        let (num, len) = last.unwrap_or((0, 0));
        Ok(BlockFiles {
            dir,
            writer: Mutex::new(Writer {
                file: None,
                num,
                len,
                dirty: false,
            }),
            readers: Mutex::default(),
        })
    }

    /// Path of file `num`.
    pub fn path(&self, num: u32) -> PathBuf {
        self.dir.join(file_name(num))
    }

    /// Appends a record holding `bytes` (a block's encoding) and returns its position. The
    /// bytes are in the file (the page cache) when this returns; [`BlockFiles::sync`] makes
    /// them durable.
    ///
    /// Errors: the file cannot be opened or written (disk full), or the block is over 4 GiB.
    pub fn append(&self, bytes: &[u8]) -> std::io::Result<BlockPos> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| std::io::Error::other("a block of 4 GiB or more"))?;
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let record = RECORD_HEADER + len as u64;
        if w.len > 0 && w.len + record > MAX_FILE_BYTES {
            if let (Some(f), true) = (&w.file, w.dirty) {
                f.sync_data()?;
            }
            w.file = None;
            w.num += 1;
            w.len = 0;
            w.dirty = false;
        }
        if w.file.is_none() {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(w.num))?;
            w.len = f.metadata()?.len();
            w.file = Some(f);
        }
        let offset = w.len;
        let mut header = [0u8; RECORD_HEADER as usize];
        header[..4].copy_from_slice(MAGIC);
        header[4..].copy_from_slice(&len.to_le_bytes());
        // The header, then the block as it is (no copy); appends are serialised by the lock.
        let written = w
            .file
            .as_mut()
            .map(|f| f.write_all(&header).and_then(|()| f.write_all(bytes)));
        w.dirty = true;
        if let Some(Err(e)) = written {
            // A part may have been written: the end is wherever the file now ends.
            w.file = None;
            return Err(e);
        }
        w.len += record;
        Ok(BlockPos {
            file: w.num,
            offset,
            len,
            crc: crc32fast::hash(bytes),
        })
    }

    /// Makes every appended record durable (`fdatasync` of the file being appended to; a
    /// file left behind was synced when it was).
    ///
    /// Errors: the sync failed.
    pub fn sync(&self) -> std::io::Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(f), true) = (&w.file, w.dirty) {
            f.sync_data()?;
            w.dirty = false;
        }
        Ok(())
    }

    /// Reads the block bytes at `pos`, checking the record's magic, length and CRC-32.
    ///
    /// Errors: [`ReadError::Damaged`] naming the file and offset; [`ReadError::Io`].
    pub fn read(&self, pos: &BlockPos) -> Result<Vec<u8>, ReadError> {
        let path = self.path(pos.file);
        let at = |what: &str| {
            ReadError::Damaged(format!(
                "block file {} at offset {}: {what}",
                path.display(),
                pos.offset
            ))
        };
        let file = {
            let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            match readers.get(&pos.file) {
                Some(f) => f.clone(),
                None => {
                    let f = match File::open(&path) {
                        Ok(f) => Arc::new(f),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Err(at("the file is missing"))
                        }
                        Err(e) => return Err(ReadError::Io(path, e)),
                    };
                    readers.insert(pos.file, f.clone());
                    f
                }
            }
        };
        // A damaged position must not size an allocation beyond the file.
        let end = pos.offset.saturating_add(RECORD_HEADER + pos.len as u64);
        match file.metadata() {
            Ok(m) if m.len() < end => return Err(at("the file ends inside the record")),
            Ok(_) => {}
            Err(e) => return Err(ReadError::Io(path, e)),
        }
        let mut buf = vec![0u8; (RECORD_HEADER + pos.len as u64) as usize];
        match file.read_exact_at(&mut buf, pos.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(at("the file ends inside the record"))
            }
            Err(e) => return Err(ReadError::Io(path, e)),
        }
        if &buf[..4] != MAGIC || buf[4..8] != pos.len.to_le_bytes() {
            return Err(at("no record of the indexed length starts here"));
        }
        let bytes = buf.split_off(RECORD_HEADER as usize);
        if crc32fast::hash(&bytes) != pos.crc {
            return Err(at("the record's checksum does not match"));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_roll_over_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlockFiles::open(dir.path()).unwrap();
        let a = files.append(b"first block").unwrap();
        let b = files.append(&[7u8; 1000]).unwrap();
        files.sync().unwrap();
        assert_eq!((a.file, a.offset, b.offset), (0, 0, 8 + 11));
        assert_eq!(files.read(&a).unwrap(), b"first block");
        assert_eq!(files.read(&b).unwrap(), vec![7u8; 1000]);
        // Reopened: appends continue after the last byte.
        drop(files);
        let files = BlockFiles::open(dir.path()).unwrap();
        let c = files.append(b"third").unwrap();
        assert_eq!((c.file, c.offset), (0, 8 + 11 + 8 + 1000));
        assert_eq!(files.read(&a).unwrap(), b"first block");
        // A wrong length, a flipped byte, a cut file, a missing file: damage, named.
        let damaged = |r: Result<Vec<u8>, ReadError>| match r {
            Err(ReadError::Damaged(what)) => what,
            other => panic!("{other:?}"),
        };
        assert!(damaged(files.read(&BlockPos { len: 10, ..a })).contains("no record"));
        let path = files.path(0);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8 + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let files = BlockFiles::open(dir.path()).unwrap();
        assert!(damaged(files.read(&a)).contains("checksum"));
        assert_eq!(files.read(&b).unwrap(), vec![7u8; 1000]);
        std::fs::write(&path, &bytes[..30]).unwrap();
        assert!(damaged(files.read(&b)).contains("ends inside"));
        assert!(damaged(files.read(&BlockPos { file: 9, ..a })).contains("missing"));
    }

    #[test]
    fn a_full_file_hands_over_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let files = BlockFiles::open(dir.path()).unwrap();
        files.writer.lock().unwrap().len = MAX_FILE_BYTES - 10;
        let p = files.append(b"does not fit").unwrap();
        assert_eq!((p.file, p.offset), (1, 0));
        assert_eq!(files.read(&p).unwrap(), b"does not fit");
        drop(files);
        let files = BlockFiles::open(dir.path()).unwrap();
        assert_eq!(files.append(b"next").unwrap().file, 1);
    }
}
