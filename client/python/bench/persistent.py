"""The Lambda round trip, ctxd's PersistentClient against ChromaDB 1.5.9's, in one run.

    client/python/bench/run persistent [--rounds N] [--docs N]

Each round, for each store: a fresh ``tempfile.mkdtemp()``, ``PersistentClient(path)``,
``get_or_create_collection("words")``, an upsert of N documents (ids, 384-d embeddings,
documents, metadatas), ``close()``, then a copy of every file of the directory (what an S3
upload loop reads). Printed per phase: median milliseconds over the rounds, and ChromaDB's
median divided by ctxd's (> 1: ctxd is faster). ctxd's open includes starting its daemon; its
close includes the daemon's clean stop (every file closed). After each ChromaDB close the copy
is opened again with ChromaDB, to count the copies that are not valid (ChromaDB's close makes
no promise about the files; ctxd's copies are checked with ``check``). The order of the two
stores alternates by round. ``CTXD_BIN`` names the daemon (``run`` builds the release one).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import ctxd

PHASES = ("open", "write", "close", "copy")


def documents(n: int, seed: int) -> Dict[str, list]:
    rng = random.Random(seed)
    return {
        "ids": [f"w{i}" for i in range(n)],
        "embeddings": [[rng.uniform(-1, 1) for _ in range(384)] for _ in range(n)],
        "documents": [f"word {i} of a lambda's batch" for i in range(n)],
        "metadatas": [{"i": i, "source": "lambda"} for i in range(n)],
    }


def copy_all(source: Path, target: Path) -> None:
    for path in source.rglob("*"):
        if path.is_file():
            dest = target / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)


def timed(phases: Dict[str, List[float]], name: str, action: Callable[[], object]) -> object:
    started = time.perf_counter()
    result = action()
    phases[name].append((time.perf_counter() - started) * 1e3)
    return result


def ctxd_round(base: Path, batch: Dict[str, list], phases: Dict[str, List[float]]) -> bool:
    store = Path(tempfile.mkdtemp(dir=base))
    copy = base / f"copy-{store.name}"
    client = timed(phases, "open", lambda: ctxd.PersistentClient(store))
    words = client.get_or_create_collection("words")
    timed(phases, "write", lambda: words.upsert(**batch))
    timed(phases, "close", client.close)
    timed(phases, "copy", lambda: copy_all(store, copy))
    with ctxd.PersistentClient(copy) as check:
        valid = bool(check.check()["passed"]) and check.get_collection("words").count() == len(
            batch["ids"]
        )
    shutil.rmtree(store)
    shutil.rmtree(copy)
    return valid


def chroma_round(base: Path, batch: Dict[str, list], phases: Dict[str, List[float]]) -> bool:
    import chromadb

    store = Path(tempfile.mkdtemp(dir=base))
    copy = base / f"copy-{store.name}"
    client = timed(phases, "open", lambda: chromadb.PersistentClient(path=str(store)))
    words = client.get_or_create_collection("words", embedding_function=None)
    timed(phases, "write", lambda: words.upsert(**batch))
    timed(phases, "close", client.close)
    timed(phases, "copy", lambda: copy_all(store, copy))
    try:
        reopened = chromadb.PersistentClient(path=str(copy))
        valid = reopened.get_collection("words").count() == len(batch["ids"])
        reopened.close()
    except Exception:  # noqa: BLE001 (any failure to read the copy makes it invalid)
        valid = False
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(copy, ignore_errors=True)
    return valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--docs", type=int, default=200)
    args = parser.parse_args()
    batch = documents(args.docs, seed=7)
    stores = {"ctxd": ctxd_round, "chromadb": chroma_round}
    phases = {name: {p: [] for p in PHASES} for name in stores}
    invalid = {name: 0 for name in stores}
    base = Path(tempfile.mkdtemp(prefix="bench-persistent-"))
    try:
        for round_ in range(args.rounds):
            order = list(stores) if round_ % 2 == 0 else list(reversed(stores))
            for name in order:
                if not stores[name](base, batch, phases[name]):
                    invalid[name] += 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"Lambda round trip, {args.docs} documents of 384-d, {args.rounds} rounds (median ms)")
    print(f"{'phase':<8}{'ctxd':>10}{'chromadb':>10}{'chroma/ctxd':>13}")
    for phase in PHASES + ("total",):
        if phase == "total":
            ours = statistics.median(map(sum, zip(*phases["ctxd"].values())))
            theirs = statistics.median(map(sum, zip(*phases["chromadb"].values())))
        else:
            ours = statistics.median(phases["ctxd"][phase])
            theirs = statistics.median(phases["chromadb"][phase])
        print(f"{phase:<8}{ours:>10.1f}{theirs:>10.1f}{theirs / ours:>12.2f}x")
    print(
        f"invalid copies: ctxd {invalid['ctxd']}/{args.rounds}, "
        f"chromadb {invalid['chromadb']}/{args.rounds}"
    )


if __name__ == "__main__":
    main()
