//! Error codes and the error object of a failed reply.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The stable, machine-readable reason a request failed (`error.code` on the wire).
///
/// Codes never change meaning within protocol 1; clients branch on them, humans read the
/// accompanying `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The message is not valid JSON, is not an object, has a missing, unknown or mistyped
    /// field, or a value outside its allowed range.
    BadRequest,
    /// `op` names no operation of this protocol, or one this daemon does not provide.
    UnknownOp,
    /// The line exceeded the daemon's `--max-frame`; the connection is closed after this reply.
    FrameTooLarge,
    /// `hello` asked for a protocol version the daemon does not speak.
    UnsupportedProtocol,
    /// The peer runs as another user than the daemon (and is not root).
    PermissionDenied,
    /// The named collection does not exist.
    CollectionNotFound,
    /// `create_collection` named a collection that already exists.
    CollectionExists,
    /// A vector's length differs from its collection's dimension.
    DimensionMismatch,
    /// A vector holds a value that is not a finite number.
    InvalidVector,
    /// The data directory is released; details carry `lease_expires_at`.
    Released,
    /// `renew` or `resume` named a lease that does not exist (or has already ended).
    LeaseNotFound,
    /// The daemon could not do it now; retrying later is safe. A write outlived a release's
    /// `drain_ms`, every read thread and the read queue are taken, or (sent as soon as a
    /// connection is accepted, with `max_connections` in the details, then the connection is
    /// closed) the daemon serves its most connections already.
    Busy,
    /// The daemon is stopping and takes no new work.
    ShuttingDown,
    /// A snapshot could not be written.
    SnapshotFailed,
    /// The storage layer (SQLite or LMDB) failed.
    Storage,
    /// A bug in the daemon; the message says what happened.
    Internal,
    /// The disk holding the data directory is full (or the user's quota is reached). Nothing
    /// of the request was written, every acknowledged write is safe, reads go on, and writes
    /// succeed again once space is freed. Added within protocol 1.
    DiskFull,
    /// The request needs the collection's embedder (text to embed, with no vector), and this
    /// daemon did not load that model, or loaded other weights under its name; or
    /// `create_collection` named a model the daemon did not load. Nothing was written; the
    /// collection's stored vectors stay searchable. Added within protocol 1.
    EmbedderUnavailable,
}

impl ErrorCode {
    /// Every code: the original sixteen of protocol 1, then those added within it.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::BadRequest,
        ErrorCode::UnknownOp,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnsupportedProtocol,
        ErrorCode::PermissionDenied,
        ErrorCode::CollectionNotFound,
        ErrorCode::CollectionExists,
        ErrorCode::DimensionMismatch,
        ErrorCode::InvalidVector,
        ErrorCode::Released,
        ErrorCode::LeaseNotFound,
        ErrorCode::Busy,
        ErrorCode::ShuttingDown,
        ErrorCode::SnapshotFailed,
        ErrorCode::Storage,
        ErrorCode::Internal,
        ErrorCode::DiskFull,
        ErrorCode::EmbedderUnavailable,
    ];

    /// The code as it appears on the wire (`"bad_request"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::CollectionNotFound => "collection_not_found",
            ErrorCode::CollectionExists => "collection_exists",
            ErrorCode::DimensionMismatch => "dimension_mismatch",
            ErrorCode::InvalidVector => "invalid_vector",
            ErrorCode::Released => "released",
            ErrorCode::LeaseNotFound => "lease_not_found",
            ErrorCode::Busy => "busy",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::SnapshotFailed => "snapshot_failed",
            ErrorCode::Storage => "storage",
            ErrorCode::Internal => "internal",
            ErrorCode::DiskFull => "disk_full",
            ErrorCode::EmbedderUnavailable => "embedder_unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object of a failed reply.
///
/// `details` holds code-specific fields that sit beside `code` and `message` on the wire, for
/// example `lease_expires_at` with [`ErrorCode::Released`] or `expected`/`received` with
/// [`ErrorCode::DimensionMismatch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people: lowercase, no trailing period, names the bad value.
    pub message: String,
    /// Code-specific extra fields.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl ErrorBody {
    /// An error without details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Adds one detail field.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for ErrorBody {}
