"""The daemon's embedder against sentence-transformers on CPU, same weights, in one run.

    client/python/bench/run embed [--data DIR] [--docs N] [--queries Q] [--threads T]

Starts a release ``ctxd serve --model minilm=DIR`` (``DIR`` is ``models/all-MiniLM-L6-v2`` of
the shared data) and, in this process, ``SentenceTransformer(DIR, device="cpu")`` from the
pinned ``embed-requirements.txt`` (its own venv: torch is large). Both get the first N SciFact
documents (default all 5,183; ``title + " " + text``) and Q queries (default all 809):

* documents/s: ctxd ``Collection.upsert(ids, documents=texts)`` into a collection created with
  ``embedder="minilm"`` (text only; the daemon computes every vector before it commits), against
  ``model.encode(texts, batch_size=32)``;
* queries/s for the short queries: ctxd embedding them as documents in one call (the batch
  path) and as T (default 4) concurrent clients each searching ``mode="vector"`` one query at a
  time (the path an application takes), against ``model.encode(queries, batch_size=32)``;
* p50 of one 20-word query: ctxd ``query(query_texts=[q], mode="vector")`` over the socket
  (embedding and search) against ``model.encode([q])`` (embedding only);
* agreement: the cosine of every daemon-computed vector with the shared one (which
  sentence-transformers computed), and NDCG@10 of the text-only ingest with text queries, vector
  and hybrid (the default for text in a collection with an embedder), beside the same searches
  given the shared query vectors;
* memory: the daemon's RSS with the model loaded and no data, and after the run (max RSS).

The two sides run one after the other, never at once (two cores). ``CTXD_BIN`` names the daemon
(``run`` builds the release one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

import ctxd
from ingest import Daemon
from query import percentile, rss_mb

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2] / ".." / "shared" / "data"
DIM = 384
K = 10
#: Single 20-word queries timed on each side.
LATENCY_ROUNDS = 100


def load_lines(path: Path, n: int) -> List[dict]:
    rows = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if len(rows) == n:
                break
            rows.append(json.loads(line))
    return rows


def load_vectors(path: Path, n: int) -> np.ndarray:
    return np.fromfile(path, dtype="<f4", count=n * DIM).reshape(n, DIM)


def qrels(path: Path) -> Dict[str, Dict[str, int]]:
    judged: Dict[str, Dict[str, int]] = {}
    with open(path, encoding="utf-8") as lines:
        next(lines)
        for line in lines:
            query, doc, score = line.rstrip("\n").split("\t")
            judged.setdefault(query, {})[doc] = int(score)
    return judged


def ndcg10(ranked: Dict[str, Sequence[str]], judged: Dict[str, Dict[str, int]]) -> float:
    """Mean NDCG@10 over the judged queries (BEIR's definition: gain = relevance)."""
    total = 0.0
    count = 0
    for query, relevant in judged.items():
        if query not in ranked:
            continue
        dcg = sum(
            relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[query][:K])
        )
        ideal = sorted(relevant.values(), reverse=True)[:K]
        idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
        total += dcg / idcg if idcg else 0.0
        count += 1
    return total / max(1, count)


def cosines(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    got = got.astype(np.float64)
    expected = expected.astype(np.float64)
    return (got * expected).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))


def twenty_words(docs: List[dict], n: int) -> List[str]:
    texts = []
    for doc in docs:
        words = doc["text"].split()
        if len(words) >= 20:
            texts.append(" ".join(words[:20]))
        if len(texts) == n:
            break
    return texts


def embed_as_documents(col, ids: List[str], texts: List[str]):
    """Upserts ``texts`` as documents the daemon embeds: (texts/s, the stored vectors in order)."""
    started = time.perf_counter()
    col.upsert(ids=ids, documents=texts)
    rate = len(ids) / (time.perf_counter() - started)
    stored = col.get(ids=ids, include=["embeddings"])
    by_id = dict(zip(stored["ids"], stored["embeddings"]))
    return rate, np.array([by_id[i] for i in ids], dtype=np.float32)


