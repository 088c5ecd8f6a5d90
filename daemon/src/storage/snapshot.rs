//! `snapshot`: a consistent, verified copy of the data directory, taken while serving.
//!
//! Writes are never held up by the copy:
//!
//! 1. the storage thread is asked to keep the redo journal's rows newer than the current
//!    generation G₀ (it normally prunes them once LMDB has them);
//! 2. LMDB is copied compacted — from its own read transaction, at some generation Gₗ ≥ G₀;
//! 3. SQLite is copied with `VACUUM INTO` from a read-only connection, at some Gₛ ≥ Gₗ: the copy
//!    holds the journal rows for (G₀, Gₛ];
//! 4. the copy is opened as a data directory: exactly as after a crash, the journal replay
//!    brings its LMDB to Gₛ, so both stores of the snapshot hold one generation — and opening
//!    it proves it is a valid data directory;
//! 5. `manifest.json` records the generation, versions, sizes and SHA-256 of every file; the
//!    directory is written under a temporary name, fsynced, and renamed into place.

use super::manifest::{self, Manifest};
use super::owner::Storage;
use super::reader::ReadGate;
use super::{StorageError, layout, text, vectors};
use ctxd_proto::SnapshotFile;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The snapshot's own description, beside the data files.
pub const MANIFEST: &str = "manifest.json";

/// What `manifest.json` says.
#[derive(Debug, Serialize)]
struct SnapshotManifest<'a> {
    /// The data directory format (as in `ctxd.json`).
    format: u32,
    /// The generation both stores hold.
    generation: u64,
    /// When the snapshot was taken, Unix milliseconds.
    created_at: u64,
    /// The ctxd that wrote it.
    ctxd_version: &'a str,
    /// The SQLite library that wrote `text.sqlite3`.
    sqlite_version: &'a str,
    /// Every data file, with its size and checksum.
    files: &'a [SnapshotFile],
}

/// Checks `dest`: absolute, not existing, its parent existing, not inside the data directory.
/// A refusal is `snapshot_failed` like every other reason a snapshot was not written, so a
/// backup script has one code to handle.
pub fn check_destination(dest: &Path, data_dir: &Path) -> Result<PathBuf, StorageError> {
    let invalid = |why: &str| {
        StorageError::Snapshot(format!("snapshot destination {}: {why}", dest.display()))
    };
    if !dest.is_absolute() {
        return Err(invalid("must be an absolute path"));
    }
    if fs::symlink_metadata(dest).is_ok() {
        return Err(invalid("already exists"));
    }
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Err(invalid("has no parent directory"));
    };
    let parent =
        fs::canonicalize(parent).map_err(|e| invalid(&format!("parent directory: {e}")))?;
    if parent.starts_with(data_dir) {
        return Err(invalid("is inside the data directory"));
    }
    Ok(parent.join(name))
}

/// Copies both stores into `tmp` (steps 2–3): returns SQLite's generation in the copy.
pub fn copy_stores(
    vectors: &vectors::VectorReader,
    text_path: &Path,
    data_dir: &Path,
    tmp: &Path,
) -> Result<u64, StorageError> {
    let vectors_dir = tmp.join(vectors::DIR_NAME);
    fs::create_dir_all(&vectors_dir).map_err(StorageError::io("cannot create", &vectors_dir))?;
    vectors.copy_compacted(&tmp.join(vectors::DATA_FILE))?;
    let generation = text::copy_into(text_path, &tmp.join(text::FILE_NAME))?;
    let manifest_path = data_dir.join(manifest::FILE_NAME);
    fs::copy(&manifest_path, tmp.join(manifest::FILE_NAME))
        .map_err(StorageError::io("cannot copy", &manifest_path))?;
    Ok(generation)
}

/// Opens the copy (replaying its journal), checks its generation, describes it, and renames it
/// into place (steps 4–5).
pub fn finish(tmp: &Path, dest: &Path, generation: u64) -> Result<Vec<SnapshotFile>, StorageError> {
    // Without the ANN tier: a snapshot leaves the derived ANN index out (the daemon that serves
    // it rebuilds it), and proving the copy opens needs no index.
    let opened = Storage::open(tmp, super::StoreOptions::default())?;
    let held = opened.side.generation();
    opened.close(&ReadGate::default())?;
    if held != generation {
        return Err(StorageError::Snapshot(format!(
            "the copy opened at generation {held}, expected {generation}"
        )));
    }
    // LMDB's reader table is recreated by whoever opens the copy.
    let lock = tmp.join(vectors::LOCK_FILE);
    if lock.exists() {
        fs::remove_file(&lock).map_err(StorageError::io("cannot remove", &lock))?;
    }
    let files = describe(tmp)?;
    let format = read_format(tmp)?;
    let manifest = SnapshotManifest {
        format,
        generation,
        created_at: crate::clock::unix_millis(),
        ctxd_version: env!("CARGO_PKG_VERSION"),
        sqlite_version: rusqlite::version(),
        files: &files,
    };
    let path = tmp.join(MANIFEST);
    let mut bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| StorageError::Snapshot(format!("cannot encode the manifest: {e}")))?;
    bytes.push(b'\n');
    let mut file = fs::File::create(&path).map_err(StorageError::io("cannot create", &path))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(StorageError::io("cannot write", &path))?;
    layout::sync_dir(&tmp.join(vectors::DIR_NAME))?;
    layout::sync_dir(tmp)?;
    fs::rename(tmp, dest).map_err(StorageError::io("cannot rename the snapshot into", dest))?;
    layout::sync_dir(dest.parent().unwrap_or(Path::new("/")))?;
    Ok(files)
}

/// Every file with size and SHA-256 (each file is fsynced on the way).
fn describe(dir: &Path) -> Result<Vec<SnapshotFile>, StorageError> {
    let mut files = Vec::new();
    for relative in layout::STORE_FILES {
        let path = dir.join(relative);
        let mut file = fs::File::open(&path).map_err(StorageError::io("cannot read", &path))?;
        file.sync_all()
            .map_err(StorageError::io("cannot sync", &path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(StorageError::io("cannot read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            bytes += n as u64;
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        files.push(SnapshotFile {
            path: relative.to_owned(),
            bytes,
            sha256,
        });
    }
    Ok(files)
}

fn read_format(dir: &Path) -> Result<u32, StorageError> {
    let path = dir.join(manifest::FILE_NAME);
    let bytes = fs::read(&path).map_err(StorageError::io("cannot read", &path))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| StorageError::Snapshot(format!("{}: {e}", path.display())))?;
    Ok(manifest.format)
}
