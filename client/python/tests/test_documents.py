"""upsert / add / get / count / delete, include, paging, batching, and every `where` operator."""

import pytest

import ctxd
from ctxd import collection as collection_module


class ArrayLike:
    """Stands in for a numpy array: the client converts anything with ``tolist()``."""

    def __init__(self, rows):
        self.rows = rows

    def tolist(self):
        return [list(row) if isinstance(row, (list, tuple)) else row for row in self.rows]


@pytest.fixture
def notes(client):
    return client.create_collection("notes", dimension=3, distance="cosine")


def test_upsert_and_get_everything(notes):
    written = notes.upsert(
        ids=["a", "b", "c"],
        documents=["otters hold hands", None, "stones as tools"],
        embeddings=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], None],
        metadatas=[{"kind": "fact", "tags": ["x", "y"]}, None, {"year": 2020, "ok": True}],
    )
    assert written == 3
    got = notes.get(include=["documents", "metadatas", "embeddings"])
    assert got == {
        "ids": ["a", "b", "c"],
        "documents": ["otters hold hands", None, "stones as tools"],
        "metadatas": [{"kind": "fact", "tags": ["x", "y"]}, None, {"year": 2020, "ok": True}],
        "embeddings": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], None],
        "uris": None,
        "data": None,
        "included": ["documents", "metadatas", "embeddings"],
    }
    assert notes.count() == 3


def test_get_include_selects_fields(notes):
    notes.upsert(ids=["a"], documents=["text"], embeddings=[[1, 2, 3]], metadatas=[{"k": 1}])
    default = notes.get()
    assert default["documents"] == ["text"] and default["metadatas"] == [{"k": 1}]
    assert default["embeddings"] is None
    assert default["included"] == ["metadatas", "documents"]
    only_vectors = notes.get(include=["embeddings"])
    assert only_vectors["embeddings"] == [[1.0, 2.0, 3.0]]
    assert only_vectors["documents"] is None and only_vectors["metadatas"] is None
    ids_only = notes.get(include=[])
    assert ids_only["ids"] == ["a"] and ids_only["documents"] is None
    with pytest.raises(ValueError, match="distances"):
        notes.get(include=["distances"])


def test_get_by_ids_keeps_their_order_and_skips_missing(notes):
    notes.upsert(ids=["a", "b", "c"], documents=["1", "2", "3"])
    got = notes.get(ids=["c", "missing", "a"])
    assert got["ids"] == ["c", "a"] and got["documents"] == ["3", "1"]
    assert notes.get(ids="b")["documents"] == ["2"]


def test_get_without_limit_returns_every_document(notes):
    ids = [f"doc-{i:04d}" for i in range(250)]
    notes.upsert(ids=ids, documents=[f"text {i}" for i in range(250)])
    # The daemon's own default page is 100; the client reads all, like ChromaDB.
    assert notes.get(include=[])["ids"] == ids
    assert len(notes.get(ids=ids)["ids"]) == 250


def test_get_paging_with_limit_and_offset(notes):
    ids = [f"doc-{i:03d}" for i in range(25)]
    notes.upsert(ids=ids, documents=["x"] * 25)
    pages = [notes.get(limit=10, offset=start, include=[])["ids"] for start in (0, 10, 20)]
    assert [len(page) for page in pages] == [10, 10, 5]
    assert pages[0] + pages[1] + pages[2] == ids
    assert notes.get(limit=10, offset=25)["ids"] == []
    assert notes.get(limit=0)["ids"] == []
    assert notes.get(offset=22, include=[])["ids"] == ids[22:]
    with pytest.raises(ValueError):
        notes.get(limit=-1)


def test_get_reads_large_results_page_by_page(notes, monkeypatch):
    ids = [f"doc-{i:03d}" for i in range(25)]
    notes.upsert(ids=ids, documents=["x"] * 25)
    # Pretend the daemon's per-request maximum is 7, so paging is exercised without 10,000+
    # documents.
    monkeypatch.setattr(collection_module, "MAX_GET_LIMIT", 7)
    sent = []
    request = notes._client._request

    def spy(op, params, **kwargs):
        sent.append((op, params.get("limit"), params.get("offset")))
        return request(op, params, **kwargs)

    monkeypatch.setattr(notes._client, "_request", spy)
    assert notes.get(include=[])["ids"] == ids
    assert sent == [("get", 7, 0), ("get", 7, 7), ("get", 7, 14), ("get", 7, 21)]
    sent.clear()
    assert notes.get(limit=10, offset=3, include=[])["ids"] == ids[3:13]
    assert sent == [("get", 7, 3), ("get", 3, 10)]


