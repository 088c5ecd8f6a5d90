"""examples/from_chromadb.py, run as a script against a real daemon.

ChromaDB is not a test dependency: a stand-in ``chromadb`` module (the API surface the script
uses, as ChromaDB 1.x has it: Collection objects from ``list_collections``, ``hnsw:space`` in
the metadata or the configuration, embeddings as a numpy-like array that refuses ``bool()``) is
put first on ``PYTHONPATH``.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import workspace_root

SCRIPT = workspace_root() / "examples" / "from_chromadb.py"
PACKAGE_DIR = Path(__file__).resolve().parents[1]

FAKE_CHROMADB = textwrap.dedent(
    '''
    """A stand-in for chromadb's PersistentClient, reading fake-chroma.json."""
    import json
    import os


    class Array2D:
        """Like numpy's 2-D array: indexable, has tolist(), and bool() raises."""

        def __init__(self, rows):
            self.rows = rows

        def __len__(self):
            return len(self.rows)

        def __getitem__(self, i):
            return self.rows[i]

        def __bool__(self):
            raise ValueError("The truth value of an array with more than one element is ambiguous")

        def tolist(self):
            return [list(r) for r in self.rows]


    class Collection:
        def __init__(self, name, spec):
            self.name = name
            self.metadata = spec.get("metadata")
            self.configuration = spec.get("configuration") or {"hnsw": {"space": "l2"}}
            self._records = spec["records"]

        def count(self):
            return len(self._records)

        def get(self, include=None, limit=None, offset=None):
            start = offset or 0
            rows = self._records[start : start + limit]
            return {
                "ids": [r["id"] for r in rows],
                "embeddings": Array2D([r["embedding"] for r in rows]),
                "documents": [r.get("document") for r in rows],
                "metadatas": [r.get("metadata") for r in rows],
                "uris": None,
                "data": None,
                "included": include,
            }


    class PersistentClient:
        def __init__(self, path):
            with open(os.path.join(path, "fake-chroma.json")) as f:
                self._spec = json.load(f)

        def list_collections(self):
            return [Collection(name, spec) for name, spec in self._spec.items()]

        def get_collection(self, name):
            return Collection(name, self._spec[name])
    '''
)


def records(count, dimension, with_gaps=False):
    rows = []
    for i in range(count):
        row = {"id": f"r{i}", "embedding": [float(i + d) for d in range(dimension)]}
        if not with_gaps or i % 3:
            row["document"] = f"record {i}"
        if not with_gaps or i % 4:
            row["metadata"] = {"i": i, "dropped": None} if with_gaps else {"i": i}
        rows.append(row)
    return rows


@pytest.fixture
def chroma_dir(scratch):
    persist = scratch / "chroma"
    persist.mkdir()
    spec = {
        "notes": {"metadata": {"hnsw:space": "cosine"}, "records": records(7, 3, with_gaps=True)},
        "inner": {"configuration": {"hnsw": {"space": "ip"}}, "records": records(2, 2)},
        "plain": {"metadata": None, "records": records(1, 5)},
        "empty": {"metadata": None, "records": []},
    }
    (persist / "fake-chroma.json").write_text(json.dumps(spec))
    return persist


def run_script(scratch, modules, *args):
    fake_root = scratch / "modules"
    package = fake_root / "chromadb"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(modules)
    env = dict(os.environ)
    env.pop("CTXD_SOCKET", None)
    env["PYTHONPATH"] = os.pathsep.join([str(fake_root), str(PACKAGE_DIR)])
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_copies_every_collection(daemon, client, scratch, chroma_dir):
    done = run_script(
        scratch, FAKE_CHROMADB, chroma_dir, "--socket", daemon.socket, "--batch-size", 3
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    progress = [line for line in lines if line.startswith("notes: ") and "/" in line]
    assert progress == ["notes: 3/7", "notes: 6/7", "notes: 7/7"]
    assert "empty: empty, skipped" in done.stdout
    described = {c.name: (c.dimension, c.distance, c.count()) for c in client.list_collections()}
    assert described == {
        "notes": (3, "cosine", 7),
        "inner": (2, "dot", 2),
        "plain": (5, "euclidean", 1),
    }
    notes = client.get_collection("notes").get(include=["documents", "metadatas", "embeddings"])
    expected = records(7, 3, with_gaps=True)
    assert notes["ids"] == [r["id"] for r in expected]
    assert notes["documents"] == [r.get("document") for r in expected]
    # None metadata values mean "absent" in ChromaDB; the ctxd client leaves them out.
    assert notes["metadatas"] == [
        {"i": r["metadata"]["i"]} if "metadata" in r else None for r in expected
    ]
    assert notes["embeddings"] == [r["embedding"] for r in expected]
    # Running it again is safe: upserts replace by id.
    again = run_script(scratch, FAKE_CHROMADB, chroma_dir, "--socket", daemon.socket)
    assert again.returncode == 0, again.stderr
    assert client.get_collection("notes").count() == 7


def test_conflicting_collection_fails_and_exits_non_zero(daemon, client, scratch, chroma_dir):
    client.create_collection("inner", dimension=9)
    done = run_script(scratch, FAKE_CHROMADB, chroma_dir, "--socket", daemon.socket)
    assert done.returncode == 1
    assert "inner: FAILED" in done.stderr and "collection_exists" in done.stderr
    assert client.get_collection("notes").count() == 7, "the other collections are copied"


def test_without_chromadb_exits_non_zero_with_a_clear_message(scratch, chroma_dir):
    missing = "raise ImportError(\"No module named 'chromadb'\")\n"
    done = run_script(scratch, missing, chroma_dir, "--socket", scratch / "unused.sock")
    assert done.returncode == 2
    assert "pip install chromadb" in done.stderr


def test_daemon_not_running_exits_non_zero(scratch, chroma_dir):
    done = run_script(scratch, FAKE_CHROMADB, chroma_dir, "--socket", scratch / "nobody.sock")
    assert done.returncode == 1
    assert "ctxd serve" in done.stderr
