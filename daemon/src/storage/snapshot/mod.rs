//! `snapshot`: a consistent, verified copy of the data directory, taken while serving; and
//! the other side, a snapshot checked and staged for `ctxd restore` ([`stage`]).
//!
//! Writes are never held up by the copy:
//!
//! 1. the snapshot takes a *hold* on the redo journal at the current generation G₀: the storage
//!    thread keeps every journal row newer than the oldest hold (each snapshot has its own, so
//!    one finishing never releases another's rows);
//! 2. LMDB is copied compacted — from its own read transaction, at some generation Gₗ ≥ G₀;
//! 3. SQLite is copied with `VACUUM INTO` from a read-only connection, at some Gₛ ≥ Gₗ: the copy
//!    holds the journal rows for (G₀, Gₛ];
//! 4. the hold is dropped, and the copy is opened as a data directory: exactly as after a crash,
//!    the journal replay brings its LMDB to Gₛ, so both stores hold one generation;
//! 5. the opened copy must pass the cross-store checks of `ctxd check` — every document that
//!    has a vector has it and no other vector exists, every count matches, both stores record
//!    the generation, nothing waits in the journal — and every vector must read back with its
//!    dimension; otherwise the snapshot fails with `snapshot_failed` and nothing is left;
//! 6. `manifest.json` ([`manifest`]) records the generation, versions, sizes and SHA-256; the
//!    directory is written under a temporary name and fsynced; then it is published: renamed
//!    into place, or written as one tar ([`archive`]) to a temporary file that is fsynced and
//!    renamed into place (the directory removed), or streamed down the connection
//!    (`snapshot_stream`, the directory removed when the stream ends, however it ends).
//!
//! With `keep`, the snapshot is a new entry `ctxd-<UTC time>-g<generation>` (or `.tar`) of a
//! directory of snapshots, and the oldest beyond `keep` are removed ([`retention`]).
//!
//! At most [`MAX_CONCURRENT`] snapshots copy at once; more wait for a turn.

pub mod archive;
pub mod manifest;
pub mod retention;
pub mod stage;

use super::owner::Storage;
use super::reader::ReadLease;
use super::store::Store;
use super::{StorageError, check, layout, text, vectors};
use ctxd_proto::{Snapshot, SnapshotFile, SnapshotFormat, SnapshotResult, SnapshotStreamResult};
use manifest::Manifest;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Snapshots that copy at the same time. Each reads both stores whole and writes a copy; a few
/// in parallel keep a scheduled and a manual one from waiting on each other, more only compete
/// for the same disk.
pub const MAX_CONCURRENT: usize = 4;

