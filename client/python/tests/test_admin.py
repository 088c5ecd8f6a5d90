"""ping / health / status, release and resume, snapshot and check."""

import datetime
import os
import shutil

import pytest

import ctxd


def seed(client, name="notes", count=30):
    col = client.create_collection(name, dimension=3, distance="euclidean")
    col.upsert(
        ids=[f"doc-{i:03d}" for i in range(count)],
        documents=[f"document {i} about otters" for i in range(count)],
        embeddings=[[float(i), 1.0, -1.0] for i in range(count)],
        metadatas=[{"i": i} for i in range(count)],
    )
    return col


def everything(col):
    return col.get(include=["documents", "metadatas", "embeddings"])


def test_ping_health_status(client, daemon):
    assert client.ping() is None
    assert client.health() == {"state": "serving", "ready": True}
    seed(client)
    status = client.status()
    assert status["pid"] == daemon.pid
    assert status["state"] == "serving"
    assert status["data_dir"] == os.path.realpath(daemon.data)
    assert status["socket"] == str(daemon.socket)
    assert (status["collections"], status["documents"]) == (1, 30)
    assert status["leases"] == []
    assert status["open_files"] > 0
    assert status["connections"] >= 1


def test_release_context_manager_closes_files_for_a_copy(client, daemon, start_daemon, scratch):
    col = seed(client)
    before = everything(col)
    copy = scratch / "copy"
    with client.release(ttl=120, holder="pytest-backup") as lease:
        assert isinstance(lease, ctxd.Lease)
        assert client.health() == {"state": "released", "ready": False}
        status = client.status()
        assert status["open_files"] == 0
        assert [(held["lease_id"], held.get("holder")) for held in status["leases"]] == [
            (lease.lease_id, "pytest-backup")
        ]
        assert {"text.sqlite3", "vectors/data.mdb"} <= {f["path"] for f in lease.files}
        # SQLite was checkpointed: nothing but the main database file is left.
        assert not [n for n in os.listdir(daemon.data) if n.endswith(("-wal", "-shm"))]
        with pytest.raises(ctxd.Released):
            col.count()
        excluded = {os.path.normpath(p) for p in lease.exclude}
        shutil.copytree(
            daemon.data,
            copy,
            ignore=lambda d, names: [
                n for n in names if os.path.relpath(os.path.join(d, n), daemon.data) in excluded
            ],
        )
    # Resumed on exit.
    assert client.health()["state"] == "serving"
    assert client.status()["leases"] == []
    col.upsert(ids=["after"], documents=["written after the copy"])
    # The copy is a data directory of its own, holding exactly what was there when released.
    second = start_daemon(data=copy, socket=scratch / "copy.sock")
    with second.client() as other:
        copied = other.get_collection("notes")
        assert (copied.dimension, copied.distance) == (3, "euclidean")
        assert everything(copied) == before
        assert other.check()["passed"] is True


def test_release_context_manager_resumes_when_the_block_raises(client):
    col = seed(client)
    with pytest.raises(KeyError):
        with client.release(ttl=60):
            raise KeyError("backup tool failed")
    assert client.health()["state"] == "serving"
    assert col.count() == 30


def test_lease_ended_inside_the_block_is_reported(client, daemon):
    with pytest.raises(ctxd.LeaseNotFound, match="ended before"):
        with client.release(ttl=60):
            with daemon.client() as other:
                other.resume(all=True)  # as if the lease had expired
    assert client.health()["state"] == "serving"


def test_plain_release_and_resume(client):
    col = seed(client)
    lease = client.release(ttl=datetime.timedelta(minutes=2), holder="hook")
    assert client.health()["state"] == "released"
    assert lease.holder == "hook" and lease.generation > 0
    result = client.resume(lease)
    assert result == {"state": "serving", "leases": []}
    assert col.count() == 30
    with pytest.raises(ctxd.LeaseNotFound):
        client.resume(lease.lease_id)
    with pytest.raises(ValueError):
        client.resume()