def ctxd_side(binary: str, model: Path, docs, doc_texts, queries, judged, query_vectors, threads):
    daemon = Daemon(binary, ["--model", f"minilm={model}"])
    out: Dict[str, float] = {}
    try:
        out["rss_loaded_mb"] = rss_mb(daemon.process.pid)
        with ctxd.Client(daemon.socket, timeout=300) as client:
            col = client.create_collection("scifact", embedder="minilm")
            ids = [d["id"] for d in docs]
            out["docs_s"], got = embed_as_documents(col, ids, doc_texts)
            out["doc_cosines"] = cosines(got, load_vectors_cache["docs"][: len(ids)])

            # Queries embedded as documents, in one call: the batch path.
            qcol = client.create_collection("queries", embedder="minilm")
            qtexts = [q["text"] for q in queries]
            out["queries_batch_s"], got = embed_as_documents(qcol, [q["id"] for q in queries], qtexts)
            out["query_cosines"] = cosines(got, query_vectors)

            # Text queries, one request each: vector mode (sequential, timed), hybrid.
            ranked_vector: Dict[str, List[str]] = {}
            latencies = []
            for q in queries:
                started = time.perf_counter()
                result = col.query(query_texts=[q["text"]], n_results=K, mode="vector", include=[])
                latencies.append(time.perf_counter() - started)
                ranked_vector[q["id"]] = result["ids"][0]
            out["query_sequential_p50_ms"] = statistics.median(latencies) * 1e3
            ranked_hybrid = {
                q["id"]: col.query(query_texts=[q["text"]], n_results=K, include=[])["ids"][0]
                for q in queries
            }
            assert col.query(query_texts=[queries[0]["text"]])["modes"] == ["hybrid"]
            out["ndcg_vector_text"] = ndcg10(ranked_vector, judged)
            out["ndcg_hybrid_text"] = ndcg10(ranked_hybrid, judged)
            ranked_vector_shared = {
                q["id"]: col.query(query_embeddings=[v], n_results=K, include=[])["ids"][0]
                for q, v in zip(queries, query_vectors)
            }
            ranked_hybrid_shared = {
                q["id"]: col.query(
                    query_embeddings=[v], query_texts=[q["text"]], n_results=K, include=[]
                )["ids"][0]
                for q, v in zip(queries, query_vectors)
            }
            out["ndcg_vector_shared"] = ndcg10(ranked_vector_shared, judged)
            out["ndcg_hybrid_shared"] = ndcg10(ranked_hybrid_shared, judged)

        # T concurrent clients, each one query at a time: the daemon batches what waits.
        def worker(part: List[str]) -> None:
            with ctxd.Client(daemon.socket, timeout=300) as own:
                mine = own.get_collection("scifact")
                for text in part:
                    mine.query(query_texts=[text], n_results=K, mode="vector", include=[])

        parts = [qtexts[i::threads] for i in range(threads)]
        workers = [threading.Thread(target=worker, args=(part,)) for part in parts]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        out["queries_concurrent_s"] = len(qtexts) / (time.perf_counter() - started)

        with ctxd.Client(daemon.socket, timeout=300) as client:
            col = client.get_collection("scifact")
            samples = twenty_words(docs, LATENCY_ROUNDS)
            latencies = []
            for text in samples:
                started = time.perf_counter()
                col.query(query_texts=[text], n_results=K, mode="vector", include=[])
                latencies.append(time.perf_counter() - started)
            out["twenty_p50_ms"] = statistics.median(latencies) * 1e3
            out["twenty_p99_ms"] = percentile(latencies, 0.99) * 1e3
        out["rss_after_mb"] = rss_mb(daemon.process.pid)
        out["rss_peak_mb"] = rss_mb(daemon.process.pid, "VmHWM:")
    finally:
        daemon.stop()
    return out


def st_side(model: Path, docs, doc_texts, queries, query_vectors):
    import torch
    from sentence_transformers import SentenceTransformer

    out: Dict[str, float] = {"torch_threads": torch.get_num_threads()}
    before = rss_mb(os.getpid())
    st = SentenceTransformer(str(model), device="cpu")
    out["rss_process_mb"] = rss_mb(os.getpid())
    out["rss_loaded_mb"] = out["rss_process_mb"] - before
    started = time.perf_counter()
    vectors = st.encode(doc_texts, batch_size=32)
    out["docs_s"] = len(doc_texts) / (time.perf_counter() - started)
    out["doc_cosines"] = cosines(vectors, load_vectors_cache["docs"][: len(doc_texts)])
    qtexts = [q["text"] for q in queries]
    started = time.perf_counter()
    vectors = st.encode(qtexts, batch_size=32)
    out["queries_batch_s"] = len(qtexts) / (time.perf_counter() - started)
    out["query_cosines"] = cosines(vectors, query_vectors)
    latencies = []
    for text in qtexts:
        started = time.perf_counter()
        st.encode([text])
        latencies.append(time.perf_counter() - started)
    out["query_sequential_p50_ms"] = statistics.median(latencies) * 1e3
    out["queries_sequential_s"] = len(qtexts) / sum(latencies)
    latencies = []
    for text in twenty_words(docs, LATENCY_ROUNDS):
        started = time.perf_counter()
        st.encode([text])
        latencies.append(time.perf_counter() - started)
    out["twenty_p50_ms"] = statistics.median(latencies) * 1e3
    out["twenty_p99_ms"] = percentile(latencies, 0.99) * 1e3
    return out


