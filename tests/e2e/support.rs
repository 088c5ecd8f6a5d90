//! The test harness: a real daemon process per test.

use ctxd_client::Client;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The `ctxd` binary under test.
pub const CTXD: &str = env!("CARGO_BIN_EXE_ctxd");

/// How long a daemon may take to become ready (a debug build on a busy 2-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a stopping daemon may take to exit (the issue's bound).
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A temporary directory with a data directory and a socket path inside it.
pub struct Scratch {
    pub dir: TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn data(&self) -> PathBuf {
        self.path("data")
    }

    pub fn socket(&self) -> PathBuf {
        self.path("run/ctxd.sock")
    }
}

/// How to start a daemon.
pub struct Start {
    pub data: PathBuf,
    /// Whether `--data` is passed (else the daemon finds its data directory by itself).
    pub data_flag: bool,
    pub socket: Option<PathBuf>,
    /// Whether `--socket` is passed (else `socket` is only where the test connects).
    pub socket_flag: bool,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub notify: PathBuf,
    /// A listening socket handed over the way systemd's socket activation does.
    pub activation: Option<OwnedFd>,
    /// Resource limits for the daemon, as arguments of a shell's `ulimit`, set in order.
    pub ulimits: Vec<String>,
}

impl Start {
    pub fn new(scratch: &Scratch) -> Start {
        Start {
            data: scratch.data(),
            data_flag: true,
            socket: Some(scratch.socket()),
            socket_flag: true,
            args: Vec::new(),
            env: Vec::new(),
            notify: scratch.path(&format!("notify-{}", unique())),
            activation: None,
            ulimits: Vec::new(),
        }
    }

    /// Starts the daemon with `RLIMIT_NOFILE` set to `soft` and `hard` (as a shell's `ulimit`
    /// or systemd's `LimitNOFILE=soft:hard` would).
    pub fn nofile(mut self, soft: u64, hard: u64) -> Self {
        // The soft limit first: a hard limit below the current soft one is refused.
        self.ulimits.push(format!("-S -n {soft}"));
        self.ulimits.push(format!("-H -n {hard}"));
        self
    }

    /// Starts the daemon with `RLIMIT_AS` (the most virtual memory it may map) set to `bytes`,
    /// as `ulimit -v` would.
    pub fn address_space(mut self, bytes: u64) -> Self {
        self.ulimits.push(format!("-v {}", bytes >> 10));
        self
    }

    /// Leaves `--socket` out; `socket` is then only where the test connects.
    pub fn without_socket_flag(mut self) -> Self {
        self.socket_flag = false;
        self
    }

    /// Leaves `--data` out; `data` is then only where the test expects the files.
    pub fn without_data_flag(mut self) -> Self {
        self.data_flag = false;
        self
    }

    /// Passes `listener` as systemd does: as fd 3, with `LISTEN_FDS=1` and `LISTEN_PID` naming
    /// the daemon. A shell in front of the daemon moves it from stdin to fd 3 and learns the
    /// pid that `exec` keeps, so no unsafe `pre_exec` is needed.
    pub fn activated_by(mut self, listener: impl Into<OwnedFd>) -> Self {
        self.activation = Some(listener.into());
        self
    }

    pub fn data(mut self, data: impl Into<PathBuf>) -> Self {
        self.data = data.into();
        self
    }

