"""Durable commits pay for sends, nothing else: one group reaching HEDGED uses at most as many
synchronous=FULL commits as it has broker sends, plus one (it took 14 before the step refactor).
Other batches (acks, fills, status reports) commit with synchronous=NORMAL: a power cut can
lose only those, and recovery re-derives them from the broker."""

from __future__ import annotations

import asyncio

from engine.core.model import GroupState
from tests.runtime.harness import TRADER, Harness, group


async def test_a_group_reaches_hedged_with_one_full_commit_per_send(harness: Harness) -> None:
    broker = await harness.open_broker()
    engine = await harness.start()
    journal = harness.journal
    assert journal is not None
    durable, commits = journal.durable_commits, journal.commits
    await engine.launch(group("G1", qty=2250), TRADER)  # above the 1800 freeze: two hedge slices
    for _ in range(500):
        if engine.book.groups["G1"].state is GroupState.HEDGED:
            break
        await broker.step()
        await engine.quiesce()
        await asyncio.sleep(0)  # let the paper feed hand over what it published
    assert engine.book.groups["G1"].state is GroupState.HEDGED
    sends = len(await harness.exchange_client_ids())
    assert sends == 4, "two hedge slices, two risk slices"
    assert journal.durable_commits - durable <= sends + 1
    assert journal.commits - commits > journal.durable_commits - durable, "acks and fills commit too"