load_vectors_cache: Dict[str, np.ndarray] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--docs", type=int, default=5183)
    parser.add_argument("--queries", type=int, default=809)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    binary = os.environ.get("CTXD_BIN")
    if not binary:
        sys.exit("CTXD_BIN must name the ctxd binary (run this through bench/run embed)")
    data = args.data.resolve()
    model = data / "models" / "all-MiniLM-L6-v2"
    docs = load_lines(data / "scifact" / "docs.jsonl", args.docs)
    doc_texts = [f'{d["title"]} {d["text"]}' for d in docs]
    queries = load_lines(data / "scifact" / "queries.jsonl", args.queries)
    load_vectors_cache["docs"] = load_vectors(data / "scifact" / "doc_vectors.f32", len(docs))
    query_vectors = load_vectors(data / "scifact" / "query_vectors.f32", len(queries))
    judged = qrels(data / "scifact" / "qrels.tsv")
    judged = {q: r for q, r in judged.items() if q in {x["id"] for x in queries}}
    if len(docs) < 5183:
        # A partial corpus: judge only documents that are in it.
        present = {d["id"] for d in docs}
        judged = {
            q: {d: s for d, s in r.items() if d in present}
            for q, r in judged.items()
            if any(d in present for d in r)
        }
    print(
        f"SciFact: {len(docs)} documents, {len(queries)} queries ({len(judged)} judged), "
        f"model {model.name}, {os.cpu_count()} cores",
        flush=True,
    )

    c = ctxd_side(binary, model, docs, doc_texts, queries, judged, query_vectors, args.threads)
    print("ctxd done", flush=True)
    s = st_side(model, docs, doc_texts, queries, query_vectors)

    def agree(name: str, values: np.ndarray) -> str:
        below = int((values < 0.9999).sum())
        return f"{name}: min cosine {values.min():.6f}, mean {values.mean():.6f}, {below} below 0.9999"

    print()
    print(f"| | ctxd (daemon, over the socket) | sentence-transformers (in-process, {s['torch_threads']} torch threads) | ratio (> 1: ctxd ahead) |")
    print("|---|---|---|---|")
    print(f"| SciFact abstracts, documents/s | {c['docs_s']:.1f} | {s['docs_s']:.1f} | {c['docs_s'] / s['docs_s']:.2f}× |")
    print(
        f"| short queries, batch (one call of {len(queries)}), queries/s | {c['queries_batch_s']:.0f} "
        f"| {s['queries_batch_s']:.0f} | {c['queries_batch_s'] / s['queries_batch_s']:.2f}× |"
    )
    print(
        f"| short queries, {args.threads} clients one at a time (ctxd: embed + search) vs one at a "
        f"time (ST: embed), queries/s | {c['queries_concurrent_s']:.0f} | {s['queries_sequential_s']:.0f} "
        f"| {c['queries_concurrent_s'] / s['queries_sequential_s']:.2f}× |"
    )
    print(
        f"| one short query, p50 ms (ctxd: embed + search) | {c['query_sequential_p50_ms']:.2f} "
        f"| {s['query_sequential_p50_ms']:.2f} | {s['query_sequential_p50_ms'] / c['query_sequential_p50_ms']:.2f}× (ST time ÷ ctxd time) |"
    )
    print(
        f"| one 20-word query, p50 / p99 ms | {c['twenty_p50_ms']:.2f} / {c['twenty_p99_ms']:.2f} "
        f"| {s['twenty_p50_ms']:.2f} / {s['twenty_p99_ms']:.2f} | {s['twenty_p50_ms'] / c['twenty_p50_ms']:.2f}× (ST time ÷ ctxd time) |"
    )
    print(
        f"| memory with the model loaded, MB | {c['rss_loaded_mb']:.0f} (daemon RSS, no data) "
        f"| {s['rss_process_mb']:.0f} (process RSS with torch; the model's load added "
        f"{s['rss_loaded_mb']:.0f}) | |"
    )
    print(f"| daemon RSS after the run / peak, MB | {c['rss_after_mb']:.0f} / {c['rss_peak_mb']:.0f} | | |")
    print()
    print("Agreement with the shared vectors (computed by sentence-transformers from the same weights):")
    print("  ctxd  " + agree("documents", c["doc_cosines"]) + "; " + agree("queries", c["query_cosines"]))
    print("  ST    " + agree("documents", s["doc_cosines"]) + "; " + agree("queries", s["query_cosines"]))
    print()
    print(f"NDCG@10 on {len(judged)} judged queries (text-only ingest):")
    print(
        f"  vector: text queries {c['ndcg_vector_text']:.3f}, shared query vectors "
        f"{c['ndcg_vector_shared']:.3f}  (reference 0.660)"
    )
    print(
        f"  hybrid: text queries {c['ndcg_hybrid_text']:.3f}, shared query vectors "
        f"{c['ndcg_hybrid_shared']:.3f}  (reference 0.720)"
    )


if __name__ == "__main__":
    main()
