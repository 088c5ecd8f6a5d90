"""ChromaDB parity: the calls of ``parity.py`` against ctxd, checked against the documented
expectations (``parity.EXPECTED``, the README's parity table), and the same calls against
ChromaDB 1.5.9 itself in ``CTXD_CHROMA_PYTHON``, an interpreter with ``chromadb``:
``run-tests`` sets it to the benchmarks' venv (``bench/.venv``, pinned in
``bench/requirements.txt``), which it creates when missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

import parity

HERE = Path(__file__).resolve().parent


def chroma_python() -> Optional[str]:
    return os.environ.get("CTXD_CHROMA_PYTHON") or None


@pytest.fixture(autouse=True)
def binary(ctxd_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTXD_BIN", ctxd_bin)
    monkeypatch.delenv("CTXD_SOCKET", raising=False)


def differences(observed: dict) -> dict:
    return {
        key: {"expected": wanted, "observed": observed.get(key)}
        for key, wanted in parity.EXPECTED.items()
        if observed.get(key) != wanted
    }


def test_ctxd_does_what_the_parity_table_says(scratch: Path) -> None:
    observed = parity.observe("ctxd", str(scratch / "store"))
    assert differences(observed) == {}


def test_chromadb_does_the_same(scratch: Path) -> None:
    python = chroma_python()
    if python is None:
        pytest.skip("no interpreter with chromadb: set CTXD_CHROMA_PYTHON (run-tests does)")
    done = subprocess.run(
        [python, "-W", "ignore", str(HERE / "parity.py"), "chromadb", str(scratch / "chroma")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    assert done.returncode == 0, done.stderr
    assert differences(json.loads(done.stdout)) == {}
