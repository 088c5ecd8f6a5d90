//! Elsewhere: three renames through a temporary name. Not atomic: a crash in between leaves
//! both directories under their temporary names, which the error of a later restore names.

use std::io;
use std::path::Path;

/// Swaps `a` and `b` (both must exist, on the same file system).
pub fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    let parked = a.with_extension("ctxd-swap");
    std::fs::rename(a, &parked)?;
    std::fs::rename(b, a)?;
    std::fs::rename(&parked, b)
}
