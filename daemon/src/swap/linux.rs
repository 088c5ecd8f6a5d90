//! Linux: `renameat2(RENAME_EXCHANGE)` swaps two paths atomically.

use rustix::fs::{CWD, RenameFlags, renameat_with};
use std::io;
use std::path::Path;

/// Swaps `a` and `b` (both must exist, on the same file system) in one atomic step.
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
}
