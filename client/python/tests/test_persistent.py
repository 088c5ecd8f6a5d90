"""``ctxd.PersistentClient``: the daemon found or started for a data directory, shared by
processes, and stopped with every file closed when the last client lets go.

Each test starts its daemons through the client under test (the binary is ``$CTXD_BIN``, which
the harness sets) on fresh directories; "every file closed" is checked in ``/proc``: no
process has a descriptor or a mapping under the directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import List

import pytest

import ctxd
from ctxd import _owner
from procs import holders_of, wait_exit

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="open files are checked in /proc"
)

#: How long a daemon whose last client vanished may take to stop (documented in the README:
#: it stops at once; this bound is for a loaded CI machine).
STOP_BOUND_S = 20.0


@pytest.fixture(autouse=True)
def binary(ctxd_bin: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CTXD_BIN", ctxd_bin)
    monkeypatch.delenv("CTXD_SOCKET", raising=False)
    return ctxd_bin


@pytest.fixture
def store(scratch: Path) -> Path:
    return scratch / "store"


def lambda_round_trip(store: Path, copy: Path, n: int) -> None:
    """ChromaDB's Lambda report, with ctxd: write, close, copy every file at once."""
    with ctxd.PersistentClient(store) as client:
        words = client.get_or_create_collection("words")
        words.upsert(
            ids=[f"w{i}" for i in range(n)],
            embeddings=[[float(i), 1.0, float(i % 3), 0.5] for i in range(n)],
            documents=[f"word number {i}" for i in range(n)],
            metadatas=[{"i": i} for i in range(n)],
        )
    # As the S3 upload loop does: every file of the directory, concurrently.
    files = [p for p in store.rglob("*") if p.is_file()]
    threads = []
    for source in files:
        target = copy / source.relative_to(store)
        target.parent.mkdir(parents=True, exist_ok=True)
        threads.append(threading.Thread(target=shutil.copyfile, args=(source, target)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_the_lambda_round_trip_gives_a_valid_copy_every_time(scratch: Path) -> None:
    for round_ in range(100):
        store = Path(tempfile.mkdtemp(prefix="s", dir=scratch))
        copy = scratch / f"copy-{round_}"
        lambda_round_trip(store, copy, n=20 + round_)
        # close() returned: nothing may still hold a file of the directory.
        assert holders_of(store) == [], f"round {round_}"
        shutil.rmtree(store)
        with ctxd.PersistentClient(copy) as opened:
            report = opened.check()
            assert report["passed"], f"round {round_}: {report}"
            assert opened.get_collection("words").count() == 20 + round_
        assert holders_of(copy) == []
        shutil.rmtree(copy)


def test_clients_in_one_process_share_the_daemon_and_the_last_stops_it(store: Path) -> None:
    first = ctxd.PersistentClient(store)
    assert first.started_daemon and first.attached == {"holders": 1, "stop_when_unused": True}
    second = ctxd.PersistentClient(store)
    assert not second.started_daemon
    assert second.server["pid"] == first.server["pid"]
    assert first.status()["holders"] == 2
    first.get_or_create_collection("notes", dimension=2).upsert(
        ids=["a"], embeddings=[[1.0, 0.0]], documents=["kept"]
    )
    first.close()
    first.close()  # idempotent
    # Still serving the other client.
    assert second.get_collection("notes").get(ids=["a"])["documents"] == ["kept"]
    assert holders_of(store) != []
    pid = second.server["pid"]
    second.close()
    assert holders_of(store) == [], "close() returns once every file is closed"
    assert wait_exit(pid, STOP_BOUND_S)
    assert _owner.recorded_socket(_owner.canonical_dir(store)) is None


CHILD = textwrap.dedent(
    """
    import sys, ctxd
    client = ctxd.PersistentClient(sys.argv[1])
    notes = client.get_or_create_collection("notes", dimension=2)
    n = int(sys.argv[2])
    notes.upsert(ids=[f"{sys.argv[3]}{i}" for i in range(n)],
                 embeddings=[[1.0, float(i)] for i in range(n)])
    print(client.server["pid"], flush=True)
    if sys.argv[4] == "hang":
        sys.stdin.read()          # killed here
    elif sys.argv[4] == "wait":
        sys.stdin.readline()
        print(notes.count(), flush=True)
    client.close()
    """
)


def child(store: Path, n: int, prefix: str, mode: str) -> "subprocess.Popen[str]":
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), str(n), prefix, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_two_processes_share_one_daemon(store: Path) -> None:
    other = child(store, 10, "c", "wait")
    assert other.stdout is not None and other.stdin is not None
    daemon_pid = int(other.stdout.readline())
    with ctxd.PersistentClient(store) as mine:
        assert not mine.started_daemon
        assert mine.server["pid"] == daemon_pid
        notes = mine.get_collection("notes")
        notes.upsert(ids=["p0"], embeddings=[[0.0, 1.0]])
    # This process let go; the other still holds the daemon and sees this write.
    other.stdin.write("go\n")
    other.stdin.flush()
    assert int(other.stdout.readline()) == 11
    assert other.wait(timeout=30) == 0
    assert wait_exit(daemon_pid, STOP_BOUND_S)
    assert holders_of(store) == []


def test_a_parent_killed_with_sigkill_does_not_leave_the_daemon_running(store: Path) -> None:
    victim = child(store, 50, "k", "hang")
    assert victim.stdout is not None
    daemon_pid = int(victim.stdout.readline())  # 50 documents acknowledged
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert wait_exit(daemon_pid, STOP_BOUND_S), "the daemon noticed nobody holds it"
    assert holders_of(store) == []
    with ctxd.PersistentClient(store) as again:
        assert again.started_daemon
        assert again.get_collection("notes").count() == 50
        assert again.check()["passed"]


def test_processes_starting_at_once_end_up_on_one_daemon(store: Path) -> None:
    children = [child(store, 5, f"s{i}-", "wait") for i in range(6)]
    pids = {int(c.stdout.readline()) for c in children if c.stdout is not None}
    assert len(pids) == 1, f"several daemons served one directory: {pids}"
    for c in children:
        assert c.stdin is not None and c.stdout is not None
        c.stdin.write("go\n")
        c.stdin.flush()
    counts = [int(c.stdout.readline()) for c in children if c.stdout is not None]
    assert max(counts) == 30
    for c in children:
        assert c.wait(timeout=30) == 0
    assert wait_exit(pids.pop(), STOP_BOUND_S)
    assert holders_of(store) == []


def test_a_running_service_is_attached_to_and_not_stopped(daemon) -> None:
    with ctxd.PersistentClient(daemon.data) as client:
        assert not client.started_daemon
        assert client.socket == str(daemon.socket)
        assert client.attached == {"holders": 1, "stop_when_unused": False}
    assert daemon.process.poll() is None
    with daemon.client() as plain:
        assert plain.status()["state"] == "serving"


def test_a_daemon_that_cannot_start_says_why(scratch: Path) -> None:
    not_a_dir = scratch / "file"
    not_a_dir.write_text("x")
    with pytest.raises((ctxd.StartFailed, OSError)):
        ctxd.PersistentClient(not_a_dir)
    broken_model = scratch / "no-model"
    with pytest.raises(ctxd.StartFailed) as raised:
        ctxd.PersistentClient(scratch / "store", models={"minilm": broken_model})
    assert "exited with status 1" in str(raised.value)
    assert "minilm" in str(raised.value), "the daemon's own message is carried"


def test_a_missing_binary_is_a_clear_error(scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTXD_BIN", str(scratch / "nope"))
    with pytest.raises(ctxd.StartFailed, match="CTXD_BIN"):
        ctxd.PersistentClient(scratch / "store")


def test_a_client_dropped_without_close_lets_go(store: Path) -> None:
    client = ctxd.PersistentClient(store)
    pid = client.server["pid"]
    del client  # the finalizer detaches, as at interpreter exit
    assert wait_exit(pid, STOP_BOUND_S)
    assert holders_of(store) == []


def test_a_daemon_nobody_attaches_to_stops_after_its_grace(
    ctxd_bin: str, store: Path
) -> None:
    canonical = _owner.canonical_dir(store)
    daemon = subprocess.Popen(
        [ctxd_bin, "serve", "--data", canonical, "--socket", _owner.private_socket(canonical),
         "--stop-when-unused", "--unused-grace", "1s", "--ready-line"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert daemon.stdout is not None
    assert b'"ready":true' in daemon.stdout.readline()
    assert daemon.wait(timeout=STOP_BOUND_S) == 0
    assert holders_of(store) == []



def test_a_stale_or_planted_socket_file_never_leads_to_another_directory(daemon, store) -> None:
    canonical = _owner.canonical_dir(store)
    sidecar = os.path.join(_owner.lock_dir(), f"data-{_owner.directory_key(canonical)}.socket")
    # As a `kill -9` of this directory's daemon could leave it, naming a socket that another
    # daemon (serving another directory) now listens on.
    with open(sidecar, "w") as file:
        file.write(f"{daemon.socket}\n")
    try:
        with ctxd.PersistentClient(store) as client:
            assert client.started_daemon, "the other directory's daemon was refused"
            assert client.server["pid"] != daemon.pid
            assert client.status()["data_dir"] == canonical
        with daemon.client() as other:
            assert other.status().get("holders", 0) == 0, "no hold was taken on the wrong one"
    finally:
        if os.path.exists(sidecar):
            os.remove(sidecar)


def test_close_after_the_daemon_was_stopped_otherwise_still_waits_for_the_files(
    store: Path,
) -> None:
    client = ctxd.PersistentClient(store)
    client.get_or_create_collection("notes").upsert(ids=["a"], embeddings=[[1.0, 0.0]])
    pid = client.server["pid"]
    os.kill(pid, signal.SIGTERM)  # `ctxd stop`, a service stop: not this client's doing
    client.close()
    assert holders_of(store) == [], "close() returns once every file is closed"
    assert wait_exit(pid, STOP_BOUND_S)
