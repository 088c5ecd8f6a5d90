"""A LangChain vector store over ctxd: ``CtxdVectorStore``, in place of ``langchain_chroma.Chroma``.

    from ctxd.langchain import CtxdVectorStore

    store = CtxdVectorStore("notes", embedding=OpenAIEmbeddings(), path="./store")
    store.add_texts(["otters hold hands"], metadatas=[{"kind": "fact"}])
    docs = store.similarity_search("sleeping otters", k=4, filter={"kind": "fact"})
    hybrid = store.similarity_search("sleeping otters", k=4, hybrid=True)   # bm25 + vectors
    retriever = store.as_retriever(search_kwargs={"k": 8})
    store.close()     # with path=: the daemon stops and every file is closed

The optional extra: ``pip install ctxd[langchain]`` brings ``langchain-core``; nothing else of
ctxd imports it. ``client`` is a :class:`ctxd.Client` (or ``PersistentClient``) you manage;
``path`` opens a :class:`ctxd.PersistentClient` that this store closes with :meth:`close`.
Embeddings come from ``embedding`` (any LangChain ``Embeddings``), or, with ``embedding=None``
and ``embedder="minilm"``, from the model the daemon loaded. Filters are ChromaDB's: ``filter``
(metadata, ``where``) and ``where_document`` (text), both evaluated by the daemon before
ranking. The async methods are LangChain's defaults: the sync ones on a worker thread (the
client is thread-safe).
"""

from __future__ import annotations

import math
import uuid
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from .client import Client
from .collection import Collection
from .persistent import PersistentClient

__all__ = ["CtxdVectorStore"]

VST = TypeVar("VST", bound="CtxdVectorStore")

_INCLUDE = ["documents", "metadatas", "distances"]


