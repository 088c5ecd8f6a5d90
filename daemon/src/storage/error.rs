//! Storage failures.

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
    /// The LMDB environment did not close in time (a read transaction is still open).
    #[error("the vector store did not close within {0:?}")]
    CloseTimeout(std::time::Duration),
    /// Storage is closed (released or shutting down).
    #[error("storage is closed")]
    Closed,
}

impl StorageError {
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
