"""Every error this client raises, and the one table from wire error codes to classes.

All errors derive from :class:`Error`, which carries ``code`` (the daemon's stable, snake_case
error code, or ``None`` when the client itself detected the problem), ``message`` (for people)
and ``details`` (the code-specific fields the daemon sent beside ``code`` and ``message``, for
example ``lease_expires_at`` with ``released`` or ``expected``/``received`` with
``dimension_mismatch``).

Daemon errors (``proto/src/error.rs``) map through :data:`ERRORS_BY_CODE`; a code this
client does not know becomes a plain :class:`Error` with that code, so a newer daemon never
breaks an older client. The client's own failures (nothing listening, a dropped connection, a
timeout, an unreadable reply) derive from :class:`TransportError` or :class:`ProtocolError`.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type


class Error(Exception):
    """Base class of every ctxd error.

    Attributes:
        code: the daemon's error code (``"collection_not_found"``, ...), or ``None`` when the
            client raised the error without a reply from the daemon.
        message: what went wrong, for people.
        details: code-specific fields of the daemon's error object (empty if none).
        committed: set only on errors raised by a split ``upsert``/``add`` (see
            :meth:`ctxd.Collection.upsert`): how many of the call's documents, from the first,
            were committed before this error; ``None`` elsewhere.
    """

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        details: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details: Dict[str, Any] = dict(details or {})
        self.committed: Optional[int] = None

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"{self.message} ({self.code})"

    def __reduce__(self) -> Any:
        # Keyword-only constructor arguments are not in `self.args`; without this, pickling
        # (multiprocessing, concurrent.futures) would fail to rebuild the exception.
        return (_rebuild, (type(self), self.message, self.code, self.details, self.committed))


def _rebuild(
    cls: Type[Error],
    message: str,
    code: Optional[str],
    details: Dict[str, Any],
    committed: Optional[int],
) -> Error:
    error = cls.__new__(cls)
    Error.__init__(error, message, code=code, details=details)
    error.committed = committed
    return error


# --- Errors the daemon sends (one class per wire code) ---------------------------------------


class BadRequest(Error, ValueError):
    """``bad_request``: a missing, unknown or mistyped field, or a value out of range (also a
    ``ValueError``, which ChromaDB raises for the same mistakes, e.g. a bad ``where_document``)."""


class UnknownOp(Error):
    """``unknown_op``: the daemon has no such operation."""


class FrameTooLarge(Error):
    """``frame_too_large``: the request line exceeded the daemon's ``--max-frame``.

    The daemon closes the connection after this reply; the client opens a new one for the next
    call.
    """


class ProtocolMismatch(Error):
    """``unsupported_protocol``: the daemon does not speak this client's protocol version.

    Also raised (with ``code`` ``None``) when the daemon's ``hello`` answers with another
    protocol number. ``details`` holds ``supported`` (from the daemon) or ``client`` and
    ``daemon`` (the two versions).
    """


class PermissionDenied(Error):
    """``permission_denied``: the daemon runs as another user and refuses this one."""


class CollectionNotFound(Error):
    """``collection_not_found``: no collection has that name."""


class CollectionExists(Error):
    """``collection_exists``: a collection of that name exists (with other settings)."""


class DimensionMismatch(Error):
    """``dimension_mismatch``: a vector's length is not the collection's dimension.

    ``details`` holds ``expected`` and ``received``.
    """


class InvalidVector(Error):
    """``invalid_vector``: a vector holds a value that is not a finite 32-bit float.

    NaN and infinities cannot be written in JSON at all, so the client raises this itself
    before sending (``code`` is still ``"invalid_vector"``); finite values beyond the 32-bit
    range (``1e39``) are refused by the daemon. ``details`` holds ``position``.
    """


class Released(Error):
    """``released``: the data directory is released; ``details`` holds ``lease_expires_at``."""


class LeaseNotFound(Error):
    """``lease_not_found``: no such lease (never taken, resumed already, or expired)."""


class Busy(Error):
    """``busy``: the daemon could not do it now: a write outlived a release's drain time, every
    read thread and the read queue are taken, or the daemon serves its most connections. The
    message says which; retrying in a moment is safe."""


class ShuttingDown(Error):
    """``shutting_down``: the daemon is stopping and takes no new work."""


class SnapshotFailed(Error):
    """``snapshot_failed``: the snapshot could not be written or did not verify.

    (A destination that exists already, or is not absolute, is refused up front with
    ``bad_request``.)
    """


class StorageError(Error):
    """``storage``: SQLite or LMDB failed inside the daemon."""


class InternalError(Error):
    """``internal``: a bug in the daemon; the message says what happened."""


class DiskFull(Error):
    """``disk_full``: the disk holding the daemon's data directory is full (or the quota is
    reached). Nothing of the request was written and every acknowledged write is safe; reads
    go on, and writes succeed again once space is freed, so retrying later is safe."""


class EmbedderUnavailable(Error):
    """``embedder_unavailable``: the collection embeds text with a model this daemon did not
    load (or loaded with other weights), or ``create_collection`` named a model that is not
    loaded. ``details["embedder"]`` names it. Nothing was written; the collection's stored
    vectors stay searchable with ``query_embeddings``, and its text with ``mode="lexical"``."""


#: The one mapping from wire error codes (``proto/src/error.rs``) to exception classes.
ERRORS_BY_CODE: Dict[str, Type[Error]] = {
    "bad_request": BadRequest,
    "unknown_op": UnknownOp,
    "frame_too_large": FrameTooLarge,
    "unsupported_protocol": ProtocolMismatch,
    "permission_denied": PermissionDenied,
    "collection_not_found": CollectionNotFound,
    "collection_exists": CollectionExists,
    "dimension_mismatch": DimensionMismatch,
    "invalid_vector": InvalidVector,
    "released": Released,
    "lease_not_found": LeaseNotFound,
    "busy": Busy,
    "shutting_down": ShuttingDown,
    "snapshot_failed": SnapshotFailed,
    "storage": StorageError,
    "internal": InternalError,
    "disk_full": DiskFull,
    "embedder_unavailable": EmbedderUnavailable,
}


def from_wire(body: Any) -> Error:
    """The exception for the ``error`` object of a failed reply."""
    if not isinstance(body, dict):
        return ProtocolError(f"a failed reply carries no error object: {body!r}")
    code = body.get("code")
    message = body.get("message")
    details = {key: value for key, value in body.items() if key not in ("code", "message")}
    cls = ERRORS_BY_CODE.get(code, Error) if isinstance(code, str) else Error
    return cls(
        message if isinstance(message, str) else f"ctxd error {code!r}",
        code=code if isinstance(code, str) else None,
        details=details,
    )


# --- Errors the client detects itself (code is None) -----------------------------------------


class TransportError(Error):
    """The socket could not be reached, or the connection failed mid-request."""


class NotRunning(TransportError):
    """Nothing listens on the socket: the daemon is not running (or listens elsewhere).

    ``socket`` is the path that was tried.
    """

    def __init__(self, socket: str, reason: str) -> None:
        super().__init__(
            f"ctxd is not running at {socket} ({reason}); start it with `ctxd serve`, "
            "or point the client at its socket (socket=... or CTXD_SOCKET)",
            details={"socket": socket},
        )
        self.socket = socket
        self.reason = reason

    def __reduce__(self) -> Any:
        return (NotRunning, (self.socket, self.reason))


class StartFailed(TransportError):
    """:class:`ctxd.PersistentClient` could not start a daemon for its data directory: no
    binary was found, or ``ctxd serve`` exited (the message carries what it logged;
    ``details["log"]`` names the log file, ``details["exit_status"]`` its status)."""


class ConnectionLost(TransportError):
    """The connection broke while a request was in flight.

    Raised for writes (which are never re-sent: the daemon may or may not have applied one whose
    reply was lost) and for reads whose one retry on a new connection failed too.
    """


class Timeout(TransportError):
    """No reply came within the client's timeout. The connection is dropped (it may still
    carry the late reply); the request itself may still complete in the daemon."""


class ProtocolError(Error):
    """The daemon sent something that is not a protocol 1 reply (or a reply to another
    request)."""


class DuplicateID(Error):
    """``add`` was given ids that already exist, or a write repeats an id within one call.

    ``details["ids"]`` lists the offending ids. Raised before anything is written.
    """
