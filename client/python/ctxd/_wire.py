"""The envelope of protocol 1: request lines out, replies in (``proto/src/envelope.rs``).

Request: ``{"id": N, "op": "...", ...parameters, "wait_ms"?: N}``. Reply:
``{"id": N, "ok": true, ...result}`` or ``{"id": N, "ok": false, "error": {...}}``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

from . import errors

#: The protocol version this client speaks.
PROTOCOL_VERSION = 1


def _plain(value: Any) -> Any:
    # numpy arrays and scalars (and anything else array-like) turn into plain lists/numbers;
    # checked by duck typing so the client needs no numpy.
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    """Compact JSON as the daemon reads it.

    ``allow_nan=False``: Python would otherwise write ``NaN``/``Infinity``, which is not JSON
    and would make the daemon refuse the whole line as malformed. Callers turn the resulting
    ``ValueError`` into a precise error.
    """
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain
    )


def encode_request(
    request_id: int,
    op: str,
    params: Mapping[str, Any],
    *,
    raw: Optional[Mapping[str, bytes]] = None,
    wait_ms: Optional[int] = None,
) -> bytes:
    """One request line, without the trailing newline.

    ``raw`` maps field names to values already encoded as JSON (an upsert's documents are
    encoded one by one to size its batches, and are not encoded a second time here).
    """
    envelope: Dict[str, Any] = {"id": request_id, "op": op}
    envelope.update(params)
    if wait_ms is not None:
        envelope["wait_ms"] = wait_ms
    line = dumps(envelope).encode("utf-8")
    if not raw:
        return line
    # The envelope always holds `id` and `op`, so it is a non-empty object: cut its closing
    # brace and append the pre-encoded fields.
    parts = [line[:-1]]
    for key, value in raw.items():
        parts.append(b"," + dumps(key).encode("utf-8") + b":" + value)
    parts.append(b"}")
    return b"".join(parts)


def decode_reply(line: bytes, request_id: int, op: str) -> Dict[str, Any]:
    """The result of a successful reply (without ``id`` and ``ok``); raises the mapped error
    of a failed one."""
    try:
        reply = json.loads(line)
    except ValueError as e:
        raise errors.ProtocolError(f"unreadable reply to `{op}`: {e}") from None
    if not isinstance(reply, dict):
        raise errors.ProtocolError(f"reply to `{op}` is not a JSON object: {line[:200]!r}")
    ok = reply.get("ok")
    reply_id = reply.get("id")
    # Errors about the connection itself (`permission_denied` on connect, `frame_too_large`)
    # are sent before the daemon could read an id: they carry null.
    if reply_id is None and ok is False:
        raise errors.from_wire(reply.get("error"))
    # `type(...) is int` so that a `true` id never equals request 1.
    if type(reply_id) is not int or reply_id != request_id:
        raise errors.ProtocolError(
            f"reply to `{op}` carries id {reply_id!r}, expected {request_id}"
        )
    if ok is True:
        del reply["id"], reply["ok"]
        return reply
    if ok is False:
        raise errors.from_wire(reply.get("error"))
    raise errors.ProtocolError(f"reply to `{op}` has no boolean `ok`: {line[:200]!r}")
