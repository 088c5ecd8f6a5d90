"""A collection, with ChromaDB's method names and result shapes.

Each method says what it sends and how it differs from ChromaDB's method of the same name. The
short version: a collection created with an ``embedder`` has its texts and ``query_texts``
embedded by the daemon (which runs the model; nothing runs in this process), and a query by text
alone is then hybrid (bm25 and vector, fused); without one you bring the embeddings and
``query_texts`` is full-text (bm25) search. ``distances`` follow ChromaDB's definitions for
vector search only (see ``ctxd._results`` and the README).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence

from . import _batch, _inputs, _results, _vectors, _wire
from .errors import BadRequest, DuplicateID, Error

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

#: The most documents one ``get`` request may return (``MAX_LIMIT`` in limits.rs).
MAX_GET_LIMIT = 10_000

_MODES = ("lexical", "vector", "hybrid")

#: ChromaDB's embedding function protocol: called with a list of texts, returns one vector per
#: text (lists, ``array('f')`` or numpy arrays). A ChromaDB ``EmbeddingFunction`` instance is
#: one; so is any plain function. Its ``embed_query``, if it has one, embeds ``query_texts``.
EmbeddingFunction = Callable[[List[str]], Sequence[Any]]


def _with_function(collection: "Collection", function: Optional[EmbeddingFunction]) -> "Collection":
    """Gives ``collection`` the client-side embedding function (ChromaDB's
    ``embedding_function=``)."""
    if function is None:
        return collection
    if not callable(function):
        raise TypeError(
            f"`embedding_function` must be callable (a list of texts -> their vectors), got "
            f"{type(function).__name__}"
        )
    if collection.embedder is not None:
        raise ValueError(
            f"collection `{collection.name}` is embedded by the daemon (model "
            f"`{collection.embedder}`): pass no embedding_function"
        )
    collection.embedding_function = function
    return collection


def _embedded(function: EmbeddingFunction, texts: List[str], query: bool) -> List[Any]:
    """``function``'s vectors of ``texts``, one each (checked)."""
    embed = getattr(function, "embed_query", None) if query else None
    vectors = list((embed or function)(texts))
    if len(vectors) != len(texts):
        raise ValueError(
            f"the embedding function returned {len(vectors)} embeddings for {len(texts)} texts"
        )
    return vectors


