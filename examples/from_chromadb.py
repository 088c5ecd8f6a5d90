#!/usr/bin/env python3
"""Copy every collection of a ChromaDB persist directory into ctxd.

    pip install chromadb ./client/python
    ctxd serve &                                   # or a running service
    python examples/from_chromadb.py ./chroma-data [--socket PATH] [--batch-size 1000]

For each ChromaDB collection this creates (or reuses) the ctxd collection of the same name,
with the dimension of its first embedding and the distance of its ``hnsw:space`` (``cosine`` →
``cosine``, ``l2`` → ``euclidean``, ``ip`` → ``dot``; ChromaDB's default is ``l2``), then copies
ids, documents, embeddings and metadata in batches with ``upsert``, so running it again is safe.
An empty collection is skipped: without an embedding there is no dimension to create it with.

Only ChromaDB's data is copied: its embedding function is not (ctxd stores vectors, it does not
compute them; keep embedding queries with the same model), nor collection-level metadata other
than the distance.

Exit status: 0 when every collection was copied, 1 if any failed, 2 on a usage problem (no
chromadb, no ctxd package, no such directory).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List, Optional

# ChromaDB's hnsw:space → ctxd's distance (both rank the same way; see the client's README
# for how the reported distances relate).
SPACES = {"cosine": "cosine", "l2": "euclidean", "ip": "dot"}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Copy every collection of a ChromaDB persist directory into ctxd."
    )
    parser.add_argument("persist_dir", help="the directory ChromaDB's PersistentClient uses")
    parser.add_argument(
        "--socket", help="ctxd's socket (default: CTXD_SOCKET, else the per-user default)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="documents read from ChromaDB and written to ctxd per batch (default 1000)",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    return args


def chroma_space(collection: Any) -> str:
    """The collection's hnsw:space: in its metadata (every ChromaDB version), else in its
    configuration (ChromaDB >= 1.0 keeps it only there when it was set that way), else
    ChromaDB's default, l2."""
    space = (collection.metadata or {}).get("hnsw:space")
    if space is None:
        try:
            space = (collection.configuration or {}).get("hnsw", {}).get("space")
        except (AttributeError, TypeError):
            space = None  # an older ChromaDB without a dict-like configuration
    return space or "l2"


def as_lists(value: Any) -> Any:
    # ChromaDB >= 0.5 returns embeddings as a numpy array; ctxd takes lists (it converts numpy
    # too, but the dimension check below wants plain lists). Never test a numpy array for
    # truth: that raises.
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def copy_collection(source: Any, target: Any, batch_size: int) -> int:
    """Copies one ChromaDB collection; returns the number of documents copied."""
    name = source.name
    space = chroma_space(source)
    distance = SPACES.get(space)
    if distance is None:
        raise ValueError(
            f"hnsw:space {space!r} has no ctxd distance (expected one of {sorted(SPACES)})"
        )
    total = source.count()
    destination = None
    copied = 0
    while True:
        page = source.get(
            include=["embeddings", "documents", "metadatas"], limit=batch_size, offset=copied
        )
        ids = list(page["ids"])
        if not ids:
            break
        embeddings = as_lists(page["embeddings"])
        documents = page.get("documents")
        metadatas = page.get("metadatas")
        if destination is None:
            dimension = len(embeddings[0])
            destination = target.get_or_create_collection(
                name, dimension=dimension, distance=distance
            )
        destination.upsert(
            ids=ids,
            embeddings=embeddings,
            documents=list(documents) if documents is not None else None,
            # None metadata values (ChromaDB: "key absent") are left out by the ctxd client.
            metadatas=list(metadatas) if metadatas is not None else None,
        )
        copied += len(ids)
        print(f"{name}: {copied}/{total}", flush=True)
    if destination is None:
        print(f"{name}: empty, skipped (no embedding to take the dimension from)", flush=True)
    else:
        print(
            f"{name}: copied {copied} documents (dimension {destination.dimension}, "
            f"distance {distance} from hnsw:space {space})",
            flush=True,
        )
    return copied


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        import chromadb  # imported only when run: ctxd itself never needs it
    except ImportError as e:
        print(
            f"from_chromadb.py needs the chromadb package ({e}); install it with "
            "`pip install chromadb`",
            file=sys.stderr,
        )
        return 2
    try:
        import ctxd
    except ImportError as e:
        print(
            f"from_chromadb.py needs the ctxd package ({e}); install it with "
            "`pip install ./client/python`",
            file=sys.stderr,
        )
        return 2
    if not os.path.isdir(args.persist_dir):
        print(f"from_chromadb.py: {args.persist_dir} is not a directory", file=sys.stderr)
        return 2

    source = chromadb.PersistentClient(path=args.persist_dir)
    # ChromaDB 0.6 lists names; other versions list Collection objects.
    names = [c if isinstance(c, str) else c.name for c in source.list_collections()]
    if not names:
        print(f"no collections in {args.persist_dir}")
        return 0
    failed = []
    try:
        with ctxd.Client(args.socket) as target:
            for name in names:
                try:
                    copy_collection(source.get_collection(name), target, args.batch_size)
                except (ctxd.Error, ValueError) as e:
                    print(f"{name}: FAILED: {e}", file=sys.stderr, flush=True)
                    if isinstance(e, ctxd.TransportError):
                        raise
                    failed.append(name)
    except ctxd.Error as e:
        print(f"from_chromadb.py: {e}", file=sys.stderr)
        return 1
    if failed:
        print(
            f"{len(failed)} of {len(names)} collections failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
