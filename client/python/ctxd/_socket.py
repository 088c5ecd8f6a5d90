"""Where the daemon's socket is by default: the same rules as the daemon and the Rust client.

Order: an explicit path, then ``CTXD_SOCKET`` (ignored when empty), then the per-user runtime
directory: ``$XDG_RUNTIME_DIR/ctxd/ctxd.sock`` (``XDG_RUNTIME_DIR`` ignored when empty), else
``/tmp/ctxd-$UID/ctxd.sock``. On Windows the default is the named pipe ``\\\\.\\pipe\\ctxd-<user>``
(``_pipe`` speaks it).

Mirrors ``client/src/socket.rs``; keep the two in step.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Union

#: The environment variable that overrides the default socket, for daemon and clients.
SOCKET_ENV = "CTXD_SOCKET"

#: The file name of the socket inside the runtime directory.
SOCKET_FILE_NAME = "ctxd.sock"

PathLike = Union[str, "os.PathLike[str]"]


def resolve(explicit: Optional[PathLike] = None) -> str:
    """The socket a client connects to: ``explicit``, else ``CTXD_SOCKET``, else the default."""
    if explicit is not None:
        return os.fspath(explicit)
    from_env = os.environ.get(SOCKET_ENV)
    if from_env:
        return from_env
    return default_socket()


def default_runtime_dir() -> str:
    """The per-user runtime directory that holds the socket (never data)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        if base is None:
            import tempfile

            base = tempfile.gettempdir()
        return os.path.join(base, "ctxd", "run")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "ctxd")
    return f"/tmp/ctxd-{os.getuid()}"


def default_socket() -> str:
    """The default socket path (a named pipe name on Windows)."""
    if sys.platform == "win32":
        user = os.environ.get("USERNAME", "default")
        # The same character rule as socket.rs: anything but [A-Za-z0-9_-] becomes `_`.
        user = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "_" for c in user)
        return rf"\\.\pipe\ctxd-{user}"
    return os.path.join(default_runtime_dir(), SOCKET_FILE_NAME)
