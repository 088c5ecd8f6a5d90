//! `manifest.json`: what a snapshot holds, written when it is taken and checked before it is
//! restored.
//!
//! ```json
//! {
//!   "format": 1,
//!   "generation": 42,
//!   "created_at": 1764000000000,
//!   "ctxd_version": "0.1.0",
//!   "sqlite_version": "3.54.0",
//!   "files": [
//!     {"path": "ctxd.json", "bytes": 96, "sha256": "…"},
//!     {"path": "text.sqlite3", "bytes": 36864, "sha256": "…"},
//!     {"path": "vectors/data.mdb", "bytes": 32768, "sha256": "…"}
//!   ]
//! }
//! ```
//!
//! The rules a manifest must meet before anything of it is used ([`Manifest::read`]):
//!
//! - `format` is the data directory format this build reads;
//! - `files` lists exactly the store files of a data directory
//!   ([`STORE_FILES`](super::super::layout::STORE_FILES)), each once, as relative,
//!   normalised, `/`-separated paths inside the snapshot; nothing else is ever copied;
//! - each has its size and a SHA-256 (64 lowercase hex digits).

use super::super::layout::STORE_FILES;
use super::super::manifest::FORMAT;
use ctxd_proto::SnapshotFile;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;

/// The manifest's file name inside a snapshot.
pub const FILE_NAME: &str = "manifest.json";

/// A manifest larger than this is not one ctxd wrote (three entries are a few hundred bytes).
pub const MAX_BYTES: u64 = 64 * 1024;

/// What `manifest.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The data directory format (as in `ctxd.json`).
    pub format: u32,
    /// The generation both stores hold.
    pub generation: u64,
    /// When the snapshot was taken, Unix milliseconds.
    pub created_at: u64,
    /// The ctxd that wrote it.
    pub ctxd_version: String,
    /// The SQLite library that wrote `text.sqlite3`.
    pub sqlite_version: String,
    /// Every data file, with its size and checksum.
    pub files: Vec<SnapshotFile>,
}

impl Manifest {
    /// Reads `dir/manifest.json` and checks it against the rules of this module; the error
    /// says which rule failed, naming the entry.
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join(FILE_NAME);
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        if meta.len() > MAX_BYTES {
            return Err(format!(
                "{} is {} bytes; a snapshot's manifest is at most {MAX_BYTES}",
                path.display(),
                meta.len()
            ));
        }
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_BYTES).read_to_end(&mut bytes))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Manifest::parse(&bytes, &path.display().to_string())
    }

    /// Parses a manifest's bytes (read from `origin`, for the error) and checks it against the
    /// rules of this module.
    pub fn parse(bytes: &[u8], origin: &str) -> Result<Manifest, String> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| format!("{origin} is not a snapshot manifest: {e}"))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The rules of this module.
    pub fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "the manifest is of format {}; this ctxd reads format {FORMAT}",
                self.format
            ));
        }
        let expected = STORE_FILES.join(", ");
        let mut seen = Vec::new();
        for file in &self.files {
            if !is_normal_relative(&file.path) {
                return Err(format!(
                    "the manifest lists `{}`, which is not a relative path inside the snapshot",
                    file.path
                ));
            }
            if !STORE_FILES.contains(&file.path.as_str()) {
                return Err(format!(
                    "the manifest lists `{}`, which is not a file of a data directory (a \
                     snapshot holds exactly {expected})",
                    file.path
                ));
            }
            if seen.contains(&file.path.as_str()) {
                return Err(format!("the manifest lists `{}` twice", file.path));
            }
            if file.sha256.len() != 64
                || !file
                    .sha256
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(format!(
                    "the manifest's checksum of `{}` is not a SHA-256 (64 lowercase hex digits)",
                    file.path
                ));
            }
            seen.push(file.path.as_str());
        }
        if let Some(missing) = STORE_FILES.iter().find(|f| !seen.contains(f)) {
            return Err(format!(
                "the manifest lacks `{missing}` (a snapshot holds exactly {expected})"
            ));
        }
        Ok(())
    }

    /// Writes the manifest to `dir/manifest.json` and makes it durable.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let path = dir.join(FILE_NAME);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&bytes)?;
        file.sync_all()
    }
}

/// Whether `path` is relative and normalised: `/`-separated names, none empty, `.` or `..`,
/// no backslash or NUL (which mean something else on another platform).
fn is_normal_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains(['\\', '\0'])
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(paths: &[&str]) -> Manifest {
        Manifest {
            format: FORMAT,
            generation: 3,
            created_at: 0,
            ctxd_version: "0".into(),
            sqlite_version: "3".into(),
            files: paths
                .iter()
                .map(|p| SnapshotFile {
                    path: (*p).to_owned(),
                    bytes: 1,
                    sha256: "ab".repeat(32),
                })
                .collect(),
        }
    }

    #[test]
    fn a_manifest_lists_exactly_the_store_files() {
        assert_eq!(manifest(&STORE_FILES).check(), Ok(()));
        let refused = |paths: &[&str], needle: &str| {
            let error = manifest(paths).check().expect_err("refused");
            assert!(error.contains(needle), "{paths:?}: {error}");
        };
        refused(&["ctxd.json"], "lacks `text.sqlite3`");
        refused(
            &[
                "ctxd.json",
                "text.sqlite3",
                "vectors/data.mdb",
                "../escaped.txt",
            ],
            "`../escaped.txt`, which is not a relative path",
        );
        for bad in [
            "/etc/passwd",
            "vectors//data.mdb",
            "./ctxd.json",
            "vectors\\data.mdb",
            "",
        ] {
            refused(&[bad], "not a relative path");
        }
        refused(
            &["ctxd.json", "text.sqlite3", "notes.txt"],
            "not a file of a data directory",
        );
        refused(
            &[
                "ctxd.json",
                "text.sqlite3",
                "text.sqlite3",
                "vectors/data.mdb",
            ],
            "twice",
        );
        let mut bad_sum = manifest(&STORE_FILES);
        bad_sum.files[1].sha256 = "XYZ".into();
        assert!(bad_sum.check().expect_err("refused").contains("SHA-256"));
        let mut future = manifest(&STORE_FILES);
        future.format = 99;
        assert!(future.check().expect_err("refused").contains("format 99"));
    }
}
