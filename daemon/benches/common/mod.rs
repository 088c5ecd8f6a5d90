//! What the benchmarks share: a real `ctxd serve` process in a fresh temporary directory, with
//! its own `--data` and `--socket`, ready when it says so on systemd's `NOTIFY_SOCKET`
//! (`READY=1`; no sleeping or polling), and stopped with the `shutdown` operation.
//!
//! Each benchmark is its own crate and includes this module with `mod common;`.

#![allow(
    dead_code,
    reason = "each benchmark is its own crate and uses only part of this module"
)]

pub mod noise;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tempfile::TempDir;

/// How long the daemon may take to become ready, and to stop.
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(30);
/// What the stderr reader sends on the notify socket when the daemon's stderr closes.
const EXITED: &[u8] = b"CTXD_BENCH_EXITED=1";

/// A `ctxd serve` child (the release binary of this package) in its own temporary directory;
/// killed on drop if still running.
pub struct Daemon {
    child: Child,
    /// Always `Some`; taken only by [`Daemon::restart_with`], which hands it to the next daemon.
    dir: Option<TempDir>,
    socket: PathBuf,
    /// Collects the daemon's stderr until it closes (when the daemon exits).
    stderr: Option<JoinHandle<String>>,
    /// What the daemon logged so far (for conditions it reports in its log only).
    logged: Arc<Mutex<String>>,
}

impl Daemon {
    /// Spawns the daemon and blocks until it sends `READY=1`.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// [`Daemon::start`] with extra `ctxd serve` arguments.
    pub fn start_with(args: &[String]) -> Daemon {
        Daemon::start_with_env(args, &[])
    }

    /// [`Daemon::start_with`] with extra environment variables.
    pub fn start_with_env(args: &[String], env: &[(&str, String)]) -> Daemon {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        Daemon::spawn_in(dir, args, env)
    }

    /// Stops the daemon and starts a new one on the same data directory with `args`.
    pub fn restart_with(mut self, args: &[String]) -> Daemon {
        self.shutdown();
        let dir = self.dir.take().expect("the daemon owns its directory");
        Daemon::spawn_in(dir, args, &[])
    }