/// Takes the snapshot `params` asks for of `data_dir` (served by `store`): a directory or a
/// tar at `dest`, or with `keep` a new entry of the retention directory `dest`
/// ([`retention`]).
pub(super) async fn take(
    store: &Store,
    params: &Snapshot,
    data_dir: PathBuf,
) -> Result<SnapshotResult, StorageError> {
    let format = params.format.unwrap_or_default();
    let tmp_dir = match &params.tmp_dir {
        Some(dir) => Some(check_directory(
            Path::new(dir),
            &data_dir,
            "temporary directory",
        )?),
        None => None,
    };
    let (parent, final_name, stamp) = match params.keep {
        None => {
            let dest = check_destination(Path::new(&params.dest), &data_dir)?;
            let name = file_name(&dest);
            let parent = dest.parent().unwrap_or(Path::new("/")).to_owned();
            (parent, Some(name), None)
        }
        Some(0) => {
            return Err(StorageError::Snapshot(
                "`keep` must be at least 1 (the new snapshot is one of those kept)".to_owned(),
            ));
        }
        Some(_) => {
            let dir = check_directory(Path::new(&params.dest), &data_dir, "snapshot directory")?;
            (
                dir,
                None,
                Some(retention::stamp(crate::clock::unix_millis())),
            )
        }
    };
    let hidden = final_name
        .clone()
        .unwrap_or_else(|| format!("ctxd-{}", stamp.as_deref().unwrap_or("")));
    // A directory is sealed where it is published (one rename); a tar's directory is only
    // temporary, and goes where the caller says.
    let copy_parent = match format {
        SnapshotFormat::Dir => parent.clone(),
        SnapshotFormat::Tar => tmp_dir.unwrap_or_else(|| parent.clone()),
    };
    let sealed = seal(store, partial_path(&copy_parent, &hidden), data_dir).await?;
    let name = match (&final_name, &stamp) {
        (Some(name), _) => name.clone(),
        (None, stamp) => retention::name(stamp.as_deref().unwrap_or(""), sealed.generation, format),
    };
    let dest = parent.join(&name);
    let (generation, files) = (sealed.generation, sealed.files.clone());
    let published = dest.clone();
    tokio::task::spawn_blocking(move || match format {
        SnapshotFormat::Dir => sealed.publish_dir(&published),
        SnapshotFormat::Tar => sealed.publish_tar(&published),
    })
    .await
    .map_err(|e| StorageError::Snapshot(format!("the snapshot task failed: {e}")))?
    .map_err(|e| StorageError::Snapshot(e.to_string()))?;
    tracing::info!(path = %dest.display(), generation, "snapshot written");
    if let Some(keep) = params.keep {
        let (dir, name) = (parent.clone(), name.clone());
        let pruned =
            tokio::task::spawn_blocking(move || retention::prune(&dir, keep as usize, &name))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match pruned {
            Ok(removed) => {
                for old in removed {
                    tracing::info!(path = %parent.join(old).display(), "old snapshot removed (keep {keep})");
                }
            }
            // The new snapshot is written and valid: failing to remove an old one is said, not
            // a reason to report the snapshot as failed.
            Err(e) => tracing::warn!(dir = %parent.display(), "cannot remove old snapshots: {e}"),
        }
    }
    Ok(SnapshotResult {
        path: dest.display().to_string(),
        generation,
        files,
    })
}

/// Takes a snapshot into a temporary directory of `tmp_dir` (default: beside the data
/// directory) for streaming as a tar ([`Streamable::write_to`]); the directory goes when the
/// [`Streamable`] is dropped.
pub(super) async fn take_for_stream(
    store: &Store,
    tmp_dir: Option<&str>,
    data_dir: PathBuf,
) -> Result<Streamable, StorageError> {
    let parent = match tmp_dir {
        Some(dir) => check_directory(Path::new(dir), &data_dir, "temporary directory")?,
        None => default_stream_dir(&data_dir)?,
    };
    let sealed = seal(store, partial_path(&parent, "ctxd-stream"), data_dir).await?;
    let manifest_len = fs::metadata(sealed.dir.path().join(manifest::FILE_NAME))
        .map_err(StorageError::io("cannot read", sealed.dir.path()))?
        .len();
    Ok(Streamable {
        bytes: archive::archive_len(manifest_len, &sealed.manifest),
        sealed,
    })
}

/// Where a stream's copy is made without `tmp_dir`: systemd's `$CACHE_DIRECTORY` (the unit's
/// `CacheDirectory=`, writable under `ProtectSystem=strict`), else beside the data directory
/// (the same file system, which holds the data already), else the system's temporary
/// directory: the first that exists and is not inside the data directory.
fn default_stream_dir(data_dir: &Path) -> Result<PathBuf, StorageError> {
    let cache = std::env::var_os("CACHE_DIRECTORY")
        .and_then(|v| std::env::split_paths(&v).next())
        .filter(|p| p.is_absolute());
    let beside = data_dir.parent().map(Path::to_owned);
    let candidates = cache
        .into_iter()
        .chain(beside)
        .chain([std::env::temp_dir()]);
    for candidate in candidates {
        if let Ok(dir) = check_directory(&candidate, data_dir, "temporary directory")
            && writable(&dir)
        {
            return Ok(dir);
        }
    }
    Err(StorageError::Snapshot(
        "no writable directory for the stream's temporary copy: give `tmp_dir` (`ctxd snapshot - \
         --tmp DIR`)"
            .to_owned(),
    ))
}

/// Whether this process can create entries in `dir` (tried, not guessed from permissions: a
/// read-only mount or a sandbox says no only when asked).
fn writable(dir: &Path) -> bool {
    let probe = partial_path(dir, "ctxd-probe");
    let created = layout::create_private_dir(&probe).is_ok();
    if created {
        let _ = fs::remove_dir(&probe);
    }
    created
}

