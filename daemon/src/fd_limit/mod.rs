//! The open-file limit, and how many client connections fit in it.
//!
//! Every connection costs the daemon one file descriptor, and so does every file the stores
//! hold open. Under the soft `RLIMIT_NOFILE` a systemd user unit gets (1024), hundreds of
//! clients once left no descriptor for SQLite to open a database with. So at start the daemon
//! raises its soft limit to the hard one (what systemd recommends a program that needs many
//! files do itself), and caps connections (`--max-connections`) so that what storage needs is
//! always left over: a connection beyond the cap is refused with `busy`, never a read.

#[cfg(unix)]
#[path = "unix.rs"]
mod platform;
#[cfg(windows)]
#[path = "windows.rs"]
mod platform;

pub use platform::raise;

/// File descriptors kept for everything but connections, for `read_threads` read threads and
/// `snapshots` concurrent snapshots: each read thread's SQLite connection and its spare share
/// (up to six: the database and its WAL for each, counted high), a snapshot up to eight (its
/// copies, its verification's stores), a refusal being written each, plus a fixed part. The
/// fixed part is counted from `/proc/PID/fd` of an idle daemon (26 with one client: the LMDB
/// environment's two, SQLite's shared memory, the listener and its lock, the data directory
/// lock, the notifier, the runtime's epoll and event descriptors, the standard streams),
/// doubled for the ANN environment and for what a release and resume reopen.
pub fn reserved(read_threads: usize, snapshots: usize) -> usize {
    const FIXED: usize = 64;
    FIXED + 6 * read_threads + 8 * snapshots + crate::server::MAX_REFUSING
}

/// The most connections served at once by default: what the open-file limit leaves after
/// [`reserved`], at most [`MAX_DEFAULT_CONNECTIONS`] (each idle connection also costs a task
/// and a small buffer), at least 16.
pub fn default_max_connections(limit: Option<u64>, reserved: usize) -> usize {
    match limit {
        Some(limit) => usize::try_from(limit)
            .unwrap_or(usize::MAX)
            .saturating_sub(reserved)
            .clamp(16, MAX_DEFAULT_CONNECTIONS),
        None => MAX_DEFAULT_CONNECTIONS,
    }
}

/// The default cap when the open-file limit is high: more clients than this on one local
/// daemon is a leak somewhere, not a workload.
pub const MAX_DEFAULT_CONNECTIONS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_get_what_storage_leaves() {
        let reserved = reserved(8, 4);
        assert_eq!(reserved, 64 + 48 + 32 + crate::server::MAX_REFUSING);
        assert_eq!(
            default_max_connections(Some(1024), reserved),
            1024 - reserved
        );
        assert_eq!(
            default_max_connections(Some(524_288), reserved),
            MAX_DEFAULT_CONNECTIONS
        );
        assert_eq!(default_max_connections(Some(100), reserved), 16);
        assert_eq!(
            default_max_connections(None, reserved),
            MAX_DEFAULT_CONNECTIONS
        );
    }
}
