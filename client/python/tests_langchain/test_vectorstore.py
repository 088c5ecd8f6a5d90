"""``ctxd.langchain.CtxdVectorStore`` against LangChain's own standard tests
(``langchain_tests.integration_tests.VectorStoreIntegrationTests``, langchain-tests 1.1.9,
unmodified, sync and async), then ctxd's additions: hybrid search, filters, ``from_texts``,
``as_retriever``, and ``path=`` closing the daemon it started.

Each test gets its own data directory and its own daemon (started by ``PersistentClient``,
stopped when the store closes); the binary is ``$CTXD_BIN``, which ``run-tests`` sets.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests.vectorstores import VectorStoreIntegrationTests

import ctxd
from ctxd.langchain import CtxdVectorStore

# The main suite's /proc helpers (tests/procs.py), shared by every suite.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from procs import holders_of  # noqa: E402


@pytest.fixture
def store_dir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="ctxd-lc-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


class TestCtxdStandard(VectorStoreIntegrationTests):
    """LangChain's suite, as any vector store integration runs it."""

    @pytest.fixture()
    def vectorstore(self, store_dir: str) -> Iterator[VectorStore]:  # type: ignore[override]
        store = CtxdVectorStore("standard", embedding=self.get_embeddings(), path=store_dir)
        try:
            yield store
        finally:
            store.delete_collection()
            store.close()


EMBED = DeterministicFakeEmbedding(size=8)


def test_hybrid_search_filters_and_retriever(store_dir: str) -> None:
    store = CtxdVectorStore.from_texts(
        ["sea otters hold hands", "river otters play", "herons stand still", "rust owns memory"],
        EMBED,
        metadatas=[{"kind": "sea"}, {"kind": "river"}, {"kind": "bird"}, {}],
        ids=["a", "b", "c", "d"],
        collection_name="notes",
        path=store_dir,
    )
    try:
        # The text of a document is its own nearest vector (the fake embedding hashes text).
        assert store.similarity_search("herons stand still", k=1)[0].id == "c"
        scored = store.similarity_search_with_score("herons stand still", k=2)
        assert scored[0][1] == pytest.approx(0.0, abs=1e-5)
        # Hybrid: bm25 finds "otters" whatever the fake vectors say; the score is the RRF one.
        hybrid = store.similarity_search_with_score("otters", k=2, hybrid=True)
        assert {doc.id for doc, _ in hybrid} == {"a", "b"}
        assert all(score > 0 for _, score in hybrid)
        assert [d.id for d in store.similarity_search("otters", k=4, filter={"kind": "river"})] == ["b"]
        assert [
            d.id
            for d in store.similarity_search("x", k=4, where_document={"$contains": "stand"})
        ] == ["c"]
        by_vector = store.similarity_search_by_vector(EMBED.embed_query("rust owns memory"), k=1)
        assert by_vector == [Document(id="d", page_content="rust owns memory", metadata={})]
        relevance = store.similarity_search_with_relevance_scores("rust owns memory", k=1)
        assert relevance[0][1] == pytest.approx(1.0, abs=1e-5)
        retriever = store.as_retriever(search_kwargs={"k": 1, "filter": {"kind": "sea"}})
        assert [d.id for d in retriever.invoke("anything")] == ["a"]
        store.delete(filter={"kind": "bird"})
        assert store.get_by_ids(["c", "a"]) == [
            Document(id="a", page_content="sea otters hold hands", metadata={"kind": "sea"})
        ]
    finally:
        store.close()


def test_a_store_opened_with_path_leaves_no_file_open(store_dir: str) -> None:
    store = CtxdVectorStore("notes", embedding=EMBED, path=store_dir)
    store.add_texts(["one", "two"])
    pid = store.client.server["pid"]
    store.close()
    # close() returned once the daemon it started had closed every file.
    assert holders_of(store_dir) == [], f"daemon {pid} still holds files"
    reopened = CtxdVectorStore("notes", embedding=EMBED, path=store_dir)
    try:
        assert len(reopened.similarity_search("one", k=5)) == 2
    finally:
        reopened.close()


def test_a_client_given_is_left_open(store_dir: str) -> None:
    with ctxd.PersistentClient(store_dir) as client:
        store = CtxdVectorStore("notes", embedding=EMBED, client=client)
        store.add_texts(["kept"], ids=["k"])
        store.close()
        assert client.get_collection("notes").count() == 1


def test_without_any_embedding_the_store_says_what_to_give(store_dir: str) -> None:
    with pytest.raises(ValueError, match="embedding"):
        CtxdVectorStore("notes", path=store_dir)
