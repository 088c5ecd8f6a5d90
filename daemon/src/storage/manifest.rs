//! `ctxd.json`: the data directory's format version and creation info.
//!
//! Written once, atomically (temporary file, fsync, rename), when a data directory is created;
//! read at every open to refuse directories of a format this build does not understand. It is
//! never held open.

use super::StorageError;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::Path;

/// The file name inside the data directory.
pub const FILE_NAME: &str = "ctxd.json";

/// The data directory format this build reads and writes.
pub const FORMAT: u32 = 1;

/// The content of `ctxd.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The data directory format.
    pub format: u32,
    /// The ctxd version that created the directory.
    pub created_by: String,
    /// Creation time, Unix milliseconds.
    pub created_at: u64,
}

/// Reads `ctxd.json`, creating it when the directory is new (`fresh`).
pub fn load_or_create(data_dir: &Path, fresh: bool) -> Result<Manifest, StorageError> {
    let path = data_dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => {
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|e| StorageError::Format {
                    path: path.clone(),
                    message: format!("unreadable: {e}"),
                })?;
            if manifest.format != FORMAT {
                return Err(StorageError::Format {
                    path,
                    message: format!(
                        "data format {} is not supported (this ctxd reads format {FORMAT})",
                        manifest.format
                    ),
                });
            }
            Ok(manifest)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && fresh => {
            let manifest = Manifest {
                format: FORMAT,
                created_by: format!("ctxd {}", env!("CARGO_PKG_VERSION")),
                created_at: crate::clock::unix_millis(),
            };
            write_atomically(&path, &manifest)?;
            Ok(manifest)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StorageError::Format {
            path,
            message: "missing: the directory holds ctxd files but no ctxd.json".to_owned(),
        }),
        Err(e) => Err(StorageError::io("cannot read", &path)(e)),
    }
}

fn write_atomically(path: &Path, manifest: &Manifest) -> Result<(), StorageError> {
    let tmp = path.with_extension("json.tmp");
    let mut bytes = serde_json::to_vec_pretty(manifest).expect("a manifest always serializes");
    bytes.push(b'\n');
    let mut file = fs::File::create(&tmp).map_err(StorageError::io("cannot create", &tmp))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(StorageError::io("cannot write", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(StorageError::io("cannot rename into place", path))?;
    super::layout::sync_dir(path.parent().unwrap_or(Path::new(".")))
}
