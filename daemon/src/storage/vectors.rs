//! `vectors/`: the LMDB environment that holds the vector indexes.
//!
//! The environment is opened by the storage thread only and closed with heed's
//! `prepare_for_closing().wait()`, which returns once LMDB has really closed the files and
//! unmapped them. Database handles are reopened after every environment open (handles from a
//! previous open panic when used).

use super::StorageError;
use heed::byteorder::BigEndian;
use heed::types::{Str, U64};
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, WithoutTls};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The directory name inside the data directory.
pub const DIR_NAME: &str = "vectors";

/// The LMDB map size: the most the environment may grow to. On Unix the file grows only as
/// data is written, so a large map costs address space, not disk.
#[cfg(unix)]
const MAP_SIZE: usize = 64 << 30;
/// On Windows LMDB grows `data.mdb` to the whole map size at open, so start smaller.
#[cfg(windows)]
const MAP_SIZE: usize = 1 << 30;

/// Named databases inside the environment (arroy indexes and per-collection state come with
/// the storage issue).
const MAX_DBS: u32 = 16;

/// How long closing waits for the environment to be released by every holder.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The open LMDB environment.
pub struct VectorStore {
    env: Env<WithoutTls>,
    /// Committed handles are `'static`: valid for this open of the environment only.
    meta: Database<'static, Str, U64<BigEndian>>,
    path: PathBuf,
}

impl VectorStore {
    /// Opens (creating if needed) the environment in `data_dir/vectors`.
    pub fn open(data_dir: &Path) -> Result<VectorStore, StorageError> {
        let path = data_dir.join(DIR_NAME);
        std::fs::create_dir_all(&path).map_err(StorageError::io("cannot create", &path))?;
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(MAP_SIZE).max_dbs(MAX_DBS);
        // SAFETY (heed's `open` contract): the environment is opened once per process — only
        // the storage thread opens it, and the data directory lock keeps every other ctxd out;
        // no unsafe flags (NO_LOCK, NO_SYNC) are set; the path is a local directory we own.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(&path) }?;
        let wtxn = env.write_txn()?;
        let meta = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database::<Str, U64<BigEndian>>(wtxn, Some("meta"))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })?
            .unwrap_commit();
        Ok(VectorStore { env, meta, path })
    }

    /// The generation the vector store last committed.
    pub fn generation(&self) -> Result<u64, StorageError> {
        let rtxn = self.env.read_txn()?;
        Ok(self.meta.get(&rtxn, "generation")?.unwrap_or(0))
    }

    /// Closes the environment and waits until LMDB has closed its files and unmapped them.
    pub fn close(self) -> Result<(), StorageError> {
        let VectorStore { env, path, .. } = self;
        let closed = env.prepare_for_closing();
        if closed.wait_timeout(CLOSE_TIMEOUT) {
            Ok(())
        } else {
            tracing::error!(path = %path.display(), "vector store still referenced after {CLOSE_TIMEOUT:?}");
            Err(StorageError::CloseTimeout(CLOSE_TIMEOUT))
        }
    }
}
