"""query: lexical, vector and hybrid search, ChromaDB's result shape, and what `distances` is."""

import math

import pytest

import ctxd

DOCS = {
    "otters": (
        "Sea otters hold hands while they sleep so they do not drift apart.",
        [1.0, 0.5, -2.0],
    ),
    "stones": ("Otters use stones as tools to open shellfish.", [0.25, 3.0, 1.0]),
    "raft": ("A group of resting otters is called a raft.", [-1.0, 0.0, 0.5]),
    "cats": ("Cats sleep for most of the day.", [0.5, 1.0, 1.0]),
}
QUERY = [0.5, 1.0, 1.0]


def fill(col):
    col.upsert(
        ids=list(DOCS),
        documents=[text for text, _ in DOCS.values()],
        embeddings=[vector for _, vector in DOCS.values()],
        metadatas=[{"n": i} for i in range(len(DOCS))],
    )
    return col


def chroma_distance(space, a, b):
    """ChromaDB's distance definitions (hnswlib): l2 is squared, ip is 1 - dot."""
    dot = sum(x * y for x, y in zip(a, b))
    if space == "cosine":
        return 1 - dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
    if space == "ip":
        return 1 - dot
    if space == "l2":
        return sum((x - y) ** 2 for x, y in zip(a, b))
    if space == "l1":
        return sum(abs(x - y) for x, y in zip(a, b))
    raise ValueError(space)


@pytest.mark.parametrize(
    "distance, space",
    [("cosine", "cosine"), ("dot", "ip"), ("euclidean", "l2"), ("manhattan", "l1")],
)
def test_vector_query_distances_are_chromadbs(client, distance, space):
    col = fill(client.create_collection(f"notes-{distance}", dimension=3, distance=distance))
    result = col.query(query_embeddings=[QUERY], n_results=4)
    expected = sorted((chroma_distance(space, QUERY, v), key) for key, (_, v) in DOCS.items())
    assert result["ids"] == [[key for _, key in expected]]
    assert result["distances"][0] == pytest.approx([d for d, _ in expected], rel=1e-5, abs=1e-5)
    # Lower is better, as in ChromaDB; the daemon's own score is higher-is-better.
    assert result["distances"][0] == sorted(result["distances"][0])
    assert result["scores"][0] == sorted(result["scores"][0], reverse=True)
    assert result["modes"] == ["vector"]
    assert [r["vector"] for r in result["ranks"][0]] == [1, 2, 3, 4]


def test_result_shape_follows_include(client):
    col = fill(client.create_collection("notes", dimension=3))
    default = col.query(query_embeddings=QUERY, n_results=2)
    assert set(default) == {
        "ids",
        "documents",
        "metadatas",
        "embeddings",
        "distances",
        "scores",
        "ranks",
        "modes",
        "included",
        # ChromaDB 1.5 always has these two (multimodal); never included here.
        "uris",
        "data",
    }
    assert default["included"] == ["metadatas", "documents", "distances"]
    assert default["embeddings"] is None
    assert default["documents"] == [[DOCS[i][0] for i in default["ids"][0]]]
    assert default["metadatas"][0][0] == {"n": list(DOCS).index(default["ids"][0][0])}
    lean = col.query(query_embeddings=QUERY, n_results=2, include=["embeddings"])
    assert lean["documents"] is None and lean["metadatas"] is None and lean["distances"] is None
    assert lean["embeddings"] == [[DOCS[i][1] for i in lean["ids"][0]]]
    assert lean["scores"][0] and len(lean["scores"][0]) == 2


def test_lexical_query_texts(client):
    col = fill(client.create_collection("notes", dimension=3))
    result = col.query(query_texts=["otters sleep"], n_results=10)
    assert result["modes"] == ["lexical"]
    assert result["ids"][0][0] == "otters"  # both words
    assert set(result["ids"][0]) == {"otters", "stones", "raft", "cats"}
    assert result["distances"] == [[None] * 4], "bm25 has no distance; not made up"
    assert all(score > 0 for score in result["scores"][0])
    assert all(r["vector"] is None and r["lexical"] for r in result["ranks"][0])
    # User text, never FTS5 syntax.
    odd = col.query(query_texts=['"otters AND NEAR( *'], n_results=3)
    assert "otters" in odd["ids"][0]