/// A sealed snapshot waiting to be streamed.
pub struct Streamable {
    sealed: Sealed,
    bytes: u64,
}

impl Streamable {
    /// What the stream's reply line says.
    pub fn result(&self) -> SnapshotStreamResult {
        SnapshotStreamResult {
            generation: self.sealed.generation,
            files: self.sealed.files.clone(),
            bytes: self.bytes,
        }
    }

    /// Writes the tar (blocking), never more than the reply announced; then the temporary
    /// directory is removed, as it is when this fails half way (the reader went away).
    pub fn write_to(self, out: impl std::io::Write) -> std::io::Result<u64> {
        let limited = archive::Limited {
            inner: out,
            left: self.bytes,
        };
        let written = archive::write(self.sealed.dir.path(), &self.sealed.manifest, limited)?;
        if written != self.bytes {
            return Err(std::io::Error::other(format!(
                "wrote {written} bytes of tar, announced {}",
                self.bytes
            )));
        }
        Ok(written)
    }
}

/// A unique temporary name in `parent` for the snapshot that will be `name`: two snapshots
/// never share one (the second to publish to one destination fails, the first is untouched),
/// and it cannot be guessed ahead (it is created exclusively anyway: [`Partial::create`]).
fn partial_path(parent: &Path, name: &str) -> PathBuf {
    use std::hash::BuildHasher;
    static SNAPSHOTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SNAPSHOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // RandomState's keys come from the OS's random source.
    let random =
        std::collections::hash_map::RandomState::new().hash_one((n, crate::clock::unix_millis()));
    parent.join(format!(
        ".{name}.partial-{}-{n}-{random:016x}",
        std::process::id()
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A copied, verified snapshot with its manifest, in its temporary directory, and its turn
/// among the [`MAX_CONCURRENT`] (held until it is published or its stream ends, so slow
/// readers cannot pile up copies on the disk).
struct Sealed {
    dir: Partial,
    generation: u64,
    files: Vec<SnapshotFile>,
    manifest: Manifest,
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl Sealed {
    /// Renames the directory into place (`dest` must not exist).
    fn publish_dir(mut self, dest: &Path) -> Result<(), StorageError> {
        let tmp = self.dir.path().to_owned();
        if fs::symlink_metadata(dest).is_ok() {
            return Err(StorageError::Snapshot(format!(
                "snapshot destination {}: already exists",
                dest.display()
            )));
        }
        fs::rename(&tmp, dest)
            .map_err(StorageError::io("cannot rename the snapshot into", dest))?;
        self.dir.0 = None;
        layout::sync_dir(dest.parent().unwrap_or(Path::new("/")))
    }

    /// Writes the tar to a temporary file beside `dest`, makes it durable and renames it into
    /// place; the snapshot directory is removed either way.
    fn publish_tar(self, dest: &Path) -> Result<(), StorageError> {
        let name = file_name(dest);
        let parent = dest.parent().unwrap_or(Path::new("/"));
        let tmp = Partial(Some(partial_path(parent, &name)));
        let write = || -> std::io::Result<()> {
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(tmp.path())?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            archive::write(self.dir.path(), &self.manifest, &mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
        };
        write().map_err(StorageError::io("cannot write the snapshot", dest))?;
        if fs::symlink_metadata(dest).is_ok() {
            return Err(StorageError::Snapshot(format!(
                "snapshot destination {}: already exists",
                dest.display()
            )));
        }
        fs::rename(tmp.path(), dest)
            .map_err(StorageError::io("cannot rename the snapshot into", dest))?;
        let mut tmp = tmp;
        tmp.0 = None;
        layout::sync_dir(parent)
    }
}

/// Steps 1–6 of the module documentation into the new directory `tmp`, short of the rename.
///
/// The copy runs on one blocking thread that owns the temporary directory, the journal hold
/// and the read lease: if this future is dropped (a shutdown abandoning it), the copy still
/// ends on that thread, and the directory is removed there, after the last file of it was
/// written, never under it.
async fn seal(store: &Store, tmp: PathBuf, data_dir: PathBuf) -> Result<Sealed, StorageError> {
    let turn = store.snapshot_turn().await?;
    // The hold first, then the read lease (a release or shutdown waits for the copy to finish):
    // the storage thread answers the hold, and it could not while closing, which waits for
    // every lease.
    let hold = store.hold_journal().await?;
    let lease = store.enter_read().await?;
    let sealed = tokio::task::spawn_blocking(move || {
        let dir = Partial::create(tmp)?;
        let copied = copy_stores(lease, &data_dir, dir.path());
        drop(hold);
        let generation = copied?;
        let (files, manifest) = finish(dir.path(), generation)?;
        Ok(Sealed {
            dir,
            generation,
            files,
            manifest,
            _turn: turn,
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(StorageError::Snapshot(format!(
            "the snapshot task failed: {e}"
        )))
    });
    sealed.map_err(|e| match e {
        StorageError::Snapshot(_) | StorageError::Invalid(_) | StorageError::Closed => e,
        other => StorageError::Snapshot(other.to_string()),
    })
}

/// A snapshot's temporary directory (or file): removed when dropped unless it was published
/// (renamed into place, `None`), so a failed or abandoned snapshot leaves nothing behind.
struct Partial(Option<PathBuf>);

impl Partial {
    /// Creates `path` as a new private directory (see [`layout::create_private_dir`]).
    fn create(path: PathBuf) -> Result<Partial, StorageError> {
        layout::create_private_dir(&path).map_err(StorageError::io("cannot create", &path))?;
        Ok(Partial(Some(path)))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let removed = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = removed
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), "cannot remove a snapshot's temporary copy: {e}");
            }
        }
    }
}

/// Checks a directory the request names: absolute, existing, a directory, not inside the data
/// directory; returns it canonical.
fn check_directory(dir: &Path, data_dir: &Path, what: &str) -> Result<PathBuf, StorageError> {
    let invalid = |why: &str| StorageError::Snapshot(format!("{what} {}: {why}", dir.display()));
    if !dir.is_absolute() {
        return Err(invalid("must be an absolute path"));
    }
    if dir.to_string_lossy().chars().any(char::is_control) {
        return Err(invalid("holds a control character"));
    }
    let canonical = fs::canonicalize(dir).map_err(|e| invalid(&e.to_string()))?;
    if !canonical.is_dir() {
        return Err(invalid("is not a directory"));
    }
    if canonical.starts_with(data_dir) {
        return Err(invalid("is inside the data directory"));
    }
    Ok(canonical)
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
    if dest.to_string_lossy().chars().any(char::is_control) {
        return Err(invalid("holds a control character"));
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

/// Copies both stores of the open data directory into `tmp` (steps 2–3): returns SQLite's
/// generation in the copy. LMDB first, so the copy's SQLite is never behind its LMDB (the
/// journal held since before fills the gap); then the lease counts for SQLite only, so a pause
/// to grow a map waits for the LMDB copy but not for the text copy.
fn copy_stores(lease: ReadLease, data_dir: &Path, tmp: &Path) -> Result<u64, StorageError> {
    // `tmp` was just created, empty, for this copy alone.
    let vectors_dir = tmp.join(vectors::DIR_NAME);
    fs::create_dir(&vectors_dir).map_err(StorageError::io("cannot create", &vectors_dir))?;
    lease
        .vectors
        .copy_compacted(&tmp.join(vectors::DATA_FILE))?;
    let lease = lease.into_text_only();
    let conn = lease.spare()?;
    let generation = text::copy_into(&conn, &tmp.join(text::FILE_NAME))?;
    let config = data_dir.join(super::manifest::FILE_NAME);
    fs::copy(&config, tmp.join(super::manifest::FILE_NAME))
        .map_err(StorageError::io("cannot copy", &config))?;
    Ok(generation)
}

/// Opens the copy (replaying its journal), checks it, describes it and writes its manifest
/// (steps 4–6, short of the rename).
fn finish(tmp: &Path, generation: u64) -> Result<(Vec<SnapshotFile>, Manifest), StorageError> {
    // Without the ANN tier: a snapshot leaves the derived ANN index out (the daemon that serves
    // it rebuilds it), and proving the copy opens needs no index.
    let options = super::StoreOptions {
        read_threads: 0,
        ..super::StoreOptions::default()
    };
    let opened = Storage::open(tmp, options, Default::default())?;
    let held = opened.side.generation();
    let problems = check::cross_store(opened.text.conn(), &opened.vectors);
    opened.close()?;
    let problems = problems?;
    if !problems.is_empty() {
        return Err(StorageError::Snapshot(format!(
            "the copy fails verification, so it was not written: {}",
            problems.join("; ")
        )));
    }
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
    let manifest = Manifest {
        format: read_format(tmp)?,
        generation,
        created_at: crate::clock::unix_millis(),
        ctxd_version: env!("CARGO_PKG_VERSION").to_owned(),
        sqlite_version: rusqlite::version().to_owned(),
        files: files.clone(),
    };
    manifest
        .write(tmp)
        .map_err(StorageError::io("cannot write the manifest in", tmp))?;
    layout::sync_dir(&tmp.join(vectors::DIR_NAME))?;
    layout::sync_dir(tmp)?;
    Ok((files, manifest))
}

/// Every store file with size and SHA-256 (each file is fsynced on the way).
fn describe(dir: &Path) -> Result<Vec<SnapshotFile>, StorageError> {
    let mut files = Vec::new();
    for relative in layout::STORE_FILES {
        let path = dir.join(relative);
        let file = fs::File::open(&path).map_err(StorageError::io("cannot read", &path))?;
        file.sync_all()
            .map_err(StorageError::io("cannot sync", &path))?;
        let (bytes, sha256) =
            sha256(file, std::io::sink()).map_err(StorageError::io("cannot read", &path))?;
        files.push(SnapshotFile {
            path: relative.to_owned(),
            bytes,
            sha256,
        });
    }
    Ok(files)
}

/// Reads `source` to its end, writing what it reads to `sink`: its length and SHA-256 (lowercase
/// hex, as the manifest records it).
pub(super) fn sha256(
    mut source: impl Read,
    mut sink: impl std::io::Write,
) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        sink.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok((bytes, hex))
}

fn read_format(dir: &Path) -> Result<u32, StorageError> {
    Ok(super::manifest::load_or_create(dir, false)?.format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;
    use crate::storage::owner::Storage;
    use crate::storage::reader::ReadGate;
    use std::sync::Arc;

    /// A copy that does not pass the cross-store checks is not published: the snapshot fails
    /// with `snapshot_failed` and leaves nothing at the destination.
    #[test]
    fn a_copy_that_fails_verification_is_not_published() {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        fs::create_dir(&data).expect("mkdir");
        let options = StoreOptions {
            read_threads: 1,
            ..StoreOptions::default()
        };
        let gate: Arc<ReadGate> = Arc::default();
        let storage = Storage::open(&data, options, Arc::clone(&gate)).expect("open");
        gate.open(Arc::clone(&storage.side));
        let lease = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(gate.enter())
            .expect("a lease");
        let tmp = dir.path().join(".snap.partial");
        layout::create_private_dir(&tmp).expect("the copy's directory");
        let generation = copy_stores(lease, &data, &tmp).expect("copy");
        storage.close().expect("close");
        // The copy claims a document with a vector that its vector store does not hold (what
        // pruning a journal row under a snapshot once produced).
        let conn = rusqlite::Connection::open(tmp.join(text::FILE_NAME)).expect("open the copy");
        conn.execute_batch(
            "INSERT INTO collections (id, name, dimension, distance, tokenizer, count, created_at)
                 VALUES (1, 'c', 2, 'cosine', 'porter', 1, 0);
             CREATE VIRTUAL TABLE fts_1 USING fts5(text, tokenize = 'porter unicode61');
             INSERT INTO documents (collection, id, text, metadata, has_vector)
                 VALUES (1, 'lost', NULL, NULL, 1);",
        )
        .expect("tamper");
        drop(conn);
        let refused = finish(&tmp, generation).expect_err("not published");
        assert!(
            matches!(&refused, StorageError::Snapshot(m) if m.contains("lack their vector")),
            "{refused}"
        );
        assert!(
            !tmp.join(manifest::FILE_NAME).exists(),
            "no manifest: the copy was never sealed"
        );
    }
}
