"""Finding the daemon that owns a data directory, or starting one that stops when unused.

Every daemon locks its data directory with a lock file named after the directory
(``daemon/src/lock/mod.rs``): ``data-<hex>.lock`` in ``/run/lock/ctxd`` (where ``/run/lock``
exists, else ``/tmp/ctxd-locks``; ``%ProgramData%\\ctxd\\locks`` on Windows), ``<hex>`` being
the first 16 bytes of the SHA-256 of the directory's canonical path. Once it listens, it names
its socket in ``data-<hex>.socket`` beside the lock, and it removes that file before it lets go
of the lock. So a client that knows only the directory finds the daemon, whatever socket it
was started with: a systemd service, a daemon started by hand, or one started by another
process's ``PersistentClient``.

When none runs, :func:`hold` starts ``ctxd serve --data DIR --socket PRIVATE
--stop-when-unused --ready-line`` and attaches to it. Several processes may do so at once:
the daemon that takes the lock serves, the others exit with status 5 (in use), and their
starters attach to the winner. The one race with no event to wait on (a daemon that has the
lock but is stopping, or has not yet named its socket) is retried after a short, growing
pause until the start timeout.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple

from . import _socket, _wire
from ._connection import Closed, open_connection
from .errors import (
    BadRequest,
    Error,
    NotRunning,
    ShuttingDown,
    StartFailed,
    Timeout,
    TransportError,
)

#: `ctxd serve`'s exit status when another daemon owns the data directory (daemon/src/exit.rs).
EXIT_IN_USE = 5

#: The environment variable that names the binary to start.
BIN_ENV = "CTXD_BIN"

_BACKOFF_FIRST = 0.005
_BACKOFF_MAX = 0.2
#: A start is not tried with less time left than this: it would be stopped before it serves.
_MIN_START_S = 1.0


def canonical_dir(path: _socket.PathLike) -> str:
    """Creates ``path`` if needed and returns the canonical form the daemon locks it by (Rust's
    ``std::fs::canonicalize``)."""
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    real = os.path.realpath(path)
    if sys.platform == "win32" and not real.startswith("\\\\?\\"):
        # canonicalize() returns verbatim paths there: \\?\C:\... and \\?\UNC\server\share.
        real = "\\\\?\\UNC\\" + real[2:] if real.startswith("\\\\") else "\\\\?\\" + real
    return real


def lock_dir() -> str:
    """The system-wide directory of data directory locks (``lock/unix.rs``, ``lock/windows.rs``)."""
    if sys.platform == "win32":
        base = os.environ.get("ProgramData") or r"C:\ProgramData"
        return os.path.join(base, "ctxd", "locks")
    return "/run/lock/ctxd" if os.path.isdir("/run/lock") else "/tmp/ctxd-locks"


def directory_key(canonical: str) -> str:
    """``<hex>`` of the lock file's name: a digest of the canonical path's bytes."""
    encoded = os.fsencode(canonical) if sys.platform != "win32" else canonical.encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:32]


def recorded_socket(canonical: str) -> Optional[str]:
    """The socket the directory's daemon named, or ``None`` when no daemon names one.

    A hint only: ``attach`` checks the daemon serves ``canonical``. On Unix a file that neither
    this user nor root owns is ignored (the lock directory is shared by every user)."""
    sidecar = os.path.join(lock_dir(), f"data-{directory_key(canonical)}.socket")
    try:
        with open(sidecar, encoding="utf-8") as file:
            if sys.platform != "win32" and os.fstat(file.fileno()).st_uid not in (0, os.getuid()):
                return None
            name = file.read().rstrip("\n")
    except OSError:
        return None
    return name or None


def private_socket(canonical: str) -> str:
    """The socket a daemon started here listens on: one per directory, in the per-user runtime
    directory (a pipe name on Windows)."""
    key = directory_key(canonical)
    if sys.platform == "win32":
        return rf"\\.\pipe\ctxd-data-{key}"
    return os.path.join(_socket.default_runtime_dir(), f"data-{key}.sock")


def find_binary(explicit: Optional[str] = None) -> str:
    """The ``ctxd`` binary: ``explicit``, else ``CTXD_BIN``, else the one installed with this
    package (a wheel puts it in the environment's scripts directory), else ``PATH``."""
    name = "ctxd.exe" if sys.platform == "win32" else "ctxd"
    for candidate, origin in ((explicit, "binary="), (os.environ.get(BIN_ENV), BIN_ENV)):
        if candidate:
            if not os.access(candidate, os.X_OK):
                raise StartFailed(f"{origin}{candidate} is not an executable ctxd binary")
            return candidate
    beside: List[str] = []
    scripts = sysconfig.get_path("scripts")
    if scripts:
        beside.append(os.path.join(scripts, name))
    beside.append(os.path.join(os.path.dirname(sys.executable), name))
    # `pip install --target DIR` (a Lambda layer's `python/`) puts the wheel's scripts in
    # DIR/bin, beside the package.
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    beside.append(os.path.join(package_parent, "bin", name))
    for candidate in beside:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name)
    if found:
        return found
    raise StartFailed(
        "cannot find the ctxd binary to start a daemon: install the `ctxd` wheel (it contains "
        f"the binary), set {BIN_ENV}, or put ctxd on PATH"
    )


