"""Connecting, the handshake, timeouts, and the reconnect rules (reads once, writes never)."""

import json
import socket
import threading
from typing import Callable, List, Optional, Tuple

import pytest

import ctxd
from ctxd import _wire


class FakeDaemon:
    """A scripted stand-in for the daemon, for failures a real one does not produce on cue.

    ``answer(connection_number, request)`` returns the reply object, or ``None`` to close the
    connection without replying. ``hello`` is answered like protocol 1 unless ``answer``
    handles it.
    """

    def __init__(self, path: str, answer: Callable[[int, dict], Optional[dict]]) -> None:
        self.answer = answer
        self.requests: List[Tuple[int, dict]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(8)
        self.held: List[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        number = 0
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            number += 1
            threading.Thread(target=self._session, args=(number, conn), daemon=True).start()

    def _session(self, number: int, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        for line in reader:
            request = json.loads(line)
            self.requests.append((number, request))
            reply = self.answer(number, request)
            if reply is None and request["op"] == "hello":
                reply = {"ok": True, "protocol": 1, "version": "fake", "pid": 1, "state": "serving"}
            if reply is None:
                reader.close()
                conn.close()
                return
            if reply == "hold":
                self.held.append(conn)
                continue
            reply = {"id": request.get("id"), **reply}  # a reply may name another id
            conn.sendall(json.dumps(reply).encode() + b"\n")
        conn.close()

    def ops(self) -> List[Tuple[int, str]]:
        return [(number, request["op"]) for number, request in self.requests]

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def fake(scratch):
    fakes: List[FakeDaemon] = []

    def start(answer):
        fake = FakeDaemon(str(scratch / f"fake-{len(fakes)}.sock"), answer)
        fakes.append(fake)
        return fake

    yield start
    for f in fakes:
        f.close()


def test_not_running_names_the_socket_and_the_fix(scratch):
    missing = scratch / "nobody-here.sock"
    with pytest.raises(ctxd.NotRunning) as caught:
        ctxd.Client(missing)
    assert caught.value.socket == str(missing)
    assert str(missing) in str(caught.value)
    assert "ctxd serve" in str(caught.value)
    assert isinstance(caught.value, ctxd.TransportError)


def test_stale_socket_file_is_not_running(scratch):
    path = scratch / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))  # a socket file nobody listens on, as after kill -9
    leftover.close()
    with pytest.raises(ctxd.NotRunning):
        ctxd.Client(path)


def test_handshake_reports_the_daemon(client, daemon):
    assert client.server["protocol"] == 1
    assert client.server["pid"] == daemon.pid
    assert client.server["state"] == "serving"


def test_daemon_refusing_our_protocol_is_a_protocol_mismatch(daemon, monkeypatch):
    monkeypatch.setattr(_wire, "PROTOCOL_VERSION", 2)
    with pytest.raises(ctxd.ProtocolMismatch) as caught:
        daemon.client()
    assert caught.value.code == "unsupported_protocol"
    assert caught.value.details == {"supported": [1]}
    assert "protocol 2" in str(caught.value)


def test_daemon_answering_another_protocol_is_a_protocol_mismatch(fake):
    def answer(_, request):
        if request["op"] == "hello":
            return {"ok": True, "protocol": 2, "version": "9.0.0", "pid": 1, "state": "serving"}
        return {"ok": True}

    server = fake(answer)
    with pytest.raises(ctxd.ProtocolMismatch) as caught:
        ctxd.Client(server.listener.getsockname())
    assert caught.value.code is None
    assert caught.value.details == {"client": 1, "daemon": 2}


def test_read_is_sent_again_once_after_the_connection_breaks(fake):
    def answer(number, request):
        if request["op"] == "count":
            # The first connection dies with the request in flight; the second answers.
            return None if number == 1 else {"ok": True, "count": 7}
        return None

    server = fake(answer)
    with ctxd.Client(server.listener.getsockname()) as client:
        assert client.call("count", collection="notes") == {"count": 7}
    assert server.ops() == [(1, "hello"), (1, "count"), (2, "hello"), (2, "count")]


def test_read_is_not_sent_a_third_time(fake):
    server = fake(lambda number, request: None)  # every count kills its connection
    with ctxd.Client(server.listener.getsockname()) as client:
        with pytest.raises(ctxd.ConnectionLost):
            client.call("count", collection="notes")
    assert [op for _, op in server.ops()].count("count") == 2


def test_write_is_never_sent_again(fake):
    server = fake(lambda number, request: None)  # the upsert's connection dies, unanswered
    with ctxd.Client(server.listener.getsockname()) as client:
        col = ctxd.Collection(
            client, {"name": "notes", "dimension": 2, "distance": "cosine", "tokenizer": "porter"}
        )
        with pytest.raises(ctxd.ConnectionLost) as caught:
            col.upsert(ids=["a"], documents=["text"])
        assert "may or may not have been applied" in str(caught.value)
    assert [op for _, op in server.ops()].count("upsert") == 1


def test_timeout_drops_the_connection_and_the_next_call_reconnects(fake):
    def answer(number, request):
        if request["op"] == "ping":
            return "hold" if number == 1 else {"ok": True}
        return None

    server = fake(answer)
    with ctxd.Client(server.listener.getsockname(), timeout=0.2) as client:
        with pytest.raises(ctxd.Timeout):
            client.ping()
        client.ping()
    assert server.ops() == [(1, "hello"), (1, "ping"), (2, "hello"), (2, "ping")]


def test_reply_to_another_request_is_a_protocol_error(fake):
    def answer(number, request):
        if request["op"] == "ping":
            return {"ok": True} if number == 2 else {"ok": True, "id": 999}
        return None

    server = fake(answer)
    with ctxd.Client(server.listener.getsockname()) as client:
        with pytest.raises(ctxd.ProtocolError, match="999"):
            client.ping()
        client.ping()  # on a new connection: the old one was out of step
    assert server.ops() == [(1, "hello"), (1, "ping"), (2, "hello"), (2, "ping")]


def test_reconnects_after_the_daemon_restarts(start_daemon):
    first = start_daemon()
    client = first.client()
    col = client.create_collection("notes", dimension=2)
    col.upsert(ids=["a", "b"], documents=["one", "two"])
    first.stop()  # closes every connection, including the client's
    second = start_daemon(data=first.data, socket=first.socket)
    # A read on the dead connection: the client notices and reconnects.
    assert col.count() == 2
    assert client.server["pid"] == second.pid != first.pid
    # A write after a restart also goes through: the dead connection is noticed before sending.
    second.stop()
    third = start_daemon(data=first.data, socket=first.socket)
    assert col.upsert(ids=["c"], documents=["three"]) == 1
    assert client.server["pid"] == third.pid
    assert col.get(ids=["c"])["documents"] == ["three"]
    client.close()


def test_daemon_gone_for_good_is_not_running(start_daemon):
    daemon = start_daemon()
    client = daemon.client()
    daemon.stop()
    with pytest.raises(ctxd.NotRunning):
        client.ping()


def test_close_is_final_and_idempotent(daemon):
    client = daemon.client()
    client.close()
    client.close()
    with pytest.raises(ctxd.Error, match="closed"):
        client.ping()
    with daemon.client() as c:
        c.ping()
    with pytest.raises(ctxd.Error):
        c.ping()
