"""ChromaDB-shaped arguments → plain lists the wire takes.

ChromaDB accepts "one or many" almost everywhere (an id or a list of ids, an embedding or a list
of embeddings, numpy arrays instead of lists) and names the parts of a document ``documents``,
``metadatas`` and ``embeddings``; the wire says ``text``, ``metadata`` and ``vector``. This module
only reshapes and checks shapes; the daemon checks values.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

#: ChromaDB's ``include`` names → the wire's ``include`` fields.
INCLUDE_TO_WIRE: Dict[str, str] = {
    "documents": "text",
    "metadatas": "metadata",
    "embeddings": "vector",
}

#: What ``get`` returns when ``include`` is not given (ChromaDB's and the daemon's default).
GET_DEFAULT_INCLUDE = ("metadatas", "documents")

#: What ``query`` returns when ``include`` is not given (ChromaDB's default).
QUERY_DEFAULT_INCLUDE = ("metadatas", "documents", "distances")


def plain(value: Any) -> Any:
    """``value.tolist()`` for numpy arrays (duck-typed, no numpy import), else ``value``."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def is_number(value: Any) -> bool:
    """A JSON number (``bool`` is an ``int`` in Python, but not a vector component)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def ids(value: Any) -> List[str]:
    """One id or a sequence of ids."""
    value = plain(value)
    if isinstance(value, str):
        return [value]
    if value is None:
        raise TypeError("`ids` is required")
    result = list(value)
    for item in result:
        if not isinstance(item, str):
            raise TypeError(f"ids must be strings, got {item!r}")
    return result


def duplicates(values: Sequence[str]) -> List[str]:
    """The ids that occur more than once, each once, in order of first repetition."""
    seen = set()
    repeated: Dict[str, None] = {}
    for value in values:
        if value in seen:
            repeated[value] = None
        seen.add(value)
    return list(repeated)


def _check_length(name: str, values: List[Any], expected: int) -> None:
    if len(values) != expected:
        raise ValueError(f"`{name}` has {len(values)} entries but `ids` has {expected}")


def documents(value: Any, count: int) -> Optional[List[Optional[str]]]:
    """One text or a list of texts (``None`` entries: no text), as many as ids."""
    if value is None:
        return None
    value = [value] if isinstance(value, str) else list(plain(value))
    for item in value:
        if item is not None and not isinstance(item, str):
            raise TypeError(f"documents must be strings or None, got {type(item).__name__}")
    _check_length("documents", value, count)
    return value


def metadatas(value: Any, count: int) -> Optional[List[Optional[Dict[str, Any]]]]:
    """One metadata dict or a list of them (``None`` entries: no metadata), as many as ids."""
    if value is None:
        return None
    value = [value] if isinstance(value, dict) else list(value)
    for item in value:
        if item is not None and not isinstance(item, dict):
            raise TypeError(f"metadatas must be dicts or None, got {type(item).__name__}")
    _check_length("metadatas", value, count)
    return value


def embeddings(value: Any, count: int) -> Optional[List[Optional[List[Any]]]]:
    """One embedding or a list of them (``None`` entries: no vector), as many as ids."""
    vectors = _vectors(value, "embeddings")
    if vectors is None:
        return None
    _check_length("embeddings", vectors, count)
    return vectors


def _vectors(value: Any, name: str) -> Optional[List[Any]]:
    # numpy arrays stay arrays (one row each): `_vectors.encode` sends their bytes as they are.
    ndim = getattr(value, "ndim", None) if hasattr(value, "__iter__") else None
    if ndim == 1:
        return [value]
    if ndim == 2:
        return list(value)
    value = plain(value)
    if value is None:
        return None
    if isinstance(value, (str, bytes, dict)):
        raise TypeError(f"`{name}` must be a list of numbers or a list of such lists")
    value = list(value)
    if value and is_number(plain(value[0])):
        # A single embedding (a flat list of numbers), as ChromaDB also accepts.
        return [value]
    return value


def query_embeddings(value: Any) -> Optional[List[List[Any]]]:
    """The query vectors: one embedding or a list of them."""
    vectors = _vectors(value, "query_embeddings")
    if vectors is not None:
        for vector in vectors:
            if vector is None:
                raise TypeError("`query_embeddings` holds None")
    return vectors


def query_texts(value: Any) -> Optional[List[str]]:
    """The query texts: one string or a list of them."""
    if value is None:
        return None
    value = [value] if isinstance(value, str) else list(value)
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"query_texts must be strings, got {type(item).__name__}")
    return value


def include(
    value: Optional[Sequence[str]], allowed: Sequence[str], default: Sequence[str]
) -> List[str]:
    """The ChromaDB ``include`` list, checked against what this call can return."""
    if value is None:
        return list(default)
    if isinstance(value, str):
        raise TypeError(f"`include` must be a list, e.g. [{value!r}]")
    result = list(value)
    for item in result:
        if item not in allowed:
            raise ValueError(
                f"`include` value {item!r} is not supported here; use {', '.join(allowed)}"
            )
    return result


def wire_include(chroma_include: Sequence[str]) -> List[str]:
    """The wire ``include`` for a ChromaDB ``include`` (``distances`` needs no field)."""
    return [INCLUDE_TO_WIRE[item] for item in chroma_include if item in INCLUDE_TO_WIRE]


def where(value: Any) -> Optional[Dict[str, Any]]:
    """A ChromaDB ``where`` as the wire ``filter``.

    The daemon's filter syntax *is* ChromaDB's (``proto/src/filter.rs``), so the dict passes
    through unchanged; the one translation is that ChromaDB treats ``{}`` as "no filter" while
    the daemon refuses an empty filter object.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"`where` must be a dict, got {type(value).__name__}")
    return value or None


def where_document(value: Any) -> Optional[Dict[str, Any]]:
    """A ChromaDB ``where_document`` as the wire ``text_filter``: the syntax is the same
    (``proto/src/text_filter.rs``: ``$contains``, ``$not_contains``, ``$regex``,
    ``$not_regex``, ``$and``, ``$or``), and the daemon evaluates it before ranking, together
    with ``where``. ``{}`` is "no filter", as for ``where``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"`where_document` must be a dict, got {type(value).__name__}")
    return value or None


def filters(
    params: Dict[str, Any], where_value: Any, where_document_value: Any
) -> Dict[str, Any]:
    """Adds ``filter`` and ``text_filter`` to request ``params`` for those given."""
    metadata = where(where_value)
    if metadata is not None:
        params["filter"] = metadata
    text = where_document(where_document_value)
    if text is not None:
        params["text_filter"] = text
    return params
