"""asyncio clients: :class:`AsyncClient` and :class:`AsyncPersistentClient`, the API of
:class:`ctxd.Client` and :class:`ctxd.PersistentClient` with every method a coroutine.

    async with ctxd.AsyncPersistentClient("/tmp/store") as client:
        notes = await client.get_or_create_collection("notes")
        await notes.upsert(ids=["a"], embeddings=[[1.0, 0.0]], documents=["otters"])
        hits = await notes.query(query_embeddings=[[1.0, 0.0]], n_results=5)

Each call runs the blocking client's method on a worker thread (``asyncio.to_thread``), so the
event loop never waits on the socket. The blocking client is thread-safe and sends one request
at a time per connection; coroutines of one client therefore queue behind each other, as the
daemon would answer them in order anyway (make a client per task for parallel reads). A
cancelled coroutine stops waiting, but its request runs to its end: a write that was sent is
applied or refused by the daemon, never half done. The design is that of ``motor`` over
``pymongo``: one implementation of the protocol, and its guarantees, for both.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Callable, Optional, Type, TypeVar

from .client import Client
from .collection import Collection
from .persistent import PersistentClient

__all__ = ["AsyncClient", "AsyncCollection", "AsyncPersistentClient"]

T = TypeVar("T", bound="_Async")


def _wrapped(value: Any) -> Any:
    """Results that are collections come back as :class:`AsyncCollection`."""
    if isinstance(value, Collection):
        return AsyncCollection(value)
    if isinstance(value, list) and value and all(isinstance(v, Collection) for v in value):
        return [AsyncCollection(v) for v in value]
    return value


class _Async:
    """Forwards attribute reads to the blocking object; its methods become coroutines."""

    _inner: Any

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name.startswith("_") or not callable(value):
            return value

        @functools.wraps(value)
        async def call(*args: Any, **kwargs: Any) -> Any:
            return _wrapped(await asyncio.to_thread(value, *args, **kwargs))

        return call

    def __repr__(self) -> str:
        return f"Async{self._inner!r}"


class AsyncCollection(_Async):
    """A :class:`ctxd.Collection` whose methods (``add``, ``upsert``, ``update``, ``get``,
    ``query``, ``delete``, ``count``, ``peek``) are coroutines; attributes (``name``,
    ``dimension``, …) read as they are."""

    def __init__(self, collection: Collection) -> None:
        self._inner = collection


class _AsyncClientBase(_Async):
    _factory: Callable[..., Client]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs
        self._inner: Optional[Client] = None

    @classmethod
    async def connect(cls: Type[T], *args: Any, **kwargs: Any) -> T:
        """Opens the client (connects, or finds or starts the daemon) off the event loop."""
        client = cls(*args, **kwargs)
        await client._open()
        return client

    async def _open(self) -> None:
        if self._inner is None:
            self._inner = await asyncio.to_thread(type(self)._factory, *self._args, **self._kwargs)

    def __getattr__(self, name: str) -> Any:
        if self.__dict__.get("_inner") is None:
            raise RuntimeError(
                f"{type(self).__name__} is not open: use `async with {type(self).__name__}(...)`"
                f" or `await {type(self).__name__}.connect(...)`"
            )
        return super().__getattr__(name)

    async def close(self) -> None:
        """Closes the client (for a persistent client: lets go of the daemon, and waits for
        it to close every file if this was its last client)."""
        if self._inner is not None:
            await asyncio.to_thread(self._inner.close)

    async def __aenter__(self: T) -> T:
        await self._open()  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()


class AsyncClient(_AsyncClientBase):
    """:class:`ctxd.Client` for asyncio: ``AsyncClient(socket=None, timeout=30.0)``, opened
    with ``async with`` or ``await AsyncClient.connect(...)``."""

    _factory = Client


class AsyncPersistentClient(_AsyncClientBase):
    """:class:`ctxd.PersistentClient` for asyncio: ``AsyncPersistentClient(path, ...)``, opened
    with ``async with`` or ``await AsyncPersistentClient.connect(path)``; ``await close()``
    returns once a daemon it was the last client of has closed every file."""

    _factory = PersistentClient

