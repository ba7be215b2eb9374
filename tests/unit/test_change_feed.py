"""The change feed's paging and retention over the in-memory chunk store (the protocol's
fake; the Table one is driven end to end in tests/e2e/test_change_feed.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.app import changes
from shared.run.steps import change_feed
from shared.store import feed_chunks
from shared.store.protocols import FeedChunks
from tests.support.memory_store import MemoryChunks

NOW = dt.datetime(2026, 12, 2, 4, 0, tzinfo=dt.UTC)


def changes_of(run: int, n: int) -> list[dict[str, Any]]:
    return [{"kind": "create_user", "userId": f"u-{run}-{i}", "entraId": f"e-{i}",
             "reason": "new_in_entra", "rule": "R2", "before": {}, "after": {"n": i},
             "message": "x"} for i in range(n)]


async def follow(chunks: FeedChunks, after: str | None, size: int,
                 now: dt.datetime = NOW) -> tuple[list[dict[str, Any]], str]:
    items: list[dict[str, Any]] = []
    while True:
        found, cursor = await changes.page(chunks, after, size, now)
        assert len(found) <= size
        if not found:
            return items, cursor
        items += found
        after = cursor


@settings(max_examples=40, deadline=None)
@given(runs=st.lists(st.integers(0, 40), min_size=1, max_size=4),
       chunk=st.integers(1, 7), size=st.integers(1, 13))
def test_every_entry_once_in_order_whatever_the_page_and_chunk_sizes(
        runs: list[int], chunk: int, size: int) -> None:

    async def scenario() -> None:
        chunks = MemoryChunks()
        expected: list[tuple[str, str]] = []
        cursor: str | None = None
        seen: list[dict[str, Any]] = []
        for number, count in enumerate(runs):
            run_id = f"20261202T0{number}0000Z-0000000{number}"
            await change_feed.record_run(chunks, run_id, changes_of(number, count),
                                         NOW + dt.timedelta(seconds=number),
                                         chunk_changes=chunk)
            expected += [(run_id, f"u-{number}-{i}") for i in range(count)]
            # Emply reads between runs, from the cursor it kept.
            found, cursor = await follow(chunks, cursor, size)
            seen += found
        assert [(i["runId"], i["userId"]) for i in seen] == expected
        everything, last = await follow(chunks, None, size)
        assert [(i["runId"], i["userId"]) for i in everything] == expected
        # Caught up: an empty page and the same cursor.
        assert await changes.page(chunks, last, size, NOW) == ([], last)

    asyncio.run(scenario())


def test_an_entry_is_the_change_with_its_run_and_time() -> None:
    chunks = MemoryChunks()
    [change] = changes_of(0, 1)
    asyncio.run(change_feed.record_run(chunks, "20261202T040000Z-1a2b3c4d", [change], NOW))
    [entry] = asyncio.run(follow(chunks, None, 10))[0]
    assert entry == {**change, "runId": "20261202T040000Z-1a2b3c4d",
                     "at": "2026-12-02T04:00:00.000Z"}


def test_a_run_is_stored_in_chunks_not_one_entity_per_change() -> None:
    chunks = MemoryChunks()
    written = asyncio.run(change_feed.record_run(chunks, "20261202T040000Z-1a2b3c4d",
                                                 changes_of(0, 2500), NOW))
    assert written == 3 == len(chunks.chunks)
    assert sorted(c.count for c in chunks.chunks.values()) == [500, 1000, 1000]


def test_a_chunk_too_large_for_one_entity_is_split() -> None:
    big = [{"kind": "update_user", "userId": f"u-{i}", "reason": "r",
            "before": {}, "after": {"blob": random.Random(i).randbytes(60_000).hex()}}
           for i in range(40)]
    chunks = MemoryChunks()
    written = asyncio.run(change_feed.record_run(chunks, "20261202T040000Z-1a2b3c4d",
                                                 big, NOW))
    assert written > 1
    stored = [c for _k, c in sorted(chunks.chunks.items())]
    assert all(len(c.payload) <= feed_chunks.PART_BYTES * feed_chunks.MAX_PARTS
               for c in stored)
    assert [e["userId"] for c in stored for e in c.changes()] == [f"u-{i}" for i in range(40)]


def test_retention_drops_old_chunks_and_expires_their_cursors() -> None:
    async def scenario() -> None:
        chunks = MemoryChunks()
        old = NOW - dt.timedelta(days=change_feed.RETENTION_DAYS + 1)
        await change_feed.record_run(chunks, "20260901T040000Z-00000001", changes_of(1, 3),
                                     old)
        _items, cursor = await follow(chunks, None, 10, now=old)
        await change_feed.record_run(chunks, "20261202T040000Z-00000002", changes_of(2, 2),
                                     NOW)
        assert len(chunks.chunks) == 1  # the old run's chunk is gone
        with pytest.raises(changes.CursorExpired):
            await changes.page(chunks, cursor, 10, NOW)
        fresh, _ = await follow(chunks, None, 10)
        assert [i["userId"] for i in fresh] == ["u-2-0", "u-2-1"]

    asyncio.run(scenario())


@pytest.mark.parametrize("cursor", ["", "!!", "bm9wZQ", changes.encode_cursor("x", 0),
                                    changes.encode_cursor(
                                        "20261202T040000000Z_r_000000", -1),
                                    changes.encode_cursor(
                                        "20261399T250000000Z_r_000000", 0)])
def test_a_cursor_not_handed_out_is_refused(cursor: str) -> None:
    with pytest.raises(changes.BadCursor):
        changes.decode_cursor(cursor, NOW)
