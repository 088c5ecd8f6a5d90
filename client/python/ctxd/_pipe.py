"""The Windows transport: one connection to the daemon's named pipe, with the same interface
as :class:`ctxd._connection.Connection` (write a request line, read a reply line).

Standard library only: ``_winapi``, the module ``multiprocessing.connection`` drives pipes
with, used the same way (the handle is opened with ``FILE_FLAG_OVERLAPPED``, so every read and
write can be waited on with a timeout and cancelled). The pipe name is resolved like the Rust
client's (``_socket.default_socket``: ``\\\\.\\pipe\\ctxd-<user>``, or ``CTXD_SOCKET``).

Win32 facts this relies on: ``CreateFile`` of a pipe whose every instance is busy fails with
``ERROR_PIPE_BUSY``, and ``WaitNamedPipe`` waits for a free one; a pipe nobody serves fails
with ``ERROR_FILE_NOT_FOUND``; a read of a pipe whose server closed fails with
``ERROR_BROKEN_PIPE``; an overlapped operation that is cancelled must still be waited for
(``GetOverlappedResult(True)``) before its buffer is released; ``PeekNamedPipe`` tells, without
reading, how many bytes wait and fails once the other end is gone.
"""

from __future__ import annotations

import socket
import time
from typing import Optional

import _winapi  # type: ignore[import-not-found]  # Windows only

from ._connection import Closed, LineConnection
from .errors import NotRunning, TransportError

_INFINITE = 0xFFFFFFFF
_WAIT_OBJECT_0 = 0
_WAIT_TIMEOUT = 0x102
_ERROR_FILE_NOT_FOUND = 2
_ERROR_ACCESS_DENIED = 5
_ERROR_BROKEN_PIPE = 109
_ERROR_SEM_TIMEOUT = 121
_ERROR_PIPE_BUSY = 231
_ERROR_NO_DATA = 232
_ERROR_MORE_DATA = 234
_ERROR_PIPE_NOT_CONNECTED = 233
_ERROR_OPERATION_ABORTED = 995
_ERROR_IO_PENDING = 997

_SQOS_IDENTIFICATION = 0x00100000 | 0x00010000

_GONE = {_ERROR_BROKEN_PIPE, _ERROR_NO_DATA, _ERROR_PIPE_NOT_CONNECTED}


def _millis(timeout: Optional[float]) -> int:
    if timeout is None:
        return _INFINITE
    return max(0, min(int(timeout * 1000), _INFINITE - 1))


class PipeConnection(LineConnection):
    """A connected named pipe with a line reader (``LineConnection``'s)."""

    def __init__(self, path: str, timeout: Optional[float]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self._handle = _winapi.CreateFile(
                    path,
                    _winapi.GENERIC_READ | _winapi.GENERIC_WRITE,
                    0,
                    _winapi.NULL,
                    _winapi.OPEN_EXISTING,
                    # SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION: whoever serves the pipe
                    # may learn who we are, never act as us.
                    _winapi.FILE_FLAG_OVERLAPPED | _SQOS_IDENTIFICATION,
                    _winapi.NULL,
                )
                break
            except OSError as e:
                if e.winerror == _ERROR_FILE_NOT_FOUND:
                    raise NotRunning(path, "no such pipe") from None
                if e.winerror == _ERROR_ACCESS_DENIED:
                    raise TransportError(f"cannot open ctxd's pipe {path}: access denied") from e
                if e.winerror != _ERROR_PIPE_BUSY:
                    raise TransportError(f"cannot connect to ctxd at {path}: {e}") from e
            # Every instance is busy: wait for one to be free, within the timeout.
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TransportError(f"connecting to ctxd at {path} timed out (pipe busy)")
            try:
                # At least 1 ms: 0 would mean "the server's default wait".
                _winapi.WaitNamedPipe(path, max(1, _millis(left)))
            except OSError as e:
                if e.winerror == _ERROR_SEM_TIMEOUT:
                    raise TransportError(
                        f"connecting to ctxd at {path} timed out (pipe busy)"
                    ) from None
                if e.winerror == _ERROR_FILE_NOT_FOUND:
                    raise NotRunning(path, "no such pipe") from None
                raise TransportError(f"cannot connect to ctxd at {path}: {e}") from e
        self._buffer = bytearray()
        self._closed = False

    def _wait(self, ov: "_winapi.Overlapped", err: int, timeout: Optional[float]) -> int:
        """Waits for an overlapped operation; returns the bytes it moved."""
        if err == _ERROR_IO_PENDING:
            waited = _winapi.WaitForMultipleObjects([ov.event], False, _millis(timeout))
            if waited == _WAIT_TIMEOUT:
                ov.cancel()
                try:
                    ov.GetOverlappedResult(True)
                except OSError:
                    pass
                raise socket.timeout("timed out")
            assert waited == _WAIT_OBJECT_0
        try:
            moved, err = ov.GetOverlappedResult(True)
        except OSError as e:
            if e.winerror in _GONE:
                raise Closed("ctxd closed the connection") from None
            raise Closed(f"pipe i/o failed: {e}") from e
        if err in _GONE or err == _ERROR_OPERATION_ABORTED:
            raise Closed("ctxd closed the connection")
        if err not in (0, _ERROR_MORE_DATA):
            raise Closed(f"pipe i/o failed (error {err})")
        return moved

    def send(self, line: bytes, timeout: Optional[float]) -> None:
        data = memoryview(line + b"\n")
        while data:
            try:
                ov, err = _winapi.WriteFile(self._handle, data, overlapped=True)
            except OSError as e:
                raise Closed(f"writing to ctxd failed: {e}") from e
            written = self._wait(ov, err, timeout)
            data = data[written:]

    def _read(self, size: int, timeout: Optional[float]) -> bytes:
        try:
            ov, err = _winapi.ReadFile(self._handle, size, overlapped=True)
        except OSError as e:
            if e.winerror in _GONE:
                raise Closed("ctxd closed the connection") from None
            raise Closed(f"reading from ctxd failed: {e}") from e
        moved = self._wait(ov, err, timeout)
        if moved == 0:
            raise Closed("ctxd closed the connection")
        return bytes(ov.getbuffer())

    def is_stale(self) -> bool:
        """Whether bytes nobody asked for wait, or the daemon closed its end."""
        if self._buffer:
            return True
        try:
            waiting = _winapi.PeekNamedPipe(self._handle)[0]
        except OSError:
            return True
        return waiting != 0

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                _winapi.CloseHandle(self._handle)
            except OSError:
                pass
