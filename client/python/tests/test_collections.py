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


def test_get_or_create_without_dimension_needs_an_existing_collection(client):
    with pytest.raises(ctxd.CollectionNotFound, match="dimension"):
        client.get_or_create_collection("notes")
    assert client.list_collections() == []


def test_create_collection_get_or_create_flag(client):
    client.create_collection("notes", dimension=2)
    col = client.create_collection("notes", dimension=2, get_or_create=True)
    assert col.name == "notes"
