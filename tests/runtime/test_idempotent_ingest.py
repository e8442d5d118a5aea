"""Seed defects 4, 5 and 6 through the real engine and journal: events apply at most once, the
dedupe key commits with its effect, id-less events are refused, and dedupe never forgets."""

from __future__ import annotations

import sqlite3

import pytest

from engine.core.events import FillReport, OrderUpdate
from engine.core.model import OrderStatus, Side
from tests.runtime.harness import TRADER, Harness, group, seed_resting_order

HOUR_NS = 3600 * 1_000_000_000


async def _hedged(harness: Harness, fake_clock: bool = False):
    engine = await harness.start(fake_clock=fake_clock)
    await engine.launch(group("G1"), TRADER)
    assert await engine.wait_settled(10)
    return engine


async def _first_fill(harness: Harness) -> FillReport:
    (trade_id, coid, symbol, side, qty, price, ts) = (
        await harness.journal.fetch(  # type: ignore[union-attr]
            "SELECT trade_id, client_order_id, symbol, side, qty, price_paise, ts_exchange_ms FROM fills LIMIT 1"
        )
    )[0]
    (bid,) = (
        await harness.journal.fetch(  # type: ignore[union-attr]
            "SELECT broker_order_id FROM intents WHERE client_order_id=?", (coid,)
        )
    )[0]
    return FillReport(trade_id, bid, coid, symbol, Side(side), qty, price, ts)


async def test_duplicate_fill_is_never_applied_twice_even_across_a_restart(harness: Harness) -> None:
    await _hedged(harness)
    fill = await _first_fill(harness)
    before = await harness.document()
    await harness.crash()
    engine = await harness.start()
    await engine.ingest([fill, fill])
    after = await harness.document()
    assert after["positions"] == before["positions"]
    assert len(after["fills"]) == len(before["fills"])
    assert after["duplicate_events"] == before["duplicate_events"] + 2


async def test_defect4_key_and_effect_commit_together_or_not_at_all(harness: Harness) -> None:
    from engine.catalog import load_catalog
    from engine.core.groups import parse_group

    engine = await harness.start()
    resting = parse_group(
        {
            "group_id": "G1",
            "legs": [
                {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 150, "limit_price": "0.05"},
                {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )
    await engine.launch(resting, TRADER)
    coid, bid = (
        await harness.journal.fetch(  # type: ignore[union-attr]
            "SELECT client_order_id, broker_order_id FROM intents WHERE role='HEDGE'"
        )
    )[0]
    good = FillReport("TGOOD", bid, coid, "NIFTY26DEC24200CE", Side.BUY, 75, 5, 10**13)
    poisoned = FillReport("TPOISON", bid, coid, "NIFTY26DEC24200CE", Side.BUY, 75, -1, 10**13)
    with pytest.raises(sqlite3.IntegrityError):
        await engine.ingest([good, poisoned])  # the second event's effect fails: the batch rolls back
    keys = {r[0] for r in await harness.journal.fetch("SELECT event_key FROM processed_events")}  # type: ignore[union-attr]
    assert not keys & {"F:TGOOD", "F:TPOISON"}, "no key without its effect"
    assert await harness.journal.fetch("SELECT trade_id FROM fills") == []  # type: ignore[union-attr]

    await harness.crash()  # crash-only: the engine that saw the failure is discarded
    engine = await harness.start()
    await engine.ingest([good, good])
    fills = await harness.journal.fetch("SELECT trade_id, qty FROM fills")  # type: ignore[union-attr]
    assert fills == [("TGOOD", 75)], "the redelivered event applies exactly once"


async def test_defect6_dedupe_does_not_forget_after_24_hours(harness: Harness) -> None:
    await _hedged(harness, fake_clock=True)
    fill = await _first_fill(harness)
    await harness.crash()
    harness.clock_ns += 49 * HOUR_NS
    engine = await harness.start(fake_clock=True)
    await engine.ingest([fill])
    doc = await harness.document()
    assert doc["duplicate_events"] >= 1
    assert doc["positions"]["NIFTY26DEC24200CE"] == 150


async def test_defect5_id_less_event_is_rejected_and_recorded(harness: Harness) -> None:
    engine = await _hedged(harness)
    before = (await harness.document())["rejected_events"]
    await engine.ingest([FillReport("", "PX0000000001", "", "NIFTY26DEC24200CE", Side.BUY, 75, 100, 1)])
    rows = await harness.journal.fetch("SELECT reason FROM rejected_events ORDER BY id DESC LIMIT 1")  # type: ignore[union-attr]
    assert "without a trade id" in rows[0][0]
    assert (await harness.document())["rejected_events"] == before + 1
    assert (await harness.document())["positions"]["NIFTY26DEC24200CE"] == 150


async def test_defect7_out_of_order_and_shrinking_reports_are_ignored_and_kept_with_reasons(
    harness: Harness,
) -> None:

    engine = await harness.start()
    row = await seed_resting_order(harness, engine)
    journal = harness.journal
    assert journal

    await engine.ingest(
        [
            OrderUpdate("PX77", "C1", OrderStatus.PARTIALLY_FILLED, 150, 10),
            OrderUpdate("PX77", "C1", OrderStatus.ACCEPTED, 0, 5),  # the "PENDING" that arrives late
            OrderUpdate("PX77", "C1", OrderStatus.PARTIALLY_FILLED, 75, 8),  # an older, lower cumulative qty
        ]
    )
    state = await journal.fetch("SELECT order_status, filled_qty FROM intents WHERE client_order_id='C1'")
    assert state == [("PARTIALLY_FILLED", 150)]
    reasons = [r[0] for r in await journal.fetch("SELECT reason FROM rejected_events ORDER BY id")]
    assert any("ACCEPTED is not a valid transition from PARTIALLY_FILLED" in r for r in reasons), reasons
    assert any("decrease from 150 to 75" in r for r in reasons), reasons

    await engine.ingest(
        [
            OrderUpdate("PX77", "C1", OrderStatus.PENDING_CANCEL, 150, 11),
            FillReport("T5", "PX77", "C1", row.symbol, Side.BUY, 300, 500, 12),
        ]
    )
    assert (await journal.fetch("SELECT order_status FROM intents WHERE client_order_id='C1'")) == [("FILLED",)]


async def test_event_for_an_unknown_order_is_recorded_not_applied(harness: Harness) -> None:
    engine = await _hedged(harness)
    await engine.ingest([FillReport("TX1", "PX999", "SOMEONEELSE", "NIFTY26DEC24200CE", Side.BUY, 75, 100, 1)])
    rows = await harness.journal.fetch("SELECT reason FROM rejected_events ORDER BY id DESC LIMIT 1")  # type: ignore[union-attr]
    assert "does not know" in rows[0][0]


async def test_journal_commit_latency_is_measured_per_event_batch(harness: Harness) -> None:
    engine = await harness.start()
    at_start = len(engine._commit_us)  # recovery's own inputs (broker time, recover) commit once
    await engine.launch(group("G1"), TRADER)
    assert await engine.wait_settled(10)
    assert len(engine._commit_us) > at_start
    p50, p99 = engine.commit_latency_us() or (0, 0)
    assert 0 < p50 <= p99