    pub fn socket(mut self, socket: Option<PathBuf>) -> Self {
        self.socket = socket;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<Path>) -> Self {
        self.env.push((
            key.to_owned(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        self
    }

    fn command(&self) -> Command {
        let (mut command, stdin) = match &self.activation {
            Some(fd) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(r#"exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@""#)
                    .arg(CTXD);
                let fd = fd.try_clone().expect("duplicate the listening socket");
                (shell, Stdio::from(fd))
            }
            None if !self.ulimits.is_empty() => {
                let limits: Vec<String> = self
                    .ulimits
                    .iter()
                    .map(|l| format!("ulimit {l} && "))
                    .collect();
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!(r#"{}exec "$0" "$@""#, limits.concat()))
                    .arg(CTXD);
                (shell, Stdio::null())
            }
            None => (Command::new(CTXD), Stdio::null()),
        };
        command.arg("serve");
        if self.data_flag {
            command.arg("--data").arg(&self.data);
        }
        if let Some(socket) = self.socket.as_ref().filter(|_| self.socket_flag) {
            command.arg("--socket").arg(socket);
        }
        command
            .args(&self.args)
            .env_remove("CTXD_SOCKET")
            .env("RUST_LOG", "info")
            .env("NOTIFY_SOCKET", &self.notify)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUNTIME_DIRECTORY")
            .env_remove("CTXD_INITIAL_MAP_SIZE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        command
    }

    /// Starts the daemon and waits for its `READY=1`.
    pub fn spawn(self) -> Daemon {
        let notify = UnixDatagram::bind(&self.notify).expect("bind the notify socket");
        let mut child = self.command().spawn().expect("spawn ctxd serve");
        let stderr = Stderr::collect(child.stderr.take().expect("piped stderr"));
        let socket = self.socket.clone().unwrap_or_default();
        let mut daemon = Daemon {
            child,
            stderr,
            notify,
            socket,
            data: self.data,
        };
        let ready = daemon.next_notification(READY_TIMEOUT);
        match ready {
            Some(message) if message.contains("READY=1") => daemon,
            other => panic!(
                "ctxd did not become ready (got {other:?}); stderr:\n{}",
                daemon.stderr.wait_closed(EXIT_TIMEOUT)
            ),
        }
    }

    /// Runs a daemon that is expected to refuse to start; returns its exit status and stderr.
    pub fn run_to_exit(self) -> (ExitStatus, String) {
        let mut child = self.command().spawn().expect("spawn ctxd serve");
        let stderr = Stderr::collect(child.stderr.take().expect("piped stderr"));
        let text = stderr.wait_closed(READY_TIMEOUT);
        let status = child.wait().expect("wait for ctxd");
        (status, text)
    }
}

/// A running `ctxd serve`; killed on drop if still running.
pub struct Daemon {
    child: Child,
    stderr: Stderr,
    notify: UnixDatagram,
    pub socket: PathBuf,
    pub data: PathBuf,
}

impl Daemon {
    /// A daemon on a fresh scratch directory.
    pub fn start(scratch: &Scratch) -> Daemon {
        Start::new(scratch).spawn()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn client(&self) -> Client {
        Client::connect_to(&self.socket)
            .await
            .expect("connect to the daemon")
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(&self.socket)
    }

    /// The next `sd_notify` message, if one comes within `timeout`.
    pub fn next_notification(&mut self, timeout: Duration) -> Option<String> {
        self.notify
            .set_read_timeout(Some(timeout))
            .expect("set a read timeout");
        let mut buf = vec![0; 4096];
        let n = self.notify.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a valid pid");
        rustix::process::kill_process(pid, signal).expect("send a signal");
    }

    /// Waits for the process to exit (its stderr closes when it does) and returns its status
    /// and everything it logged. Panics if it takes longer than `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, String) {
        let started = Instant::now();
        let text = self.stderr.wait_closed(timeout);
        assert!(
            started.elapsed() <= timeout,
            "ctxd took longer than {timeout:?} to exit; stderr:\n{text}"
        );
        let status = self.child.wait().expect("wait for ctxd");
        (status, text)
    }

    /// Number of file descriptors the daemon has open (from `/proc`).
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read the daemon's /proc fd table")
            .count()
    }

    /// What each of the daemon's file descriptors refers to (from `/proc`), for messages.
    pub fn fd_targets(&self) -> Vec<String> {
        let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read the daemon's /proc fd table")
            .flatten()
            .map(|entry| {
                std::fs::read_link(entry.path())
                    .map_or_else(|e| e.to_string(), |t| t.display().to_string())
            })
            .collect();
        targets.sort();
        targets
    }

    /// Number of threads of the daemon (from `/proc`).
    pub fn threads(&self) -> usize {
        self.proc_status("Threads")
    }

    /// The daemon's peak resident memory since start or the last [`Daemon::reset_peak_memory`],
    /// in bytes (`VmHWM`).
    pub fn peak_memory(&self) -> usize {
        self.proc_status("VmHWM") * 1024
    }

    /// The daemon's resident memory now, in bytes (`VmRSS`).
    pub fn memory(&self) -> usize {
        self.proc_status("VmRSS") * 1024
    }

    /// Starts measuring the peak resident memory afresh (Linux: `5` into `clear_refs`).
    pub fn reset_peak_memory(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5")
            .expect("reset the daemon's peak memory");
    }

    /// A number field of `/proc/PID/status` (kB fields in kB).
    fn proc_status(&self, field: &str) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the daemon's /proc status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    pub fn stderr_so_far(&self) -> String {
        self.stderr.text()
    }
}

impl Drop for Daemon {
    /// Stops the daemon the way a service manager does (SIGTERM), so it removes its socket and
    /// lock files; one that does not exit within the bound is killed.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let pid = rustix::process::Pid::from_raw(self.pid() as i32).expect("a valid pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let _ = self.stderr.closed.recv_timeout(EXIT_TIMEOUT);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon's stderr, collected by a thread; the thread's end means the process closed it.
struct Stderr {
    text: Arc<Mutex<String>>,
    closed: mpsc::Receiver<()>,
}

impl Stderr {
    fn collect(mut pipe: impl Read + Send + 'static) -> Stderr {
        let text = Arc::new(Mutex::new(String::new()));
        let (done, closed) = mpsc::channel();
        let sink = Arc::clone(&text);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let _ = done.send(());
        });
        Stderr { text, closed }
    }

    fn text(&self) -> String {
        self.text.lock().expect("stderr lock").clone()
    }

    /// Waits until the pipe closes (or `timeout` passes) and returns what was written.
    fn wait_closed(&self, timeout: Duration) -> String {
        let _ = self.closed.recv_timeout(timeout);
        self.text()
    }
}

/// A raw JSON-lines connection, for testing the wire itself.
pub struct Raw {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Raw {
    pub fn connect(socket: &Path) -> Raw {
        let stream = UnixStream::connect(socket).expect("connect to the socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set a read timeout");
        Raw {
            reader: BufReader::new(stream.try_clone().expect("clone the stream")),
            writer: stream,
        }
    }

    /// Writes bytes as they are (no newline added).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to the daemon");
    }

    /// Writes one line.
    pub fn send(&mut self, line: &str) {
        self.send_bytes(format!("{line}\n").as_bytes());
    }

    /// Reads one reply line as it was sent (without its newline); panics at end of stream.
    pub fn recv_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read a reply");
        assert!(
            n > 0,
            "the daemon closed the connection instead of answering"
        );
        line.trim_end_matches('\n').to_owned()
    }

    /// Reads one reply line as JSON; panics at end of stream.
    pub fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read a reply");
        assert!(
            n > 0,
            "the daemon closed the connection instead of answering"
        );
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line}"))
    }

    pub fn call(&mut self, line: &str) -> Value {
        self.send(line);
        self.recv()
    }

    /// Asserts the daemon closes the connection (reads end of stream).
    pub fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let n = self.reader.read_to_end(&mut rest).unwrap_or(0);
        assert_eq!(n, 0, "expected the connection to close, got more: {rest:?}");
    }
}

