//! Staging a snapshot for `ctxd restore` (and `ctxd snapshot verify`): its store files copied
//! into a new directory, each checked against the manifest while it is copied (regular file,
//! not a symbolic link, the recorded size and SHA-256), then the copy opened and checked as a
//! data directory. The snapshot is a directory ([`stage`]) or a tar stream of the layout of
//! [`archive`](super::archive) ([`stage_archive`]). Nothing else of the snapshot is read, and
//! nothing is written outside the staging directory. Any failure removes what was staged and
//! says which rule failed.

use super::super::catalog::Catalog;
use super::super::text::{self, TextStore};
use super::super::vectors::{self, VectorStore};
use super::super::{check, manifest as data_manifest};
use super::manifest::{self as snapshot_manifest, Manifest};
use ctxd_proto::SnapshotFile;
use std::fs;
use std::io::Read;
use std::path::Path;

/// What a staged snapshot holds, for the restore's report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    /// The generation both stores hold.
    pub generation: u64,
    /// Number of collections.
    pub collections: u64,
    /// Number of documents over all collections.
    pub documents: u64,
}

/// Copies the files `manifest` lists from `snapshot` into `staged` (a new directory beside the
/// data directory, on its file system), verifying each, and checks the copy as a data
/// directory. On failure `staged` is removed.
pub fn stage(snapshot: &Path, manifest: &Manifest, staged: &Path) -> Result<Staged, String> {
    // A new directory: anything already there is not ours to replace (or remove).
    create(staged)?;
    let result = copy_verified(snapshot, manifest, staged).and_then(|()| verify(staged, manifest));
    if result.is_err() {
        let _ = fs::remove_dir_all(staged);
    }
    result
}

/// Reads a snapshot tar stream from `archive` into `staged` (a new directory), verifying each
/// file against the manifest that leads the stream as it streams past, and checks the copy as
/// a data directory. Returns the manifest with what the copy holds. On failure `staged` is
/// removed: a damaged, truncated or foreign stream changes nothing.
pub fn stage_archive(archive: impl Read, staged: &Path) -> Result<(Manifest, Staged), String> {
    create(staged)?;
    let result = unpack_verified(archive, staged).and_then(|manifest| {
        let held = verify(staged, &manifest)?;
        // Read for the checks; a data directory holds no manifest (a directory restore copies
        // none either).
        let manifest_file = staged.join(snapshot_manifest::FILE_NAME);
        fs::remove_file(&manifest_file).map_err(|e| format!("{}: {e}", manifest_file.display()))?;
        Ok((manifest, held))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(staged);
    }
    result
}

/// Creates the staging directory: new, and private (it holds a copy of the data).
fn create(staged: &Path) -> Result<(), String> {
    super::super::layout::create_private_dir(staged)
        .map_err(|e| format!("cannot create {}: {e}", staged.display()))
}

fn unpack_verified(archive: impl Read, staged: &Path) -> Result<Manifest, String> {
    let broken = |e: std::io::Error| format!("the archive is not a readable tar stream: {e}");
    let mut archive = tar::Archive::new(archive);
    // Raw: GNU long names and pax headers are not gathered into memory (unbounded in `tar`);
    // a snapshot's names are short, so a long-name entry is refused below and pax headers
    // are skipped unread.
    let mut entries = archive.entries().map_err(broken)?.raw(true);
    let mut manifest: Option<Manifest> = None;
    let mut seen: Vec<String> = Vec::new();
    for entry in &mut entries {
        let mut entry = entry.map_err(broken)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        if kind.is_gnu_longname() || kind.is_gnu_longlink() {
            return Err(
                "the archive holds a long-name entry; a snapshot archive's names are short"
                    .to_owned(),
            );
        }
        let path = entry.path().map_err(broken)?.to_string_lossy().into_owned();
        // A tar made by hand (`tar -cf x.tar -C snap manifest.json ctxd.json text.sqlite3
        // vectors/data.mdb`) may write `./` names and directory entries.
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_owned();
        if kind.is_dir() && (path.is_empty() || path == vectors::DIR_NAME) {
            continue;
        }
        if !kind.is_file() {
            return Err(format!(
                "the archive's `{path}` is not a regular file; a snapshot archive holds \
                 regular files only"
            ));
        }
        let size = entry.size();
        let Some(manifest) = &manifest else {
            if path != snapshot_manifest::FILE_NAME {
                return Err(format!(
                    "the archive begins with `{path}`; a snapshot archive begins with `{}`",
                    snapshot_manifest::FILE_NAME
                ));
            }
            if size > snapshot_manifest::MAX_BYTES {
                return Err(format!(
                    "the archive's manifest is {size} bytes; a snapshot's manifest is at most {}",
                    snapshot_manifest::MAX_BYTES
                ));
            }
            let mut bytes = Vec::new();
            (&mut entry)
                .take(snapshot_manifest::MAX_BYTES)
                .read_to_end(&mut bytes)
                .map_err(broken)?;
            let parsed = Manifest::parse(&bytes, "the archive's manifest.json")?;
            // Kept for the snapshot the staged directory is.
            fs::write(staged.join(snapshot_manifest::FILE_NAME), &bytes)
                .map_err(|e| format!("{}: {e}", staged.display()))?;
            manifest = Some(parsed);
            continue;
        };
        let Some(file) = manifest.files.iter().find(|f| f.path == path) else {
            return Err(format!(
                "the archive holds `{path}`, which its manifest does not list"
            ));
        };
        if seen.contains(&path) {
            return Err(format!("the archive holds `{path}` twice"));
        }
        if size != file.bytes {
            return Err(format!(
                "`{path}` differs from the manifest: {size} bytes, the manifest says {}",
                file.bytes
            ));
        }
        let target = staged.join(&file.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        write_verified(&mut entry, file, &target)?;
        seen.push(path);
    }
    let Some(manifest) = manifest else {
        return Err("the archive is empty: it holds no manifest.json".to_owned());
    };
    if let Some(missing) = manifest.files.iter().find(|f| !seen.contains(&f.path)) {
        return Err(format!(
            "the archive ends before `{}` (truncated, or not a whole snapshot)",
            missing.path
        ));
    }
    sync_tree(staged)?;
    Ok(manifest)
}

fn copy_verified(snapshot: &Path, manifest: &Manifest, staged: &Path) -> Result<(), String> {
    for file in &manifest.files {
        let target = staged.join(&file.path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        copy_one(snapshot, file, &target)?;
    }
    sync_tree(staged)
}

/// Copies one file, hashing what it copies; every directory on its way inside the snapshot
/// must be a real directory and the file a regular file (no symbolic links anywhere).
fn copy_one(snapshot: &Path, file: &SnapshotFile, target: &Path) -> Result<(), String> {
    let mut inside = snapshot.to_path_buf();
    let parts: Vec<&str> = file.path.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        inside.push(part);
        let meta = fs::symlink_metadata(&inside)
            .map_err(|e| format!("`{}` of the snapshot: {e}", file.path))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "`{}` of the snapshot is (or lies under) a symbolic link; a snapshot holds its \
                 own files",
                file.path
            ));
        }
        let last = i + 1 == parts.len();
        if (last && !meta.is_file()) || (!last && !meta.is_dir()) {
            return Err(format!(
                "`{}` of the snapshot is not a regular file",
                file.path
            ));
        }
    }
    let mut source = open_no_follow(&inside).map_err(|e| format!("`{}`: {e}", file.path))?;
    let meta = source
        .metadata()
        .map_err(|e| format!("`{}`: {e}", file.path))?;
    if !meta.is_file() || meta.len() != file.bytes {
        return Err(format!(
            "`{}` differs from the manifest: {} bytes, the manifest says {}",
            file.path,
            meta.len(),
            file.bytes
        ));
    }
    write_verified(&mut source, file, target)
}

