//! What every connection shares: the lifecycle (the store, its data directory and state), the
//! shutdown signal and the counters `status` reports.

use crate::budget::DecodeBudget;
use crate::embed::Embedders;
use crate::holders::Holders;
use crate::lifecycle::Lifecycle;
use crate::shutdown::Shutdown;
use crate::storage::Store;
use ctxd_proto::{ScheduledSnapshot, State};
use interprocess::local_socket::tokio::Stream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What bounds the connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// The largest request line accepted.
    pub max_frame: usize,
    /// How long a line may take once begun, and a reply to be read.
    pub idle_timeout: std::time::Duration,
    /// The most connections served at once; more are refused with `busy`.
    pub max_connections: usize,
}

/// State shared by the server and its sessions.
pub struct Shared {
    /// The store, its data directory, the leases and the lifecycle state.
    pub lifecycle: Lifecycle,
    /// The one shutdown signal.
    pub shutdown: Shutdown,
    /// The socket the daemon listens on.
    pub socket: PathBuf,
    /// The bounds of every connection.
    pub limits: ConnectionLimits,
    /// The bytes of long request lines in memory at once.
    pub budget: Arc<DecodeBudget>,
    /// The models loaded at start (`--model`), which embed text for collections.
    pub embedders: Embedders,
    /// The connections holding the daemon (`attach`).
    pub holders: Holders,
    started: Instant,
    connections: AtomicU64,
    /// Connections kept open until the very end of shutdown: a `shutdown` requester learns
    /// that the daemon has closed everything when its connection finally closes.
    held: Mutex<Vec<Arc<Stream>>>,
    /// The last round of the snapshot schedule, for `status`.
    last_snapshot: Mutex<Option<ScheduledSnapshot>>,
}

impl Shared {
    /// Shared state for a daemon that is serving.
    pub fn new(
        store: Store,
        shutdown: Shutdown,
        data_dir: PathBuf,
        socket: PathBuf,
        limits: ConnectionLimits,
        embedders: Embedders,
        stop_when_unused: Option<std::time::Duration>,
    ) -> Shared {
        Shared {
            embedders,
            holders: Holders::new(stop_when_unused, shutdown.clone()),
            lifecycle: Lifecycle::new(store, data_dir),
            shutdown,
            socket,
            budget: Arc::new(DecodeBudget::for_frame(limits.max_frame)),
            limits,
            started: Instant::now(),
            connections: AtomicU64::new(0),
            held: Mutex::new(Vec::new()),
            last_snapshot: Mutex::new(None),
        }
    }

    /// The storage owner's handle.
    pub fn store(&self) -> &Store {
        self.lifecycle.store()
    }

    /// The data directory (canonical).
    pub fn data_dir(&self) -> &std::path::Path {
        self.lifecycle.data_dir()
    }

    /// The lifecycle state now.
    pub fn state(&self) -> State {
        self.lifecycle.state()
    }

    /// Moves to another lifecycle state.
    pub fn set_state(&self, state: State) {
        self.lifecycle.set_state(state);
    }

    /// Seconds since start.
    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Open client connections.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts a connection for as long as the returned guard lives.
    pub fn connection_opened(&self) -> ConnectionGuard<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// Keeps `stream` open until [`Shared::release_held`].
    pub fn hold_until_exit(&self, stream: Arc<Stream>) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stream);
    }

    /// The last scheduled snapshot, taken or tried.
    pub fn last_snapshot(&self) -> Option<ScheduledSnapshot> {
        self.last_snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records a round of the snapshot schedule.
    pub fn set_last_snapshot(&self, last: ScheduledSnapshot) {
        *self.last_snapshot.lock().unwrap_or_else(|e| e.into_inner()) = Some(last);
    }

    /// Closes the connections kept by [`Shared::hold_until_exit`]: the last step of shutdown.
    pub fn release_held(&self) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Decrements the connection count on drop.
pub struct ConnectionGuard<'a>(&'a Shared);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}