/// Runs the `ctxd` CLI to completion.
pub fn ctxd(args: &[&str]) -> Output {
    Command::new(CTXD)
        .args(args)
        .env_remove("CTXD_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("run ctxd")
}

/// Waits until `condition` holds, checking every few milliseconds, for at most `timeout`. For
/// effects the daemon completes asynchronously after a client has gone (closing a connection);
/// never used for readiness.
pub fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The error code of a failed reply.
pub fn error_code(reply: &Value) -> &str {
    assert_eq!(reply["ok"], false, "expected a failure, got {reply}");
    reply["error"]["code"]
        .as_str()
        .expect("error.code is a string")
}

/// A deterministic pseudo-random generator (xorshift64), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in [-1, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next() % 20_000) as f32 / 10_000.0 - 1.0
    }
}

/// Raises this test process's soft open-file limit to its hard one (tests that open a thousand
/// connections need more than a default 1024), and returns the hard limit.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let Rlimit { maximum, .. } = getrlimit(Resource::Nofile);
    let hard = maximum.unwrap_or(1 << 20).min(1 << 20);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum,
        },
    );
    hard
}

/// Paths under `dir` that process `pid` holds open or mapped, per `/proc`.
pub fn handles_into(pid: u32, dir: &Path) -> Vec<PathBuf> {
    let mut held = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd table")
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(entry.path())
            && target.starts_with(dir)
        {
            held.push(target);
        }
    }
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    held.extend(
        maps.lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .map(PathBuf::from)
            .filter(|path| path.starts_with(dir)),
    );
    held
}

/// The ids a search returns, best first.
pub async fn hit_ids(client: &Client, params: ctxd_proto::Search) -> Vec<String> {
    client
        .search(params)
        .await
        .expect("search")
        .hits
        .into_iter()
        .map(|h| h.id)
        .collect()
}
