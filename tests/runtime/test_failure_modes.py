"""Failure modes found in review: each one is a way an invariant could break off the happy path."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from engine.catalog import load_catalog
from engine.core.events import FillReport, OrderUpdate
from engine.core.groups import parse_group
from engine.core.model import GroupState, OrderStatus, Side
from engine.paper.faults import FaultProfile
from engine.runtime import commands
from engine.runtime.engine import EngineFailure
from engine.runtime.state import EngineConfig
from tests.runtime.harness import OPERATOR, TRADER, Harness, SimulatedCrash, crash_at, group, seed_resting_order


def resting_group(group_id: str = "G1"):
    return parse_group(
        {
            "group_id": group_id,
            "legs": [
                {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 150, "limit_price": "0.05"},
                {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )


async def poll(predicate, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.01)):
        if await predicate():
            return True
        await asyncio.sleep(0.01)
    return False


async def test_after_a_rolled_back_transaction_the_engine_takes_no_more_commands(harness: Harness) -> None:
    engine = await harness.start()
    await engine.launch(resting_group(), TRADER)
    coid, bid = (
        await harness.journal.fetch(  # type: ignore[union-attr]
            "SELECT client_order_id, broker_order_id FROM intents"
        )
    )[0]
    poisoned = FillReport("TPOISON", bid, coid, "NIFTY26DEC24200CE", Side.BUY, 75, -1, 10**13)
    with pytest.raises(sqlite3.IntegrityError):
        await engine.ingest([poisoned])
    with pytest.raises(EngineFailure, match="restart it to recover"):
        await engine.launch(group("G2"), TRADER)
    with pytest.raises(EngineFailure):
        await engine.ingest([poisoned])
    assert len(await harness.exchange_client_ids()) == 1, "nothing was sent after the failure"


async def test_order_adopted_without_an_ack_still_times_out_in_broker_time(harness: Harness) -> None:
    exchange_ms = [1_800_000_000_000]
    await harness.open_broker(FaultProfile(lost_ack_rate=1.0), exchange_clock=lambda: exchange_ms[0])
    engine = await harness.start(config=EngineConfig(order_timeout_ms=1000, max_hedge_depth=0), fake_clock=True)
    await engine.launch(resting_group(), TRADER)
    journal = harness.journal
    assert journal

    async def adopted() -> bool:
        rows = await journal.fetch("SELECT status, ts_ack_exchange_ms FROM intents")
        return rows == [("SENT", exchange_ms[0])]

    assert await poll(adopted), await journal.fetch("SELECT status, order_status, ts_ack_exchange_ms FROM intents")
    exchange_ms[0] += 999
    harness.clock_ns += 999_000_000
    await asyncio.sleep(0.2)  # several ticks: a millisecond before the deadline nothing happens
    assert (await journal.fetch("SELECT order_status FROM intents")) == [("ACCEPTED",)]
    exchange_ms[0] += 2
    harness.clock_ns += 2_000_000

    async def cancelled() -> bool:
        return (await journal.fetch("SELECT order_status FROM intents")) == [("CANCELLED",)]

    assert await poll(cancelled)
    assert await engine.wait_settled(5)
    assert engine.book.groups["G1"].state is GroupState.FAILED


async def test_a_refused_event_does_not_move_broker_time(harness: Harness) -> None:
    engine = await harness.start(fake_clock=True)
    await engine.launch(group("G1"), TRADER)
    assert await engine.wait_settled(5)
    before = engine.clock.now_ms(harness.clock_ns)
    hour_later = before + 3_600_000
    await engine.ingest([FillReport("TX", "PX999", "NOTOURS", "NIFTY26DEC24200CE", Side.BUY, 75, 5, hour_later)])
    assert engine.clock.now_ms(harness.clock_ns) == before


async def test_a_refused_report_keeps_its_key_free_and_pending_cancel_can_be_rejected(harness: Harness) -> None:
    engine = await harness.start()
    await seed_resting_order(harness, engine)
    journal = harness.journal
    assert journal
    await engine.ingest(
        [
            OrderUpdate("PX77", "C1", OrderStatus.PENDING_CANCEL, 0, 1),
            OrderUpdate("PX77", "C1", OrderStatus.ACCEPTED, 0, 2),
        ]
    )  # late: refused
    keys = {r[0] for r in await journal.fetch("SELECT event_key FROM processed_events")}
    assert "S:PX77:PENDING_CANCEL:0" in keys and "S:PX77:ACCEPTED:0" not in keys
    await engine.ingest([OrderUpdate("PX77", "C1", OrderStatus.REJECTED, 0, 3)])
    assert (await journal.fetch("SELECT order_status, status FROM intents")) == [("REJECTED", "REJECTED")]


async def test_an_approved_retry_and_the_closed_orphan_commit_together(harness: Harness) -> None:
    engine = await harness.start(crash_hook=crash_at("after_intent_commit"))
    with pytest.raises(SimulatedCrash):
        await engine.launch(group("G1"), TRADER)
    await harness.crash()
    coid = harness.first_intent_id()
    engine = await harness.start(crash_hook=crash_at("before_retry_commit"))
    with pytest.raises(SimulatedCrash):
        await commands.approve_retry(engine, coid, OPERATOR)
    await harness.crash()

    engine = await harness.start()
    doc = await harness.document()
    assert [(i["client_order_id"], i["status"]) for i in doc["intents"]] == [(coid, "ORPHANED")]
    assert [e["status"] for e in doc["escalations"]] == ["OPEN"]
    assert await harness.exchange_client_ids() == []
    retry = await commands.approve_retry(engine, coid, OPERATOR)
    assert await engine.wait_settled(10)
    hedge_ids = [o.client_order_id for o in await harness.broker.orders() if o.symbol == spec_hedge()]  # type: ignore[union-attr]
    assert hedge_ids == [retry.client_order_id]


def spec_hedge() -> str:
    return group("X").hedge.symbol


async def test_a_second_engine_on_the_same_journal_is_refused_naming_the_first(harness: Harness) -> None:
    """One engine per journal: two deciding engines on one file corrupted it (issue 10's first
    finding). The lease is an OS lock, so a crashed holder never leaves it stuck."""
    from engine.runtime.engine import Engine
    from engine.store.journal import Journal
    from engine.store.migrations import JournalError

    await harness.start()
    second = await Journal.open(harness.db)
    try:
        other = Engine(second, harness.broker, harness.catalog)  # type: ignore[arg-type]
        held = r"already has an engine \(pid \d+ of .* on .*\); one engine per journal"
        with pytest.raises(JournalError, match=held):
            await other.start()
    finally:
        await second.close()
    await harness.crash()  # the holder dies: the OS drops its lock
    assert (await harness.start()) is not None
