"""Vector queries from Python at 100k (or 1M), ctxd against ChromaDB 1.5.9, in one run.

    client/python/bench/run query [--data DIR] [--n N] [--queries Q] [--copies C [--noise X]]

Loads the first N (default 100,000) chunks of ``big/`` (text, 384-d MiniLM vectors widened from
f16, metadata ``{"doc_id", "kind"}``) into a fresh ctxd daemon and a fresh
``chromadb.PersistentClient`` (cosine). ``--copies 10`` is the million-vector part (not CI;
ChromaDB takes about half an hour to ingest it): every chunk is followed by nine noisy copies of
itself (its unit vector plus gaussian noise of expected norm ``--noise``, default 0.5,
renormalized; same text and metadata, id ``<id>~<j>``), the construction of the Rust benches'
``1m`` parts (``daemon/benches/common/noise.rs``; numpy's generator here, so not the same bits).
Then it runs Q (default 400) SciFact query vectors through
both, ``collection.query(query_embeddings=[q], n_results=10)`` with each client's default
``include`` (documents, metadatas, distances), in four rounds (every query through one store,
then through the other, the first alternating). Prints p50/p99 latency, recall@10 against exact brute force (numpy, f64),
the ratio of the medians, both stores' disk use and memory, then ctxd's effort → recall/latency
curve. ``CTXD_BIN`` names the daemon (``run`` builds the release one).

Memory: the daemon's RSS is its own process; ChromaDB runs inside this process, so its figure is
this process's RSS growth from just before ``PersistentClient`` to after the queries (the data
arrays the bench holds are allocated before, so they are not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

import ctxd
from ingest import Daemon

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2] / ".." / "shared" / "data"
DIM = 384
K = 10
EFFORTS = (1, 2, 3, 5, 10, 20)
ROUNDS = 4
#: Documents per ``Collection.upsert`` call of the bench.
PIECE = 100_000


def load(data: Path, n: int):
    chunks = []
    with open(data / "big" / "chunks.jsonl", encoding="utf-8") as lines:
        for line in lines:
            if len(chunks) == n:
                break
            chunks.append(json.loads(line))
    halves = np.fromfile(data / "big" / "chunk_vectors.f16", dtype="<f2", count=len(chunks) * DIM)
    matrix = halves.astype("<f4").reshape(-1, DIM)
    queries = np.fromfile(data / "scifact" / "query_vectors.f32", dtype="<f4").reshape(-1, DIM)
    return chunks, matrix, queries


def expand(chunks, matrix: np.ndarray, copies: int, noise: float):
    """Each chunk followed by ``copies - 1`` noisy unit copies of its vector (see the docstring)."""
    if copies <= 1:
        return chunks, matrix
    rng = np.random.default_rng(20261204)
    units = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    out = np.empty((len(chunks), copies, DIM), dtype="<f4")
    out[:, 0, :] = matrix
    for j in range(1, copies):
        noisy = units + rng.standard_normal(units.shape, dtype=np.float32) * (noise / DIM**0.5)
        out[:, j, :] = noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
    expanded = []
    for chunk in chunks:
        expanded.append(chunk)
        expanded.extend(dict(chunk, id=f"{chunk['id']}~{j}") for j in range(1, copies))
    return expanded, out.reshape(-1, DIM)


def exact_top(matrix: np.ndarray, queries: np.ndarray) -> List[List[int]]:
    """The exact cosine top K of every query, as row indices (f64 up to 100k rows; above, f32
    in blocks of queries, as f64 copies of a million rows would not fit beside the stores)."""
    wide = np.float64 if len(matrix) <= 100_000 else np.float32
    rows = matrix.astype(wide)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    qs = queries.astype(wide)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    tops = []
    for start in range(0, len(qs), 50):
        block = rows @ qs[start : start + 50].T
        for scores in block.T:
            best = np.argpartition(-scores, K)[:K]
            tops.append(best[np.argsort(-scores[best])].tolist())
    del rows
    return tops


def rss_mb(pid: int, field: str = "VmRSS:") -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def du_mb(path: str) -> float:
    out = subprocess.run(["du", "-sk", path], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0]) / 1024


def recall(found: Sequence[Sequence[str]], exact: Sequence[Sequence[int]], ids: List[str]) -> float:
    hits = sum(len(set(f) & {ids[i] for i in e}) for f, e in zip(found, exact))
    return hits / (K * len(exact))


def percentile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--noise", type=float, default=0.5)
    args = parser.parse_args()
    binary = os.environ.get("CTXD_BIN") or shutil.which("ctxd")
    if not binary:
        sys.exit("CTXD_BIN names no daemon (client/python/bench/run builds one)")
    chunks, matrix, queries = load(args.data.resolve(), args.n)
    chunks, matrix = expand(chunks, matrix, args.copies, args.noise)
    queries = queries[: args.queries]
    ids = [c["id"] for c in chunks]
    texts = [c["text"] for c in chunks]
    metadatas = [{"doc_id": c["doc_id"], "kind": c["kind"]} for c in chunks]
    query_lists = queries.tolist()
    print(f"vector queries from Python: {len(ids)} chunks, {DIM}-d, {len(queries)} queries, k={K}")
    exact = exact_top(matrix, queries)

    daemon = Daemon(binary)
    chroma_dir = tempfile.mkdtemp(prefix="chroma-bench-", dir="/tmp")
    try:
        with ctxd.Client(daemon.socket) as client:
            col = client.create_collection("big", dimension=DIM)
            started = time.perf_counter()
            # In pieces, so the client's encoded requests for a million never sit in memory at once.
            for start in range(0, len(ids), PIECE):
                end = start + PIECE
                col.upsert(
                    ids=ids[start:end],
                    embeddings=matrix[start:end],
                    metadatas=metadatas[start:end],
                    documents=texts[start:end],
                )
            ctxd_ingest = time.perf_counter() - started
            assert col.count() == len(ids)

            import chromadb
            from chromadb.config import Settings

            before = rss_mb(os.getpid())
            chroma = chromadb.PersistentClient(
                path=chroma_dir, settings=Settings(anonymized_telemetry=False)
            )
            ccol = chroma.create_collection(
                "big", embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
            batch = chroma.get_max_batch_size()
            started = time.perf_counter()
            for start in range(0, len(ids), batch):
                end = start + batch
                ccol.add(
                    ids=ids[start:end],
                    embeddings=matrix[start:end],
                    metadatas=metadatas[start:end],
                    documents=texts[start:end],
                )
            chroma_ingest = time.perf_counter() - started
            assert ccol.count() == len(ids)
            print(
                f"  ingest: ctxd {len(ids) / ctxd_ingest:,.0f} docs/s, "
                f"chromadb {len(ids) / chroma_ingest:,.0f} docs/s"
            )

            # Warm both (first queries load pages and indexes), unmeasured.
            for q in query_lists[:20]:
                col.query(query_embeddings=[q], n_results=K)
                ccol.query(query_embeddings=[q], n_results=K)
            # Rounds of every query through one store, then through the other (the first
            # store alternates): both see the same machine over the run, and neither runs
            # with its caches just emptied by the other's working set, as an app using one
            # store would not.
            times: Dict[str, List[float]] = {"ctxd": [], "chromadb": []}
            found: Dict[str, List[List[str]]] = {"ctxd": [], "chromadb": []}
            stores = [("ctxd", col), ("chromadb", ccol)]
            for round_number in range(ROUNDS):
                for name, collection in stores if round_number % 2 == 0 else stores[::-1]:
                    for q in query_lists:
                        started = time.perf_counter()
                        result = collection.query(query_embeddings=[q], n_results=K)
                        times[name].append(time.perf_counter() - started)
                        assert len(result["documents"][0]) == K
                        if round_number == 0:
                            found[name].append(result["ids"][0])
            chroma_rss = rss_mb(os.getpid()) - before
            daemon_rss = rss_mb(daemon.process.pid)
            daemon_anon = rss_mb(daemon.process.pid, "RssAnon:")

            print()
            print(f"  {'':<16} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10}")
            for name in ("ctxd", "chromadb"):
                ms = [t * 1000 for t in times[name]]
                print(
                    f"  {name:<16} {statistics.median(ms):>8.2f} {percentile(ms, 0.99):>8.2f} "
                    f"{recall(found[name], exact, ids):>10.4f}"
                )
            ratio = statistics.median(times["chromadb"]) / statistics.median(times["ctxd"])
            print(f"  chromadb p50 / ctxd p50: {ratio:.2f}")
            print(
                f"  memory: ctxd daemon RSS {daemon_rss:,.0f} MB ({daemon_anon:,.0f} MB anonymous, "
                f"the rest mapped store pages); chromadb growth of this process "
                f"{chroma_rss:,.0f} MB"
            )
            print(
                f"  disk: ctxd {du_mb(os.path.join(daemon.dir, 'data')):,.0f} MB, "
                f"chromadb {du_mb(chroma_dir):,.0f} MB"
            )

            print()
            print("  ctxd effort curve (same queries):")
            print(f"  {'effort':>8} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10}")
            for effort in EFFORTS:
                ms, got = [], []
                for q in query_lists:
                    started = time.perf_counter()
                    result = col.query(query_embeddings=[q], n_results=K, effort=effort)
                    ms.append((time.perf_counter() - started) * 1000)
                    got.append(result["ids"][0])
                print(
                    f"  {effort:>8} {statistics.median(ms):>8.2f} {percentile(ms, 0.99):>8.2f} "
                    f"{recall(got, exact, ids):>10.4f}"
                )
            del ccol, chroma
    finally:
        daemon.stop()
        shutil.rmtree(chroma_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
