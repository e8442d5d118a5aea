"""Reads from other tasks share the engine's one connection, so they must wait for its open
transaction: SQLite shows a connection its own uncommitted rows, and a desk or an audit that read
them could show a counter, an intent or a fill that a rollback then takes away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.store.journal import Journal


async def _value(journal: Journal) -> list[tuple[object, ...]]:
    return await journal.fetch("SELECT value FROM counters WHERE name='isolation'")


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
async def test_a_read_from_another_task_sees_the_transaction_only_once_it_has_ended(
    tmp_path: Path, outcome: str
) -> None:
    journal = await Journal.open(tmp_path / "j.db")
    written, release = asyncio.Event(), asyncio.Event()

    async def writer() -> None:
        with pytest.raises(RuntimeError) if outcome == "rollback" else _nothing():
            async with journal.transaction():
                await journal.bump_counter("isolation")
                assert await _value(journal) == [(1,)]  # the owner reads its own writes
                written.set()
                await release.wait()
                if outcome == "rollback":
                    raise RuntimeError("the step failed")

    task = asyncio.create_task(writer())
    try:
        await written.wait()
        read = asyncio.create_task(_value(journal))
        for _ in range(20):  # the writer is parked mid-transaction; the read must be parked too
            await asyncio.sleep(0)
        early = read.done()
        release.set()
        await task
        assert not early, f"read {read.result()} while the transaction was still open"
        assert await read == ([(1,)] if outcome == "commit" else [])
    finally:
        release.set()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
