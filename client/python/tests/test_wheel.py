"""The one-install wheel: built with maturin from the workspace's ``pyproject.toml``, installed
into a fresh venv, and used with nothing else on ``PATH``, as a Lambda layer or a container
would use it.

The wheel is ``$CTXD_WHEEL`` when set (a release pipeline's artifact), else built here with
the ``dev`` profile (the workspace's debug build is reused; a release wheel is ``maturin build
--release``). maturin comes from its own venv, ``client/python/.venv-wheel``, pinned in
``wheel-requirements.txt``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

from conftest import workspace_root

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the wheel is built and checked on Linux here"
)

HERE = Path(__file__).resolve().parent.parent


def maturin() -> Path:
    """maturin from its own pinned venv, created on first use."""
    env_dir = HERE / ".venv-wheel"
    binary = env_dir / "bin" / "maturin"
    requirements = HERE / "wheel-requirements.txt"
    stamp = env_dir / ".installed"
    if not binary.exists() or not stamp.exists() or requirements.stat().st_mtime > stamp.stat().st_mtime:
        venv.create(env_dir, with_pip=True, clear=True)
        subprocess.run(
            [env_dir / "bin" / "python", "-m", "pip", "install", "-q",
             "--disable-pip-version-check", "-r", requirements],
            check=True,
        )
        stamp.touch()
    return binary


def build_wheel(out: Path) -> Path:
    given = os.environ.get("CTXD_WHEEL")
    if given:
        return Path(given)
    subprocess.run(
        [maturin(), "build", "--profile", "dev", "--strip", "--compatibility", "linux",
         "--out", out, "--quiet"],
        cwd=workspace_root(),
        check=True,
    )
    (wheel,) = out.glob("ctxd-*.whl")
    return wheel


ROUND_TRIP = textwrap.dedent(
    """
    import os, shutil, sys, tempfile, ctxd

    store = tempfile.mkdtemp()
    with ctxd.PersistentClient(store) as client:
        words = client.get_or_create_collection("words")
        words.upsert(ids=["a", "b"], embeddings=[[1, 0, 0], [0, 1, 0]],
                     documents=["alpha", "beta"], metadatas=[{"n": 1}, {"n": 2}])
        assert client.started_daemon
    # close() returned: every file is closed, the copy is consistent.
    copy = tempfile.mkdtemp()
    shutil.copytree(store, copy, dirs_exist_ok=True)
    shutil.rmtree(store)
    with ctxd.PersistentClient(copy) as client:
        assert client.check()["passed"]
        assert client.get_collection("words").get(ids=["b"])["documents"] == ["beta"]
    shutil.rmtree(copy)
    print("ok", ctxd.__version__, flush=True)
    """
)


def test_the_wheel_alone_runs_the_lambda_round_trip(scratch: Path) -> None:
    wheel = build_wheel(scratch / "wheels")
    fresh = scratch / "fresh"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
         "--no-deps", wheel],
        check=True,
    )
    assert (fresh / "bin" / "ctxd").is_file(), "the wheel installs the binary"
    # Nothing on PATH, no CTXD_BIN: the client finds the binary the wheel installed.
    env = {"PATH": "/nonexistent", "HOME": str(scratch), "TMPDIR": str(scratch)}
    done = subprocess.run(
        [python, "-c", ROUND_TRIP], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
