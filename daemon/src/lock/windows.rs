//! Windows lock locations.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The machine-wide directory of data directory locks: `%ProgramData%\ctxd\locks`.
pub(super) fn lock_dir() -> PathBuf {
    let base = std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
    base.join("ctxd").join("locks")
}

pub(super) fn ensure_lock_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

pub(super) fn open_lock_file(path: &Path) -> io::Result<File> {
    super::open_rw_or_ro(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
    )
}

/// A lock file held open is the file its path names: Windows does not delete open files that
/// were not opened for sharing deletion, and ctxd never does.
pub(super) fn still_names(_path: &Path, _file: &File) -> io::Result<bool> {
    Ok(true)
}

/// Windows keeps its lock files (see the module documentation).
pub(super) fn remove_held(_path: &Path) {}
