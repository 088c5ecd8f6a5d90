//! Storage failures.

use super::map_size::MaybeMapFull;
use std::path::PathBuf;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// LMDB failed.
    #[error("lmdb: {0}")]
    Lmdb(#[from] heed::Error),
    /// A file operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// `ctxd.json` is missing, unreadable or of another format.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The stores hold something this build cannot make sense of.
    #[error("storage is inconsistent: {0}")]
    Corrupt(String),
    /// The named collection does not exist.
    #[error("collection `{0}` does not exist")]
    CollectionNotFound(String),
    /// `create_collection` named an existing collection.
    #[error("collection `{name}` already exists ({settings})")]
    CollectionExists {
        /// The collection.
        name: String,
        /// Its settings, for the message.
        settings: String,
    },
    /// A vector's length is not the collection's dimension.
    #[error("{what} has {received} dimensions, collection `{collection}` expects {expected}")]
    DimensionMismatch {
        /// What carried the vector (`vector of document "a"`, `query vector`).
        what: String,
        /// The collection.
        collection: String,
        /// The collection's dimension.
        expected: u32,
        /// The vector's length.
        received: usize,
    },
    /// A vector holds NaN or an infinity.
    #[error("{what} holds a non-finite value at position {position}")]
    InvalidVector {
        /// What carried the vector.
        what: String,
        /// Index of the first bad value.
        position: usize,
    },
    /// The request is well-formed but asks for something invalid.
    #[error("{0}")]
    Invalid(String),
    /// A snapshot could not be written (nothing was left at the destination).
    #[error("snapshot failed: {0}")]
    Snapshot(String),
    /// The LMDB environment did not close in time (a read transaction is still open).
    #[error("the vector store did not close within {0:?}")]
    CloseTimeout(std::time::Duration),
    /// Storage is closed (released or shutting down).
    #[error("storage is closed")]
    Closed,
    /// The daemon takes no more of this kind of work now (the read pool and its queue are
    /// full); the message says how to go on.
    #[error("{0}")]
    Busy(String),
    /// The disk holding the data directory is full, or the user's quota is reached; what failed
    /// is in the message. Nothing of the request was written.
    #[error(
        "no space left on the device that holds the data directory ({0}): nothing of this \
         request was written and every acknowledged write is safe; reads go on, and writes \
         succeed again once space is freed"
    )]
    DiskFull(String),
    /// Closing found the disk full: SQLite could not checkpoint its write-ahead log into the
    /// database file. Every file is closed anyway, and the log is applied at the next open.
    #[error(
        "no space left on the device that holds the data directory, so the text store could \
         not be checkpointed as it was closed ({0}); its write-ahead log (text.sqlite3-wal) is \
         kept and applied when the store is next opened: nothing acknowledged is lost"
    )]
    CloseDiskFull(String),
    /// An LMDB map cannot grow any more (its ceiling, or a process out of address space; see
    /// `storage::map_size`): answered like a full disk, and likewise nothing was written.
    #[error(
        "the store's memory map cannot grow ({0}): nothing of this request was written and \
         every acknowledged write is safe; reads go on"
    )]
    NoRoom(String),
    /// A write group failed before anything of it was committed (for a reason other than a
    /// full disk): nothing of it was written.
    #[error("the write was not made: {0}")]
    NotWritten(String),
    /// The text store committed the write but the vector store could not take its vectors
    /// (a disk that filled up between the two commits beyond the space reserved ahead, say):
    /// the vectors are journaled and are applied before the next write, or at the next start.
    /// Not `disk_full`, whose promise is that nothing was written.
    #[error(
        "the write is committed to the text store, but the vector store could not take its \
         vectors ({0}); they are journaled and are applied before the next write is made (or \
         when ctxd next starts), and searches may miss them until then; sending the request \
         again is safe"
    )]
    VectorsBehind(String),
}

impl StorageError {
    /// Whether the disk (or the user's quota) is full: SQLite's `SQLITE_FULL`, or an I/O error
    /// saying so from LMDB or the file system.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StorageError::DiskFull(_) | StorageError::NoRoom(_) => true,
            StorageError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            StorageError::Lmdb(heed::Error::Io(e)) | StorageError::Io { source: e, .. } => {
                is_disk_full_io(e)
            }
            _ => false,
        }
    }

    /// This error as [`StorageError::DiskFull`] when it is one (for failures where nothing was
    /// written), else as it is.
    pub fn classified(self) -> StorageError {
        if self.is_disk_full()
            && !matches!(self, StorageError::DiskFull(_) | StorageError::NoRoom(_))
        {
            StorageError::DiskFull(self.to_string())
        } else {
            self
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StorageError::Io {
            context,
            path,
            source,
        }
    }
}

/// Whether an I/O error says the disk or the quota is full.
pub(crate) fn is_disk_full_io(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl MaybeMapFull for StorageError {
    fn is_map_full(&self) -> bool {
        matches!(self, StorageError::Lmdb(e) if e.is_map_full())
    }
}
