//! The daemon that owns a data directory: found, or started to stop when unused, and held.
//!
//! Every daemon locks its data directory with `data-<key>.lock` in a system-wide lock directory
//! and, once it serves, names its socket in `data-<key>.socket` beside it ([`lock_dir`],
//! [`directory_key`]; the daemon's `lock` module uses these same functions). [`hold`] reads that
//! name, attaches to the daemon (`attach` with the directory, so a stale or planted name never
//! leads to another directory's daemon), and if none answers starts `ctxd serve --data DIR
//! --socket PRIVATE --stop-when-unused --ready-line` and attaches to it. The returned
//! [`Holding`] keeps the daemon alive; [`Holding::detach`] lets go and, when that stops the
//! daemon, returns once every file is closed. This is what Python's `ctxd.PersistentClient`
//! does (`client/python/ctxd/_owner.py`); keep the two in step.

use crate::{Client, Error, Result};
use ctxd_proto::{Attach, AttachResult, Detach};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// `ctxd serve`'s exit status when another daemon owns the data directory or the socket.
pub const EXIT_IN_USE: i32 = 5;

/// The system-wide directory of data directory locks: `/run/lock/ctxd` where the system has
/// `/run/lock`, else `/tmp/ctxd-locks`; `%ProgramData%\ctxd\locks` on Windows.
pub fn lock_dir() -> PathBuf {
    #[cfg(windows)]
    {
        let base = std::env::var_os("ProgramData")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"));
        base.join("ctxd").join("locks")
    }
    #[cfg(not(windows))]
    {
        if Path::new("/run/lock").is_dir() {
            PathBuf::from("/run/lock/ctxd")
        } else {
            PathBuf::from("/tmp/ctxd-locks")
        }
    }
}