class Collection:
    """A named set of documents in the daemon; get one from :class:`ctxd.Client`.

    Attributes (as the daemon described the collection when this object was made):
        name: the collection's name.
        dimension: the length every vector must have.
        distance: ``"cosine"``, ``"euclidean"``, ``"dot"`` or ``"manhattan"``.
        tokenizer: ``"porter"``, ``"unicode61"`` or ``"trigram"`` (full-text index).
        embedder: the name of the model the daemon embeds this collection's texts with
            (``ctxd serve --model NAME=DIR``), or ``None``: clients bring the vectors.
        embedder_sha256: the SHA-256 of that model's weights, recorded when the collection was
            created (a daemon with other weights under the name refuses to embed for it).
        embedding_function: the client-side embedding function given when this object was
            made (ChromaDB's ``embedding_function=``), or ``None``. It embeds documents written
            without embeddings and ``query_texts`` (then searched by vector, as in ChromaDB),
            in this process. It is not stored: pass it again to ``get_collection``.
    """

    def __init__(self, client: "Client", info: Mapping[str, Any]) -> None:
        self._client = client
        self.name: str = info["name"]
        self.dimension: int = info["dimension"]
        self.distance: str = info["distance"]
        self.tokenizer: str = info["tokenizer"]
        embedder = info.get("embedder")
        self.embedder: Optional[str] = embedder["name"] if embedder else None
        self.embedder_sha256: Optional[str] = embedder["sha256"] if embedder else None
        self.embedding_function: Optional[EmbeddingFunction] = None

    def __repr__(self) -> str:
        return (
            f"Collection(name={self.name!r}, dimension={self.dimension}, "
            f"distance={self.distance!r}, tokenizer={self.tokenizer!r}"
            + (f", embedder={self.embedder!r})" if self.embedder else ")")
        )

    # --- reading -------------------------------------------------------------------------

    def count(
        self,
        where: Optional[Dict[str, Any]] = None,
        where_document: Optional[Dict[str, Any]] = None,
    ) -> int:
        """Number of documents (matching ``where`` and ``where_document``, if given).

        ChromaDB: ``collection.count()`` (which takes no filter).
        """
        params = _inputs.filters({"collection": self.name}, where, where_document)
        return int(self._client._request("count", params)["count"])

    def get(
        self,
        ids: Optional[Any] = None,
        where: Optional[Dict[str, Any]] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
        include: Optional[Sequence[str]] = None,
        where_document: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Documents by id and/or filters, in ChromaDB's ``GetResult`` shape.

        Returns ``{"ids": [...], "documents": [...], "metadatas": [...], "embeddings": [...],
        "included": [...]}``; fields not in ``include`` are ``None``, and a document without a
        text, metadata or vector has ``None`` in that place. With ``ids``, documents come in the
        order of ``ids`` and missing ids are skipped; without, in insertion order.

        ``include`` takes ``"documents"``, ``"metadatas"``, ``"embeddings"`` (default: the
        first two, as ChromaDB). ``limit=None`` returns every match, as ChromaDB does: the
        daemon returns at most 10,000 documents per request (fewer with embeddings), so larger
        results are read page by page with ``offset``, and writes committed between two pages
        can shift what the later pages hold.

        ``where`` filters on metadata, ``where_document`` on the text (ChromaDB's syntax:
        ``{"$contains": "otter"}``, ``$not_contains``, ``$regex``, ``$not_regex``, ``$and``,
        ``$or``); a document must match both. The daemon evaluates them.

        ChromaDB: ``collection.get(ids=, where=, limit=, offset=, where_document=,
        include=)``.
        """
        chosen = _inputs.include(
            include, ("documents", "metadatas", "embeddings"), _inputs.GET_DEFAULT_INCLUDE
        )
        if limit is not None and limit < 0:
            raise ValueError(f"`limit` must be >= 0, got {limit}")
        if offset is not None and offset < 0:
            raise ValueError(f"`offset` must be >= 0, got {offset}")
        params: Dict[str, Any] = {"collection": self.name, "include": _inputs.wire_include(chosen)}
        if "embeddings" in chosen:
            params["vector_encoding"] = "base64"
        if ids is not None:
            params["ids"] = _inputs.ids(ids)
        _inputs.filters(params, where, where_document)
        page_size = MAX_GET_LIMIT
        if "embeddings" in chosen:
            # Keep a page's reply around 16 MiB: 5⅓ bytes of base64 per vector component.
            page_size = max(
                1, min(MAX_GET_LIMIT, _batch.UPSERT_BATCH_BYTES // (6 * self._dimension_now()))
            )
        start = offset or 0
        documents: List[Dict[str, Any]] = []
        while True:
            want = page_size if limit is None else min(page_size, limit - len(documents))
            if want <= 0:
                break
            page = self._client._request(
                "get", dict(params, limit=want, offset=start + len(documents))
            )["documents"]
            documents.extend(page)
            if len(page) < want:
                break
        return _results.get_result(documents, chosen)

    def _dimension_now(self) -> int:
        """The dimension, read again from the daemon while this object knows it as unset (0):
        the first vector written, by any client, fixes it."""
        if self.dimension == 0:
            self.dimension = int(
                self._client._request("get_collection", {"name": self.name})["collection"][
                    "dimension"
                ]
            )
        return max(self.dimension, 1)

    def peek(self, limit: int = 10) -> Dict[str, Any]:
        """The first ``limit`` documents with their embeddings (ChromaDB: ``collection.peek()``)."""
        return self.get(limit=limit, include=["documents", "metadatas", "embeddings"])

    def query(
        self,
        query_embeddings: Optional[Any] = None,
        query_texts: Optional[Any] = None,
        n_results: int = 10,
        where: Optional[Dict[str, Any]] = None,
        include: Optional[Sequence[str]] = None,
        mode: Optional[str] = None,
        *,
        rrf_k: Optional[int] = None,
        weights: Optional[Mapping[str, float]] = None,
        exact: bool = False,
        effort: Optional[int] = None,
        where_document: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        """Search, one request per query, in ChromaDB's ``QueryResult`` shape.

        ``query_embeddings`` alone is vector search, and ``query_embeddings`` with
        ``query_texts`` (paired by position, so the lists must be equally long) is hybrid
        search, fused by reciprocal rank. ``query_texts`` alone depends on the collection: with
        an ``embedder`` the daemon embeds each text and the search is **hybrid** (bm25 and the
        embedded text, fused; ``mode="vector"`` gives ChromaDB's pure vector search), without
        one it is **lexical** (bm25 full-text) search. ``mode`` (``"lexical"``, ``"vector"``,
        ``"hybrid"``) picks one explicitly; it must have the inputs it needs (an embedder stands
        in for ``query_embeddings``). Each argument takes one query or a list of queries, like
        ChromaDB.

        Returns ``{"ids", "documents", "metadatas", "embeddings", "distances", "scores",
        "ranks", "modes", "included"}``, each (but ``modes`` and ``included``) a list with one
        list per query, best hit first. ``include`` takes ``"documents"``, ``"metadatas"``,
        ``"embeddings"``, ``"distances"`` (default: all but embeddings, as ChromaDB).

        ``distances`` is ChromaDB's distance for vector queries, derived from the daemon's
        score: ``1 - score`` for cosine and dot (ChromaDB's ``cosine`` and ``ip``), ``score**2``
        for euclidean (ChromaDB's squared ``l2``), ``-score`` for manhattan. Lexical and hybrid
        queries have no distance: their entries are ``None``. ``scores`` always holds the
        daemon's score (higher is better), ``ranks`` each hit's rank in the lexical and vector
        lists.

        ``where`` (metadata) and ``where_document`` (text, as in :meth:`get`) filter before
        ranking: the best ``n_results`` among matching documents.
        ``rrf_k``, ``weights`` (``{"lexical": w, "vector": w}``), ``exact`` and ``effort``
        pass through to the daemon's ``search``.

        ChromaDB: ``collection.query(query_embeddings=, query_texts=, n_results=, where=,
        where_document=, include=)``.
        """
        vectors = _inputs.query_embeddings(query_embeddings)
        texts = _inputs.query_texts(query_texts)
        if vectors is None and texts is not None and self.embedding_function is not None:
            # ChromaDB: query_texts through the embedding function, searched by vector. The
            # texts stay for an explicit `mode="hybrid"`.
            vectors = _embedded(self.embedding_function, texts, True)
            if mode is None:
                mode = "vector"
        if vectors is None and texts is None:
            raise ValueError(
                "give query_embeddings (vector search), query_texts (lexical search, or hybrid "
                "in a collection with an embedder) or both (hybrid search)"
            )
        if vectors is not None and texts is not None and len(vectors) != len(texts):
            raise ValueError(
                f"{len(vectors)} query_embeddings but {len(texts)} query_texts; hybrid queries "
                "pair them by position"
            )
        embeds = self.embedder is not None
        if mode is None:
            if vectors is not None and texts is not None:
                mode = "hybrid"
            elif vectors is not None:
                mode = "vector"
            else:
                mode = "hybrid" if embeds else "lexical"
        if mode not in _MODES:
            raise ValueError(f"`mode` must be one of {', '.join(_MODES)}, got {mode!r}")
        if mode != "lexical" and vectors is None and not embeds:
            raise ValueError(
                f"mode {mode!r} needs query_embeddings (collection `{self.name}` has no "
                "embedder to compute them from query_texts)"
            )
        if mode != "vector" and texts is None:
            raise ValueError(f"mode {mode!r} needs query_texts")
        chosen = _inputs.include(
            include,
            ("documents", "metadatas", "embeddings", "distances"),
            _inputs.QUERY_DEFAULT_INCLUDE,
        )
        base: Dict[str, Any] = {
            "collection": self.name,
            "k": n_results,
            "mode": mode,
            "include": _inputs.wire_include(chosen),
        }
        if "embeddings" in chosen:
            base["vector_encoding"] = "base64"
        _inputs.filters(base, where, where_document)
        if rrf_k is not None:
            base["rrf_k"] = rrf_k
        if weights is not None:
            base["weights"] = dict(weights)
        if exact:
            base["exact"] = True
        if effort is not None:
            base["effort"] = effort
        count = len(vectors) if vectors is not None else len(texts or [])
        hit_lists = []
        for index in range(count):
            params = dict(base)
            # The text goes along whenever there is one, unless a given vector makes it unused
            # (vector mode): in lexical and hybrid mode it is the bm25 query, and without a
            # vector the daemon embeds it.
            if texts is not None and not (mode == "vector" and vectors is not None):
                params["text"] = texts[index]
            if mode != "lexical" and vectors is not None:
                params["vector"] = _vectors.encode(vectors[index])
            hit_lists.append(self._client._request("search", params)["hits"])
        return _results.query_result(hit_lists, [mode] * count, chosen, self.distance)

    # --- writing -------------------------------------------------------------------------

    def upsert(
        self,
        ids: Any,
        embeddings: Optional[Any] = None,
        metadatas: Optional[Any] = None,
        documents: Optional[Any] = None,
    ) -> int:
        """Inserts or replaces whole documents; returns how many were written.

        ``documents`` are the texts (full-text indexed), ``embeddings`` the vectors (exactly
        ``dimension`` finite numbers each; in a collection with an ``embedder``, a document
        with a text and no embedding gets its vector from the daemon, computed before the
        request is committed, so a failure writes nothing), ``metadatas`` dicts of
        strings, numbers, booleans or lists of those (a ``None`` value means "no such key", as
        in ChromaDB, and is left out). Every document needs a text, a vector or
        both; any list may hold ``None`` for "none for this document". A replaced document
        loses the parts not given again (ChromaDB's ``upsert`` keeps nothing either).

        Large calls are split into requests of at most 1000 documents and 16 MiB (the
        protocol's batch limit; 128 KiB when the daemon embeds them, so that each
        request answers within the client's timeout), sent one after another on one
        connection. Each request is
        atomic; the call as a whole is not. If a request fails, the error raised is the
        daemon's error for it, with ``error.committed`` set to how many documents, counted
        from the first, were written by the requests before it (they stay written; writing
        them again is safe, since upserts replace by id). A write is never re-sent on a new
        connection: if the connection breaks, :class:`ctxd.ConnectionLost` says so.

        Raises :class:`ctxd.DuplicateID` (nothing written) if an id repeats within the call,
        as ChromaDB does.

        ChromaDB: ``collection.upsert(ids=, embeddings=, metadatas=, documents=)``.
        """
        return self._write(ids, embeddings, metadatas, documents, insert_only=False)

    def add(
        self,
        ids: Any,
        embeddings: Optional[Any] = None,
        metadatas: Optional[Any] = None,
        documents: Optional[Any] = None,
    ) -> int:
        """Like :meth:`upsert`, but raises :class:`ctxd.DuplicateID` if any id already exists.

        The protocol has no insert-only write, so ``add`` first reads which of the ids exist
        (``get`` by ids) and, if none does, upserts. The check and the write are two requests,
        not one transaction: a document with one of these ids written by another client
        between them is replaced, not refused. With one writer per collection (the usual case
        for code that used ChromaDB's embedded client) ``add`` is exact.

        ChromaDB: ``collection.add(...)`` (ChromaDB 1.5, unlike this, leaves existing ids
        unchanged and raises nothing).
        """
        return self._write(ids, embeddings, metadatas, documents, insert_only=True)

    def update(
        self,
        ids: Any,
        embeddings: Optional[Any] = None,
        metadatas: Optional[Any] = None,
        documents: Optional[Any] = None,
    ) -> int:
        """Changes only the parts given of existing documents; returns how many changed.

        ``documents`` replace texts (in a collection with an ``embedder``, a new text without
        an embedding gets its vector from the daemon), ``embeddings`` replace vectors, and
        ``metadatas`` are **merged** into the stored metadata: keys given replace, a key set
        to ``None`` is removed. Each request (at most 1000 documents) is applied by the daemon
        in one transaction, so a concurrent writer never sees half an update, and nothing is
        read back and rewritten by this client. Ids that do not exist are skipped, as in
        ChromaDB; the count returned says how many did.

        ChromaDB: ``collection.update(ids=, embeddings=, metadatas=, documents=)``.
        """
        id_list = _inputs.ids(ids)
        count = len(id_list)
        vectors = _inputs.embeddings(embeddings, count)
        metas = _inputs.metadatas(metadatas, count)
        texts = _inputs.documents(documents, count)
        if count == 0:
            return 0
        _refuse_repeats(id_list)
        vectors = self._fill_embeddings(vectors, texts, count)
        encoded = []
        for i in range(count):
            document: Dict[str, Any] = {"id": id_list[i]}
            if texts is not None and texts[i] is not None:
                document["text"] = texts[i]
            if vectors is not None and vectors[i] is not None:
                document["vector"] = _vectors.encode(vectors[i])
            if metas is not None and metas[i] is not None:
                # None stays: in an update it removes the key.
                document["metadata"] = metas[i]
            encoded.append(_wire.dumps(document).encode("utf-8"))
        return self._send("update", encoded, self.embedder is not None and texts is not None)

    def delete(
        self,
        ids: Optional[Any] = None,
        where: Optional[Dict[str, Any]] = None,
        where_document: Optional[Dict[str, Any]] = None,
    ) -> int:
        """Deletes the documents with these ids and/or matching ``where`` and
        ``where_document``; returns how many.

        A document must match everything given. With nothing given, raises ``ValueError``
        rather than deleting everything. ChromaDB: ``collection.delete(ids=, where=,
        where_document=)`` (returns ``None``).
        """
        params: Dict[str, Any] = {"collection": self.name}
        if ids is not None:
            params["ids"] = _inputs.ids(ids)
        _inputs.filters(params, where, where_document)
        if len(params) == 1:
            raise ValueError(
                "give `ids`, `where`, `where_document` or several (delete never means "
                "'everything')"
            )
        return int(self._client._request("delete", params)["deleted"])

    def _write(
        self,
        ids: Any,
        embeddings: Optional[Any],
        metadatas: Optional[Any],
        documents: Optional[Any],
        *,
        insert_only: bool,
    ) -> int:
        id_list = _inputs.ids(ids)
        count = len(id_list)
        vectors = _inputs.embeddings(embeddings, count)
        metas = _inputs.metadatas(metadatas, count)
        texts = _inputs.documents(documents, count)
        if count == 0:
            return 0
        if vectors is None and texts is None:
            raise ValueError("give `documents` (texts), `embeddings` (vectors) or both")
        vectors = self._fill_embeddings(vectors, texts, count)
        _refuse_repeats(id_list)
        encoded = [
            self._encode_document(
                id_list[i],
                texts[i] if texts is not None else None,
                vectors[i] if vectors is not None else None,
                metas[i] if metas is not None else None,
            )
            for i in range(count)
        ]
        if insert_only:
            existing = self._existing(id_list)
            if existing:
                raise DuplicateID(
                    f"{len(existing)} of these ids exist already in `{self.name}`: "
                    f"{_preview(existing)}; use upsert to replace documents",
                    details={"ids": existing},
                )
        daemon_embeds = self.embedder is not None and (
            vectors is None or any(vector is None for vector in vectors)
        )
        return self._send("upsert", encoded, daemon_embeds)

    def _send(self, op: str, encoded: List[bytes], daemon_embeds: bool) -> int:
        """Sends encoded documents as ``op`` requests in batches the daemon accepts (smaller
        ones when the daemon computes vectors, which takes it time); returns the count the
        daemon reports. An error from a later batch carries ``committed``: how many documents,
        from the first, the batches before it wrote."""
        batches = _batch.plan(
            (len(document) for document in encoded),
            _batch.MAX_BATCH_DOCUMENTS,
            _batch.EMBED_BATCH_BYTES if daemon_embeds else _batch.UPSERT_BATCH_BYTES,
        )
        counted = "upserted" if op == "upsert" else "updated"
        total = 0
        committed = 0
        for batch in batches:
            body = b"[" + b",".join(encoded[batch.start : batch.stop]) + b"]"
            try:
                result = self._client._request(op, {"collection": self.name}, raw={"documents": body})
            except Error as e:
                if len(batches) > 1:
                    e.committed = committed
                raise
            total += int(result[counted])
            committed = batch.stop
        return total

    def _fill_embeddings(
        self, vectors: Optional[List[Any]], texts: Optional[List[Any]], count: int
    ) -> Optional[List[Any]]:
        """With an embedding function: the vectors, those missing for documents with a text
        computed by it (one call for the lot)."""
        if self.embedding_function is None or texts is None:
            return vectors
        filled: List[Any] = list(vectors) if vectors is not None else [None] * count
        missing = [i for i in range(count) if filled[i] is None and texts[i] is not None]
        if missing:
            computed = _embedded(self.embedding_function, [texts[i] for i in missing], False)
            for i, vector in zip(missing, computed):
                filled[i] = vector
        return filled

    def _encode_document(
        self, doc_id: str, text: Optional[str], vector: Optional[Any], metadata: Optional[Any]
    ) -> bytes:
        document: Dict[str, Any] = {"id": doc_id}
        if text is not None:
            document["text"] = text
        if vector is not None:
            document["vector"] = _vectors.encode(vector)
        if metadata is not None:
            # ChromaDB reads a None value as "no such key" and stores nothing for it; the daemon
            # refuses null, so the key is left out, which stores what ChromaDB would. (A dict
            # of only None values becomes no metadata, as in ChromaDB.)
            if any(value is None for value in metadata.values()):
                metadata = {key: value for key, value in metadata.items() if value is not None}
                if not metadata:
                    metadata = None
            if metadata is not None:
                document["metadata"] = metadata
        try:
            return _wire.dumps(document).encode("utf-8")
        except ValueError:
            # JSON has no NaN or infinity (a vector's travel as bytes, and the daemon judges
            # them); metadata's cannot.
            if metadata is not None:
                raise BadRequest(
                    f"metadata of document {doc_id!r} holds a NaN or infinite number, which "
                    "JSON cannot carry",
                    code="bad_request",
                ) from None
            raise

    def _existing(self, ids: List[str]) -> List[str]:
        """Which of ``ids`` exist in the collection (in the order given)."""
        found: List[str] = []
        for start in range(0, len(ids), MAX_GET_LIMIT):
            chunk = ids[start : start + MAX_GET_LIMIT]
            reply = self._client._request(
                "get",
                {"collection": self.name, "ids": chunk, "include": [], "limit": len(chunk)},
            )
            found.extend(document["id"] for document in reply["documents"])
        return found


def _refuse_repeats(ids: List[str]) -> None:
    """``DuplicateID``, before anything is sent, for an id given twice in one call."""
    repeated = _inputs.duplicates(ids)
    if repeated:
        raise DuplicateID(
            f"ids repeat within one call: {_preview(repeated)}", details={"ids": repeated}
        )


def _preview(ids: List[str], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
