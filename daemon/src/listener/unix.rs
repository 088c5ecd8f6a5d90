//! Unix domain sockets: a private runtime directory, a 0600 socket, peer uid checks.

use super::ListenError;
use crate::lock::{self, PidLock};
use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::traits::StreamCommon;
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Holds the socket's name: the lock beside the socket file.
pub(super) type Guard = PidLock;

pub(super) fn bind(path: &Path) -> Result<(Listener, Guard), ListenError> {
    let io_err = |source| ListenError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // The per-user default and a systemd `RuntimeDirectory=` must be private to this user.
    let private = dir == ctxd_client::socket::default_runtime_dir()
        || crate::config::service_runtime_dir().is_some_and(|service| dir == service);
    prepare_dir(dir, private)?;
    let guard = lock::lock_socket(path)?;
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ListenError::NotASocket(path.to_owned()));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            // Something answers: whatever it is, it is not ours to replace.
            Ok(_) => return Err(ListenError::Live(path.to_owned())),
            Err(_) => {
                tracing::info!(socket = %path.display(), "replacing a stale socket");
                fs::remove_file(path).map_err(io_err)?;
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let name = path.to_fs_name::<GenericFilePath>().map_err(io_err)?;
    // `try_overwrite` stays off: it would take the name from a live daemon. Stale files were
    // removed above, under the socket lock.
    let listener = ListenerOptions::new()
        .name(name)
        .mode(0o600)
        .reclaim_name(true)
        .create_tokio()
        .map_err(io_err)?;
    Ok((listener, guard))
}

/// Makes sure the socket's directory exists. A directory we create is 0700. A runtime
/// directory (the default, or systemd's) must also be ours and private: anyone who can write
/// to it could replace the socket.
fn prepare_dir(dir: &Path, is_default: bool) -> Result<(), ListenError> {
    let unsafe_dir = |message: String| ListenError::UnsafeDir {
        path: dir.to_owned(),
        message,
    };
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(unsafe_dir(format!("cannot create: {e}"))),
    }
    if !is_default {
        return Ok(());
    }
    let meta = fs::symlink_metadata(dir).map_err(|e| unsafe_dir(e.to_string()))?;
    let me = rustix::process::geteuid().as_raw();
    if !meta.is_dir() {
        return Err(unsafe_dir("is not a directory".to_owned()));
    }
    if meta.uid() != me {
        return Err(unsafe_dir(format!(
            "is owned by uid {}, not by this user (uid {me})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| unsafe_dir(format!("cannot make it private (0700): {e}")))?;
    }
    Ok(())
}

pub(super) fn check_peer(stream: &Stream) -> Result<(), String> {
    let me = rustix::process::geteuid().as_raw();
    let creds = stream
        .peer_creds()
        .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
    match creds.euid() {
        Some(uid) if uid == me || uid == 0 => Ok(()),
        Some(uid) => Err(format!(
            "this ctxd serves uid {me}; connections from uid {uid} are refused"
        )),
        None => Err("the peer's uid is unknown; refusing the connection".to_owned()),
    }
}
