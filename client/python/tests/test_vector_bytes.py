"""Vectors travel as bytes: base64 of little-endian float32 out and back, exact to the bit.

The base64 below was computed outside the project (``struct.pack('<4f', 1, 2, 3, 4)``).
"""

import array
import json
import struct

import pytest

import ctxd
from ctxd import _vectors, _wire

ONE_TO_FOUR = "AACAPwAAAEAAAEBAAACAQA=="


@pytest.fixture
def lines(monkeypatch):
    """Every request line the client writes, as JSON."""
    seen = []
    encode = _wire.encode_request

    def spy(*args, **kwargs):
        line = encode(*args, **kwargs)
        seen.append(json.loads(line))
        return line

    monkeypatch.setattr(_wire, "encode_request", spy)
    return seen


def test_the_encoding_is_little_endian_float32():
    assert _vectors.encode([1, 2, 3, 4]) == ONE_TO_FOUR
    assert _vectors.encode(array.array("f", [1, 2, 3, 4])) == ONE_TO_FOUR
    assert _vectors.encode(memoryview(array.array("f", [1, 2, 3, 4]))) == ONE_TO_FOUR
    assert _vectors.encode((1.0, 2.0, 3.0, 4.0)) == ONE_TO_FOUR
    assert _vectors.decode(ONE_TO_FOUR) == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(TypeError):
        _vectors.encode([1.0, "two"])


def test_vectors_go_as_base64_and_come_back_exact(client, lines):
    col = client.create_collection("v", dimension=4)
    values = [0.1, -0.0, 1e-45, 3.4028234663852886e38]
    col.upsert(ids=["a", "b"], embeddings=[values, [1, 2, 3, 4]])
    upsert = next(line for line in lines if line["op"] == "upsert")
    assert upsert["documents"][1]["vector"] == ONE_TO_FOUR
    assert isinstance(upsert["documents"][0]["vector"], str)

    got = col.get(ids=["a", "b"], include=["embeddings"])
    request = [line for line in lines if line["op"] == "get"][-1]
    assert request["vector_encoding"] == "base64"
    float32 = array.array("f", values).tolist()
    assert got["embeddings"][0] == float32, "float32 values, bit for bit"
    assert struct.pack("<f", got["embeddings"][0][1]) == struct.pack("<f", -0.0)
    assert got["embeddings"][1] == [1.0, 2.0, 3.0, 4.0]

    found = col.query(query_embeddings=[1, 2, 3, 4], n_results=1, include=["embeddings"])
    search = [line for line in lines if line["op"] == "search"][-1]
    assert search["vector"] == ONE_TO_FOUR
    assert search["vector_encoding"] == "base64"
    assert found["ids"] == [["b"]]
    assert found["embeddings"] == [[[1.0, 2.0, 3.0, 4.0]]]


def test_numpy_arrays_are_sent_without_per_value_conversion(client):
    np = pytest.importorskip("numpy")
    col = client.create_collection("v", dimension=4)
    matrix = np.arange(8, dtype=np.float64).reshape(2, 4) / 3
    col.upsert(ids=["x", "y"], embeddings=matrix)
    col.upsert(ids=["z"], embeddings=np.array([1, 2, 3, 4], dtype=np.float32))
    got = col.get(ids=["x", "y", "z"], include=["embeddings"])
    assert got["embeddings"][0] == matrix[0].astype(np.float32).tolist()
    assert got["embeddings"][2] == [1.0, 2.0, 3.0, 4.0]


def test_a_non_finite_value_is_refused_by_the_daemon_with_its_position(client):
    col = client.create_collection("v", dimension=3)
    with pytest.raises(ctxd.InvalidVector) as caught:
        col.upsert(ids=["a"], embeddings=[[0.0, float("nan"), 0.0]])
    assert caught.value.details == {"position": 1}
    assert col.count() == 0
