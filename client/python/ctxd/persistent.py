"""``PersistentClient``: a client for a data directory, with the daemon that owns it found or
started for it, and stopped (every file closed) when the last such client closes."""

from __future__ import annotations

import os
import subprocess
import threading
import weakref
from typing import Any, Dict, Mapping, Optional, Sequence

from . import _owner, _socket
from .client import Client

__all__ = ["PersistentClient"]

#: How long :meth:`PersistentClient.close` waits, by default, for a daemon it stops to close
#: every file: the daemon's drain bound (30 s) for in-flight requests of other connections,
#: and time to checkpoint and close the stores.
DEFAULT_STOP_TIMEOUT = 60.0


class PersistentClient(Client):
    """A client of the daemon that owns the data directory ``path``, the drop-in for
    ``chromadb.PersistentClient(path=...)``.

    ``PersistentClient(path, timeout=30.0, start_timeout=30.0, binary=None, models=None,
    serve_args=())`` creates ``path`` if needed, then attaches to the daemon that owns it if one
    runs (a service, one started by hand, or one another process started this way), whatever
    socket it listens on. If none does, it starts ``ctxd serve --data path`` on a private
    socket, with ``--stop-when-unused``, and waits until it serves (at most
    ``start_timeout`` seconds). The binary is ``binary``, else ``$CTXD_BIN``, else the one the
    wheel installed beside this package, else ``ctxd`` on ``PATH``. ``models`` (``{"minilm":
    "/models/all-MiniLM-L6-v2"}``) are loaded by a daemon started here (``--model``), and
    ``serve_args`` are passed on to ``ctxd serve`` as they are.

    ``close()`` (or leaving ``with``) lets go of the daemon. When this was the last client
    holding a daemon started this way, the daemon stops and ``close()`` returns only once it
    has closed every file and released its locks: right after it, ``shutil.rmtree(path)``, a
    copy of the directory or an upload of its files is safe, with no ``gc`` and no sleep. A
    daemon that other processes still hold keeps serving them; a service that was not started
    this way never stops because of its clients.

    A process that ends without closing (an exception, ``os._exit``, SIGKILL) lets go all
    the same, because the hold is its open connection: the kernel closes it, and a daemon
    with no holder left stops at once, through the same shutdown as ``ctxd stop``. At
    interpreter exit, open clients are closed (and wait for the stop) like ``close()``.

    Everything else is :class:`ctxd.Client`: collections, ``status()``, ``snapshot()``.
    """

    def __init__(
        self,
        path: _socket.PathLike,
        *,
        timeout: Optional[float] = 30.0,
        start_timeout: float = 30.0,
        stop_timeout: Optional[float] = DEFAULT_STOP_TIMEOUT,
        binary: Optional[str] = None,
        models: Optional[Mapping[str, _socket.PathLike]] = None,
        serve_args: Sequence[str] = (),
    ) -> None:
        args = [*serve_args]
        for name, directory in (models or {}).items():
            args += ["--model", f"{name}={os.fspath(directory)}"]
        holding, process = _owner.hold(
            path,
            timeout=timeout,
            start_timeout=start_timeout,
            binary=binary,
            serve_args=args,
        )
        self.path: str = _owner.canonical_dir(path)
        self._holding = holding
        self._started: Optional["subprocess.Popen[bytes]"] = process
        self._close_lock = threading.Lock()
        self._letting_go = weakref.finalize(self, holding.detach, stop_timeout)
        try:
            super().__init__(holding.socket, timeout)
        except BaseException:
            self._letting_go()
            raise

    def __repr__(self) -> str:
        return f"PersistentClient(path={self.path!r}, socket={self.socket!r})"

    @property
    def attached(self) -> Dict[str, Any]:
        """What ``attach`` answered: ``holders`` (clients holding the daemon then, this one
        included) and ``stop_when_unused``."""
        return dict(self._holding.attached)

    @property
    def started_daemon(self) -> bool:
        """Whether this client started the daemon (rather than finding one running)."""
        return self._started is not None

    def close(self) -> None:
        """Closes the connection and lets go of the daemon; if that stops it, returns once
        every file is closed. Idempotent."""
        with self._close_lock:
            super().close()
            self._letting_go()

