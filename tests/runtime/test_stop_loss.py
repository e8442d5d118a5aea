"""Seed defects 10 and 11 against the paper exchange: the SL fallback fires at 2 s of *broker*
time after the trigger (whatever the local wall clock or the exchange's skew), a MARKET order is
sent only after a confirmed cancel and only for the remainder, and an unconfirmed cancel is
escalated instead. A group whose stop completes, or that a trader closes, ends COMPLETED."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine.catalog import load_catalog
from engine.core.groups import parse_group
from engine.runtime import commands
from engine.runtime.state import RoleError
from tests.runtime.harness import RISK, TRADER, Harness

HEDGE, SHORT = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"
LOCAL_WALL_MS = 1_800_000_000_000


def stop_group() -> Any:
    return parse_group(
        {
            "group_id": "G1",
            "stop_loss": {"trigger_price": "250.00"},
            "legs": [
                {"role": "HEDGE", "symbol": HEDGE, "side": "BUY", "qty": 150},
                {"role": "RISK", "symbol": SHORT, "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )


async def until(harness: Harness, sql: str, expected: list[tuple[Any, ...]], seconds: float = 5) -> None:
    journal = harness.journal
    assert journal
    for _ in range(int(seconds / 0.01)):
        if await journal.fetch(sql) == expected:
            return
        await asyncio.sleep(0.01)
    assert await journal.fetch(sql) == expected


class Clocks:
    """The exchange runs 30 s behind the local clock; the local wall clock can jump."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.exchange_ms = LOCAL_WALL_MS - 30_000
        self.wall_ms = LOCAL_WALL_MS

    def advance(self, ms: int) -> None:
        self.exchange_ms += ms
        self.wall_ms += ms
        self.harness.clock_ns += ms * 1_000_000


async def triggered_partly(harness: Harness, clocks: Clocks, cancel_latency_steps: int = 0) -> None:
    broker = await harness.open_broker(
        exchange_clock=lambda: clocks.exchange_ms, cancel_latency_steps=cancel_latency_steps
    )
    engine = await harness.start(fake_clock=True, wall_ms=lambda: clocks.wall_ms)
    await engine.launch(stop_group(), TRADER)
    stop_sql = "SELECT order_type, order_status, qty FROM intents WHERE purpose='STOP'"
    await until(harness, stop_sql, [("SL", "TRIGGER_PENDING", 150)])
    broker.core.set_depth(SHORT, lots_per_level=1, levels=1)
    broker.core.set_price(SHORT, 25050)  # through the 250.00 trigger; the limit (251.25) gets one lot
    await broker.step()
    trigger_ms = clocks.exchange_ms
    await until(
        harness,
        "SELECT order_status, filled_qty, ts_triggered_exchange_ms FROM intents WHERE purpose='STOP'",
        [("PARTIALLY_FILLED", 75, trigger_ms)],
    )
    broker.core.set_depth(SHORT, lots_per_level=20, levels=5)
    broker.core.set_price(SHORT, 25600)  # the market runs away from the limit: the rest will not fill
    await broker.step()


