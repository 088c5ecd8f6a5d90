"""``ctxd.AsyncClient`` / ``AsyncPersistentClient``: the same API as coroutines, against real
daemons; concurrent tasks on one event loop, and the close that waits for the files."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import ctxd
from procs import holders_of, wait_exit


def test_tasks_write_and_read_through_one_async_client(daemon) -> None:
    async def main() -> None:
        async with ctxd.AsyncClient(daemon.socket) as client:
            notes = await client.get_or_create_collection("notes", dimension=2)
            assert notes.name == "notes" and notes.dimension == 2

            async def writer(i: int) -> int:
                return await notes.upsert(
                    ids=[f"{i}-{j}" for j in range(20)],
                    embeddings=[[1.0, float(j)] for j in range(20)],
                    documents=[f"task {i} note {j}" for j in range(20)],
                )

            written = await asyncio.gather(*(writer(i) for i in range(8)))
            assert written == [20] * 8
            assert await notes.count() == 160
            hits = await notes.query(query_texts=["task 3"], n_results=3)
            assert len(hits["ids"][0]) == 3
            assert await notes.update(ids=["3-0"], metadatas=[{"seen": True}]) == 1
            got = await notes.get(where={"seen": True})
            assert got["ids"] == ["3-0"]
            assert [c.name for c in await client.list_collections()] == ["notes"]
            with pytest.raises(ctxd.CollectionNotFound):
                await client.get_collection("nope")

    asyncio.run(main())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_async_persistent_client_closes_every_file(
    ctxd_bin: str, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTXD_BIN", ctxd_bin)
    store = scratch / "store"

    async def main() -> int:
        client = await ctxd.AsyncPersistentClient.connect(store)
        words = await client.get_or_create_collection("words")
        await words.add(ids=["a"], embeddings=[[0.5, 0.5]], documents=["alpha"])
        pid = client.server["pid"]
        await client.close()
        return pid

    pid = asyncio.run(main())
    # close() returned: every file is closed, and the daemon it started ends.
    assert holders_of(store) == []
    assert wait_exit(pid, 20.0)


def test_an_unopened_client_says_how_to_open_it() -> None:
    with pytest.raises(RuntimeError, match="async with"):
        ctxd.AsyncClient().status
