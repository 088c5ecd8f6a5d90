//! Windows named pipes: first instance only, a DACL for the owner and SYSTEM.

use super::ListenError;
use interprocess::local_socket::tokio::{Listener, Stream};
use interprocess::local_socket::{GenericFilePath, ListenerOptions, ToFsName};
use interprocess::os::windows::local_socket::ListenerOptionsExt;
use interprocess::os::windows::security_descriptor::SecurityDescriptor;
use std::io;
use std::path::Path;
use widestring::U16CString;

/// Nothing to hold: the pipe name itself is exclusive while the first instance lives.
pub(super) struct Guard;

/// Protected DACL: full access for SYSTEM, the pipe's owner (the daemon's account) and
/// elevated Administrators, nobody else; remote clients are rejected by the pipe itself.
/// Administrators can read the data files anyway; admitting them lets an elevated prompt
/// manage the service's instance (which runs as LocalSystem by default).
const PIPE_SDDL: &str = "D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;OW)";

pub(super) fn bind(path: &Path) -> Result<(Listener, Guard), ListenError> {
    let io_err = |source| ListenError::Io {
        path: path.to_owned(),
        source,
    };
    let sddl = U16CString::from_str(PIPE_SDDL)
        .map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    let descriptor = SecurityDescriptor::deserialize(&sddl).map_err(io_err)?;
    let name = path.to_fs_name::<GenericFilePath>().map_err(io_err)?;
    let listener = ListenerOptions::new()
        .name(name)
        .security_descriptor(descriptor)
        .create_tokio()
        .map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied => {
                ListenError::Live(path.to_owned())
            }
            _ => io_err(e),
        })?;
    Ok((listener, Guard))
}

/// The pipe's DACL already admits only the owner and SYSTEM.
pub(super) fn check_peer(_stream: &Stream) -> Result<(), String> {
    Ok(())
}
