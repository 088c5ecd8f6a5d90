"""A release lease: while it is held, the daemon has every file of its data directory closed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from .errors import LeaseNotFound

if TYPE_CHECKING:  # pragma: no cover - imports for type checkers only
    from types import TracebackType

    from .client import Client


@dataclass
class Lease:
    """The result of :meth:`ctxd.Client.release`, and a context manager that resumes it.

    ``with client.release(ttl=1800, holder="restic") as lease:`` returns once every handle
    into the data directory is closed; the block copies the files; leaving the block resumes
    this lease (also when the block raises). The daemon reopens its files when the last lease
    ends.

    Attributes:
        lease_id: the id :meth:`ctxd.Client.resume` and :meth:`renew` take.
        expires_at: when the lease ends by itself, Unix time in milliseconds.
        generation: the generation of the released files (every committed write adds one).
        files: what to copy: ``[{"path": "text.sqlite3", "bytes": 57344}, ...]``, paths
            relative to the data directory, ``/``-separated.
        exclude: files a copy should skip (relative paths), e.g. ``vectors/lock.mdb``.
        holder: the label given to ``release``, if any.
    """

    lease_id: str
    expires_at: int
    generation: int
    files: List[Dict[str, Any]]
    exclude: List[str]
    holder: Optional[str] = None
    _client: Optional["Client"] = field(default=None, repr=False, compare=False)
    _ended: bool = field(default=False, repr=False, compare=False)

    def resume(self) -> Dict[str, Any]:
        """Ends this lease; returns ``{"state": ..., "leases": [...remaining]}``.

        Raises :class:`ctxd.LeaseNotFound` if the lease has ended already (it expired, or was
        resumed elsewhere).
        """
        if self._client is None:
            raise RuntimeError("this Lease is not bound to a client")
        result = self._client.resume(self.lease_id)
        self._ended = True
        return result

    def renew(self, ttl: float) -> int:
        """Extends the lease to ``ttl`` seconds from now; returns the new ``expires_at``."""
        if self._client is None:
            raise RuntimeError("this Lease is not bound to a client")
        self.expires_at = self._client.renew(self.lease_id, ttl)
        return self.expires_at

    def __enter__(self) -> "Lease":
        return self

    def __exit__(
        self,
        exc_type: Optional[type],
        exc: Optional[BaseException],
        tb: Optional["TracebackType"],
    ) -> None:
        if self._ended:
            return
        if exc is None:
            try:
                self.resume()
            except LeaseNotFound as e:
                # The lease ended inside the block (its ttl ran out): the daemon reopened its
                # files while the block may still have been copying them.
                raise LeaseNotFound(
                    f"lease {self.lease_id} ended before the `with` block did (ttl too short?); "
                    "the daemon reopened its files meanwhile, so a copy taken in the block may "
                    f"be inconsistent: {e.message}",
                    code=e.code,
                    details=e.details,
                ) from e
            return
        try:
            self.resume()
        except Exception:
            # The block's own exception is the one to see; the lease ends by its ttl anyway.
            pass
