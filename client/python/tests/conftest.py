"""The test harness: real ``ctxd serve`` processes, one per test, ready when they say so.

The binary is ``$CTXD_BIN`` if set, else built with ``cargo build -p ctxd`` in the workspace that
contains this file. Each daemon gets its own data directory and socket in a fresh temporary
directory, and is waited for through systemd's readiness protocol: the fixture binds a datagram
socket, passes it as ``NOTIFY_SOCKET``, and returns once the daemon sends ``READY=1`` (as
``tests/e2e/support.rs`` does); no sleeps. At teardown every daemon still running gets SIGTERM
and must exit with status 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

import pytest

import ctxd

#: How long a daemon may take to become ready (a debug build on a busy machine).
READY_TIMEOUT = 30.0
#: How long a stopping daemon may take to exit.
EXIT_TIMEOUT = 10.0


def workspace_root() -> Path:
    """The Cargo workspace this test file lives in."""
    for parent in Path(__file__).resolve().parents:
        manifest = parent / "Cargo.toml"
        if manifest.is_file() and "[workspace]" in manifest.read_text():
            return parent
    raise RuntimeError(f"no Cargo workspace above {__file__}")


@pytest.fixture(scope="session")
def ctxd_bin() -> str:
    """Path of the ``ctxd`` binary under test."""
    explicit = os.environ.get("CTXD_BIN")
    if explicit:
        assert os.access(explicit, os.X_OK), f"CTXD_BIN={explicit} is not an executable"
        return explicit
    root = workspace_root()
    subprocess.run(["cargo", "build", "-p", "ctxd"], cwd=root, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR") or root / "target")
    if not target.is_absolute():
        target = root / target
    binary = target / "debug" / "ctxd"
    assert binary.is_file(), f"cargo build did not produce {binary}"
    return str(binary)


def short_tempdir() -> str:
    """A fresh temporary directory with a short path: Unix socket paths must stay under ~100
    bytes, and pytest's own tmp_path can be much longer."""
    base = tempfile.gettempdir()
    if len(base) > 40:
        base = "/tmp"
    return tempfile.mkdtemp(prefix="ctxd-py-", dir=base)


class Daemon:
    """One ``ctxd serve`` process."""

    _counter = 0

    def __init__(self, binary: str, scratch: Path, data: Path, sock: Path, args: Sequence[str]):
        self.data = data
        self.socket = sock
        Daemon._counter += 1
        self.log_path = scratch / f"daemon-{Daemon._counter}.log"
        notify_path = scratch / f"notify-{Daemon._counter}"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        env = dict(os.environ)
        env.pop("CTXD_SOCKET", None)
        env["NOTIFY_SOCKET"] = str(notify_path)
        env["RUST_LOG"] = "info"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "serve", "--data", str(data), "--socket", str(sock), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            self._wait_ready(notify)
        finally:
            notify.close()

    def _wait_ready(self, notify: socket.socket) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"ctxd did not send READY=1 within {READY_TIMEOUT} s:\n{self.log()}")
            # Wake up now and then to notice a daemon that died instead of getting ready; a
            # datagram ends the wait at once.
            notify.settimeout(min(remaining, 0.5))
            try:
                message = notify.recv(4096).decode("utf-8", "replace")
            except socket.timeout:
                if self.process.poll() is not None:
                    pytest.fail(
                        f"ctxd exited with {self.process.returncode} before READY=1:\n{self.log()}"
                    )
                continue
            if "READY=1" in message.split("\n"):
                return

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs) -> ctxd.Client:
        return ctxd.Client(self.socket, **kwargs)

    def stop(self) -> None:
        """SIGTERM, and assert a clean exit (status 0) in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"ctxd did not exit within {EXIT_TIMEOUT} s of SIGTERM:\n{self.log()}")
        assert code == 0, f"ctxd exited with {code}:\n{self.log()}"


StartDaemon = Callable[..., Daemon]


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A fresh short temporary directory, removed afterwards."""
    path = Path(short_tempdir())
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_daemon(ctxd_bin: str, scratch: Path) -> Iterator[StartDaemon]:
    """``start_daemon(data=None, socket=None, args=())`` starts a daemon and returns it once
    ready; every daemon started is stopped at teardown and must exit cleanly."""
    started: List[Daemon] = []

    def start(
        data: Optional[Path] = None, socket: Optional[Path] = None, args: Sequence[str] = ()
    ) -> Daemon:
        daemon = Daemon(
            ctxd_bin,
            scratch,
            data if data is not None else scratch / "data",
            socket if socket is not None else scratch / "ctxd.sock",
            args,
        )
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def daemon(start_daemon: StartDaemon) -> Daemon:
    """A daemon on a fresh data directory."""
    return start_daemon()


@pytest.fixture
def client(daemon: Daemon) -> Iterator[ctxd.Client]:
    """A client of ``daemon``."""
    with daemon.client() as c:
        yield c
