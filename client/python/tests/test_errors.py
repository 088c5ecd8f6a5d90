"""Wire error codes → exceptions: the table, and real daemon errors."""

import math
import pickle
import re

import pytest
from conftest import workspace_root

import ctxd
from ctxd import errors


def wire_codes():
    """Every code of proto/src/error.rs, read from the source so a new code fails this test."""
    source = (workspace_root() / "proto" / "src" / "error.rs").read_text()
    codes = re.findall(r'ErrorCode::\w+ => "([a-z_]+)"', source)
    assert len(codes) >= 16, "could not read the codes from error.rs"
    return codes


def test_every_wire_code_has_its_own_class():
    codes = wire_codes()
    assert sorted(codes) == sorted(ctxd.ERRORS_BY_CODE)
    classes = [ctxd.ERRORS_BY_CODE[code] for code in codes]
    assert len(set(classes)) == len(classes)
    for cls in classes:
        assert issubclass(cls, ctxd.Error) and cls is not ctxd.Error


@pytest.mark.parametrize(
    "code, cls",
    [
        ("collection_not_found", ctxd.CollectionNotFound),
        ("dimension_mismatch", ctxd.DimensionMismatch),
        ("released", ctxd.Released),
        ("unsupported_protocol", ctxd.ProtocolMismatch),
        ("storage", ctxd.StorageError),
    ],
)
def test_from_wire_maps_code_message_and_details(code, cls):
    error = errors.from_wire({"code": code, "message": "it broke", "expected": 4, "received": 3})
    assert type(error) is cls
    assert (error.code, error.message, error.details) == (
        code,
        "it broke",
        {"expected": 4, "received": 3},
    )
    assert str(error) == f"it broke ({code})"


def test_unknown_code_becomes_the_base_class():
    error = errors.from_wire({"code": "quota_exceeded", "message": "too much", "limit": 9})
    assert type(error) is ctxd.Error
    assert error.code == "quota_exceeded" and error.details == {"limit": 9}


def test_errors_survive_pickling():
    error = errors.from_wire({"code": "released", "message": "m", "lease_expires_at": 5})
    error.committed = 1000
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ctxd.Released
    assert (copy.code, copy.message, copy.details, copy.committed) == (
        "released",
        "m",
        {"lease_expires_at": 5},
        1000,
    )
    not_running = pickle.loads(pickle.dumps(ctxd.NotRunning("/x.sock", "no such file")))
    assert not_running.socket == "/x.sock" and "ctxd serve" in str(not_running)


# --- real daemon errors ------------------------------------------------------------------


def test_collection_not_found(client):
    with pytest.raises(ctxd.CollectionNotFound) as caught:
        client.get_collection("nope")
    assert caught.value.code == "collection_not_found"
    assert "nope" in caught.value.message
    col = client.create_collection("gone", dimension=2)
    client.delete_collection("gone")
    with pytest.raises(ctxd.CollectionNotFound):
        col.count()


def test_collection_exists(client):
    client.create_collection("notes", dimension=4)
    with pytest.raises(ctxd.CollectionExists) as caught:
        client.create_collection("notes", dimension=4)
    assert caught.value.code == "collection_exists"


def test_dimension_mismatch_carries_expected_and_received(client):
    col = client.create_collection("notes", dimension=4)
    with pytest.raises(ctxd.DimensionMismatch) as caught:
        col.upsert(ids=["a"], embeddings=[[1.0, 2.0, 3.0]])
    assert caught.value.code == "dimension_mismatch"
    assert caught.value.details == {"expected": 4, "received": 3}
    with pytest.raises(ctxd.DimensionMismatch):
        col.query(query_embeddings=[[1.0, 2.0]])
    assert col.count() == 0


