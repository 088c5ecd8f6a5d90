//! Linux: `fallocate(FALLOC_FL_KEEP_SIZE)`.

use rustix::fs::{FallocateFlags, fallocate};
use rustix::io::Errno;
use std::io;
use std::path::Path;

/// Allocates `len` bytes from `offset` without changing the file's size. `Ok(false)` when the
/// file system does not support it.
pub fn allocate(file: &Path, offset: u64, len: u64) -> io::Result<bool> {
    // Opened for this call only: the storage thread holds no descriptor of its own on the
    // file, so a release has nothing extra to close.
    let handle = std::fs::OpenOptions::new().write(true).open(file)?;
    match fallocate(&handle, FallocateFlags::KEEP_SIZE, offset, len) {
        Ok(()) => Ok(true),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