class Holding:
    """A connection that holds a daemon with ``attach``, for as long as it is open.

    ``detach()`` lets go; when it was the last hold of a daemon that stops when unused, it
    returns only once the daemon has closed every file (its closing the connection says so).
    """

    def __init__(self, socket: str, timeout: Optional[float], data_dir: str) -> None:
        self.socket = socket
        self._pid = os.getpid()
        self._connection = open_connection(socket, timeout)
        try:
            self.server = self._call("hello", timeout, protocol=_wire.PROTOCOL_VERSION)
            # Refused, with no hold taken, by a daemon that serves another directory.
            self.attached = self._call("attach", timeout, data_dir=data_dir)
        except BaseException:
            self._connection.close()
            raise
        self._open = True

    def _call(self, op: str, timeout: Optional[float], **params: Any) -> Dict[str, Any]:
        line = _wire.encode_request(0, op, params)
        try:
            reply = self._connection.round_trip(line, timeout)
        except Closed as e:
            raise ConnectionClosed(str(e)) from None
        except OSError:  # socket.timeout
            raise Timeout(f"ctxd at {self.socket} did not answer `{op}` within {timeout} s") from None
        return _wire.decode_reply(reply, 0, op)

    def detach(self, stop_timeout: Optional[float]) -> bool:
        """Lets go; returns whether the daemon has stopped (because of this, or of anything
        else that stopped it meanwhile), in which case every file is closed by now.

        The daemon keeps a holding connection open until the end of any shutdown, so the
        connection's end is the signal: after the last ``detach``, or when the daemon was
        stopping anyway (``ctxd stop``, SIGTERM) and reads no more requests."""
        if not self._open:
            return False
        self._open = False
        try:
            if os.getpid() != self._pid:
                # A forked child shares the parent's connection: letting go would end the
                # parent's hold. Closing the child's copy of the socket changes nothing.
                return False
            try:
                result = self._call("detach", stop_timeout)
            except ConnectionClosed:
                return True
            except Timeout:
                raise
            except Error:
                return False
            if not result.get("stopping"):
                return False
            try:
                self._connection.receive(stop_timeout)
            except Closed:
                return True
            except OSError:
                raise Timeout(
                    f"ctxd at {self.socket} did not finish stopping within {stop_timeout} s"
                ) from None
            return True
        finally:
            self._connection.close()


class ConnectionClosed(TransportError):
    """The daemon closed a holding connection before answering."""


def hold(
    path: _socket.PathLike,
    *,
    timeout: Optional[float],
    start_timeout: float,
    binary: Optional[str] = None,
    serve_args: Sequence[str] = (),
) -> Tuple[Holding, Optional["subprocess.Popen[bytes]"]]:
    """Attaches to the daemon that owns ``path``, starting one if none does. Returns the
    holding connection and, if this call started the daemon, its process."""
    canonical = canonical_dir(path)
    deadline = time.monotonic() + start_timeout
    pause = _BACKOFF_FIRST
    resolved_binary: Optional[str] = None
    started_once = False
    while True:
        # The socket the owner named, and the one a daemon started for this directory by
        # any client listens on (found even if naming it failed).
        for socket in dict.fromkeys(filter(None, (recorded_socket(canonical), private_socket(canonical)))):
            held = _try_hold(socket, timeout, canonical)
            if held is not None:
                return held, None
        if resolved_binary is None:
            resolved_binary = find_binary(binary)
        if started_once and deadline - time.monotonic() < _MIN_START_S:
            raise Timeout(
                f"no ctxd answered for {canonical} within {start_timeout} s: another daemon "
                "holds its lock but does not answer (see `ctxd status`)"
            )
        started = _start(resolved_binary, canonical, deadline, serve_args)
        started_once = True
        if started is not None:
            process, socket = started
            held = _try_hold(socket, timeout, canonical)
            if held is not None:
                return held, process
        # Another daemon holds the lock: it is about to serve and name its socket, or stopping.
        time.sleep(pause)
        pause = min(pause * 2, _BACKOFF_MAX)