/// Copies `source` (one file of a snapshot) to a new file `target`, hashing it on the way:
/// it must be `file.bytes` long with `file.sha256`.
fn write_verified(
    source: &mut impl Read,
    file: &SnapshotFile,
    target: &Path,
) -> Result<(), String> {
    let mut out = fs::File::create(target).map_err(|e| format!("{}: {e}", target.display()))?;
    // Read and write errors both name the file they came from.
    let (copied, sha256) = super::sha256(source.take(file.bytes), &mut out)
        .map_err(|e| format!("copying `{}` into {}: {e}", file.path, target.display()))?;
    out.sync_all()
        .map_err(|e| format!("{}: {e}", target.display()))?;
    if copied != file.bytes {
        return Err(format!(
            "`{}` ends after {copied} of its {} bytes (truncated)",
            file.path, file.bytes
        ));
    }
    if sha256 != file.sha256 {
        return Err(format!(
            "`{}` differs from the manifest (its SHA-256 is {sha256}, the manifest says {})",
            file.path, file.sha256
        ));
    }
    Ok(())
}

/// Opens a file for reading, refusing a symbolic link in its last component even if one was
/// put there after it was checked.
#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Windows: the check of the path before opening is what refuses links.
#[cfg(windows)]
fn open_no_follow(path: &Path) -> std::io::Result<fs::File> {
    fs::File::open(path)
}

/// Makes the staged files' directory entries durable.
fn sync_tree(staged: &Path) -> Result<(), String> {
    let sync = |dir: &Path| super::super::layout::sync_dir(dir).map_err(|e| e.to_string());
    sync(&staged.join(vectors::DIR_NAME))?;
    sync(staged)
}

/// Opens the staged copy as a data directory and runs every check of `ctxd check` on it; its
/// generation must be the manifest's.
fn verify(staged: &Path, manifest: &Manifest) -> Result<Staged, String> {
    let invalid = |why: String| {
        format!("the snapshot's files match its manifest but are not a valid data directory: {why}")
    };
    data_manifest::load_or_create(staged, false).map_err(|e| invalid(e.to_string()))?;
    let text = TextStore::open(staged).map_err(|e| invalid(e.to_string()))?;
    let vectors = match VectorStore::open(staged, Default::default()) {
        Ok(vectors) => vectors,
        Err(e) => {
            let _ = text.close();
            return Err(invalid(e.to_string()));
        }
    };
    let checked = check::run(text.conn(), &vectors);
    let counted = Catalog::load(text.conn()).and_then(|catalog| {
        Ok((
            text::generation(text.conn())?,
            catalog.len() as u64,
            catalog.documents(),
        ))
    });
    let closed = text.close().and(vectors.close());
    // LMDB's reader table is recreated by the daemon that opens the files.
    let _ = fs::remove_file(staged.join(vectors::LOCK_FILE));
    let report = checked.map_err(|e| invalid(e.to_string()))?;
    closed.map_err(|e| invalid(e.to_string()))?;
    if !report.passed {
        return Err(invalid(check::problems(&report).join("; ")));
    }
    let (generation, collections, documents) = counted.map_err(|e| invalid(e.to_string()))?;
    if generation != manifest.generation {
        return Err(invalid(format!(
            "the manifest says generation {}, the files hold generation {generation}",
            manifest.generation
        )));
    }
    Ok(Staged {
        generation,
        collections,
        documents,
    })
}
