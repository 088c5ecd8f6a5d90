//! Where the daemon keeps its data and listens, resolved once at start from flags and the
//! environment, and the parser of the duration flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything `ctxd serve` needs to know before it starts.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// The socket (Unix) or pipe name (Windows) to listen on.
    pub socket: PathBuf,
    /// The largest request line accepted; longer ones get `frame_too_large`.
    pub max_frame: usize,
    /// How long shutdown waits for in-flight requests before closing storage anyway.
    pub drain_timeout: Duration,
    /// Collections with at least this many vectors get an arroy ANN index; 0 = never.
    pub ann_threshold: u64,
    /// The most client connections served at once; `None`: what the open-file limit leaves
    /// after what storage needs (`fd_limit`).
    pub max_connections: Option<usize>,
    /// How long a request line may take to arrive once it has begun, and a reply to be read.
    pub idle_timeout: Duration,
    /// Threads that run reads.
    pub read_threads: usize,
    /// Reads that may wait for a thread before more are refused with `busy`.
    pub read_queue: usize,
    /// Snapshots taken on a schedule (`--snapshot-every`), if any.
    pub schedule: Option<SnapshotSchedule>,
    /// The models loaded at start to embed text (`--model NAME=DIR`, or `CTXD_MODELS`).
    pub models: Vec<crate::embed::ModelSpec>,
    /// `--stop-when-unused`: stop when the last hold ends, or when none was taken within
    /// this grace after the start.
    pub stop_when_unused: Option<Duration>,
    /// `--ready-line`: announce readiness with one JSON line on stdout.
    pub ready_line: bool,
}

/// `--snapshot-every`, `--snapshot-dir`, `--snapshot-keep`, `--snapshot-format`.
#[derive(Debug, Clone)]
pub struct SnapshotSchedule {
    /// Time between rounds.
    pub every: Duration,
    /// The directory the snapshots are kept in (it must exist).
    pub dir: PathBuf,
    /// How many are kept.
    pub keep: u32,
    /// Directories or tar files.
    pub format: ctxd_proto::SnapshotFormat,
}

/// The vector count from which a collection gets an ANN index by default. Below it a cosine
/// collection's in-memory sketch is faster and more accurate than arroy: at 1M (the 100k real
/// 384-d embeddings plus noisy copies) it scans in 4.7 ms p50 on one thread (3.0 on two) at
/// recall@10 0.998 (`cargo bench -p ctxd --bench vector_scan -- 1m`), where arroy at the
/// default effort took 16.3 ms at recall 0.952 through the daemon (README, "ANN tier"). The
/// scan grows linearly (0.35 ms at 100k) and arroy, measured, 1.5 times per tenfold:
/// extrapolated, they cross near five million vectors. One threshold serves every distance:
/// dot, euclidean and manhattan collections keep the `u8` scan, which at 1M took 17.4 ms p50
/// (about arroy's 16.3 ms, exact instead of 0.95), so for those the index starts paying near a
/// million, and `--ann-threshold 1000000` is the setting for a store of large ones. Above the
/// threshold the index also keeps the in-memory copy from growing with the collection.
pub const DEFAULT_ANN_THRESHOLD: u64 = 5_000_000;

/// How long a request line may take to arrive once its first byte has, and a reply to be read,
/// by default: a 32 MiB line needs only half a megabyte per second. A connection that stalls
/// longer (half a line, then nothing) is closed instead of being held forever.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long shutdown lets in-flight requests finish by default. A write batch of the maximum
/// frame size finishes well within it; systemd's `TimeoutStopSec` must exceed it.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

impl ServeConfig {
    /// Resolves the paths.
    ///
    /// Data: `--data`, else systemd's `$STATE_DIRECTORY` (the unit's `StateDirectory=`, e.g.
    /// `/var/lib/ctxd`), else the platform default. Socket: `--socket`, else `CTXD_SOCKET`,
    /// else `ctxd.sock` in systemd's `$RUNTIME_DIRECTORY` (`RuntimeDirectory=`, e.g.
    /// `/run/ctxd`), else the per-user runtime directory.
    ///
    /// Only the daemon reads the systemd variables: a client started by some other unit sees
    /// *that* unit's directories in them, so clients find a system daemon through `--socket`
    /// or `CTXD_SOCKET` instead.
    pub fn resolve(data_dir: Option<PathBuf>, socket: Option<PathBuf>) -> ServeConfig {
        let socket = socket
            .or_else(ctxd_client::socket::from_env)
            .or_else(|| {
                service_runtime_dir().map(|dir| dir.join(ctxd_client::socket::SOCKET_FILE_NAME))
            })
            .unwrap_or_else(ctxd_client::socket::default_socket);
        ServeConfig {
            data_dir: data_dir
                .or_else(|| systemd_directory("STATE_DIRECTORY"))
                .unwrap_or_else(default_data_dir),
            socket,
            max_frame: ctxd_proto::DEFAULT_MAX_FRAME,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            ann_threshold: DEFAULT_ANN_THRESHOLD,
            max_connections: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            read_threads: crate::storage::read_pool::default_threads(),
            read_queue: crate::storage::read_pool::DEFAULT_QUEUE,
            schedule: None,
            models: Vec::new(),
            stop_when_unused: None,
            ready_line: false,
        }
    }
}

/// The runtime directory systemd made for this service (`RuntimeDirectory=`), if any.
pub fn service_runtime_dir() -> Option<PathBuf> {
    systemd_directory("RUNTIME_DIRECTORY")
}

/// The first directory in one of systemd's `*_DIRECTORY` variables: a colon-separated list
/// of absolute paths, one per directory the unit names (ctxd asks for one).
fn systemd_directory(variable: &str) -> Option<PathBuf> {
    let value = std::env::var_os(variable)?;
    let first = std::env::split_paths(&value).next()?;
    first.is_absolute().then_some(first)
}

/// The data directory used without `--data`: `$XDG_DATA_HOME/ctxd` (`~/.local/share/ctxd`).
#[cfg(unix)]
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("ctxd")
}

/// The data directory used without `--data`: `%LOCALAPPDATA%\ctxd\data`.
#[cfg(windows)]
pub fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("LOCALAPPDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    Path::new(&base).join("ctxd").join("data")
}

/// Parses `30s`, `10m`, `1h 30m`, `500ms`, or plain seconds (`30`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); try 30s, 10m or 1h"))
}