/// The key of a data directory (given as its canonical path) in the lock files' names: the
/// first 16 bytes of the SHA-256 of the path's bytes, in lower-case hex.
pub fn directory_key(canonical: &Path) -> String {
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The socket the directory's daemon named, if a file names one (a hint: see [`hold`]).
pub fn recorded_socket(canonical: &Path) -> Option<PathBuf> {
    let sidecar = lock_dir().join(format!("data-{}.socket", directory_key(canonical)));
    let text = std::fs::read_to_string(sidecar).ok()?;
    let name = text.trim_end_matches('\n');
    (!name.is_empty()).then(|| PathBuf::from(name))
}

/// The socket a daemon started for this directory by [`hold`] listens on: one per directory in
/// the per-user runtime directory (a pipe name on Windows).
pub fn private_socket(canonical: &Path) -> PathBuf {
    let key = directory_key(canonical);
    #[cfg(windows)]
    {
        PathBuf::from(format!(r"\\.\pipe\ctxd-data-{key}"))
    }
    #[cfg(not(windows))]
    {
        crate::socket::default_runtime_dir().join(format!("data-{key}.sock"))
    }
}

/// A connection holding a daemon (`attach`), and a client for requests.
#[derive(Debug)]
pub struct Holding {
    holder: Client,
    /// What `attach` answered.
    pub attached: AttachResult,
    /// The data directory (canonical).
    pub data_dir: PathBuf,
    /// Whether [`hold`] started the daemon.
    pub started: bool,
}

impl Holding {
    /// The socket of the held daemon.
    pub fn socket(&self) -> &Path {
        self.holder.socket()
    }

    /// Lets go. Returns whether the daemon has stopped (because this was its last holder, or
    /// because it was stopping anyway); then every file is closed by now.
    pub async fn detach(self) -> Result<bool> {
        match self.holder.call(Detach {}).await {
            Ok(result) if result.stopping => {
                self.holder.wait_closed().await?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            // The daemon keeps a holder's connection to the end of any shutdown: its closing
            // means the files are closed.
            Err(Error::Io(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// How [`hold`] starts a daemon.
#[derive(Debug, Clone)]
pub struct Start {
    /// The `ctxd` binary.
    pub binary: PathBuf,
    /// Other `ctxd serve` arguments (`--model NAME=DIR`, …).
    pub serve_args: Vec<String>,
    /// How long finding or starting the daemon may take.
    pub timeout: Duration,
}

/// Attaches to the daemon that owns `data_dir` (created if missing), starting one if none does.
pub async fn hold(data_dir: &Path, start: &Start) -> Result<Holding> {
    std::fs::create_dir_all(data_dir)?;
    let canonical = std::fs::canonicalize(data_dir)?;
    let deadline = Instant::now() + start.timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        let mut sockets = Vec::new();
        sockets.extend(recorded_socket(&canonical));
        sockets.push(private_socket(&canonical));
        sockets.dedup();
        for socket in sockets {
            if let Some(holding) = try_hold(&socket, &canonical, false).await? {
                return Ok(holding);
            }
        }
        if let Some(socket) = start_daemon(&canonical, start, deadline).await?
            && let Some(holding) = try_hold(&socket, &canonical, true).await?
        {
            return Ok(holding);
        }
        if Instant::now() + pause > deadline {
            return Err(Error::Protocol(format!(
                "no ctxd answered for {} within {:?}: another daemon holds its lock but does not \
                 answer",
                canonical.display(),
                start.timeout
            )));
        }
        // Another daemon holds the lock: it is about to serve and name its socket, or stopping.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A hold on the daemon at `socket` if it serves `canonical`; `None` when nothing listens, it
/// stops, or it serves another directory.
async fn try_hold(socket: &Path, canonical: &Path, started: bool) -> Result<Option<Holding>> {
    let holder = match Client::builder()
        .socket(socket)
        .name(format!("ctxd-holder/{}", env!("CARGO_PKG_VERSION")))
        .connect()
        .await
    {
        Ok(client) => client,
        Err(Error::NotRunning { .. } | Error::Io(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let attach = Attach {
        data_dir: Some(canonical.display().to_string()),
    };
    match holder.call(attach).await {
        Ok(attached) => Ok(Some(Holding {
            holder,
            attached,
            data_dir: canonical.to_owned(),
            started,
        })),
        Err(Error::Daemon { .. } | Error::Io(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Starts `ctxd serve` for `canonical` and waits for its ready line: the socket it serves on,
/// or `None` when another daemon owns the directory (exit status 5).
async fn start_daemon(
    canonical: &Path,
    start: &Start,
    deadline: Instant,
) -> Result<Option<PathBuf>> {
    let socket = private_socket(canonical);
    let mut command = tokio::process::Command::new(&start.binary);
    command
        .arg("serve")
        .arg("--data")
        .arg(canonical)
        .arg("--socket")
        .arg(&socket)
        .args(["--stop-when-unused", "--ready-line"])
        .args(&start.serve_args)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(false);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command
        .spawn()
        .map_err(|e| Error::Protocol(format!("cannot start {}: {e}", start.binary.display())))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    let left = deadline.saturating_duration_since(Instant::now());
    let mut stdout = tokio::io::BufReader::new(stdout);
    let read = tokio::time::timeout(left, stdout.read_line(&mut line)).await;
    drop(stdout);
    match read {
        Ok(Ok(n)) if n > 0 => {
            // Reaped whenever it exits: it may outlive this process's use of it.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            let announced = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("socket")?.as_str().map(PathBuf::from))
                .unwrap_or(socket);
            Ok(Some(announced))
        }
        Ok(_) => {
            let status = child.wait().await?;
            if status.code() == Some(EXIT_IN_USE) {
                Ok(None)
            } else {
                Err(Error::Protocol(format!(
                    "ctxd serve --data {} exited with {status} (its stderr says why)",
                    canonical.display()
                )))
            }
        }
        Err(_) => {
            // Not ready in time: stopped the way every stop goes (it closes what it opened).
            #[cfg(unix)]
            if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok())
                && let Some(pid) = rustix::process::Pid::from_raw(pid)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            #[cfg(not(unix))]
            let _ = child.start_kill();
            let _ = child.wait().await;
            Err(Error::Timeout(start.timeout))
        }
    }
}