    /// Everything the daemon logged so far.
    pub fn stderr_so_far(&self) -> String {
        self.logged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn spawn_in(dir: TempDir, args: &[String], env: &[(&str, String)]) -> Daemon {
        let socket = dir.path().join("ctxd.sock");
        let notify_path = dir.path().join("notify.sock");
        // A restart binds again where the previous daemon's notify socket was.
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("cannot bind the notify socket");
        notify
            .set_read_timeout(Some(DAEMON_TIMEOUT))
            .expect("cannot set the notify socket's read timeout");

        let mut child = Command::new(env!("CARGO_BIN_EXE_ctxd"))
            .arg("serve")
            .arg("--data")
            .arg(dir.path().join("data"))
            .arg("--socket")
            .arg(&socket)
            .arg("--log-level")
            .arg("info")
            .args(args)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("CTXD_SOCKET")
            .env_remove("RUST_LOG")
            .env_remove("CTXD_INITIAL_MAP_SIZE")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start ctxd serve");

        // The reader sees end of file when the daemon exits, and then wakes the wait below.
        let mut pipe = child.stderr.take().expect("the daemon's stderr is piped");
        let logged = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&logged);
        let stderr = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            if let Ok(wake) = UnixDatagram::unbound() {
                let _ = wake.send_to(EXITED, &notify_path);
            }
            sink.lock().unwrap_or_else(|e| e.into_inner()).clone()
        });
        let mut daemon = Daemon {
            child,
            dir: Some(dir),
            socket,
            stderr: Some(stderr),
            logged,
        };

        let mut message = [0_u8; 4096];
        loop {
            match notify.recv(&mut message) {
                Ok(n) => {
                    let message = &message[..n];
                    if message.split(|&b| b == b'\n').any(|l| l == b"READY=1") {
                        return daemon;
                    }
                    if message == EXITED {
                        daemon.fail("exited before it was ready");
                    }
                }
                Err(e) => daemon.fail(&format!("did not become ready: {e}")),
            }
        }
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The daemon's resident memory now, from `/proc/<pid>/status` (None without procfs).
    pub fn memory(&self) -> Option<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let kib = |name: &str| {
            status.lines().find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(':')?
                    .trim()
                    .strip_suffix("kB")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        };
        Some(Memory {
            rss: kib("VmRSS")? * 1024,
            anon: kib("RssAnon")? * 1024,
            file: kib("RssFile")? * 1024,
        })
    }

    /// The daemon's peak resident memory since start or [`Daemon::reset_peak_memory`], in bytes
    /// (`VmHWM`; None without procfs).
    pub fn peak_memory(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let kib = status.lines().find_map(|line| {
            line.strip_prefix("VmHWM:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse::<u64>()
                .ok()
        })?;
        Some(kib * 1024)
    }

    /// Starts measuring the peak resident memory afresh (Linux: `5` into `clear_refs`).
    pub fn reset_peak_memory(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    /// The socket it listens on.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its temporary directory (the data directory is `data/` inside), for scratch files.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .expect("the daemon owns its directory")
            .path()
    }

    /// Prints the daemon's stderr and panics.
    pub fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait();
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap_or_default())
            .unwrap_or_else(|| self.stderr_so_far());
        eprintln!("ctxd stderr:\n{stderr}");
        panic!("ctxd {why} (exit: {status:?})");
    }

    /// Sends `shutdown`, waits for the daemon to close the connection and exit.
    pub fn stop(mut self) -> ExitStatus {
        self.shutdown()
    }

    fn shutdown(&mut self) -> ExitStatus {
        let mut stream =
            UnixStream::connect(&self.socket).expect("cannot connect to send shutdown");
        stream
            .set_read_timeout(Some(DAEMON_TIMEOUT))
            .expect("cannot set a read timeout");
        stream
            .write_all(b"{\"op\":\"shutdown\"}\n")
            .expect("cannot send shutdown");
        let mut reader = BufReader::new(stream);
        let mut reply = Vec::new();
        let mut rest = Vec::new();
        // The reply, then end of file once the daemon has closed everything.
        let read = reader
            .read_until(b'\n', &mut reply)
            .and_then(|_| reader.read_to_end(&mut rest));
        if let Err(e) = read {
            self.fail(&format!("did not stop within {DAEMON_TIMEOUT:?}: {e}"));
        }
        if !contains(&reply, b"\"ok\":true") {
            self.fail(&format!(
                "refused shutdown: {}",
                String::from_utf8_lossy(&reply).trim_end()
            ));
        }
        let status = self.child.wait().expect("cannot wait for the daemon");
        // Its stderr reader announces the exit on the notify socket's path: let it finish
        // first, or a restart's daemon may get the announcement (and be killed as exited).
        if let Some(reader) = self.stderr.take() {
            let _ = reader.join();
        }
        if !status.success() {
            self.fail(&format!("stopped with {status}"));
        }
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only reached with the daemon still running when the benchmark panicked.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Resident memory of a process, in bytes: `rss` is `anon` (heap, the in-memory vector copies)
/// plus `file` (pages of mapped files, here mostly LMDB, which the kernel can drop and re-read)
/// plus a little shared memory.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// `VmRSS`.
    pub rss: u64,
    /// `RssAnon`.
    pub anon: u64,
    /// `RssFile`.
    pub file: u64,
}

/// Bytes allocated on disk to the files under `path` (0 if it does not exist).
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !metadata.is_dir() {
        return metadata.blocks() * 512;
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| disk_usage(&entry.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Nanoseconds of a duration, saturating.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The nearest-rank percentile `p` (0–1) of sorted samples: the smallest sample with at least
/// `p` of all samples at or below it.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    let n = sorted.len();
    assert!(n > 0, "no samples");
    sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1]
}