def _try_hold(socket: str, timeout: Optional[float], canonical: str) -> Optional[Holding]:
    """A hold on the daemon at ``socket`` if it serves ``canonical``; ``None`` when nothing
    listens there, it is stopping, or it serves another directory."""
    try:
        return Holding(socket, timeout, canonical)
    except (NotRunning, ShuttingDown, ConnectionClosed, BadRequest):
        return None


def log_path(canonical: str) -> str:
    """Where a daemon started here logs: beside its socket, never in the data directory."""
    if sys.platform == "win32":
        base = _socket.default_runtime_dir()
    else:
        base = os.path.dirname(private_socket(canonical))
    return os.path.join(base, f"data-{directory_key(canonical)}.log")


def _start(
    binary: str, canonical: str, deadline: float, serve_args: Sequence[str]
) -> Optional[Tuple["subprocess.Popen[bytes]", str]]:
    """Starts a daemon that stops when unused and waits for its ready line. ``None`` when
    another daemon owns the directory."""
    socket = private_socket(canonical)
    log_file = log_path(canonical)
    os.makedirs(os.path.dirname(log_file), mode=0o700, exist_ok=True)
    command = [
        binary,
        "serve",
        "--data",
        canonical,
        "--socket",
        socket,
        "--stop-when-unused",
        "--ready-line",
        *serve_args,
    ]
    env = dict(os.environ)
    # The daemon's own service-manager variables are not ours to pass on.
    for variable in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(variable, None)
    options: Dict[str, Any] = {}
    if sys.platform == "win32":
        options["creationflags"] = (
            subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined]
        )
    else:
        # Its own session: a Ctrl-C meant for this program does not stop a daemon that other
        # processes may be using.
        options["start_new_session"] = True
    with open(log_file, "ab") as log:
        log_start = log.tell()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                **options,
            )
        except OSError as e:
            raise StartFailed(f"cannot start {binary}: {e}") from e
    assert process.stdout is not None
    line = _first_line(process.stdout, deadline - time.monotonic())
    if line is None:
        # No line within the time: stop it the way every stop goes (it closes what it opened).
        process.terminate()
        process.wait()
        process.stdout.close()
        raise Timeout(
            f"ctxd serve --data {canonical} was not ready within the start timeout; its log "
            f"({log_file}):\n{_tail(log_file, log_start)}"
        )
    process.stdout.close()
    if line:
        # Whenever it exits (it may outlive this client: other processes can hold it), it is
        # reaped here rather than left a zombie for as long as this process runs.
        threading.Thread(target=process.wait, name="ctxd-reaper", daemon=True).start()
        try:
            announced = json.loads(line).get("socket", socket)
        except ValueError:
            announced = socket
        return process, announced
    code = process.wait()
    if code == EXIT_IN_USE:
        return None
    raise StartFailed(
        f"ctxd serve --data {canonical} exited with status {code}: "
        f"{_tail(log_file, log_start) or '(it logged nothing)'}",
        details={"exit_status": code, "log": log_file},
    )


def _first_line(stream: IO[bytes], within: float) -> Optional[bytes]:
    """The first line of ``stream`` (``b""`` at end of stream), or ``None`` if none came
    ``within`` seconds. A thread reads, since pipes cannot be waited on portably."""
    lines: "queue.Queue[bytes]" = queue.Queue(maxsize=1)
    reader = threading.Thread(
        target=lambda: lines.put(stream.readline()), name="ctxd-ready", daemon=True
    )
    reader.start()
    try:
        return lines.get(timeout=max(within, 0.0))
    except queue.Empty:
        return None


def _tail(path: str, start: int, limit: int = 4000) -> str:
    """What the daemon logged since ``start``, at most the last ``limit`` characters."""
    try:
        with open(path, "rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return text[-limit:].strip()