def test_nan_and_infinity_are_invalid_vectors(client):
    col = client.create_collection("notes", dimension=3)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ctxd.InvalidVector) as caught:
            col.upsert(ids=["ok", "bad"], embeddings=[[1, 2, 3], [0.5, bad, 0.0]])
        assert caught.value.code == "invalid_vector"
        assert caught.value.details == {"position": 1}
        assert "bad" in caught.value.message
    with pytest.raises(ctxd.InvalidVector):
        col.query(query_embeddings=[[1.0, math.nan, 0.0]])
    assert col.count() == 0, "nothing of a refused batch is written"


def test_finite_double_beyond_float32_is_refused_by_the_daemon(client):
    col = client.create_collection("notes", dimension=3)
    with pytest.raises(ctxd.InvalidVector) as caught:
        col.upsert(ids=["big"], embeddings=[[0.0, 0.0, 1e39]])
    assert caught.value.details.get("position") == 2
    assert "non-finite" in caught.value.message  # the daemon's wording, not the client's


def test_released(client):
    col = client.create_collection("notes", dimension=2)
    lease = client.release(ttl=60, holder="pytest")
    try:
        with pytest.raises(ctxd.Released) as caught:
            col.count()
        assert caught.value.code == "released"
        assert caught.value.details["lease_expires_at"] == lease.expires_at
    finally:
        client.resume(lease)
    assert col.count() == 0


def test_bad_request_unknown_op_lease_not_found(client, scratch):
    with pytest.raises(ctxd.BadRequest) as caught:
        client.create_collection("bad name", dimension=2)
    assert caught.value.code == "bad_request"
    with pytest.raises(ctxd.BadRequest):
        client.create_collection("notes", dimension=0)
    with pytest.raises(ctxd.UnknownOp) as unknown:
        client.call("serch")
    assert unknown.value.code == "unknown_op"
    with pytest.raises(ctxd.BadRequest):
        client.call("ping", verbose=True)
    with pytest.raises(ctxd.LeaseNotFound):
        client.resume("lease-00000000")
    # An existing snapshot destination is refused before anything is copied, with the one
    # code for "no snapshot was written".
    (scratch / "taken").mkdir()
    with pytest.raises(ctxd.SnapshotFailed, match="already exists"):
        client.snapshot(scratch / "taken")
    # Every error left the connection usable.
    client.ping()


def test_unsupported_filter_operator_is_a_bad_request(client):
    col = client.create_collection("notes", dimension=2)
    with pytest.raises(ctxd.BadRequest) as caught:
        col.get(where={"tags": {"$contains": "x"}})
    assert "$contains" in caught.value.message


def test_frame_too_large_then_the_next_call_reconnects(start_daemon):
    daemon = start_daemon(args=["--max-frame", "4096"])
    with daemon.client() as client:
        col = client.create_collection("notes", dimension=2)
        with pytest.raises(ctxd.FrameTooLarge) as caught:
            col.upsert(ids=["big"], documents=["x" * 10_000])
        assert caught.value.details.get("max_frame") == 4096
        # The daemon closed that connection; a write on a new one goes through.
        assert col.upsert(ids=["small"], documents=["fits"]) == 1
        assert col.count() == 1


def test_add_refuses_existing_ids_and_writes_nothing(client):
    col = client.create_collection("notes", dimension=2)
    col.add(ids=["a", "b"], documents=["one", "two"])
    with pytest.raises(ctxd.DuplicateID) as caught:
        col.add(ids=["c", "b"], documents=["three", "changed"])
    assert caught.value.details == {"ids": ["b"]}
    assert caught.value.code is None
    assert col.get(ids=["b", "c"])["documents"] == ["two"]


def test_repeated_ids_in_one_call_are_refused(client):
    col = client.create_collection("notes", dimension=2)
    for write in (col.add, col.upsert):
        with pytest.raises(ctxd.DuplicateID) as caught:
            write(ids=["a", "b", "a"], documents=["1", "2", "3"])
        assert caught.value.details == {"ids": ["a"]}
    assert col.count() == 0
