"""``ctxd mcp`` driven by the official MCP Python SDK (``mcp`` 2.3.0): the handshake, the tool
list with its schemas, every tool, errors an agent can read, and 20 concurrent sessions on one
data directory sharing one daemon, which stops (every file closed) when the last session ends.

The binary is ``$CTXD_BIN`` (``run-tests`` sets it); each test has its own data directory.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

# The main suite's /proc helpers (tests/procs.py), shared by every suite.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from procs import holders_of  # noqa: E402

BIN = os.environ.get("CTXD_BIN", "ctxd")


@pytest.fixture
def data_dir() -> AsyncIterator[str]:
    path = tempfile.mkdtemp(prefix="ctxd-mcp-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@asynccontextmanager
async def session(data: str, *extra: str) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=BIN,
        args=["mcp", "--data", data, *extra],
        # The SDK passes only a few variables on; the runtime directory decides the socket.
        env={k: v for k, v in os.environ.items() if k in ("XDG_RUNTIME_DIR", "TMPDIR", "RUST_LOG")},
    )
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as client:
            await client.initialize()
            yield client


def result(call: Any) -> Dict[str, Any]:
    assert not call.is_error, call.content
    return call.structured_content


def processes_named(word: str) -> List[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and os.path.basename(argv[0]) == b"ctxd" and argv[1] == word.encode():
            found.append(int(pid))
    return found


async def test_every_tool_through_the_official_sdk(data_dir: str) -> None:
    async with session(data_dir) as client:
        listed = await client.list_tools()
        tools = {tool.name: tool for tool in listed.tools}
        assert set(tools) == {
            "store_document",
            "search",
            "get_documents",
            "delete_documents",
            "list_collections",
        }
        assert tools["store_document"].input_schema["required"] == ["text"]
        assert "query" in tools["search"].input_schema["properties"]

        stored = result(
            await client.call_tool(
                "store_document", {"text": "Sea otters hold hands while they sleep", "metadata": {"topic": "otters"}}
            )
        )
        assert len(stored["id"]) == 36  # a generated UUID
        result(await client.call_tool("store_document", {"text": "Herons fish in shallow water", "id": "heron"}))
        result(
            await client.call_tool(
                "store_document", {"text": "Otters use stones as tools", "id": "tools", "metadata": {"topic": "otters"}}
            )
        )

        hits = result(await client.call_tool("search", {"query": "otters", "k": 5}))["documents"]
        assert {h["id"] for h in hits} == {stored["id"], "tools"}
        assert all(h["score"] > 0 for h in hits)
        filtered = result(
            await client.call_tool("search", {"query": "otters", "filter": {"topic": {"$ne": "otters"}}})
        )["documents"]
        assert filtered == []

        got = result(await client.call_tool("get_documents", {"ids": ["heron", "missing"]}))
        assert got["documents"] == [{"id": "heron", "text": "Herons fish in shallow water", "metadata": None}]

        listed = result(await client.call_tool("list_collections"))["collections"]
        assert listed == [{"name": "memory", "count": 3, "embedder": None}]

        deleted = result(await client.call_tool("delete_documents", {"filter": {"topic": "otters"}}))
        assert deleted == {"deleted": 2}

        # Errors an agent can read and act on (tool errors, not protocol errors).
        refused = await client.call_tool("delete_documents", {})
        assert refused.is_error and "give `ids`" in refused.content[0].text
        bad = await client.call_tool("search", {"query": "x", "filter": {"$nope": 1}})
        assert bad.is_error and "filter" in bad.content[0].text
        missing = await client.call_tool("get_documents", {"ids": ["a"], "collection": "nope"})
        assert missing.is_error and "nope" in missing.content[0].text
        wrong = await client.call_tool("search", {"k": 3})
        assert wrong.is_error  # `query` is required


async def test_twenty_sessions_share_one_daemon_and_leave_nothing_behind(data_dir: str) -> None:
    async def agent(i: int, stored: asyncio.Barrier) -> List[str]:
        async with session(data_dir) as client:
            for j in range(3):
                result(
                    await client.call_tool(
                        "store_document",
                        {"text": f"agent {i} remembers fact {j}", "id": f"a{i}-{j}", "metadata": {"agent": i}},
                    )
                )
            await stored.wait()  # every session has written
            everyone = [f"a{k}-{j}" for k in range(20) for j in range(3)]
            got = result(await client.call_tool("get_documents", {"ids": everyone}))["documents"]
            counts = result(await client.call_tool("list_collections"))["collections"]
            assert counts == [{"name": "memory", "count": 60, "embedder": None}]
            hits = result(await client.call_tool("search", {"query": f"agent {(i + 1) % 20}", "k": 3}))
            assert hits["documents"], "another session's writes are searchable"
            return [doc["id"] for doc in got]

    barrier = asyncio.Barrier(20)
    seen = await asyncio.gather(*(agent(i, barrier) for i in range(20)))
    assert all(len(ids) == 60 for ids in seen), "every write is visible to every session"
    # Every session closed its stdin and exited; the daemon the first one started has stopped
    # with the last, every file closed.
    assert processes_named("mcp") == []
    # The last session's `ctxd mcp` returned from `detach` only once the daemon had closed its
    # files, before it exited.
    assert holders_of(data_dir) == []


MODEL = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "..", "shared", "data", "models", "all-MiniLM-L6-v2"
)


@pytest.mark.skipif(not os.path.isdir(MODEL), reason="the shared model is not here")
async def test_search_is_by_meaning_when_the_collection_embeds(data_dir: str) -> None:
    model = os.path.realpath(MODEL)
    async with session(data_dir, "--embedder", "minilm", "--model", f"minilm={model}") as client:
        listed = result(await client.call_tool("list_collections"))["collections"]
        assert listed == [{"name": "memory", "count": 0, "embedder": "minilm"}]
        for doc_id, text in [
            ("cat", "The cat slept on the warm windowsill all afternoon."),
            ("tax", "Quarterly tax filings are due at the end of the month."),
            ("boat", "We sailed the small boat across the bay at dawn."),
        ]:
            result(await client.call_tool("store_document", {"text": text, "id": doc_id}))
        # No word in common with the document it should find.
        hits = result(await client.call_tool("search", {"query": "a kitten napping", "k": 1}))
        assert [h["id"] for h in hits["documents"]] == ["cat"]
