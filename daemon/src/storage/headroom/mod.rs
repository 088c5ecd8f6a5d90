//! Disk space held in reserve for the vector store, so a full disk is found before a write is
//! committed anywhere.
//!
//! A write commits in SQLite first and in LMDB second. LMDB grows `data.mdb` by writing pages
//! past its end, so on a nearly full disk SQLite (which reuses its write-ahead log's space) can
//! commit while LMDB then cannot: the write would be durable in one store and missing from the
//! other until space is freed. To rule that out, before a write group commits in SQLite the
//! storage thread makes sure that blocks for what the group can add to `data.mdb`
//! (`vectors::growth_bound` of its journal) are allocated beyond its end (`fallocate` with `KEEP_SIZE`: the file's size is unchanged, later writes there need no
//! new blocks), keeping [`HEADROOM`] in hand so this is one system call every few megabytes of
//! writes, not one per write. When even the group's own bound cannot be allocated the group is
//! refused with `disk_full` and nothing is written.
//!
//! Where the file system cannot reserve (not Linux, or no `fallocate`), nothing is reserved and
//! the rarer failure after the SQLite commit is handled by catching up (`writer::catch_up`).

#[cfg(target_os = "linux")]
#[path = "linux.rs"]
mod platform;
#[cfg(not(target_os = "linux"))]
#[path = "other.rs"]
mod platform;

use super::StorageError;
use std::path::PathBuf;

/// Space kept allocated beyond the end of `data.mdb` when the disk has it: tens of thousands of
/// 384-dimensional vectors, so reserving is rare.
pub const HEADROOM: u64 = 32 << 20;

/// The reserve of one file.
pub struct Headroom {
    file: PathBuf,
    /// The offset up to which blocks are known to be allocated.
    reserved_end: u64,
    /// False once the file system said it cannot reserve: then nothing more is tried.
    supported: bool,
}

impl Headroom {
    /// A reserve for `file` (nothing allocated yet).
    pub fn new(file: PathBuf) -> Headroom {
        Headroom {
            file,
            reserved_end: 0,
            supported: true,
        }
    }

    /// Makes sure `bytes` past the file's end are allocated; [`StorageError::DiskFull`] when
    /// the disk cannot give them.
    pub fn reserve(&mut self, bytes: u64) -> Result<(), StorageError> {
        if !self.supported {
            return Ok(());
        }
        let size = std::fs::metadata(&self.file)
            .map_err(StorageError::io("cannot read", &self.file))?
            .len();
        if size + bytes <= self.reserved_end {
            return Ok(());
        }
        for want in [bytes.max(HEADROOM), bytes] {
            match platform::allocate(&self.file, size, want) {
                Ok(true) => {
                    self.reserved_end = size + want;
                    return Ok(());
                }
                Ok(false) => {
                    tracing::debug!(
                        file = %self.file.display(),
                        "the file system cannot reserve space; writes go on without a reserve"
                    );
                    self.supported = false;
                    return Ok(());
                }
                Err(e) if super::error::is_disk_full_io(&e) => continue,
                Err(e) => return Err(StorageError::io("cannot reserve space for", &self.file)(e)),
            }
        }
        Err(StorageError::DiskFull(format!(
            "the vector store needs room for {bytes} more bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_is_taken_once_and_then_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("data.mdb");
        std::fs::write(&file, vec![0u8; 8192]).expect("a file");
        let mut headroom = Headroom::new(file.clone());
        headroom.reserve(1 << 20).expect("reserve");
        if headroom.supported {
            assert_eq!(headroom.reserved_end, 8192 + HEADROOM);
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                let allocated = std::fs::metadata(&file).expect("stat").blocks() * 512;
                assert!(allocated >= HEADROOM, "{allocated} bytes allocated");
            }
        }
        assert_eq!(
            std::fs::metadata(&file).expect("stat").len(),
            8192,
            "the size is kept"
        );
        headroom
            .reserve(1 << 20)
            .expect("within the reserve: nothing to do");
    }
}
