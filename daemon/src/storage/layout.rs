//! The files of a data directory: which ones it holds, and how creating or renaming them is
//! made durable.

use super::{StorageError, manifest};
use std::path::Path;

/// Whether `data_dir` is a new, empty directory. A non-empty directory without `ctxd.json` is
/// refused, so pointing `--data` at the wrong directory never scatters files into it.
pub(super) fn is_fresh(data_dir: &Path) -> Result<bool, StorageError> {
    let mut entries =
        std::fs::read_dir(data_dir).map_err(StorageError::io("cannot read", data_dir))?;
    if entries.next().is_none() {
        return Ok(true);
    }
    if data_dir.join(manifest::FILE_NAME).exists() {
        return Ok(false);
    }
    Err(StorageError::Format {
        path: data_dir.to_owned(),
        message: format!(
            "not empty and holds no {}: refusing to use it as a data directory",
            manifest::FILE_NAME
        ),
    })
}

/// Makes a rename or creation inside `dir` durable.
#[cfg(unix)]
pub(super) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("cannot sync", dir))
}

/// Windows makes renames durable with the file's own flush; directories cannot be synced.
#[cfg(windows)]
pub(super) fn sync_dir(_dir: &Path) -> Result<(), StorageError> {
    Ok(())
}
