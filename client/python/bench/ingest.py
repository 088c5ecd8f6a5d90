"""SciFact ingest from Python, ctxd against ChromaDB 1.5.9, in one run.

    client/python/bench/run [--data DIR] [--rounds N]

Each round ingests SciFact's 5,183 documents (``title + " " + text``, the 384-d MiniLM vector,
metadata ``{"title": ...}``) into a fresh store, in four ways:

- ``ctxd bytes``: ctxd's Python client as it is, embeddings as lists of floats (vectors go as
  base64 of float32, the client's default);
- ``ctxd bytes, numpy``: the same with a float32 numpy matrix as ``embeddings``;
- ``ctxd json``: the client with vectors sent as JSON arrays, as it did before vectors travelled
  as bytes (``ctxd._vectors.encode`` replaced for the run);
- ``chromadb``: ``chromadb.PersistentClient(path).create_collection(...).add(...)`` with the same
  lists, in ChromaDB's largest batches.

Only the ingest calls are timed (the daemon and ChromaDB's client are started before). The
order of the four rotates each round; each case prints its median and best docs/s and the ratio
of its median to ChromaDB's. ``CTXD_BIN`` names the daemon (``run`` builds the release one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

import ctxd
from ctxd import _vectors

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2] / ".." / "shared" / "data"
DIM = 384


def load(data: Path):
    docs = [json.loads(line) for line in open(data / "scifact" / "docs.jsonl", encoding="utf-8")]
    matrix = np.fromfile(data / "scifact" / "doc_vectors.f32", dtype="<f4").reshape(-1, DIM)
    assert len(docs) == len(matrix), "docs.jsonl and doc_vectors.f32 disagree"
    ids = [d["id"] for d in docs]
    texts = [f"{d['title']} {d['text']}" for d in docs]
    metadatas = [{"title": d["title"]} for d in docs]
    return ids, texts, metadatas, matrix


class Daemon:
    """A ``ctxd serve`` on a fresh data directory, ready when it says so (``NOTIFY_SOCKET``)."""

    def __init__(self, binary: str, args: Sequence[str] = ()) -> None:
        self.dir = tempfile.mkdtemp(prefix="ctxd-bench-", dir="/tmp")
        self.socket = os.path.join(self.dir, "s")
        notify_path = os.path.join(self.dir, "n")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(60)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        env.pop("CTXD_SOCKET", None)
        self.process = subprocess.Popen(
            [
                binary,
                "serve",
                "--data",
                os.path.join(self.dir, "data"),
                "--socket",
                self.socket,
                *args,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while "READY=1" not in notify.recv(4096).decode("utf-8", "replace").split("\n"):
                pass
        finally:
            notify.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def ctxd_ingest(binary: str, ids, texts, metadatas, embeddings, *, json_vectors=False) -> float:
    daemon = Daemon(binary)
    encode = _vectors.encode
    try:
        if json_vectors:
            # What the client sent before: the list itself, formatted by json.dumps.
            _vectors.encode = lambda vector: _vectors.plain(vector)  # type: ignore[assignment]
        with ctxd.Client(daemon.socket) as client:
            col = client.create_collection("scifact", dimension=DIM)
            started = time.perf_counter()
            col.upsert(ids=ids, embeddings=embeddings, metadatas=metadatas, documents=texts)
            seconds = time.perf_counter() - started
            assert col.count() == len(ids)
    finally:
        _vectors.encode = encode  # type: ignore[assignment]
        daemon.stop()
    return seconds


def chroma_ingest(ids, texts, metadatas, embeddings) -> float:
    import chromadb
    from chromadb.config import Settings

    path = tempfile.mkdtemp(prefix="chroma-bench-", dir="/tmp")
    try:
        client = chromadb.PersistentClient(path=path, settings=Settings(anonymized_telemetry=False))
        col = client.create_collection(
            "scifact", embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        batch = client.get_max_batch_size()
        started = time.perf_counter()
        for start in range(0, len(ids), batch):
            end = start + batch
            col.add(
                ids=ids[start:end],
                embeddings=embeddings[start:end],
                metadatas=metadatas[start:end],
                documents=texts[start:end],
            )
        seconds = time.perf_counter() - started
        assert col.count() == len(ids)
        del col, client
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    binary = os.environ.get("CTXD_BIN") or shutil.which("ctxd")
    if not binary:
        sys.exit("CTXD_BIN names no daemon (client/python/bench/run builds one)")
    ids, texts, metadatas, matrix = load(args.data.resolve())
    lists = matrix.tolist()
    n = len(ids)
    print(f"SciFact ingest from Python: {n} documents, {DIM}-d, ctxd {binary}")
    cases: Dict[str, Callable[[], float]] = {
        "ctxd bytes": lambda: ctxd_ingest(binary, ids, texts, metadatas, lists),
        "ctxd bytes, numpy": lambda: ctxd_ingest(binary, ids, texts, metadatas, matrix),
        "ctxd json": lambda: ctxd_ingest(binary, ids, texts, metadatas, lists, json_vectors=True),
        "chromadb 1.5.9": lambda: chroma_ingest(ids, texts, metadatas, lists),
    }
    names = list(cases)
    rates: Dict[str, List[float]] = {name: [] for name in names}
    for round_number in range(args.rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            seconds = cases[name]()
            rates[name].append(n / seconds)
            print(f"  round {round_number + 1}: {name:<18} {n / seconds:>9.0f} docs/s", flush=True)
    chroma = statistics.median(rates["chromadb 1.5.9"])
    print()
    print(f"  {'':<18} {'median docs/s':>14} {'best':>9} {'× chromadb':>11}")
    for name in names:
        median = statistics.median(rates[name])
        print(f"  {name:<18} {median:>14.0f} {max(rates[name]):>9.0f} {median / chroma:>11.2f}")
    json_rate = statistics.median(rates["ctxd json"])
    print(
        f"  bytes / json: {statistics.median(rates['ctxd bytes']) / json_rate:.2f}× (lists), "
        f"{statistics.median(rates['ctxd bytes, numpy']) / json_rate:.2f}× (numpy)"
    )


if __name__ == "__main__":
    main()