def test_peek_returns_the_first_documents_with_embeddings(notes):
    notes.upsert(ids=["a", "b", "c"], documents=["1", "2", "3"], embeddings=[[1, 0, 0]] * 3)
    peeked = notes.peek(limit=2)
    assert peeked["ids"] == ["a", "b"]
    assert peeked["embeddings"] == [[1.0, 0.0, 0.0]] * 2
    assert peeked["documents"] == ["1", "2"]


def test_upsert_replaces_whole_documents(notes):
    notes.upsert(ids=["a"], documents=["first"], metadatas=[{"v": 1}])
    notes.upsert(ids=["a"], embeddings=[[1, 1, 1]])
    got = notes.get(ids=["a"], include=["documents", "metadatas", "embeddings"])
    assert got["documents"] == [None] and got["metadatas"] == [None]
    assert got["embeddings"] == [[1.0, 1.0, 1.0]]
    assert notes.count() == 1


def test_one_or_many_shapes_and_array_likes(notes):
    notes.upsert(ids="single", documents="one text", metadatas={"n": 1}, embeddings=[0.5, 0.5, 0.0])
    notes.upsert(ids=["t1", "t2"], embeddings=ArrayLike([(1, 0, 0), (0, 0, 1)]))
    got = notes.get(ids=["single", "t1", "t2"], include=["documents", "metadatas", "embeddings"])
    assert got["documents"] == ["one text", None, None]
    assert got["metadatas"] == [{"n": 1}, None, None]
    assert got["embeddings"] == [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]


def test_none_metadata_values_mean_absent_keys_as_in_chromadb(notes):
    notes.upsert(
        ids=["some", "all", "empty"],
        documents=["x", "y", "z"],
        metadatas=[{"kept": 1, "gone": None}, {"gone": None}, {}],
    )
    assert notes.get()["metadatas"] == [{"kept": 1}, None, {}]
    assert notes.count(where={"gone": {"$ne": "anything"}}) == 3


def test_argument_shapes_are_checked_before_sending(notes):
    with pytest.raises(ValueError, match="documents"):
        notes.upsert(ids=["a", "b"], documents=["only one"])
    with pytest.raises(ValueError, match="embeddings"):
        notes.upsert(ids=["a"])
    with pytest.raises(TypeError):
        notes.upsert(ids=[1, 2], documents=["a", "b"])
    assert notes.upsert(ids=[], documents=[]) == 0
    assert notes.count() == 0


def test_add_inserts_new_ids(notes):
    assert notes.add(ids=["a", "b"], documents=["one", "two"]) == 2
    assert notes.add(ids=["c"], embeddings=[[1, 0, 0]]) == 1
    assert notes.count() == 3


def test_upsert_splits_into_requests_of_at_most_1000(client, notes):
    before = client.status()["generation"]
    ids = [f"doc-{i:05d}" for i in range(2500)]
    written = notes.upsert(
        ids=ids,
        documents=[f"document number {i}" for i in range(2500)],
        embeddings=[[float(i), 1.0, 0.0] for i in range(2500)],
    )
    assert written == 2500
    assert notes.count() == 2500
    # Every committed request adds one generation: 2500 documents are three requests.
    assert client.status()["generation"] - before == 3


def test_a_refused_batch_reports_what_was_committed(notes):
    ids = [f"doc-{i:05d}" for i in range(2500)]
    vectors = [[1.0, 0.0, 0.0] for _ in range(2500)]
    vectors[1500] = [1.0, 0.0]  # wrong dimension, in the second request
    with pytest.raises(ctxd.DimensionMismatch) as caught:
        notes.upsert(ids=ids, embeddings=vectors)
    assert caught.value.committed == 1000
    assert notes.count() == 1000
    assert notes.get(include=[])["ids"] == ids[:1000]


def test_delete_by_ids_by_where_and_both(notes):
    notes.upsert(
        ids=["a", "b", "c", "d"],
        documents=["1", "2", "3", "4"],
        metadatas=[{"k": "x"}, {"k": "y"}, {"k": "x"}, {"k": "y"}],
    )
    assert notes.delete(ids=["a", "missing"]) == 1
    assert notes.delete(ids=["b", "c"], where={"k": "x"}) == 1  # must match both: only c
    assert notes.get(include=[])["ids"] == ["b", "d"]
    assert notes.delete(where={"k": "y"}) == 2
    assert notes.count() == 0
    with pytest.raises(ValueError):
        notes.delete()


# --- where ---------------------------------------------------------------------------------

WHERE_DOCS = {
    "d1": {"year": 2019, "lang": "en", "draft": False, "score": 0.5},
    "d2": {"year": 2020, "lang": "de", "draft": True, "score": 1.5},
    "d3": {"year": 2021, "lang": "en", "draft": False, "score": 2.5},
    "d4": {"year": 2022, "lang": "fr", "score": 3.5},
    "d5": None,
}

