//! Unix lock files and permissions (the directory is `ctxd_client::owner::lock_dir`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates the lock directory world-writable with the sticky bit (like `/tmp`), so daemons of
/// every user can create their lock files and none can delete another's.
pub(super) fn ensure_lock_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => fs::set_permissions(dir, fs::Permissions::from_mode(0o1777)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) fn open_lock_file(path: &Path) -> io::Result<File> {
    super::open_rw_or_ro(
        path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644),
    )
}

/// Whether `path` still names `file` (the same device and inode): false when the file was
/// deleted, or deleted and created anew, since it was opened.
pub(super) fn still_names(path: &Path, file: &File) -> io::Result<bool> {
    let held = file.metadata()?;
    match fs::metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes a lock file whose lock this process still holds. Best effort: in the sticky lock
/// directory another user's file cannot be deleted, and then it simply stays.
pub(super) fn remove_held(path: &Path) {
    if let Err(e) = fs::remove_file(path)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::debug!(lock = %path.display(), "lock file left in place: {e}");
    }
}
