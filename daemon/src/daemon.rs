//! The daemon's life: take the lock, bind, open storage, serve, and stop in one order.
//!
//! Every way of stopping (SIGTERM, SIGINT, the `shutdown` operation, a Windows service stop)
//! triggers the same `Shutdown` signal, after which [`run`] walks one sequence:
//!
//! 1. stop accepting connections and reading new requests;
//! 2. let in-flight requests finish (bounded by `drain_timeout`);
//! 3. close storage: checkpoint and close SQLite, close LMDB and wait until it is unmapped;
//! 4. remove the socket, then release the socket lock;
//! 5. release the data directory lock;
//! 6. close the connections of `shutdown` requesters, which tells them the daemon is done.

use crate::config::ServeConfig;
use crate::embed::Embedders;
use crate::fd_limit;
use crate::listener::{ListenError, Listener};
use crate::lock::{self, LockError};
use crate::notify;
use crate::server;
use crate::shared::{ConnectionLimits, Shared};
use crate::shutdown::Shutdown;
use crate::signals;
use crate::storage::{StorageError, Store};
use std::path::PathBuf;
use std::sync::Arc;

/// Why the daemon could not start, or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory could not be created or resolved.
    #[error("cannot use data directory {}: {source}", path.display())]
    DataDir {
        /// The directory as given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Another daemon owns the data directory, or the lock failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The socket could not be bound.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// Storage failed to open or to close.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// A model named by `--model` could not be loaded.
    #[error("cannot load {0}")]
    Model(#[from] crate::embed::LoadError),
}

impl DaemonError {
    /// The exit status this failure gives `ctxd serve` ([`crate::exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            DaemonError::Storage(StorageError::CloseDiskFull(_)) => crate::exit::DISK_FULL,
            DaemonError::Lock(LockError::Held { .. }) => crate::exit::IN_USE,
            DaemonError::Listen(
                ListenError::InUse(LockError::Held { .. }) | ListenError::Live(_),
            ) => crate::exit::IN_USE,
            _ => crate::exit::FAILED,
        }
    }
}

/// Runs the daemon until it is told to stop, then stops in order.
pub async fn run(config: ServeConfig) -> Result<(), DaemonError> {
    run_hosted(config, Shutdown::new(), |_| {}).await
}

/// [`run`] for a host that controls the daemon besides signals and the `shutdown` operation
/// (the Windows service): `shutdown` stops it, and `serving` receives the running daemon's
/// shared state once it serves (to release and resume on the host's pause and continue).
pub(crate) async fn run_hosted(
    config: ServeConfig,
    shutdown: Shutdown,
    serving: impl FnOnce(&Arc<Shared>),
) -> Result<(), DaemonError> {
    signals::listen(shutdown.clone()).map_err(DaemonError::Signals)?;

    // Models first: a wrong model directory stops the start before anything is locked or bound.
    let specs = config.models.clone();
    let embedders = tokio::task::spawn_blocking(move || Embedders::load(&specs))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;

    let data_dir = resolve_data_dir(&config.data_dir)?;
    let mut data_lock = lock::lock_data_dir(&data_dir)?;
    let listener = Listener::bind(&config.socket)?;
    let limits = connection_limits(&config);
    let options = crate::storage::StoreOptions {
        ann_threshold: config.ann_threshold,
        read_threads: config.read_threads,
        read_queue: config.read_queue,
    };
    let store = Store::open(data_dir.clone(), options).await?;
    let shared = Arc::new(Shared::new(
        store,
        shutdown,
        data_dir,
        listener.path().to_owned(),
        limits,
        embedders,
        config.stop_when_unused,
    ));
    tracing::info!(
        pid = std::process::id(),
        data_dir = %shared.data_dir().display(),
        socket = %shared.socket.display(),
        socket_activated = listener.is_activated(),
        lock = %data_lock.path().display(),
        max_connections = limits.max_connections,
        decode_budget = shared.budget.total(),
        read_threads = config.read_threads,
        "ctxd {} serving",
        env!("CARGO_PKG_VERSION")
    );
    // Named once storage is open, so a client that finds the socket this way is answered at
    // once (not after a journal replay it would wait for in the listen backlog).
    if let Err(e) = data_lock.record_socket(listener.path()) {
        // Clients that name the socket still find the daemon; only discovery by data
        // directory (`ctxd.PersistentClient`) does not.
        tracing::warn!(
            "cannot record the socket beside the lock {}: {e}",
            data_lock.path().display()
        );
    }
    notify::ready("serving");
    if config.ready_line {
        announce_ready(&shared);
    }
    tokio::spawn(expire_leases(Arc::clone(&shared)));
    let unused = Arc::clone(&shared);
    tokio::spawn(async move { unused.holders.stop_if_never_held().await });
    let schedule = config.schedule.clone().map(|schedule| {
        tracing::info!(
            every = %humantime::format_duration(schedule.every),
            dir = %schedule.dir.display(),
            keep = schedule.keep,
            "snapshots scheduled"
        );
        tokio::spawn(crate::schedule::run(Arc::clone(&shared), schedule))
    });
    serving(&shared);

    server::serve(&listener, Arc::clone(&shared), config.drain_timeout).await;
    // The schedule stops at the shutdown signal; a copy it started ends on its own thread
    // and the close below waits for its read lease.
    if let Some(schedule) = schedule {
        let _ = schedule.await;
    }

    let closed = shared.store().close().await;
    drop(listener);
    drop(data_lock);
    tracing::info!("stopped");
    notify::flush();
    shared.release_held();
    closed.map_err(DaemonError::from)
}

/// The bounds every connection gets: the frame limit, the idle timeout, and how many
/// connections fit in the open-file limit (raised to its hard limit first).
fn connection_limits(config: &ServeConfig) -> ConnectionLimits {
    let open_files = fd_limit::raise();
    let reserved = fd_limit::reserved(
        config.read_threads,
        crate::storage::snapshot::MAX_CONCURRENT,
    );
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| fd_limit::default_max_connections(open_files, reserved));
    if let Some(limit) = open_files
        && (max_connections + reserved) as u64 > limit
    {
        tracing::warn!(
            "--max-connections {max_connections} and the {reserved} files storage may open \
             exceed the open-file limit of {limit}: raise LimitNOFILE= (or ulimit -n), or \
             lower --max-connections"
        );
    }
    ConnectionLimits {
        max_frame: config.max_frame,
        idle_timeout: config.idle_timeout,
        max_connections,
    }
}

/// Ends leases when their time is up (resuming when the last one ends), until shutdown.
async fn expire_leases(shared: Arc<Shared>) {
    loop {
        let next = shared.lifecycle.expire().await;
        tokio::select! {
            () = shared.lifecycle.changed_or(next) => {}
            _ = shared.shutdown.triggered() => return,
        }
    }
}

/// `--ready-line`: one JSON line on stdout saying the daemon serves, and where. A failure to
/// write it (nobody reads stdout any more) does not stop the daemon: the program that asked for
/// it learns of the start from the socket too.
fn announce_ready(shared: &Shared) {
    use std::io::Write;
    let line = serde_json::json!({
        "ready": true,
        "pid": std::process::id(),
        "socket": shared.socket.display().to_string(),
        "data_dir": shared.data_dir().display().to_string(),
    });
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        tracing::debug!("cannot print the ready line: {e}");
    }
}

/// Creates the data directory if needed and returns its canonical path (the lock's key).
fn resolve_data_dir(dir: &std::path::Path) -> Result<PathBuf, DaemonError> {
    let err = |source| DaemonError::DataDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::canonicalize(dir).map_err(err)
}
