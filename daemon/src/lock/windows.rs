//! Windows lock files (the directory is `ctxd_client::owner::lock_dir`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

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
