//! The files of a data directory: which ones form it, which a copy leaves out, and how creating
//! or renaming them is made durable.
//!
//! This is the one list. `release` reports it and fingerprints it, `snapshot` copies and
//! describes its store files, and `restore` accepts exactly those:
//!
//! | file | what | in a snapshot |
//! |---|---|---|
//! | `ctxd.json` | format version and creation info | yes |
//! | `text.sqlite3` | documents, metadata, FTS5, catalog, redo journal | yes |
//! | `vectors/data.mdb` | the LMDB environment of vectors | yes |
//! | `vectors/ann/data.mdb` | the ANN tier's indexes (derived, rebuilt when missing) | no |
//! | `vectors/lock.mdb`, `vectors/ann/lock.mdb` | LMDB's reader tables | never copied |

use super::{StorageError, ann, manifest, text, vectors};
use ctxd_proto::FileEntry;
use std::path::Path;

/// The files every data directory holds, and exactly the files of a snapshot besides its
/// `manifest.json`: `/`-separated, relative to the directory.
pub const STORE_FILES: [&str; 3] = [manifest::FILE_NAME, text::FILE_NAME, vectors::DATA_FILE];

/// A file a data directory may hold besides [`STORE_FILES`]: the ANN tier's index, derived data
/// a daemon rebuilds when it is missing (so a snapshot leaves it out).
pub const DERIVED_FILES: [&str; 1] = [ann::DATA_FILE];

/// Files a copy must skip: LMDB's reader tables are shared memory, meaningless in a copy.
pub const EXCLUDE: [&str; 2] = [vectors::LOCK_FILE, ann::LOCK_FILE];

/// The files of the data directory that exist now ([`STORE_FILES`] and [`DERIVED_FILES`]),
/// with their sizes, in that order. Anything else in the directory is not ctxd's and is not
/// listed.
pub fn list(data_dir: &Path) -> Result<Vec<FileEntry>, StorageError> {
    let mut files = Vec::new();
    for relative in STORE_FILES.iter().chain(&DERIVED_FILES) {
        let path = data_dir.join(relative);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => files.push(FileEntry {
                path: (*relative).to_owned(),
                bytes: meta.len(),
            }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("cannot read", path)(e)),
        }
    }
    Ok(files)
}

/// Path, size and modification time of every listed file: when any of them differs after a
/// release, the files were changed and must be verified before they are served again.
pub type Fingerprint = Vec<(String, u64, Option<std::time::SystemTime>)>;

/// The [`Fingerprint`] of the data directory now (unreadable files are simply not in it).
pub fn fingerprint(data_dir: &Path) -> Fingerprint {
    list(data_dir)
        .unwrap_or_default()
        .into_iter()
        .map(|f| {
            let modified = std::fs::metadata(data_dir.join(&f.path))
                .and_then(|m| m.modified())
                .ok();
            (f.path, f.bytes, modified)
        })
        .collect()
}

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

/// Creates the new directory `dir` for this process alone: it must not exist (so nothing put
/// there beforehand, a symbolic link say, is written through), and on Unix only the owner may
/// enter it (it holds a copy of the data).
#[cfg(unix)]
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

/// Creates the new directory `dir` (Windows: it inherits the parent's access control list).
#[cfg(windows)]
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir(dir)
}

/// Windows makes renames durable with the file's own flush; directories cannot be synced.
#[cfg(windows)]
pub(super) fn sync_dir(_dir: &Path) -> Result<(), StorageError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relative_paths_are_those_the_stores_open() {
        let root = Path::new("/d");
        let relative = |path: &str| root.join(path);
        assert_eq!(
            relative(vectors::DATA_FILE),
            root.join(vectors::DIR_NAME).join("data.mdb")
        );
        assert_eq!(
            relative(vectors::LOCK_FILE),
            root.join(vectors::DIR_NAME).join("lock.mdb")
        );
        assert_eq!(relative(ann::DATA_FILE), ann::dir(root).join("data.mdb"));
        assert_eq!(relative(ann::LOCK_FILE), ann::dir(root).join("lock.mdb"));
    }
}
