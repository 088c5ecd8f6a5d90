//! What a request can fail with, and the one mapping from those failures to wire error codes.

use crate::embed::PoolError;
use crate::embed::prepare::EmbedError;
use crate::storage::StorageError;
use ctxd_proto::{ErrorBody, ErrorCode, PROTOCOL_VERSION};

/// A request's failure. [`Error::code`] is the only place that decides which wire code a
/// failure gets; [`Error::to_body`] is the only place that builds the wire error object.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `hello` asked for another protocol version.
    #[error("protocol {requested} is not supported (this ctxd speaks protocol {PROTOCOL_VERSION})")]
    UnsupportedProtocol {
        /// The version the client asked for.
        requested: u32,
    },
    /// The request is well-formed but asks for something invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The data directory is released; data operations wait for a resume (`wait_ms`) or fail.
    #[error("the data directory is released{}", .lease_expires_at.map(|t| format!(" (the last lease ends at {t} ms since the epoch)")).unwrap_or_default())]
    Released {
        /// When the last lease ends by itself.
        lease_expires_at: Option<u64>,
    },
    /// `renew` or `resume` named a lease that does not exist.
    #[error("no lease `{0}` (it was resumed, expired, or never existed)")]
    LeaseNotFound(String),
    /// The daemon cannot do it now.
    #[error("{0}")]
    Busy(String),
    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A text could not be embedded.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// `attach` while the daemon stops.
    #[error(transparent)]
    Stopping(#[from] crate::holders::Stopping),
}

impl Error {
    /// The wire code of this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::UnsupportedProtocol { .. } => ErrorCode::UnsupportedProtocol,
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::Released { .. } => ErrorCode::Released,
            Error::LeaseNotFound(_) => ErrorCode::LeaseNotFound,
            Error::Busy(_) => ErrorCode::Busy,
            Error::Stopping(_) => ErrorCode::ShuttingDown,
            Error::Storage(e) => match e {
                StorageError::Closed => ErrorCode::ShuttingDown,
                StorageError::CollectionNotFound(_) => ErrorCode::CollectionNotFound,
                StorageError::CollectionExists { .. } => ErrorCode::CollectionExists,
                StorageError::DimensionMismatch { .. } => ErrorCode::DimensionMismatch,
                StorageError::InvalidVector { .. } => ErrorCode::InvalidVector,
                StorageError::Invalid(_) => ErrorCode::BadRequest,
                StorageError::Snapshot(_) => ErrorCode::SnapshotFailed,
                StorageError::DiskFull(_)
                | StorageError::CloseDiskFull(_)
                | StorageError::NoRoom(_) => ErrorCode::DiskFull,
                StorageError::Busy(_) => ErrorCode::Busy,
                StorageError::Sqlite(_)
                | StorageError::Lmdb(_)
                | StorageError::NotWritten(_)
                | StorageError::VectorsBehind(_)
                | StorageError::Io { .. }
                | StorageError::Format { .. }
                | StorageError::Corrupt(_)
                | StorageError::CloseTimeout(_) => ErrorCode::Storage,
            },
            Error::Embed(e) => match e {
                EmbedError::NotLoaded { .. } | EmbedError::Unavailable { .. } => {
                    ErrorCode::EmbedderUnavailable
                }
                EmbedError::Dimension { .. } => ErrorCode::DimensionMismatch,
                EmbedError::Empty(_) => ErrorCode::BadRequest,
                EmbedError::Pool(PoolError::Full(_)) => ErrorCode::Busy,
                EmbedError::Pool(PoolError::Model(_) | PoolError::Stopped(_)) => {
                    ErrorCode::Internal
                }
                EmbedError::Stopping => ErrorCode::ShuttingDown,
            },
        }
    }

    /// The wire error object: code, message, and the details that go with the code.
    pub fn to_body(&self) -> ErrorBody {
        let body = ErrorBody::new(self.code(), self.to_string());
        match self {
            Error::UnsupportedProtocol { .. } => {
                body.with_detail("supported", vec![PROTOCOL_VERSION])
            }
            Error::Storage(StorageError::DimensionMismatch {
                expected, received, ..
            }) => body
                .with_detail("expected", *expected)
                .with_detail("received", *received),
            Error::Storage(StorageError::InvalidVector { position, .. }) => {
                body.with_detail("position", *position)
            }
            Error::Released {
                lease_expires_at: Some(at),
            } => body.with_detail("lease_expires_at", *at),
            Error::Embed(EmbedError::NotLoaded { name, .. }) => {
                body.with_detail("embedder", name.as_str())
            }
            Error::Embed(EmbedError::Unavailable { embedder, .. }) => {
                body.with_detail("embedder", embedder.name.as_str())
            }
            Error::Embed(EmbedError::Dimension {
                expected, received, ..
            }) => body
                .with_detail("expected", *expected)
                .with_detail("received", *received),
            _ => body,
        }
    }
}
