"""The client: one connection to the daemon, collections, and the admin operations."""

from __future__ import annotations

import datetime
import math
import os
import socket as _stdlib_socket
import threading
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Union

from . import _socket, _wire
from ._connection import Closed, Connection, open_connection
from ._version import __version__
from .collection import Collection, EmbeddingFunction, _with_function
from .errors import (
    CollectionExists,
    CollectionNotFound,
    ConnectionLost,
    Error,
    FrameTooLarge,
    PermissionDenied,
    ProtocolError,
    ProtocolMismatch,
    Timeout,
)
from .lease import Lease

__all__ = ["Client", "IDEMPOTENT_OPERATIONS"]

#: The name this client gives in ``hello``, for the daemon's log.
CLIENT_NAME = f"ctxd-python/{__version__}"

#: Operations that change nothing: after a broken connection, these (and only these) are sent
#: once more on a new connection. Every other operation is a write or changes the daemon's
#: state (a release, a snapshot) and is never re-sent, since its reply, not its effect, may be
#: what was lost.
IDEMPOTENT_OPERATIONS = frozenset(
    {
        "hello",
        "ping",
        "health",
        "status",
        "list_collections",
        "get_collection",
        "get",
        "count",
        "search",
        "check",
    }
)

# `release` may wait this long for in-flight writes before answering (the daemon's default
# `drain_ms`), on top of the client's timeout.
_DEFAULT_DRAIN_S = 30.0

Seconds = Union[int, float, datetime.timedelta]