def test_list_of_queries_gives_one_list_each(client, monkeypatch):
    col = fill(client.create_collection("notes", dimension=3))
    sent = []
    request = client._request

    def spy(op, params, **kwargs):
        sent.append((op, params.get("text")))
        return request(op, params, **kwargs)

    monkeypatch.setattr(client, "_request", spy)
    texts = col.query(query_texts=["shellfish", "raft", "zebra"], n_results=2)
    assert sent == [("search", "shellfish"), ("search", "raft"), ("search", "zebra")]
    assert texts["ids"] == [["stones"], ["raft"], []]
    vectors = col.query(query_embeddings=[DOCS["cats"][1], DOCS["raft"][1]], n_results=1)
    assert vectors["ids"] == [["cats"], ["raft"]]
    assert len(vectors["distances"]) == 2


def test_hybrid_query_fuses_both_lists(client):
    col = fill(client.create_collection("notes", dimension=3))
    result = col.query(
        query_texts=["otters sleep"], query_embeddings=[DOCS["cats"][1]], n_results=4
    )
    assert result["modes"] == ["hybrid"]
    ranks = dict(zip(result["ids"][0], result["ranks"][0]))
    assert ranks["cats"]["vector"] == 1 and ranks["otters"]["lexical"] == 1
    # Reciprocal rank fusion: score = sum of 1 / (60 + rank) over the lists a hit is in.
    for key, score in zip(result["ids"][0], result["scores"][0]):
        fused = sum(1 / (60 + r) for r in ranks[key].values() if r is not None)
        assert score == pytest.approx(fused)
    assert result["distances"] == [[None] * 4]


def test_explicit_mode(client):
    col = fill(client.create_collection("notes", dimension=3))
    only_vector = col.query(
        query_texts=["otters"], query_embeddings=[QUERY], mode="vector", n_results=4
    )
    assert only_vector["modes"] == ["vector"]
    assert all(r["lexical"] is None for r in only_vector["ranks"][0])
    assert only_vector["distances"][0][0] is not None
    only_lexical = col.query(query_texts=["otters"], query_embeddings=[QUERY], mode="lexical")
    assert "cats" not in only_lexical["ids"][0]
    with pytest.raises(ValueError, match="query_embeddings"):
        col.query(query_texts=["otters"], mode="hybrid")
    with pytest.raises(ValueError, match="mode"):
        col.query(query_texts=["otters"], mode="semantic")
    with pytest.raises(ValueError, match="pair"):
        col.query(query_texts=["a", "b"], query_embeddings=[QUERY])
    with pytest.raises(ValueError):
        col.query()


def test_n_results_and_where(client):
    col = fill(client.create_collection("notes", dimension=3))
    assert len(col.query(query_embeddings=QUERY, n_results=2)["ids"][0]) == 2
    filtered = col.query(query_embeddings=QUERY, n_results=4, where={"n": {"$in": [0, 2]}})
    assert sorted(filtered["ids"][0]) == ["otters", "raft"]
    with pytest.raises(ctxd.BadRequest):
        col.query(query_embeddings=QUERY, n_results=0)


def test_pass_through_search_parameters(client):
    col = fill(client.create_collection("notes", dimension=3))
    exact = col.query(query_embeddings=QUERY, n_results=4, exact=True, effort=8)
    assert exact["ids"][0][0] == "cats"
    weighted = col.query(
        query_texts=["otters sleep"],
        query_embeddings=[DOCS["cats"][1]],
        n_results=4,
        weights={"lexical": 0.0, "vector": 1.0},
        rrf_k=10,
    )
    assert weighted["ids"][0][0] == "cats"
    assert weighted["scores"][0][0] == pytest.approx(1 / (10 + 1))
