"""Collections the daemon embeds: documents and query_texts in, semantic search out.

The daemon runs the real all-MiniLM-L6-v2 from the shared data; the shared SciFact vectors were
computed by sentence-transformers from the same weights, so they are the oracle here.
"""

import array
import json
import math
from pathlib import Path

import pytest

import ctxd
from conftest import workspace_root

SHARED = workspace_root().parent / "shared" / "data"
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
DIM = 384


def _docs(count: int):
    """The first ``count`` SciFact documents as (id, title + " " + text), and their vectors."""
    docs = []
    with open(SHARED / "scifact" / "docs.jsonl", encoding="utf-8") as lines:
        for line in lines:
            value = json.loads(line)
            title = value.get("title")
            docs.append((value["id"], f"{title} {value['text']}" if title else value["text"]))
            if len(docs) == count:
                break
    raw = array.array("f")
    with open(SHARED / "scifact" / "doc_vectors.f32", "rb") as f:
        raw.frombytes(f.read(count * DIM * 4))
    vectors = [raw[i * DIM : (i + 1) * DIM].tolist() for i in range(count)]
    return docs, vectors


def _cosine(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


@pytest.fixture
def embedding(start_daemon):
    """A daemon with the model loaded as ``minilm``, and a client of it."""
    daemon = start_daemon(args=["--model", f"minilm={MODEL}"])
    with ctxd.Client(daemon.socket) as client:
        yield daemon, client


def test_documents_in_semantic_search_out(embedding):
    _, client = embedding
    notes = client.create_collection("notes", embedder="minilm")
    assert (notes.dimension, notes.embedder) == (DIM, "minilm")
    assert len(notes.embedder_sha256) == 64
    assert "embedder='minilm'" in repr(notes)

    docs, shared = _docs(40)
    ids = [doc_id for doc_id, _ in docs]
    assert notes.upsert(ids=ids, documents=[text for _, text in docs]) == 40
    stored = notes.get(ids=ids, include=["embeddings"])["embeddings"]
    for computed, expected in zip(stored, shared):
        assert _cosine(computed, expected) >= 0.9999

    # query_texts alone: hybrid in an embedding collection; mode="vector" is ChromaDB's query.
    title = docs[7][1].split(".")[0]
    hybrid = notes.query(query_texts=title, n_results=3)
    assert hybrid["modes"] == ["hybrid"] and hybrid["ids"][0][0] == ids[7]
    vector = notes.query(query_texts=[title], n_results=3, mode="vector")
    assert vector["modes"] == ["vector"] and vector["ids"][0][0] == ids[7]
    assert vector["distances"][0][0] is not None
    # The same query as the shared vector of the document ranks it first with distance ~0.
    by_vector = notes.query(query_embeddings=[shared[7]], n_results=1)
    assert by_vector["ids"][0] == [ids[7]] and by_vector["distances"][0][0] < 1e-4
    lexical = notes.query(query_texts=title, n_results=3, mode="lexical")
    assert lexical["modes"] == ["lexical"]

    # Mixed: explicit vectors are kept as given, the others computed, in one call.
    assert notes.upsert(ids=["a", "b"], embeddings=[[1.0] + [0.0] * (DIM - 1), None],
                        documents=[None, docs[0][1]]) == 2
    a, b = notes.get(ids=["a", "b"], include=["embeddings"])["embeddings"]
    assert a[0] == 1.0 and sum(a) == 1.0
    assert _cosine(b, shared[0]) >= 0.9999

    # get_or_create judges the embedder like the other settings.
    assert client.get_or_create_collection("notes", embedder="minilm").embedder == "minilm"
    with pytest.raises(ctxd.CollectionExists, match="embedder minilm"):
        client.get_or_create_collection("notes", dimension=DIM, embedder="other")


def test_update_of_a_text_recomputes_its_vector_and_keeps_the_rest(embedding):
    _, client = embedding
    notes = client.create_collection("notes", embedder="minilm")
    docs, shared = _docs(2)
    notes.upsert(ids=["x"], documents=[docs[0][1]], metadatas=[{"kept": True}])
    assert notes.update(ids=["x"], documents=[docs[1][1]]) == 1
    got = notes.get(ids=["x"], include=["embeddings", "metadatas", "documents"])
    assert _cosine(got["embeddings"][0], shared[1]) >= 0.9999
    assert got["metadatas"] == [{"kept": True}] and got["documents"] == [docs[1][1]]
    # Metadata alone: the vector stays, the model is not run.
    assert notes.update(ids=["x"], metadatas=[{"more": 1}]) == 1
    after = notes.get(ids=["x"], include=["embeddings", "metadatas"])
    assert after["embeddings"] == got["embeddings"]
    assert after["metadatas"] == [{"kept": True, "more": 1}]


def test_bad_input_is_refused_and_nothing_is_written(embedding):
    _, client = embedding
    with pytest.raises(ctxd.EmbedderUnavailable) as unknown:
        client.create_collection("x", embedder="mpnet")
    assert "mpnet" in unknown.value.message
    with pytest.raises(ctxd.DimensionMismatch):
        client.create_collection("x", dimension=768, embedder="minilm")

    notes = client.create_collection("notes", embedder="minilm")
    with pytest.raises(ctxd.BadRequest, match="no text to embed"):
        notes.upsert(ids=["1", "2"], documents=["a fine text", "   "])
    assert notes.count() == 0

    plain = client.create_collection("plain", dimension=DIM)
    with pytest.raises(ValueError, match="no embedder"):
        plain.query(query_texts="anything", mode="vector")
    assert plain.query(query_texts="anything")["modes"] == ["lexical"]


def test_a_daemon_without_the_model_refuses_only_embedding(start_daemon, scratch):
    data = scratch / "kept"
    first = start_daemon(data=data, socket=scratch / "one.sock",
                         args=["--model", f"minilm={MODEL}"])
    docs, shared = _docs(5)
    with ctxd.Client(first.socket) as client:
        notes = client.create_collection("notes", embedder="minilm")
        notes.upsert(ids=[d for d, _ in docs], documents=[t for _, t in docs])
    first.stop()

    second = start_daemon(data=data, socket=scratch / "two.sock")
    with ctxd.Client(second.socket) as client:
        notes = client.get_collection("notes")
        assert notes.embedder == "minilm"
        with pytest.raises(ctxd.EmbedderUnavailable) as refused:
            notes.upsert(ids=["new"], documents=["a text the daemon cannot embed now"])
        assert refused.value.details.get("embedder") == "minilm"
        with pytest.raises(ctxd.EmbedderUnavailable):
            notes.query(query_texts="white matter", mode="vector")
        assert notes.count() == 5
        # Stored vectors stay searchable, the text too, and explicit vectors are written.
        assert notes.query(query_embeddings=shared[2], n_results=1)["ids"][0] == [docs[2][0]]
        assert notes.query(query_texts="white matter", mode="lexical", n_results=1)["ids"][0]
        assert notes.upsert(ids=["new"], embeddings=[shared[0]], documents=["kept"]) == 1
