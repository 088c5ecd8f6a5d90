"""The same ChromaDB-style calls against ``chromadb`` or ``ctxd``, observed in one comparable form.

``python parity.py chromadb|ctxd DIR`` prints the observations as JSON; ``test_parity.py``
runs it for ctxd in-process and, where an interpreter with ``chromadb`` is available, for
ChromaDB in that interpreter, and checks both against the documented expectations. Nothing
here imports pytest: ChromaDB's venv needs nothing but chromadb.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, Dict, List


class TinyEmbedding:
    """A deterministic embedding function in ChromaDB's protocol (``__call__(self, input)``):
    letter counts of a, e, o and the length, so "nearest" is predictable."""

    def __call__(self, input: List[str]) -> List[List[float]]:  # noqa: A002 (Chroma's name)
        return [[t.count("a") + 0.1, t.count("e") + 0.1, t.count("o") + 0.1, len(t) / 10] for t in input]


#: Exception classes of either library, by the kind the observations record.
KINDS = {
    "NotFoundError": "not_found",
    "CollectionNotFound": "not_found",
    "InternalError": "exists",  # ChromaDB 1.5 raises this for an existing name
    "CollectionExists": "exists",
    "UniqueConstraintError": "exists",
    "DuplicateIDError": "duplicate_id",
    "DuplicateID": "duplicate_id",
    "InvalidArgumentError": "dimension",
    "DimensionMismatch": "dimension",
    "ValueError": "bad_filter",
    "BadRequest": "bad_filter",
}


def kind(call: Callable[[], Any]) -> str:
    try:
        call()
    except Exception as e:  # noqa: BLE001 (the class is what is observed)
        return KINDS.get(type(e).__name__, type(e).__name__)
    return "ok"


def observe(lib: str, path: str) -> Dict[str, Any]:
    chroma = lib == "chromadb"
    if chroma:
        import chromadb
        from chromadb.api.types import EmbeddingFunction
        from chromadb.utils.embedding_functions import register_embedding_function

        # ChromaDB 1.5 takes only a registered EmbeddingFunction subclass (ctxd takes any
        # callable, these classes included), and persists it by name.
        @register_embedding_function
        class ChromaTiny(EmbeddingFunction):  # type: ignore[misc]
            def __init__(self) -> None:
                pass

            def __call__(self, input: List[str]) -> List[List[float]]:  # noqa: A002
                return TinyEmbedding()(input)

            @staticmethod
            def name() -> str:
                return "ctxd_parity_tiny"

            def get_config(self) -> Dict[str, Any]:
                return {}

            @staticmethod
            def build_from_config(config: Dict[str, Any]) -> "ChromaTiny":
                return ChromaTiny()

        client = chromadb.PersistentClient(path=path)

        def create(name: str, ef: Any = None) -> Any:
            return client.get_or_create_collection(
                name, metadata={"hnsw:space": "cosine"}, embedding_function=ChromaTiny()
            )

    else:
        import ctxd

        client = ctxd.PersistentClient(path)

        def create(name: str, ef: Any = None) -> Any:
            return client.get_or_create_collection(name, embedding_function=ef)

    seen: Dict[str, Any] = {}
    docs = create("docs")
    docs.add(
        ids=["a", "b", "c", "d"],
        embeddings=[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
        documents=["Otters hold hands", "otters sleep", "a heron fishes", "River otters play"],
        metadatas=[{"kind": "sea"}, {"kind": "sea"}, {"kind": "bird"}, {"kind": "river"}],
    )
    got = docs.get()
    seen["get_keys"] = sorted(got)
    seen["get_default_included"] = sorted(got["included"])
    seen["get_embeddings_when_not_included"] = got["embeddings"]
    hits = docs.query(query_embeddings=[[1, 0.1, 0, 0]], n_results=2)
    seen["query_keys"] = sorted(k for k in hits if k not in ("scores", "ranks", "modes"))
    seen["query_default_included"] = sorted(hits["included"])
    seen["query_ids"] = hits["ids"]
    seen["query_n_results_beyond_count"] = len(
        docs.query(query_embeddings=[[1, 0, 0, 0]], n_results=50)["ids"][0]
    )

    def ids(**filters: Any) -> List[str]:
        return sorted(docs.get(**filters)["ids"])

    seen["contains"] = ids(where_document={"$contains": "otters"})
    seen["not_contains"] = ids(where_document={"$not_contains": "otters"})
    seen["regex"] = ids(where_document={"$regex": "(?i)^otters"})
    seen["not_regex"] = ids(where_document={"$not_regex": "(?i)otters"})
    seen["and"] = ids(where_document={"$and": [{"$contains": "otters"}, {"$contains": "play"}]})
    seen["or"] = ids(where_document={"$or": [{"$contains": "heron"}, {"$contains": "hold"}]})
    seen["with_where"] = ids(where={"kind": "sea"}, where_document={"$contains": "otters"})
    seen["query_with_where_document"] = docs.query(
        query_embeddings=[[1, 0, 0, 0]], n_results=4, where_document={"$contains": "otters"}
    )["ids"]
    seen["bad_where_document"] = kind(lambda: docs.get(where_document={"$foo": "x"}))
    seen["bad_where_document_operand"] = kind(lambda: docs.get(where_document={"$contains": 3}))

    docs.update(ids=["a", "zz"], metadatas=[{"kind": None, "tag": "x"}, {"kind": "none"}])
    seen["update_merges_and_none_removes"] = docs.get(ids=["a"])["metadatas"]
    seen["update_unknown_id_ignored"] = docs.get(ids=["zz"])["ids"]
    docs.update(ids=["b"], documents=["otters nap"])
    after = docs.get(ids=["b"], include=["documents", "metadatas"])
    seen["update_text_keeps_metadata"] = [after["documents"], after["metadatas"]]

    semantic = create("semantic", TinyEmbedding())
    semantic.add(ids=["x", "y"], documents=["aaaa", "oooo"])
    vector = semantic.get(ids=["x"], include=["embeddings"])["embeddings"][0]
    seen["embedding_function_on_add"] = [round(float(v), 4) for v in vector]
    seen["query_texts_through_function"] = semantic.query(query_texts=["aaa"], n_results=1)["ids"]
    semantic.update(ids=["y"], documents=["aaaaaa"])
    vector = semantic.get(ids=["y"], include=["embeddings"])["embeddings"][0]
    seen["update_documents_reembeds"] = [round(float(v), 4) for v in vector]

    free = client.get_or_create_collection("free") if not chroma else create("free")
    free.add(ids=["p"], embeddings=[[1.0, 2.0, 3.0]])
    seen["first_vector_fixes_dimension"] = kind(
        lambda: free.add(ids=["q"], embeddings=[[1.0, 2.0, 3.0, 4.0]])
    )
    seen["missing_collection"] = kind(lambda: client.get_collection("nope"))
    seen["existing_name"] = kind(lambda: client.create_collection("docs"))
    seen["duplicate_ids_in_one_add"] = kind(
        lambda: docs.add(ids=["n1", "n1"], embeddings=[[1, 0, 0, 0], [0, 1, 0, 0]])
    )
    if hasattr(client, "close"):
        client.close()
    return seen


#: What both libraries do, as the README's parity table says.
EXPECTED: Dict[str, Any] = {
    "get_keys": ["data", "documents", "embeddings", "ids", "included", "metadatas", "uris"],
    "get_default_included": ["documents", "metadatas"],
    "get_embeddings_when_not_included": None,
    "query_keys": [
        "data",
        "distances",
        "documents",
        "embeddings",
        "ids",
        "included",
        "metadatas",
        "uris",
    ],
    "query_default_included": ["distances", "documents", "metadatas"],
    "query_ids": [["a", "b"]],
    "query_n_results_beyond_count": 4,
    "contains": ["b", "d"],
    "not_contains": ["a", "c"],
    "regex": ["a", "b"],
    "not_regex": ["c"],
    "and": ["d"],
    "or": ["a", "c"],
    "with_where": ["b"],
    "query_with_where_document": [["b", "d"]],
    "bad_where_document": "bad_filter",
    "bad_where_document_operand": "bad_filter",
    "update_merges_and_none_removes": [{"tag": "x"}],
    "update_unknown_id_ignored": [],
    "update_text_keeps_metadata": [["otters nap"], [{"kind": "sea"}]],
    "embedding_function_on_add": [4.1, 0.1, 0.1, 0.4],
    "query_texts_through_function": [["x"]],
    "update_documents_reembeds": [6.1, 0.1, 0.1, 0.6],
    "first_vector_fixes_dimension": "dimension",
    "missing_collection": "not_found",
    "existing_name": "exists",
    "duplicate_ids_in_one_add": "duplicate_id",
}


if __name__ == "__main__":
    print(json.dumps(observe(sys.argv[1], sys.argv[2])))