class Client:
    """A connection to the ctxd daemon.

    ``Client(socket=None, timeout=30.0)`` connects at once and performs the ``hello``
    handshake. ``socket`` defaults like the daemon's and the Rust client's: ``CTXD_SOCKET``,
    else ``$XDG_RUNTIME_DIR/ctxd/ctxd.sock``, else ``/tmp/ctxd-$UID/ctxd.sock``. ``timeout`` is
    how many seconds one request may wait for its reply (``None``: no limit); a timed-out
    request raises :class:`ctxd.Timeout` and drops the connection.

    Raises :class:`ctxd.NotRunning` (naming the socket) when nothing listens there, and
    :class:`ctxd.ProtocolMismatch` when the daemon speaks another protocol version.

    Use it as a context manager or call :meth:`close`.

    **Threads.** One ``Client`` may be shared by any number of threads. It holds *one*
    connection and a lock around it, so requests from several threads are sent one at a time,
    like the Rust client. That is deliberate: the daemon answers the requests of one connection
    in order and executes writes one at a time anyway, a round trip is well under a
    millisecond, and a single connection leaves nothing to leak when threads come and go and
    nothing for :meth:`close` to chase in other threads. Threads that need *parallel* reads
    (long searches) should each make their own ``Client``.

    **Reconnecting.** Before each request the client checks, without blocking, whether the
    daemon has closed the connection (a restart, ``frame_too_large``); if so it opens a new one
    before sending, which is safe for any request. If the connection breaks while a request is
    in flight, a read (see :data:`IDEMPOTENT_OPERATIONS`) is sent once more on a new
    connection; a write is not re-sent, and :class:`ctxd.ConnectionLost` says its outcome is
    unknown.
    """

    def __init__(
        self, socket: Optional[_socket.PathLike] = None, timeout: Optional[float] = 30.0
    ) -> None:
        self.socket: str = _socket.resolve(socket)
        self.timeout: Optional[float] = timeout
        self._lock = threading.Lock()
        self._connection: Optional[Connection] = None
        self._next_id = 1
        self._closed = False
        self._server: Dict[str, Any] = {}
        with self._lock:
            self._connected(timeout)

    def __repr__(self) -> str:
        return f"Client(socket={self.socket!r})"

    @property
    def server(self) -> Dict[str, Any]:
        """What the daemon said in the last handshake: ``protocol``, ``version``, ``pid``,
        ``state``."""
        return dict(self._server)

    def close(self) -> None:
        """Closes the connection; later calls raise :class:`ctxd.Error`. Idempotent."""
        with self._lock:
            self._closed = True
            self._drop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------

    def call(self, op: str, *, wait_ms: Optional[int] = None, **params: Any) -> Dict[str, Any]:
        """Sends any protocol operation as one request; returns its result fields.

        The escape hatch for what has no method here (a raw ``search`` with every parameter,
        ``shutdown``, an operation added later): ``client.call("search", collection="notes",
        text="otter", k=3)``. ``wait_ms``: while the daemon is released, wait up to that long
        for it to resume instead of failing with :class:`ctxd.Released`. Failures raise the
        mapped :class:`ctxd.Error` subclass.
        """
        return self._request(op, params, wait_ms=wait_ms)

    def _request(
        self,
        op: str,
        params: Mapping[str, Any],
        *,
        raw: Optional[Mapping[str, bytes]] = None,
        wait_ms: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """One request and its reply, with the reconnect rules of the class docstring.

        ``timeout`` replaces the client's for this request (``None``: the client's); a request
        that waits for a resume may take ``wait_ms`` longer.
        """
        limit = self.timeout if timeout is None else timeout
        if limit is not None and wait_ms:
            limit += wait_ms / 1000.0
        with self._lock:
            if self._closed:
                raise Error("this ctxd.Client is closed")
            request_id = self._take_id()
            line = _wire.encode_request(request_id, op, params, raw=raw, wait_ms=wait_ms)
            connection = self._connected(limit)
            try:
                return self._exchange(connection, line, request_id, op, limit)
            except Closed as e:
                self._drop()
                if op not in IDEMPOTENT_OPERATIONS:
                    raise ConnectionLost(
                        f"the connection to ctxd at {self.socket} broke during `{op}` ({e}); "
                        "it may or may not have been applied, and was not sent again"
                    ) from None
                first_failure = e
            # A read: once more, on a new connection.
            connection = self._connected(limit)
            try:
                return self._exchange(connection, line, request_id, op, limit)
            except Closed as e:
                self._drop()
                raise ConnectionLost(
                    f"the connection to ctxd at {self.socket} broke during `{op}`, twice "
                    f"({first_failure}; then {e})"
                ) from None

    def _take_id(self) -> int:
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def _exchange(
        self, connection: Connection, line: bytes, request_id: int, op: str, limit: Optional[float]
    ) -> Dict[str, Any]:
        """Sends ``line``, reads and decodes its reply. Raises ``Closed`` if the connection
        broke (the caller decides about retrying); drops the connection on any other failure
        that may leave it out of step."""
        try:
            reply = connection.round_trip(line, limit)
        except _stdlib_socket.timeout:
            # A late reply may still arrive on this connection and would answer the next
            # request: the connection cannot be used again.
            self._drop()
            raise Timeout(
                f"ctxd at {self.socket} did not answer `{op}` within {limit} s "
                "(the request may still complete)"
            ) from None
        try:
            return _wire.decode_reply(reply, request_id, op)
        except (ProtocolError, FrameTooLarge, PermissionDenied):
            # Out of step, or the daemon closes the connection after these replies.
            self._drop()
            raise

    def _connected(self, limit: Optional[float]) -> Connection:
        """The open connection, opening one (with its handshake) if there is none or the
        daemon has closed it."""
        if self._connection is not None and self._connection.is_stale():
            self._drop()
        if self._connection is None:
            connection = open_connection(self.socket, limit)
            try:
                self._server = self._handshake(connection, limit)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _handshake(self, connection: Connection, limit: Optional[float]) -> Dict[str, Any]:
        protocol = _wire.PROTOCOL_VERSION
        request_id = self._take_id()
        line = _wire.encode_request(
            request_id, "hello", {"protocol": protocol, "client": CLIENT_NAME}
        )
        try:
            server = self._exchange(connection, line, request_id, "hello", limit)
        except Closed as e:
            raise ConnectionLost(
                f"ctxd at {self.socket} closed the connection during the handshake ({e})"
            ) from None
        except ProtocolMismatch as e:
            raise ProtocolMismatch(
                f"ctxd at {self.socket} does not speak protocol {protocol}, which this client "
                f"({CLIENT_NAME}) speaks: {e.message}",
                code=e.code,
                details=e.details,
            ) from None
        if server.get("protocol") != protocol:
            raise ProtocolMismatch(
                f"ctxd {server.get('version')} at {self.socket} answered with protocol "
                f"{server.get('protocol')}; this client ({CLIENT_NAME}) speaks protocol {protocol}",
                details={"client": protocol, "daemon": server.get("protocol")},
            )
        return server

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # --- collections ---------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        dimension: Optional[int] = None,
        distance: Optional[str] = None,
        tokenizer: Optional[str] = None,
        *,
        embedder: Optional[str] = None,
        get_or_create: bool = False,
        embedding_function: Optional[EmbeddingFunction] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Collection:
        """Creates a collection; raises :class:`ctxd.CollectionExists` if the name is taken.

        ``dimension`` (1-4096) may be left out, as in ChromaDB: the first embedding written
        fixes it (until then ``Collection.dimension`` is 0); ``distance`` is ``"cosine"`` (default),
        ``"euclidean"``, ``"dot"`` or ``"manhattan"``; ``tokenizer`` (full-text index) is
        ``"porter"`` (default), ``"unicode61"`` or ``"trigram"``. Names are 1-64 characters of
        ``[A-Za-z0-9_.-]``, not starting with ``.``.

        ``embedder`` names a model the daemon was started with (``ctxd serve --model
        minilm=DIR``): the daemon then computes the vectors of documents given without
        embeddings and of ``query_texts``, and ``dimension`` may be left out (it is the
        model's; given, it must equal it, else :class:`ctxd.DimensionMismatch`). A model the
        daemon did not load raises :class:`ctxd.EmbedderUnavailable`.

        ChromaDB: ``client.create_collection(name, metadata={"hnsw:space": ...},
        embedding_function=..., get_or_create=...)``; ChromaDB's ``l2``/``ip``/``cosine``
        spaces are ``euclidean``/``dot``/``cosine`` here, and the model runs in the daemon, not
        in this process.
        """
        distance = _space(metadata, distance)
        if get_or_create:
            return self.get_or_create_collection(
                name,
                dimension,
                distance,
                tokenizer,
                embedder=embedder,
                embedding_function=embedding_function,
            )
        return _with_function(
            self._create(name, dimension, distance, tokenizer, embedder, if_not_exists=False),
            embedding_function,
        )

    def get_or_create_collection(
        self,
        name: str,
        dimension: Optional[int] = None,
        distance: Optional[str] = None,
        tokenizer: Optional[str] = None,
        *,
        embedder: Optional[str] = None,
        embedding_function: Optional[EmbeddingFunction] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> Collection:
        """The collection ``name``, created with these settings if it does not exist.

        Settings given explicitly must match an existing collection's, else
        :class:`ctxd.CollectionExists`; settings left out accept whatever it has (a new
        collection without ``dimension`` takes its first embedding's).

        ChromaDB: ``client.get_or_create_collection(name, metadata=...)``.
        """
        distance = _space(metadata, distance)
        try:
            existing = self.get_collection(name)
        except CollectionNotFound:
            try:
                return _with_function(
                    self._create(
                        name, dimension, distance, tokenizer, embedder, if_not_exists=True
                    ),
                    embedding_function,
                )
            except CollectionExists:
                # Created meanwhile by someone else, with settings other than the defaults
                # this request implied: judge it by the settings that were given.
                existing = self.get_collection(name)
        wanted = {
            "dimension": dimension,
            "distance": distance,
            "tokenizer": tokenizer,
            "embedder": embedder,
        }
        differing = {
            key: value
            for key, value in wanted.items()
            if value is not None
            and getattr(existing, key) != value
            # Created without a dimension and no vector yet: any dimension still fits.
            and not (key == "dimension" and existing.dimension == 0)
        }
        if differing:
            asked = ", ".join(f"{key} {value}" for key, value in differing.items())
            raise CollectionExists(
                f"collection `{name}` already exists with dimension {existing.dimension}, "
                f"distance {existing.distance}, tokenizer {existing.tokenizer} and "
                f"{f'embedder {existing.embedder}' if existing.embedder else 'no embedder'}; "
                f"asked for {asked}",
                code="collection_exists",
            )
        if dimension is not None and existing.dimension == 0:
            # No vector yet: the daemon fixes the dimension asked for (in one transaction).
            existing = self._create(name, dimension, None, None, None, if_not_exists=True)
        return _with_function(existing, embedding_function)

    def _create(
        self,
        name: str,
        dimension: Optional[int],
        distance: Optional[str],
        tokenizer: Optional[str],
        embedder: Optional[str],
        *,
        if_not_exists: bool,
    ) -> Collection:
        params: Dict[str, Any] = {"name": name}
        if dimension is not None:
            params["dimension"] = dimension
        if embedder is not None:
            params["embedder"] = embedder
        if distance is not None:
            params["distance"] = distance
        if tokenizer is not None:
            params["tokenizer"] = tokenizer
        if if_not_exists:
            params["if_not_exists"] = True
        return Collection(self, self._request("create_collection", params)["collection"])

    def get_collection(
        self, name: str, embedding_function: Optional[EmbeddingFunction] = None
    ) -> Collection:
        """The collection ``name``; raises :class:`ctxd.CollectionNotFound` if there is none.

        ChromaDB: ``client.get_collection(name)``.
        """
        return _with_function(
            Collection(self, self._request("get_collection", {"name": name})["collection"]),
            embedding_function,
        )

    def list_collections(self) -> List[Collection]:
        """Every collection, by name. ChromaDB: ``client.list_collections()`` (which returns
        names only in ChromaDB 0.6; use ``[c.name for c in ...]`` for that)."""
        return [
            Collection(self, info) for info in self._request("list_collections", {})["collections"]
        ]

    def delete_collection(self, name: str) -> None:
        """Deletes a collection and its documents; raises :class:`ctxd.CollectionNotFound` if
        there is none (the daemon answers ``dropped: false``; ChromaDB raises too).

        ChromaDB: ``client.delete_collection(name)``.
        """
        if not self._request("drop_collection", {"name": name})["dropped"]:
            raise CollectionNotFound(
                f"collection `{name}` does not exist", code="collection_not_found"
            )

    # --- admin ---------------------------------------------------------------------------

    def ping(self) -> None:
        """A round trip that touches no storage; raises if the daemon does not answer."""
        self._request("ping", {})

    def health(self) -> Dict[str, Any]:
        """``{"state": "serving"|"released"|"draining"|"stopping", "ready": bool}``."""
        return self._request("health", {})

    def status(self) -> Dict[str, Any]:
        """Everything an operator wants to know: ``version``, ``pid``, ``uptime_s``,
        ``state``, ``data_dir``, ``socket``, ``generation``, ``collections``, ``documents``,
        ``leases``, ``open_files`` (handles into the data directory; 0 while released),
        ``connections``, and ``problem`` when the daemon cannot serve."""
        return self._request("status", {})

    def check(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Verifies both stores and their agreement: ``{"passed": bool, "details": {"text",
        "vectors", "consistency": {"ok": bool, "problems": [...]}}}``.

        A failed check is a result (``passed`` false), not an exception. ``timeout``: seconds
        to wait (default: the client's); checking a large store takes a while.
        """
        return self._request("check", {}, timeout=timeout)

    def snapshot(
        self,
        dest: Union[_socket.PathLike, BinaryIO],
        timeout: Optional[float] = None,
        *,
        format: Optional[str] = None,
        keep: Optional[int] = None,
        tmp_dir: Optional[_socket.PathLike] = None,
    ) -> Dict[str, Any]:
        """Writes a consistent, verified copy of the data directory while the daemon keeps
        serving.

        ``dest`` a path: the daemon writes the snapshot there and this returns ``{"path",
        "generation", "files": [{"path", "bytes", "sha256"}]}``. The path must not exist and
        its parent must (else :class:`ctxd.SnapshotFailed`, the error for every snapshot that
        was not written); a relative path is taken from this process's working directory, not
        the daemon's. ``format="tar"`` (or a name ending in ``.tar``) writes one tar file,
        otherwise a directory that is a data directory of its own (``ctxd serve --data
        DEST``). ``keep=N``: ``dest`` is an existing directory of kept snapshots; the new one
        is ``ctxd-<UTC time>-g<generation>`` (``.tar``) in it, and the oldest beyond ``N`` are
        removed.

        ``dest`` a binary file object (anything with ``write``: an open file, ``io.BytesIO``, a
        pipe): the snapshot is streamed into it as a tar (``manifest.json`` first, then
        ``ctxd.json``, ``text.sqlite3``, ``vectors/data.mdb``) and this returns ``{"generation",
        "files", "bytes"}`` once every byte is written -- e.g. into a temporary file for
        ``s3.upload_fileobj``, without touching the live files. The daemon makes its
        temporary copy in ``tmp_dir`` (default: beside its data directory) and removes it
        however the stream ends. If ``dest.write`` raises, or the stream ends short, the error
        propagates and what ``dest`` received is not a snapshot.

        ``timeout``: seconds to wait for the snapshot to be taken, and at most between two
        pieces of a stream (default: the client's).
        """
        tmp = None if tmp_dir is None else os.path.abspath(os.fspath(tmp_dir))
        if hasattr(dest, "write"):
            if format not in (None, "tar") or keep is not None:
                raise ValueError("a snapshot streamed into a file object is a tar, without `keep`")
            params: Dict[str, Any] = {} if tmp is None else {"tmp_dir": tmp}
            return self._stream("snapshot_stream", params, dest, timeout)  # type: ignore[arg-type]
        path = os.path.abspath(os.fspath(dest))  # type: ignore[arg-type]
        params = {"dest": path}
        if format is None and keep is None and path.endswith(".tar"):
            format = "tar"
        if format is not None:
            if format not in ("dir", "tar"):
                raise ValueError(f"`format` must be 'dir' or 'tar', got {format!r}")
            params["format"] = format
        if keep is not None:
            params["keep"] = keep
        if tmp is not None:
            params["tmp_dir"] = tmp
        return self._request("snapshot", params, timeout=timeout)

    def _stream(
        self, op: str, params: Mapping[str, Any], sink: BinaryIO, timeout: Optional[float]
    ) -> Dict[str, Any]:
        """A request whose reply announces ``bytes`` that follow it on the connection: those
        are written to ``sink``. Not retried; the connection is dropped unless every byte was
        read."""
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            if self._closed:
                raise Error("this ctxd.Client is closed")
            request_id = self._take_id()
            line = _wire.encode_request(request_id, op, params)
            connection = self._connected(limit)
            try:
                header = self._exchange(connection, line, request_id, op, limit)
                connection.receive_into(int(header["bytes"]), sink, limit)
            except Closed as e:
                self._drop()
                raise ConnectionLost(
                    f"the connection to ctxd at {self.socket} broke during `{op}` ({e}); what "
                    "was written is not a snapshot"
                ) from None
            except _stdlib_socket.timeout:
                self._drop()
                raise Timeout(
                    f"ctxd at {self.socket} sent nothing of the `{op}` stream for {limit} s"
                ) from None
            except BaseException:
                self._drop()
                raise
            return header

    def release(
        self,
        ttl: Optional[Seconds] = None,
        holder: Optional[str] = None,
        drain: Optional[Seconds] = None,
    ) -> Lease:
        """Closes every file of the data directory under a lease; returns the :class:`Lease`.

        Returns only once every handle is closed (SQLite checkpointed, no ``-wal``/``-shm``;
        LMDB closed), so the files listed in ``lease.files`` can then be copied, except those
        in ``lease.exclude``. Meanwhile data operations fail with :class:`ctxd.Released`.

        Use it as a context manager, which resumes on exit (also when the block raises)::

            with client.release(ttl=1800, holder="backup") as lease:
                shutil.copytree(data_dir, dest, ignore=...)

        or call it plainly and end the lease with :meth:`resume` (or ``lease.resume()``).
        ``ttl``: seconds (or a ``timedelta``) after which the daemon resumes by itself (default
        600); ``holder``: a label shown by ``status``; ``drain``: how long in-flight writes may
        take before the release fails with :class:`ctxd.Busy` (default 30 s).
        """
        params: Dict[str, Any] = {}
        if holder is not None:
            params["holder"] = holder
        if ttl is not None:
            params["ttl_s"] = _whole_seconds(ttl)
        drain_s = _DEFAULT_DRAIN_S
        if drain is not None:
            drain_s = _as_seconds(drain)
            params["drain_ms"] = int(math.ceil(drain_s * 1000))
        # The daemon may wait up to `drain` for writes before answering.
        timeout = None if self.timeout is None else self.timeout + drain_s
        result = self._request("release", params, timeout=timeout)
        return Lease(
            lease_id=result["lease_id"],
            expires_at=result["expires_at"],
            generation=result["generation"],
            files=result["files"],
            exclude=result["exclude"],
            holder=holder,
            _client=self,
        )

    def resume(self, lease: Union[Lease, str, None] = None, *, all: bool = False) -> Dict[str, Any]:
        """Ends a lease (a :class:`Lease` or its id), or every lease with ``all=True``.

        Returns ``{"state": ..., "leases": [...]}``: the state is ``"released"`` while other
        leases remain. Raises :class:`ctxd.LeaseNotFound` for a lease that has ended already.
        Resuming needs an explicit lease or ``all=True`` (ending other holders' leases should
        never be an accident).
        """
        if all:
            if lease is not None:
                raise ValueError("give a lease or all=True, not both")
            return self._request("resume", {"all": True})
        if lease is None:
            raise ValueError("resume needs the lease (or its id), or all=True")
        lease_id = lease.lease_id if isinstance(lease, Lease) else str(lease)
        result = self._request("resume", {"lease_id": lease_id})
        if isinstance(lease, Lease):
            lease._ended = True
        return result

    def renew(self, lease: Union[Lease, str], ttl: Seconds) -> int:
        """Extends a lease to ``ttl`` seconds from now; returns its new ``expires_at`` (Unix
        milliseconds)."""
        lease_id = lease.lease_id if isinstance(lease, Lease) else str(lease)
        result = self._request("renew", {"lease_id": lease_id, "ttl_s": _whole_seconds(ttl)})
        if isinstance(lease, Lease):
            lease.expires_at = result["expires_at"]
        return int(result["expires_at"])


#: ChromaDB's ``hnsw:space`` values, as distances.
_SPACES = {"cosine": "cosine", "l2": "euclidean", "ip": "dot"}


def _space(metadata: Optional[Mapping[str, Any]], distance: Optional[str]) -> Optional[str]:
    """The distance a ChromaDB-style ``metadata={"hnsw:space": ...}`` asks for. Other
    ``hnsw:`` keys tune ChromaDB's index and mean nothing here; any other key would be
    collection metadata, which ctxd does not store, so it is refused rather than dropped."""
    if not metadata:
        return distance
    others = [key for key in metadata if not str(key).startswith("hnsw:")]
    if others:
        raise ValueError(
            f"collection metadata is not stored by ctxd (got {', '.join(map(repr, others))}); "
            "only ChromaDB's `hnsw:space` is read, as the distance"
        )
    space = metadata.get("hnsw:space")
    if space is None:
        return distance
    if space not in _SPACES:
        raise ValueError(f"`hnsw:space` must be one of cosine, l2, ip; got {space!r}")
    if distance is not None and distance != _SPACES[space]:
        raise ValueError(f"`hnsw:space` {space!r} and distance={distance!r} disagree")
    return _SPACES[space]


def _as_seconds(value: Seconds) -> float:
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value)


def _whole_seconds(value: Seconds) -> int:
    # The wire counts whole seconds; round up so a lease is never shorter than asked.
    return int(math.ceil(_as_seconds(value)))
