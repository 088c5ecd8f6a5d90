"""Daemon results → ChromaDB's result shapes.

``get`` returns one flat list per field (``{"ids": [...], "documents": [...], ...}``) and
``query`` one list per query (``{"ids": [[...], [...]], ...}``); fields not included are
``None``, as in ChromaDB.

**Scores and distances.** The daemon ranks by a *score, higher is better*: cosine similarity
(``cosine``), dot product (``dot``), negated L2 distance (``euclidean``), negated L1 distance
(``manhattan``), bm25 relevance (lexical) or the fused reciprocal-rank score (hybrid). ChromaDB
reports *distances, lower is better*. For a vector search ``distances`` holds the distance
ChromaDB's matching space defines, computed from the score (exact, up to float32 rounding):

============  =========================  ==========================================
ctxd          ChromaDB ``hnsw:space``    ``distances`` value
============  =========================  ==========================================
cosine        ``cosine``                 ``1 - score``  (1 − cosine similarity)
dot           ``ip``                     ``1 - score``  (1 − dot product)
euclidean     ``l2``                     ``score ** 2`` (squared L2, as ChromaDB)
manhattan     (none)                     ``-score``     (L1 distance)
============  =========================  ==========================================

A lexical or hybrid search has no distance at all: its ``distances`` entries are ``None`` (so
code that does arithmetic on them fails loudly instead of sorting by a made-up number), and
``scores`` holds what it ranked by. ``scores`` and ``ranks`` (the hit's 1-based rank in the
lexical and vector lists, ``None`` where absent) are returned for every query.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from . import _vectors


def distance_from_score(score: float, distance: str) -> float:
    """ChromaDB's distance for a vector-search score of a collection with ``distance``."""
    if distance == "cosine" or distance == "dot":
        return 1.0 - score
    if distance == "euclidean":
        return score * score
    if distance == "manhattan":
        return -score
    raise ValueError(f"unknown distance {distance!r}")


def get_result(documents: Sequence[Dict[str, Any]], include: Sequence[str]) -> Dict[str, Any]:
    """ChromaDB's ``GetResult`` for the daemon's ``documents``."""
    return {
        "ids": [doc["id"] for doc in documents],
        "embeddings": (
            [_vector(doc.get("vector")) for doc in documents]
            if "embeddings" in include
            else None
        ),
        "documents": [doc.get("text") for doc in documents] if "documents" in include else None,
        "metadatas": (
            [doc.get("metadata") for doc in documents] if "metadatas" in include else None
        ),
        # ChromaDB's multimodal fields: always there, never included here.
        "uris": None,
        "data": None,
        "included": list(include),
    }


def query_result(
    hit_lists: Sequence[Sequence[Dict[str, Any]]],
    modes: Sequence[str],
    include: Sequence[str],
    distance: str,
) -> Dict[str, Any]:
    """ChromaDB's ``QueryResult`` for one hit list per query, searched in ``modes``."""

    def per_query(field: str) -> Optional[List[List[Any]]]:
        if field not in include:
            return None
        if field == "embeddings":
            return [[_vector(hit.get("vector")) for hit in hits] for hits in hit_lists]
        return [[hit.get(_WIRE[field]) for hit in hits] for hits in hit_lists]

    distances: Optional[List[List[Optional[float]]]] = None
    if "distances" in include:
        distances = [
            [
                distance_from_score(hit["score"], distance) if mode == "vector" else None
                for hit in hits
            ]
            for hits, mode in zip(hit_lists, modes)
        ]
    return {
        "ids": [[hit["id"] for hit in hits] for hits in hit_lists],
        "embeddings": per_query("embeddings"),
        "documents": per_query("documents"),
        "metadatas": per_query("metadatas"),
        "distances": distances,
        "uris": None,
        "data": None,
        "scores": [[hit["score"] for hit in hits] for hits in hit_lists],
        "ranks": [[dict(hit.get("ranks") or {}) for hit in hits] for hits in hit_lists],
        "modes": list(modes),
        "included": list(include),
    }


_WIRE = {"embeddings": "vector", "documents": "text", "metadatas": "metadata"}


def _vector(value: Any) -> Optional[List[float]]:
    """A vector from the daemon as a list of floats, whichever encoding it came in."""
    if isinstance(value, str):
        return _vectors.decode(value)
    return value
