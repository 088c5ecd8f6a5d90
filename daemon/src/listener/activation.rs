//! systemd socket activation: adopting the listening socket a `.socket` unit passes as fd 3.
//!
//! The protocol (`sd_listen_fds(3)`): `LISTEN_PID` is this process and `LISTEN_FDS` counts the
//! descriptors from fd 3 on. The sd-notify crate checks both and marks the descriptors
//! close-on-exec. The socket file belongs to systemd: the daemon neither takes the socket's
//! lock nor removes the file when it stops, so the next connection starts it again. The data
//! directory lock still keeps a second daemon off the same data.

use super::ListenError;
use interprocess::local_socket::tokio::Listener;
use interprocess::os::unix::uds_local_socket::tokio::Listener as UdsListener;
use rustix::net::{AddressFamily, SocketType, sockopt};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the passed descriptor has been taken: it may be owned only once.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The socket systemd passed, with its path, or `None` when the daemon was not socket-activated.
pub(super) fn adopt() -> Result<Option<(Listener, PathBuf)>, ListenError> {
    let refused = |message: String| ListenError::Activation(message);
    let fds: Vec<_> = sd_notify::listen_fds()
        .map_err(|e| refused(format!("cannot read LISTEN_FDS: {e}")))?
        .collect();
    let fd = match fds.as_slice() {
        [] => return Ok(None),
        [fd] => *fd,
        more => {
            return Err(refused(format!(
                "systemd passed {} sockets; ctxd listens on one (one ListenStream= in the socket unit)",
                more.len()
            )));
        }
    };
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    // SAFETY: `listen_fds` returned this descriptor because LISTEN_PID names this process:
    // systemd opened it for us and nothing else in the process owns it. `TAKEN` makes sure it
    // is wrapped only once.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let checks = || -> io::Result<Option<String>> {
        let domain = match sockopt::socket_domain(&fd) {
            Err(rustix::io::Errno::NOTSOCK) => return Ok(Some("is not a socket".to_owned())),
            other => other?,
        };
        if domain != AddressFamily::UNIX {
            return Ok(Some("is not a Unix domain socket".to_owned()));
        }
        if sockopt::socket_type(&fd)? != SocketType::STREAM {
            return Ok(Some(
                "is not a stream socket (use ListenStream=)".to_owned(),
            ));
        }
        if !sockopt::socket_acceptconn(&fd)? {
            return Ok(Some(
                "is not listening (the socket unit needs Accept=no)".to_owned(),
            ));
        }
        Ok(None)
    };
    match checks() {
        Ok(None) => {}
        Ok(Some(problem)) => return Err(refused(format!("the passed descriptor {problem}"))),
        Err(e) => {
            return Err(refused(format!(
                "cannot inspect the passed descriptor: {e}"
            )));
        }
    }
    let std_listener = UnixListener::from(fd);
    let path = std_listener
        .local_addr()
        .ok()
        .and_then(|address| address.as_pathname().map(PathBuf::from))
        .ok_or_else(|| refused("the passed socket has no file system path".to_owned()))?;
    // Tokio needs it non-blocking; interprocess sets that and, built from a descriptor, never
    // removes the file when dropped.
    let listener =
        UdsListener::try_from(OwnedFd::from(std_listener)).map_err(|source| ListenError::Io {
            path: path.clone(),
            source,
        })?;
    Ok(Some((Listener::from(listener), path)))
}
