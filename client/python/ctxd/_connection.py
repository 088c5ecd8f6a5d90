"""One socket connection to the daemon: write a request line, read a reply line.

Framing is one compact JSON object per line, terminated by ``\\n`` (``proto/src/lib.rs``). This module
knows bytes and lines only; what a line means is ``_wire``'s job, and when to reconnect is
``client``'s.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import BinaryIO, Optional

from .errors import NotRunning, TransportError

# Replies can be large (a page of vectors); read in big chunks.
_CHUNK = 256 * 1024


class Closed(Exception):
    """The connection is unusable: the daemon closed it, or reading/writing failed.

    Internal: the client turns it into a retry (reads) or ``ConnectionLost`` (writes).
    """


class LineConnection:
    """Request lines out, reply lines in, over a transport's ``send`` and ``_read`` (a Unix
    socket here, a Windows named pipe in ``_pipe``)."""

    _buffer: bytearray

    def send(self, line: bytes, timeout: Optional[float]) -> None:
        raise NotImplementedError

    def _read(self, size: int, timeout: Optional[float]) -> bytes:
        """At most ``size`` bytes, at least one: ``socket.timeout`` when none come within
        ``timeout``, ``Closed`` when the daemon closed the connection."""
        raise NotImplementedError

    def round_trip(self, line: bytes, timeout: Optional[float]) -> bytes:
        """Sends one request line and returns the reply line.

        If writing fails, the reply may still be there to read: the daemon can refuse a
        connection (``permission_denied``) and close it before the request arrives, and its
        reply says more than the broken pipe does (as in the Rust client's ``round_trip``).
        """
        try:
            self.send(line, timeout)
        except Closed as write_error:
            try:
                return self.receive(timeout)
            except (Closed, socket.timeout):
                raise write_error from None
        return self.receive(timeout)

    def receive(self, timeout: Optional[float]) -> bytes:
        """Reads the next reply line, without its ``\\n``.

        Raises ``socket.timeout`` when no full line comes within ``timeout``, and ``Closed``
        when the daemon closes the connection first.
        """
        # Only the bytes added since the last look can hold the newline: scanning from there
        # keeps a multi-megabyte reply linear rather than quadratic.
        scanned = 0
        while True:
            end = self._buffer.find(b"\n", scanned)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                return line
            scanned = len(self._buffer)
            self._buffer += self._read(_CHUNK, timeout)

    def receive_into(self, count: int, sink: BinaryIO, timeout: Optional[float]) -> None:
        """Reads exactly ``count`` bytes that follow a reply line and writes them to ``sink``
        (a ``snapshot_stream``). Raises ``Closed`` when the stream ends short."""
        remaining = count
        if self._buffer:
            take = min(len(self._buffer), remaining)
            _write_all(sink, bytes(self._buffer[:take]))
            del self._buffer[:take]
            remaining -= take
        while remaining:
            try:
                chunk = self._read(min(_CHUNK, remaining), timeout)
            except Closed:
                raise Closed(
                    f"the stream ended after {count - remaining} of its {count} bytes (the "
                    "daemon failed or stopped half way)"
                ) from None
            _write_all(sink, chunk)
            remaining -= len(chunk)


def open_connection(path: str, timeout: Optional[float]) -> "Connection":
    """A connection to the daemon at ``path``: a Unix socket, or on Windows a named pipe
    (``_pipe.PipeConnection``, the same interface)."""
    if sys.platform == "win32":
        from ._pipe import PipeConnection

        return PipeConnection(path, timeout)  # type: ignore[return-value]
    return Connection(path, timeout)


class Connection(LineConnection):
    """A connected Unix socket with a line reader."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        if not hasattr(socket, "AF_UNIX"):
            raise TransportError("this platform has neither Unix domain sockets nor named pipes")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            sock.close()
            # No socket file, or a stale one nobody listens on: the daemon is not running.
            raise NotRunning(path, e.strerror or str(e)) from None
        except socket.timeout:
            sock.close()
            raise TransportError(f"connecting to ctxd at {path} timed out") from None
        except OSError as e:
            sock.close()
            raise TransportError(f"cannot connect to ctxd at {path}: {e}") from e
        # From here on the socket blocks and the kernel keeps the timeout (SO_RCVTIMEO /
        # SO_SNDTIMEO): with a Python-level timeout every send and recv is preceded by a
        # poll(), and that second wait measured about 30 us of a 100 us round trip.
        sock.settimeout(None)
        self._sock = sock
        self._timeout: Optional[float] = None
        self._buffer = bytearray()

    def _use_timeout(self, timeout: Optional[float]) -> None:
        """Sets the kernel's per-call send and receive timeout (``None``: wait forever)."""
        if timeout == self._timeout:
            return
        if timeout is None:
            seconds, micros = 0, 0  # a zero timeval is no timeout
        else:
            # At least a microsecond: zero would mean forever.
            total = max(1, round(timeout * 1_000_000))
            seconds, micros = divmod(total, 1_000_000)
        value = struct.pack("ll", seconds, micros)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
        self._timeout = timeout

    def send(self, line: bytes, timeout: Optional[float]) -> None:
        """Writes one request line (``line`` has no ``\\n``)."""
        self._use_timeout(timeout)
        try:
            self._sock.sendall(line + b"\n")
        except BlockingIOError:
            # The kernel's timeout ran out (EAGAIN on a blocking socket).
            raise socket.timeout("timed out") from None
        except OSError as e:
            raise Closed(f"writing to ctxd failed: {e}") from e

    def _read(self, size: int, timeout: Optional[float]) -> bytes:
        self._use_timeout(timeout)
        try:
            chunk = self._sock.recv(size)
        except BlockingIOError:
            # The kernel's timeout ran out (EAGAIN on a blocking socket).
            raise socket.timeout("timed out") from None
        except OSError as e:
            raise Closed(f"reading from ctxd failed: {e}") from e
        if not chunk:
            raise Closed("ctxd closed the connection")
        return chunk

    def receive_into(self, count: int, sink: BinaryIO, timeout: Optional[float]) -> None:
        """As ``LineConnection.receive_into``, reading into one reused buffer."""
        self._use_timeout(timeout)
        remaining = count
        if self._buffer:
            take = min(len(self._buffer), remaining)
            _write_all(sink, bytes(self._buffer[:take]))
            del self._buffer[:take]
            remaining -= take
        chunk = bytearray(_CHUNK)
        view = memoryview(chunk)
        while remaining:
            try:
                got = self._sock.recv_into(view, min(_CHUNK, remaining))
            except BlockingIOError:
                raise socket.timeout("timed out") from None
            except OSError as e:
                raise Closed(f"reading from ctxd failed: {e}") from e
            if not got:
                raise Closed(
                    f"the stream ended after {count - remaining} of its {count} bytes (the "
                    "daemon failed or stopped half way)"
                )
            # A copy: the sink may keep what it is given, and the buffer is reused.
            _write_all(sink, bytes(view[:got]))
            remaining -= got

    def is_stale(self) -> bool:
        """Whether the connection is known to be unusable before anything is sent on it.

        Between requests the daemon never sends anything, so a readable socket means it closed
        its end (a restart, a shutdown, ``frame_too_large``) or left bytes we did not ask for.
        Checking this costs one non-blocking ``recv`` and lets a call open a fresh connection
        *before* writing, which is safe even for writes (nothing was sent yet).
        """
        if self._buffer:
            return True
        # MSG_DONTWAIT: this one call does not block, whatever the timeout.
        try:
            peeked = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        # Readable: b"" is end of stream; anything else is bytes nobody asked for. Either way
        # the next reply read here could not be trusted to answer the next request.
        del peeked
        return True

    def close(self) -> None:
        """Closes the socket (idempotent)."""
        try:
            self._sock.close()
        except OSError:
            pass


def _write_all(sink: BinaryIO, data: bytes) -> None:
    """Writes all of ``data``: a raw file (``buffering=0``) or a pipe may take part of it."""
    view = memoryview(data)
    while view:
        written = sink.write(view)
        if written is None:
            raise BlockingIOError("the file object took nothing (non-blocking and full)")
        if written == len(view):
            return
        view = view[written:]