def test_several_leases_and_resume_all(client):
    first = client.release(ttl=60, holder="one")
    second = client.release(ttl=60, holder="two")
    remaining = client.resume(first)
    assert remaining["state"] == "released"
    assert [held["lease_id"] for held in remaining["leases"]] == [second.lease_id]
    assert client.resume(all=True) == {"state": "serving", "leases": []}


def test_renew_extends_a_lease(client):
    lease = client.release(ttl=30)
    old = lease.expires_at
    new = lease.renew(600)
    assert new == lease.expires_at and new >= old + 500_000
    lease.resume()
    assert client.health()["state"] == "serving"


def test_snapshot_and_check(client, start_daemon, scratch, monkeypatch):
    col = seed(client)
    before = everything(col)
    monkeypatch.chdir(scratch)
    snapshot = client.snapshot("snap")  # relative to this process's working directory
    assert snapshot["path"] == str(scratch / "snap")
    assert snapshot["generation"] == client.status()["generation"]
    assert {"text.sqlite3", "vectors/data.mdb"} <= {f["path"] for f in snapshot["files"]}
    assert all(len(f["sha256"]) == 64 for f in snapshot["files"])
    check = client.check()
    assert check["passed"] is True
    assert set(check["details"]) == {"text", "vectors", "consistency"}
    assert all(part["ok"] and part["problems"] == [] for part in check["details"].values())
    # Reads and writes continued; the snapshot holds the state at its generation.
    col.delete(ids=["doc-000"])
    snap_daemon = start_daemon(data=scratch / "snap", socket=scratch / "snap.sock")
    with snap_daemon.client() as other:
        assert everything(other.get_collection("notes")) == before
        assert other.check()["passed"] is True


def test_snapshot_streams_into_a_file_object_and_restores(client, start_daemon, scratch, ctxd_bin):
    import hashlib
    import io
    import subprocess
    import tarfile

    col = seed(client)
    before = everything(col)
    tmp = scratch / "stream-tmp"
    tmp.mkdir()
    sink = io.BytesIO()
    streamed = client.snapshot(sink, tmp_dir=tmp)
    data = sink.getvalue()
    assert streamed["bytes"] == len(data)
    assert streamed["generation"] == client.status()["generation"]
    assert list(tmp.iterdir()) == []  # the daemon's temporary copy is gone
    # A tar whose members are the manifest and the store files, as the reply says.
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        assert names == ["manifest.json", "ctxd.json", "text.sqlite3", "vectors/data.mdb"]
        for f in streamed["files"]:
            content = archive.extractfile(f["path"]).read()
            assert hashlib.sha256(content).hexdigest() == f["sha256"]
    # The connection is in step after the stream.
    assert client.ping() is None
    col.delete(ids=["doc-000"])
    # `ctxd restore -` from the bytes gives back the state at the snapshot.
    other = start_daemon(data=scratch / "other", socket=scratch / "other.sock")
    restored = subprocess.run(
        [ctxd_bin, "--socket", str(scratch / "other.sock"), "restore", "-"],
        input=data,
        capture_output=True,
    )
    assert restored.returncode == 0, restored.stderr
    with other.client() as c:
        assert everything(c.get_collection("notes")) == before


def test_snapshot_stream_stops_when_the_file_object_fails(client, scratch):
    seed(client)
    tmp = scratch / "stream-tmp"
    tmp.mkdir()

    class Full:
        def write(self, data):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        client.snapshot(Full(), tmp_dir=tmp)
    # The next call reconnects; the daemon removed its copy when the reader went away.
    assert client.ping() is None
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=30)
    while list(tmp.iterdir()) and datetime.datetime.now() < deadline:
        client.ping()
    assert list(tmp.iterdir()) == []


def test_snapshot_keep_and_tar_files(client, scratch):
    seed(client)
    kept = scratch / "kept"
    kept.mkdir()
    first = client.snapshot(kept, keep=1, format="tar")
    assert os.path.basename(first["path"]).startswith("ctxd-")
    assert first["path"].endswith(f"-g{first['generation']}.tar")
    one = client.snapshot(scratch / "one.tar")
    assert os.path.isfile(one["path"])
