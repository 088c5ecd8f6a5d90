"""Vectors as bytes on the wire (``proto/src/vector.rs``): base64 of little-endian float32.

Every vector the client sends goes as one base64 string, and ``get`` / ``query`` ask for the
vectors they return the same way. A float then costs 5⅓ characters and no per-value formatting
or parsing in Python: a float32 buffer (a numpy ``float32`` array, an ``array('f')``) is sent as
it is, any other numpy array is converted by numpy, and a list of numbers by ``array('f')``,
all in C. Bits arrive as they were, so a vector read back equals the float32 values written.

NaN and infinities travel too, and the daemon refuses them (``invalid_vector`` with the
position), as it refuses a finite double beyond float32's range, which float32 makes infinite.
"""

from __future__ import annotations

import array
import base64
import binascii
import sys
from typing import Any, List

from ._inputs import plain

_BIG_ENDIAN = sys.byteorder == "big"


def encode(vector: Any) -> str:
    """The base64 of ``vector``'s values as little-endian float32."""
    return base64.b64encode(_float32_bytes(vector)).decode("ascii")


def _float32_bytes(vector: Any) -> bytes:
    # A float32 buffer is sent as it is.
    try:
        view = memoryview(vector)
    except TypeError:
        view = None
    if view is not None and view.ndim == 1 and view.itemsize == 4:
        if view.format in ("<f",) or (view.format in ("f", "=f") and not _BIG_ENDIAN):
            return view.tobytes()
    # Other numpy arrays (float64 is the usual): numpy converts, duck-typed (no numpy import).
    astype = getattr(vector, "astype", None)
    if callable(astype) and getattr(vector, "ndim", None) == 1:
        return astype("<f4").tobytes()
    values = array.array("f", plain(vector))
    if _BIG_ENDIAN:
        values.byteswap()
    return values.tobytes()


def decode(text: str) -> List[float]:
    """The values of a base64 vector from the daemon, as a list of floats."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"the daemon sent a vector that is not base64: {e}") from None
    values = array.array("f")
    values.frombytes(data)
    if _BIG_ENDIAN:
        values.byteswap()
    return values.tolist()
