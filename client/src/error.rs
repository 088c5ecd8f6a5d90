//! The client's error type.

use ctxd_proto::{ErrorBody, ErrorCode};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens on the socket: the daemon is not running (or runs elsewhere).
    #[error("ctxd is not running at {}: {source}", socket.display())]
    NotRunning {
        /// The socket that was tried.
        socket: PathBuf,
        /// What connecting said.
        #[source]
        source: std::io::Error,
    },
    /// Reading from or writing to the daemon failed, or the daemon closed the connection.
    #[error("connection to ctxd failed: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon sent something that is not a protocol 1 reply.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon does not speak this client's protocol version.
    #[error("ctxd speaks protocol {daemon}, this client speaks protocol {client}: {message}")]
    VersionMismatch {
        /// The client's protocol version.
        client: u32,
        /// What the daemon said it speaks (`unknown` if it did not say).
        daemon: String,
        /// The daemon's explanation.
        message: String,
    },
    /// The daemon answered with an error.
    #[error("{message} ({code})")]
    Daemon {
        /// The stable error code.
        code: ErrorCode,
        /// The daemon's message.
        message: String,
        /// Code-specific details (for example `lease_expires_at`).
        details: Map<String, Value>,
    },
    /// No reply came within the per-request timeout; the connection is dropped and the next
    /// call opens a new one.
    #[error("ctxd did not answer within {0:?}")]
    Timeout(Duration),
    /// An upsert sent as several requests failed after some of them were committed. Documents
    /// (by their index in the call) before `failed.start` are written and stay written; those
    /// in `failed` are not (the request was refused) or may not be (its reply was lost); of the
    /// documents from `failed.end` on, the first `committed - failed.start` are written too
    /// (one request may have been in flight behind the failed one), and the rest were never
    /// sent. See [`crate::Client::upsert`].
    #[error(
        "upsert failed at documents {}–{} after {committed} documents were committed: {source}",
        failed.start,
        failed.end.saturating_sub(1)
    )]
    PartialUpsert {
        /// Documents of the requests the daemon acknowledged.
        committed: u64,
        /// The documents (indexes in the call) of the first request that failed.
        failed: std::ops::Range<usize>,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// The daemon's error code, when the daemon answered with an error (for
    /// [`Error::PartialUpsert`], the code of the request that failed).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Daemon { code, .. } => Some(*code),
            Error::PartialUpsert { source, .. } => source.code(),
            _ => None,
        }
    }
}

impl From<ErrorBody> for Error {
    fn from(body: ErrorBody) -> Self {
        Error::Daemon {
            code: body.code,
            message: body.message,
            details: body.details,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