WHERE_CASES = [
    ({"lang": "en"}, ["d1", "d3"]),
    ({"lang": {"$eq": "en"}}, ["d1", "d3"]),
    # A document without the field matches $ne and $nin (proto/src/filter.rs).
    ({"lang": {"$ne": "en"}}, ["d2", "d4", "d5"]),
    ({"year": {"$gt": 2020}}, ["d3", "d4"]),
    ({"year": {"$gte": 2020}}, ["d2", "d3", "d4"]),
    ({"year": {"$lt": 2020}}, ["d1"]),
    ({"year": {"$lte": 2020}}, ["d1", "d2"]),
    ({"score": {"$gt": 1.0}}, ["d2", "d3", "d4"]),
    ({"lang": {"$in": ["de", "fr"]}}, ["d2", "d4"]),
    ({"lang": {"$nin": ["de", "fr"]}}, ["d1", "d3", "d5"]),
    ({"draft": True}, ["d2"]),
    ({"$and": [{"lang": "en"}, {"year": {"$gt": 2019}}]}, ["d3"]),
    ({"$or": [{"lang": "de"}, {"year": {"$gte": 2022}}]}, ["d2", "d4"]),
    ({"$or": [{"$and": [{"lang": "en"}, {"draft": False}]}, {"lang": "fr"}]}, ["d1", "d3", "d4"]),
    ({"lang": "en", "year": 2021}, ["d3"]),  # several keys: all of them
    ({}, ["d1", "d2", "d3", "d4", "d5"]),  # ChromaDB's empty where: no filter
]


@pytest.fixture
def where_notes(notes):
    ids = list(WHERE_DOCS)
    notes.upsert(
        ids=ids,
        documents=[f"otter report {i}" for i in ids],
        embeddings=[[1.0, float(n), 0.5] for n in range(len(ids))],
        metadatas=list(WHERE_DOCS.values()),
    )
    return notes


@pytest.mark.parametrize("where, expected", WHERE_CASES, ids=[str(w) for w, _ in WHERE_CASES])
def test_where_operators(where_notes, where, expected):
    assert where_notes.get(where=where, include=[])["ids"] == expected
    assert where_notes.count(where=where) == len(expected)
    lexical = where_notes.query(query_texts="otter report", where=where, n_results=10)
    assert sorted(lexical["ids"][0]) == expected
    vector = where_notes.query(query_embeddings=[1.0, 1.0, 0.5], where=where, n_results=10)
    assert sorted(vector["ids"][0]) == expected


def test_delete_with_where_operator(where_notes):
    assert where_notes.delete(where={"year": {"$lte": 2020}}) == 2
    assert where_notes.get(include=[])["ids"] == ["d3", "d4", "d5"]


def test_update_is_atomic_and_changes_only_what_it_names(client):
    col = client.create_collection("notes", dimension=2)
    col.upsert(
        ids=["a", "b"],
        embeddings=[[1.0, 0.0], [0.0, 1.0]],
        documents=["alpha", "beta"],
        metadatas=[{"n": 1, "tag": "x"}, {"n": 2}],
    )
    before = col.get(include=["documents", "metadatas", "embeddings"])
    # The second document's change is invalid: the whole request changes nothing.
    with pytest.raises(ctxd.BadRequest):
        col.update(ids=["a", "b"], metadatas=[{"n": 10}, {"nested": {"no": 1}}])
    with pytest.raises(ctxd.DimensionMismatch):
        col.update(ids=["a", "b"], documents=["new", None], embeddings=[[1.0, 1.0], [1.0]])
    assert col.get(include=["documents", "metadatas", "embeddings"]) == before
    # Only what is named changes; a None metadata value removes the key.
    assert col.update(ids=["a", "missing"], metadatas=[{"tag": None, "m": "y"}, {"n": 0}]) == 1
    assert col.update(ids=["b"], embeddings=[[0.5, 0.5]]) == 1
    after = col.get(include=["documents", "metadatas", "embeddings"])
    assert after["metadatas"] == [{"n": 1, "m": "y"}, {"n": 2}]
    assert after["documents"] == ["alpha", "beta"]
    assert after["embeddings"] == [[1.0, 0.0], [0.5, 0.5]]
    # Full-text follows an updated text.
    col.update(ids=["a"], documents=["gamma rays"])
    assert col.query(query_texts=["gamma"], n_results=2)["ids"] == [["a"]]
    assert col.query(query_texts=["alpha"], n_results=2)["ids"] == [[]]
    assert client.check()["passed"]