class CtxdVectorStore(VectorStore):
    """LangChain's ``VectorStore`` on a ctxd collection.

    ``CtxdVectorStore(collection_name="langchain", embedding=None, client=None, path=None, *,
    distance=None, embedder=None, relevance_score_fn=None)``: the collection is created if
    missing (its dimension is the first embedding's; ``distance`` defaults to cosine, or
    whatever an existing collection has; ``embedder`` names a model the daemon loaded, used
    when ``embedding`` is ``None``). Without ``client`` and ``path`` it connects to the
    default socket (``CTXD_SOCKET``, else the per-user default).
    """

    def __init__(
        self,
        collection_name: str = "langchain",
        embedding: Optional[Embeddings] = None,
        client: Optional[Client] = None,
        path: Optional[str] = None,
        *,
        distance: Optional[str] = None,
        embedder: Optional[str] = None,
        relevance_score_fn: Optional[Callable[[float], float]] = None,
    ) -> None:
        if client is not None and path is not None:
            raise ValueError("give `client` or `path`, not both")
        self._owns_client = client is None
        self._client: Client = client if client is not None else (
            PersistentClient(path) if path is not None else Client()
        )
        try:
            self._collection: Collection = self._client.get_or_create_collection(
                collection_name, distance=distance, embedder=embedder
            )
        except BaseException:
            if self._owns_client:
                self._client.close()
            raise
        if embedding is None and self._collection.embedder is None:
            self.close()
            raise ValueError(
                f"collection `{collection_name}` has no embedder in the daemon: give "
                "`embedding` (a LangChain Embeddings) or `embedder` (a model the daemon loaded)"
            )
        self._embedding = embedding
        self._relevance_score_fn = relevance_score_fn

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def embeddings(self) -> Optional[Embeddings]:
        return self._embedding

    @property
    def client(self) -> Client:
        """The ctxd client this store uses."""
        return self._client

    @property
    def collection(self) -> Collection:
        """The ctxd collection this store reads and writes."""
        return self._collection

    def close(self) -> None:
        """Closes the client if this store opened it (``path=``: the daemon it started stops,
        every file closed, once no other client holds it)."""
        if self._owns_client:
            self._client.close()

    def delete_collection(self) -> None:
        """Drops the collection and its documents."""
        self._client.delete_collection(self._collection.name)

    # --- writing ------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        """Upserts the texts (an id given again replaces its document); returns their ids,
        generating a UUID for each one not given."""
        texts = list(texts)
        if ids is None:
            ids = [None] * len(texts)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        filled = [str(i) if i is not None else str(uuid.uuid4()) for i in ids]
        if not texts:
            return filled
        embeddings = self._embedding.embed_documents(texts) if self._embedding else None
        metas = None
        if metadatas is not None:
            # An empty dict is "no metadata" (read back as {}).
            metas = [dict(m) if m else None for m in metadatas]
        self._collection.upsert(
            ids=filled, embeddings=embeddings, metadatas=metas, documents=texts
        )
        return filled

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes by ids, and/or by ``filter=`` (metadata) or ``where_document=``; ids that do
        not exist are no error. With nothing given, deletes nothing."""
        where = kwargs.get("filter") or kwargs.get("where")
        where_document = kwargs.get("where_document")
        if not ids and not where and not where_document:
            return None
        self._collection.delete(ids=ids or None, where=where, where_document=where_document)
        return True

    # --- reading ------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        """The documents with these ids that exist (in the order given)."""
        if not ids:
            return []
        got = self._collection.get(ids=list(ids), include=["documents", "metadatas"])
        return [
            Document(id=doc_id, page_content=text, metadata=metadata or {})
            for doc_id, text, metadata in zip(got["ids"], got["documents"], got["metadatas"])
            if text is not None
        ]

    def similarity_search(
        self, query: str, k: int = 4, filter: Optional[Dict[str, Any]] = None, **kwargs: Any
    ) -> List[Document]:
        """The ``k`` documents nearest ``query``. ``hybrid=True`` fuses full-text (bm25) and
        vector ranks (reciprocal rank fusion) instead; ``where_document=`` filters on text."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[Dict[str, Any]] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """Documents with their distance (lower is better, ChromaDB's definitions: ``1 - cos``
        for cosine, squared L2 for euclidean, ``1 - dot`` for dot). With ``hybrid=True`` the
        score is the fused RRF score instead (higher is better)."""
        hybrid = bool(kwargs.pop("hybrid", False))
        where_document = kwargs.pop("where_document", None)
        mode = "hybrid" if hybrid else "vector"
        if self._embedding is not None:
            vector = self._embedding.embed_query(query)
            result = self._collection.query(
                query_embeddings=[vector],
                query_texts=[query] if hybrid else None,
                n_results=k,
                where=filter,
                where_document=where_document,
                include=_INCLUDE,
                mode=mode,
            )
        else:
            result = self._collection.query(
                query_texts=[query],
                n_results=k,
                where=filter,
                where_document=where_document,
                include=_INCLUDE,
                mode=mode,
            )
        return _hits(result, "scores" if hybrid else "distances")

    def similarity_search_by_vector(
        self,
        embedding: List[float],
        k: int = 4,
        filter: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Document]:
        return [
            doc
            for doc, _ in self.similarity_search_by_vector_with_score(
                embedding, k, filter, **kwargs
            )
        ]

    def similarity_search_by_vector_with_score(
        self,
        embedding: List[float],
        k: int = 4,
        filter: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Tuple[Document, float]]:
        """Documents nearest ``embedding``, with their distance."""
        result = self._collection.query(
            query_embeddings=[embedding],
            n_results=k,
            where=filter,
            where_document=kwargs.get("where_document"),
            include=_INCLUDE,
        )
        return _hits(result, "distances")

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Distance → relevance in [0, 1], by the collection's distance, as ``Chroma`` does."""
        if self._relevance_score_fn is not None:
            return self._relevance_score_fn
        distance = self._collection.distance
        if distance == "cosine":
            return self._cosine_relevance_score_fn
        if distance == "euclidean":
            return self._euclidean_relevance_score_fn
        if distance == "dot":
            return self._max_inner_product_relevance_score_fn
        raise ValueError(
            f"no relevance score for distance {distance!r}: pass relevance_score_fn="
        )

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls: Type[VST],
        texts: List[str],
        embedding: Optional[Embeddings] = None,
        metadatas: Optional[List[dict]] = None,
        *,
        ids: Optional[List[str]] = None,
        collection_name: str = "langchain",
        client: Optional[Client] = None,
        path: Optional[str] = None,
        **kwargs: Any,
    ) -> VST:
        """A store on ``collection_name`` holding ``texts`` (``Chroma.from_texts``' shape)."""
        store = cls(collection_name, embedding, client=client, path=path, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _hits(result: Dict[str, Any], field: str) -> List[Tuple[Document, float]]:
    ids = result["ids"][0]
    texts = result["documents"][0]
    metadatas = result["metadatas"][0]
    values = result[field][0] if result.get(field) else [math.nan] * len(ids)
    return [
        (Document(id=doc_id, page_content=text or "", metadata=metadata or {}), float(value))
        for doc_id, text, metadata, value in zip(ids, texts, metadatas, values)
    ]
