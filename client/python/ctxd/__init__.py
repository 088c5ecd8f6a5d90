"""Python client of ctxd, the daemon that owns a local document, full-text and vector store.

    import ctxd

    with ctxd.Client() as client:                 # CTXD_SOCKET, else the per-user default
        notes = client.get_or_create_collection("notes", dimension=384)
        notes.upsert(ids=["a"], documents=["otters hold hands"], embeddings=[vector])
        hits = notes.query(query_texts=["otter"], n_results=5)

The collection API follows ChromaDB's names and result shapes; see the README for the
differences, and :mod:`ctxd.errors` for the exceptions.
"""

from ._socket import default_socket
from ._socket import resolve as resolve_socket
from ._version import __version__
from .async_client import AsyncClient, AsyncCollection, AsyncPersistentClient
from .client import IDEMPOTENT_OPERATIONS, Client
from .collection import Collection
from .errors import (
    ERRORS_BY_CODE,
    BadRequest,
    Busy,
    CollectionExists,
    CollectionNotFound,
    ConnectionLost,
    DimensionMismatch,
    DiskFull,
    EmbedderUnavailable,
    DuplicateID,
    Error,
    FrameTooLarge,
    InternalError,
    InvalidVector,
    LeaseNotFound,
    NotRunning,
    PermissionDenied,
    ProtocolError,
    ProtocolMismatch,
    Released,
    ShuttingDown,
    SnapshotFailed,
    StartFailed,
    StorageError,
    Timeout,
    TransportError,
    UnknownOp,
)
from .lease import Lease
from .persistent import PersistentClient

__all__ = [
    "AsyncClient",
    "AsyncCollection",
    "AsyncPersistentClient",
    "BadRequest",
    "Busy",
    "Client",
    "Collection",
    "CollectionExists",
    "CollectionNotFound",
    "ConnectionLost",
    "DimensionMismatch",
    "DiskFull",
    "EmbedderUnavailable",
    "DuplicateID",
    "ERRORS_BY_CODE",
    "Error",
    "FrameTooLarge",
    "IDEMPOTENT_OPERATIONS",
    "InternalError",
    "InvalidVector",
    "Lease",
    "LeaseNotFound",
    "NotRunning",
    "PersistentClient",
    "PermissionDenied",
    "ProtocolError",
    "ProtocolMismatch",
    "Released",
    "ShuttingDown",
    "SnapshotFailed",
    "StartFailed",
    "StorageError",
    "Timeout",
    "TransportError",
    "UnknownOp",
    "__version__",
    "default_socket",
    "resolve_socket",
]
