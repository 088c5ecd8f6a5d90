"""create / get / get_or_create / list / delete collections."""

import pytest

import ctxd


def test_create_returns_the_daemons_description(client):
    col = client.create_collection("code", dimension=8, distance="dot", tokenizer="trigram")
    assert (col.name, col.dimension, col.distance, col.tokenizer) == ("code", 8, "dot", "trigram")
    plain = client.create_collection("notes", dimension=3)
    assert (plain.distance, plain.tokenizer) == ("cosine", "porter")


def test_get_collection(client):
    client.create_collection("notes", dimension=3, distance="euclidean")
    col = client.get_collection("notes")
    assert (col.dimension, col.distance) == (3, "euclidean")
    assert col.count() == 0


def test_list_collections_by_name(client):
    assert client.list_collections() == []
    client.create_collection("b-notes", dimension=2)
    client.create_collection("a-notes", dimension=3)
    listed = client.list_collections()
    assert [c.name for c in listed] == ["a-notes", "b-notes"]
    assert [c.dimension for c in listed] == [3, 2]
    assert all(isinstance(c, ctxd.Collection) for c in listed)


def test_delete_collection_and_its_documents(client):
    col = client.create_collection("notes", dimension=2)
    col.upsert(ids=["a"], documents=["text"])
    client.delete_collection("notes")
    assert client.list_collections() == []
    with pytest.raises(ctxd.CollectionNotFound):
        client.delete_collection("notes")
    again = client.create_collection("notes", dimension=2)
    assert again.count() == 0


def test_get_or_create_creates_then_returns_the_same(client):
    created = client.get_or_create_collection("notes", dimension=4, distance="dot")
    assert (created.dimension, created.distance) == (4, "dot")
    created.upsert(ids=["a"], documents=["kept"])
    # Settings left out accept what the collection has.
    again = client.get_or_create_collection("notes")
    assert (again.dimension, again.distance, again.count()) == (4, "dot", 1)
    same = client.get_or_create_collection("notes", dimension=4, distance="dot", tokenizer="porter")
    assert same.count() == 1
    assert len(client.list_collections()) == 1


def test_get_or_create_refuses_other_settings(client):
    client.create_collection("notes", dimension=4)
    with pytest.raises(ctxd.CollectionExists, match="dimension 8"):
        client.get_or_create_collection("notes", dimension=8)
    with pytest.raises(ctxd.CollectionExists, match="distance dot"):
        client.get_or_create_collection("notes", dimension=4, distance="dot")
    assert client.get_collection("notes").distance == "cosine"


def test_without_a_dimension_the_first_embedding_fixes_it(client, daemon, start_daemon, scratch):
    words = client.get_or_create_collection("words")
    assert words.dimension == 0
    # Before any vector: text is stored and searchable, a vector query finds nothing.
    words.upsert(ids=["t"], documents=["text only"])
    assert words.query(query_embeddings=[[1.0, 2.0]], n_results=3)["ids"] == [[]]
    assert words.query(query_texts=["text"], n_results=3)["ids"] == [["t"]]
    # A write whose vectors disagree among themselves fixes nothing.
    with pytest.raises(ctxd.DimensionMismatch):
        words.upsert(ids=["a", "b"], embeddings=[[1.0, 0.0, 0.0], [1.0, 0.0]])
    assert client.get_collection("words").dimension == 0
    words.upsert(ids=["a"], embeddings=[[1.0, 0.0, 0.0]])
    assert client.get_collection("words").dimension == 3
    with pytest.raises(ctxd.DimensionMismatch) as wrong:
        words.upsert(ids=["b"], embeddings=[[1.0, 0.0, 0.0, 0.0]])
    assert wrong.value.details == {"expected": 3, "received": 4}
    assert client.get_or_create_collection("words", dimension=3).dimension == 3
    with pytest.raises(ctxd.CollectionExists):
        client.get_or_create_collection("words", dimension=4)
    # Asked for with a dimension before any vector, a collection takes that one.
    client.get_or_create_collection("asked")
    assert client.get_or_create_collection("asked", dimension=2).dimension == 2
    with pytest.raises(ctxd.DimensionMismatch):
        client.get_collection("asked").upsert(ids=["x"], embeddings=[[1.0, 2.0, 3.0]])
    # Fixed durably: a new daemon on the same data reads it back.
    client.close()
    daemon.stop()
    with start_daemon(data=daemon.data, socket=scratch / "again.sock").client() as again:
        words = again.get_collection("words")
        assert words.dimension == 3
        hits = words.query(query_embeddings=[[1.0, 0.1, 0.0]], n_results=1)
        assert hits["ids"] == [["a"]]
        assert again.check()["passed"]


def test_create_collection_get_or_create_flag(client):
    client.create_collection("notes", dimension=2)
    col = client.create_collection("notes", dimension=2, get_or_create=True)
    assert col.name == "notes"


def test_chroma_collection_metadata_picks_the_distance(client):
    col = client.create_collection("l2", metadata={"hnsw:space": "l2", "hnsw:M": 16})
    assert col.distance == "euclidean"
    col = client.get_or_create_collection("ip", metadata={"hnsw:space": "ip"})
    assert col.distance == "dot"
    with pytest.raises(ValueError, match="not stored"):
        client.create_collection("x", metadata={"owner": "me"})
    with pytest.raises(ValueError, match="hnsw:space"):
        client.create_collection("x", metadata={"hnsw:space": "cosine"}, distance="dot")
    assert sorted(c.name for c in client.list_collections()) == ["ip", "l2"]