async def test_defect10_fallback_fires_at_two_seconds_of_broker_time_and_covers_only_the_remainder(
    harness: Harness,
) -> None:
    clocks = Clocks(harness)
    await triggered_partly(harness, clocks)
    clocks.advance(1999)
    clocks.wall_ms -= 3_600_000  # the local wall clock jumps back an hour: no decision may notice
    await asyncio.sleep(0.3)  # several engine ticks, one broker millisecond before the deadline
    journal = harness.journal
    assert journal
    assert await journal.fetch("SELECT order_status FROM intents WHERE purpose='STOP'") == [("PARTIALLY_FILLED",)]
    assert await journal.fetch("SELECT COUNT(*) FROM intents WHERE purpose='FALLBACK'") == [(0,)]

    clocks.advance(2)
    await until(harness, "SELECT order_type, side, qty FROM intents WHERE purpose='FALLBACK'", [("MARKET", "BUY", 75)])
    engine = harness.engine
    assert engine and await engine.wait_settled(10)
    # The journal's transition sequence orders what happened (the fake clock makes timestamps equal).
    cancelled_seq = await journal.fetch(
        "SELECT MIN(t.id) FROM transitions t JOIN intents i ON i.client_order_id=t.entity_id"
        " WHERE i.purpose='STOP' AND t.to_state='CANCELLED'"
    )
    fallback_seq = await journal.fetch(
        "SELECT MIN(t.id) FROM transitions t JOIN intents i ON i.client_order_id=t.entity_id WHERE i.purpose='FALLBACK'"
    )
    assert cancelled_seq[0][0] is not None and fallback_seq[0][0] is not None
    assert cancelled_seq[0][0] < fallback_seq[0][0], "MARKET only after the confirmed cancel"
    doc = await harness.document()
    group = doc["groups"][0]
    assert (group["state"], group["reason"]) == ("COMPLETED", "stop-loss executed")
    assert doc["positions"] == await harness.broker.positions() == {}  # type: ignore[union-attr]


async def test_defect11_no_market_order_while_the_cancel_is_unconfirmed_escalate_instead(harness: Harness) -> None:
    clocks = Clocks(harness)
    await triggered_partly(harness, clocks, cancel_latency_steps=1_000_000)  # the venue never confirms
    clocks.advance(2001)
    await until(harness, "SELECT order_status FROM intents WHERE purpose='STOP'", [("PENDING_CANCEL",)])
    clocks.advance(999)
    await asyncio.sleep(0.3)
    journal = harness.journal
    assert journal
    assert await journal.fetch("SELECT COUNT(*) FROM escalations WHERE kind='SL_UNCONFIRMED'") == [(0,)]
    clocks.advance(2)
    await until(
        harness,
        "SELECT kind, unhedged_qty, status FROM escalations WHERE kind='SL_UNCONFIRMED'",
        [("SL_UNCONFIRMED", 75, "OPEN")],
    )
    for _ in range(3):
        clocks.advance(10_000)
        await asyncio.sleep(0.1)
    assert await journal.fetch("SELECT COUNT(*) FROM intents WHERE purpose IN ('FALLBACK','EXIT')") == [(0,)]
    market = [
        o
        for o in await harness.broker.orders()
        if o.order_type.value == "MARKET"
        and o.symbol == SHORT  # type: ignore[union-attr]
        and o.side.value == "BUY"
    ]
    assert market == [], "no MARKET exit while the stop may still fill"


async def test_a_trader_closes_a_hedged_group_risk_leg_first(harness: Harness) -> None:
    clocks = Clocks(harness)
    await harness.open_broker(exchange_clock=lambda: clocks.exchange_ms)
    engine = await harness.start(fake_clock=True)
    await engine.launch(stop_group(), TRADER)
    await until(harness, "SELECT order_status FROM intents WHERE purpose='STOP'", [("TRIGGER_PENDING",)])
    with pytest.raises(RoleError, match="close_group needs the trader role"):
        await commands.close_group(engine, "G1", RISK)
    await commands.close_group(engine, "G1", TRADER)
    assert await engine.wait_settled(10)
    doc = await harness.document()
    assert (doc["groups"][0]["state"], doc["groups"][0]["reason"]) == ("COMPLETED", "closed by trader")
    exits = [(i["role"], i["side"], i["qty"]) for i in doc["intents"] if i["purpose"] == "EXIT"]
    assert exits == [("RISK", "BUY", 150), ("HEDGE", "SELL", 150)], "the short is bought back before the hedge goes"
    stop = next(i for i in doc["intents"] if i["purpose"] == "STOP")
    assert stop["order_status"] == "CANCELLED"
    assert doc["positions"] == await harness.broker.positions() == {}  # type: ignore[union-attr]
