//! Telling a service manager what the daemon is doing (systemd's `sd_notify`): `READY=1` once
//! storage is open and the socket listens, `STOPPING=1` when shutdown starts, `STATUS=` lines.
//! Without `NOTIFY_SOCKET` (or off Unix) these do nothing. Tests use the same channel to learn
//! that a daemon is ready without polling.

#[cfg(unix)]
#[path = "unix.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;

pub use platform::{flush, ready, status, stopping};
