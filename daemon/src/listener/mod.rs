//! The daemon's end of the local socket: binding safely and accepting connections.
//!
//! Binding never steals a live socket. On Unix a lock beside the socket (`<socket>.lock`)
//! decides which daemon owns the name; with it held, an existing socket file is probed, and
//! replaced only if nothing answers (left by a `kill -9`). On Windows the pipe is created as
//! the first instance, which fails while another daemon has it. Peers of another user are
//! refused on Unix (`SO_PEERCRED`); on Windows the pipe's DACL admits only the owner and SYSTEM.

#[cfg(unix)]
#[path = "unix.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;

#[cfg(unix)]
mod activation;

use crate::lock::LockError;
use interprocess::local_socket::tokio::{Listener as RawListener, Stream};
use interprocess::local_socket::traits::tokio::Listener as _;
use std::io;
use std::path::{Path, PathBuf};

/// Why the daemon could not listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another daemon owns the socket.
    #[error(transparent)]
    InUse(#[from] LockError),
    /// Something else listens on the socket path.
    #[error("socket {} is in use by another process (it accepts connections)", .0.display())]
    Live(PathBuf),
    /// The socket path exists and is not a socket.
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    /// The runtime directory is unsafe to use.
    #[error("runtime directory {}: {message}", path.display())]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// systemd passed a socket the daemon cannot use.
    #[error("socket activation: {0}")]
    Activation(String),
    /// The OS refused.
    #[error("cannot listen on {}: {source}", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// A bound socket. Dropping it removes the socket file, then releases the socket's lock.
pub struct Listener {
    // Field order is drop order: the socket goes before the lock that guards its name.
    inner: RawListener,
    /// `None` for a socket systemd passed: its name is systemd's, not ours to guard.
    guard: Option<platform::Guard>,
    path: PathBuf,
}

impl Listener {
    /// Adopts the socket systemd passed (socket activation), else binds `path` (creating its
    /// private runtime directory if needed).
    pub fn bind(path: &Path) -> Result<Listener, ListenError> {
        #[cfg(unix)]
        if let Some((inner, passed)) = activation::adopt()? {
            if passed != path {
                tracing::warn!(
                    configured = %path.display(),
                    passed = %passed.display(),
                    "listening on the socket systemd passed, not the configured one"
                );
            }
            return Ok(Listener {
                inner,
                guard: None,
                path: passed,
            });
        }
        let (inner, guard) = platform::bind(path)?;
        Ok(Listener {
            inner,
            guard: Some(guard),
            path: path.to_owned(),
        })
    }

    /// Whether systemd passed this socket (socket activation).
    pub fn is_activated(&self) -> bool {
        self.guard.is_none()
    }

    /// The socket's path (or pipe name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next connection.
    pub async fn accept(&self) -> io::Result<Stream> {
        self.inner.accept().await
    }
}

/// Whether the peer may talk to this daemon; the error text is sent back as
/// `permission_denied`.
pub fn check_peer(stream: &Stream) -> Result<(), String> {
    platform::check_peer(stream)
}
