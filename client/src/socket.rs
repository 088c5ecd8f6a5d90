//! Where the daemon's socket is by default, for the daemon and every client alike.
//!
//! Order: an explicit path (`--socket`), then `CTXD_SOCKET`, then the per-user runtime
//! directory: `$XDG_RUNTIME_DIR/ctxd/ctxd.sock`, or `/tmp/ctxd-$UID/ctxd.sock` where
//! `XDG_RUNTIME_DIR` is unset. On Windows the default is the named pipe `\\.\pipe\ctxd-<user>`.

use std::path::PathBuf;

/// The environment variable that overrides the default socket, for daemon and clients.
pub const SOCKET_ENV: &str = "CTXD_SOCKET";

/// The file name of the socket inside the runtime directory.
pub const SOCKET_FILE_NAME: &str = "ctxd.sock";

/// The socket a client connects to when it is given none: `CTXD_SOCKET`, else the default.
pub fn resolve(explicit: Option<PathBuf>) -> PathBuf {
    explicit.or_else(from_env).unwrap_or_else(default_socket)
}

/// The socket `CTXD_SOCKET` names, if it is set and not empty.
pub fn from_env() -> Option<PathBuf> {
    std::env::var_os(SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The per-user runtime directory ctxd uses when no socket is given: it holds the socket and
/// the socket's lock, never data.
#[cfg(unix)]
pub fn default_runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("ctxd"),
        None => PathBuf::from(format!("/tmp/ctxd-{}", rustix::process::getuid().as_raw())),
    }
}

/// The default socket path.
#[cfg(unix)]
pub fn default_socket() -> PathBuf {
    default_runtime_dir().join(SOCKET_FILE_NAME)
}

/// The per-user runtime directory ctxd uses when no socket is given.
#[cfg(windows)]
pub fn default_runtime_dir() -> PathBuf {
    let base = std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join("ctxd").join("run")
}

/// The default named pipe: `\\.\pipe\ctxd-<user>`.
#[cfg(windows)]
pub fn default_socket() -> PathBuf {
    let user = std::env::var("USERNAME").unwrap_or_else(|_| "default".to_owned());
    let user: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    PathBuf::from(format!(r"\\.\pipe\ctxd-{user}"))
}
