//! Exclusive OS locks that say who holds them: one per data directory, one per socket.
//!
//! The data directory lock is what stops a second daemon on the same data: it is keyed by the
//! directory's canonical path and lives in a fixed, system-wide lock directory (never inside the
//! data directory, and not derived from the socket, runtime directory or environment), so two
//! daemons started in any way on the same data meet on the same lock file. The lock is held for
//! the daemon's whole life, also while released.
//!
//! Locks are `flock`-style advisory locks (`File::try_lock`): the OS drops them when the process
//! dies, so a `kill -9` never leaves a stale lock behind.
//!
//! On Unix the holder deletes its lock file when it lets go, so the lock directory does not
//! collect one file per data directory ever served. Deleting a lock file naively races with a
//! process that has just opened it (it would lock a file no longer in the directory, while a
//! third process creates and locks a new one). The protocol that makes it safe: the holder
//! deletes the file *before* unlocking it, and a process that has taken a lock checks that the
//! path still names the file it locked; if not, it starts over with the new file. (Windows
//! keeps its lock files: an open file cannot be deleted there without sharing modes that would
//! defeat the lock.)

#[cfg(unix)]
#[path = "unix.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{what} is in use by {}", holder_text(*pid))]
    Held {
        /// What the lock guards, for the message.
        what: String,
        /// The holder's pid, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// The lock file could not be created or locked.
    #[error("cannot take the lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

fn holder_text(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("another ctxd (pid {pid})"),
        None => "another ctxd (pid unknown)".to_owned(),
    }
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct PidLock {
    _file: File,
    path: PathBuf,
    sidecar: Option<PathBuf>,
}

impl PidLock {
    /// Takes the lock at `path` without waiting, recording this process's pid and `what` in it.
    pub fn acquire(path: &Path, what: &str) -> Result<PidLock, LockError> {
        let io_err = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        // Each round loses only to a holder that deleted the file between our open and our
        // lock; a handful of rounds in a row means something else keeps deleting it.
        let mut rounds = 0;
        let mut file = loop {
            let mut file = platform::open_lock_file(path).map_err(io_err)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(LockError::Held {
                        what: what.to_owned(),
                        pid: read_pid(&mut file),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
            if platform::still_names(path, &file).map_err(io_err)? {
                break file;
            }
            rounds += 1;
            if rounds == 16 {
                return Err(io_err(io::Error::other(
                    "the lock file keeps being replaced while it is taken",
                )));
            }
        };
        // Best effort: a lock file another user created may be read-only for us; the lock
        // itself is what matters, the pid is for the message a second daemon prints.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}\n{what}", std::process::id()));
        Ok(PidLock {
            _file: file,
            path: path.to_owned(),
            sidecar: None,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names the socket the holder listens on in a file beside the lock (`….lock` becomes
    /// `….socket`), so a client that knows only the data directory finds its daemon
    /// (`ctxd.PersistentClient` reads it: see [`lock_data_dir`]). Written once the daemon
    /// serves, whole or not at all (a temporary file renamed over it), and removed before the
    /// lock is let go. A file beside the lock rather than a line in it because Windows does not
    /// let other processes read a locked file. It is a hint, never trusted alone: a `kill -9`
    /// leaves it behind, and the directory is shared by every user, so a client checks with
    /// `attach { data_dir }` that the daemon it reaches serves the directory it means.
    pub fn record_socket(&mut self, socket: &Path) -> io::Result<()> {
        let sidecar = self.path.with_extension("socket");
        let partial = self
            .path
            .with_extension(format!("socket.{}", std::process::id()));
        // `create_new`: a file another user planted under the temporary name is not written
        // through (the lock directory is shared by every user); one of ours left by a process
        // that had this pid before is removed first.
        let _ = std::fs::remove_file(&partial);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&partial)
            .and_then(|mut file| writeln!(file, "{}", socket.display()))
            .and_then(|()| std::fs::rename(&partial, &sidecar));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written?;
        self.sidecar = Some(sidecar);
        Ok(())
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        // Still locked here: the file closes (unlocks) after this, when `_file` drops. The
        // socket's name goes first, so nobody is sent to a daemon that no longer holds the lock.
        if let Some(sidecar) = &self.sidecar {
            let _ = std::fs::remove_file(sidecar);
        }
        platform::remove_held(&self.path);
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Takes the lock of a data directory (given as its canonical path).
///
/// The lock file is `data-<hex>.lock` in the lock directory (`/run/lock/ctxd` where `/run/lock`
/// exists, else `/tmp/ctxd-locks`; `%ProgramData%\\ctxd\\locks` on Windows), where `<hex>` is the
/// first 16 bytes of the SHA-256 of the canonical path's bytes, in lower-case hex. It holds
/// the holder's pid and what it guards. Once the daemon listens, `data-<hex>.socket` beside it
/// holds the socket's path (or pipe name) and a newline: a stable format that clients read.
pub fn lock_data_dir(canonical: &Path) -> Result<PidLock, LockError> {
    let dir = ctxd_client::owner::lock_dir();
    platform::ensure_lock_dir(&dir).map_err(|source| LockError::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(data_dir_lock_name(canonical));
    PidLock::acquire(&path, &format!("data directory {}", canonical.display()))
}

/// Takes the lock that guards a socket path against a second daemon binding it. Unix only: a
/// Windows named pipe is exclusive by itself.
#[cfg(unix)]
pub fn lock_socket(socket: &Path) -> Result<PidLock, LockError> {
    let mut name = socket.as_os_str().to_owned();
    name.push(".lock");
    PidLock::acquire(Path::new(&name), &format!("socket {}", socket.display()))
}

/// The lock file name for a data directory: a digest of its canonical path, so the name is the
/// same for every way of spelling the path and fits any file system (clients compute the same
/// key to find the socket file beside it: [`ctxd_client::owner`]).
fn data_dir_lock_name(canonical: &Path) -> String {
    format!("data-{}.lock", ctxd_client::owner::directory_key(canonical))
}

/// Opens a file for locking: read-write where possible, else read-only (a lock works on
/// either).
fn open_rw_or_ro(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    match options.open(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => File::open(path),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.lock");
        let first = PidLock::acquire(&path, "thing").expect("first lock");
        // flock locks belong to the open file description, so a second open in the same
        // process conflicts just as another process would.
        match PidLock::acquire(&path, "thing") {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        assert!(
            cfg!(windows) || !path.exists(),
            "the holder removes its lock file"
        );
        PidLock::acquire(&path, "thing").expect("lock after release");
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_on_a_file_deleted_meanwhile_is_taken_again_on_the_new_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("x.lock");
        // A process opened the file, then its holder deleted it and let go: the stale handle
        // must not count as the lock, or two processes would both "hold" it.
        let stale = platform::open_lock_file(&path).expect("open");
        std::fs::remove_file(&path).expect("delete");
        stale.try_lock().expect("lock the deleted file");
        assert!(!platform::still_names(&path, &stale).expect("compare"));
        let lock = PidLock::acquire(&path, "thing").expect("lock the new file");
        assert!(platform::still_names(&path, &lock._file).expect("compare"));
    }

    #[test]
    fn lock_name_depends_only_on_the_path() {
        let a = data_dir_lock_name(Path::new("/srv/data"));
        assert_eq!(a, data_dir_lock_name(Path::new("/srv/data")));
        assert_ne!(a, data_dir_lock_name(Path::new("/srv/data2")));
    }
}
