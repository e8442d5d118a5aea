"""Seed defects 9 and 16 against the real paper exchange and a real journal: partial hedge fills
recurse for exactly the remainder after a confirmed cancel, exhaustion is escalated with the exact
qty while other groups keep trading, and a fill racing the cancel is counted, never re-hedged."""

from __future__ import annotations

import asyncio

from engine.catalog import load_catalog
from engine.core.groups import parse_group
from engine.runtime.state import EngineConfig
from tests.runtime.harness import TRADER, Harness, group

HEDGE = "NIFTY26DEC24200CE"


async def _nodes(harness: Harness, group_id: str = "G1") -> list[dict[str, object]]:
    nodes = [n for n in (await harness.document())["hedge_nodes"] if n["group_id"] == group_id]
    return sorted(nodes, key=lambda n: int(str(n["depth"])))


async def test_defect9_two_of_five_lots_then_a_child_for_exactly_three_and_exhaustion_escalated(
    harness: Harness,
) -> None:
    broker = await harness.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=2, levels=1)  # thin: 2 lots, no refill without a step
    engine = await harness.start()
    await engine.launch(group("G1", qty=375), TRADER)
    await engine.launch(group("G2", hedge="BANKNIFTY26DEC52500CE", risk="BANKNIFTY26DEC52000CE", qty=70), TRADER)
    assert await engine.wait_settled(10)

    nodes = await _nodes(harness)
    assert [(n["depth"], n["target_qty"], n["filled_qty"]) for n in nodes] == [
        (0, 375, 150),
        (1, 225, 0),
        (2, 225, 0),
        (3, 225, 0),
    ]
    assert [n["status"] for n in nodes] == ["CHILDED", "CHILDED", "CHILDED", "EXHAUSTED"]
    doc = await harness.document()
    (esc,) = [e for e in doc["escalations"] if e["group_id"] == "G1"]
    assert (esc["kind"], esc["unhedged_qty"], esc["status"]) == ("HEDGE_EXHAUSTED", 225, "OPEN")
    assert sum(int(str(n["filled_qty"])) for n in nodes) + esc["unhedged_qty"] == 375
    states = {g["group_id"]: g["state"] for g in doc["groups"]}
    assert states == {"G1": "HEDGED", "G2": "HEDGED"}, "the exhausted group sold only what its hedge covers"
    assert doc["positions"]["NIFTY26DEC24000CE"] == -150 and doc["positions"][HEDGE] == 150


async def test_defect9_a_fill_racing_the_cancel_is_counted_and_never_rehedged(harness: Harness) -> None:
    exchange_ms = [1_800_000_000_000]
    broker = await harness.open_broker(exchange_clock=lambda: exchange_ms[0], cancel_latency_steps=1)
    broker.core.set_depth(HEDGE, lots_per_level=1, levels=1)
    engine = await harness.start(config=EngineConfig(order_timeout_ms=1000, max_hedge_depth=1), fake_clock=True)
    spec = parse_group(
        {
            "group_id": "G1",
            "legs": [
                {"role": "HEDGE", "symbol": HEDGE, "side": "BUY", "qty": 150, "limit_price": "100.00"},
                {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )
    await engine.launch(spec, TRADER)
    exchange_ms[0] += 1500
    harness.clock_ns += 1_500_000_000
    journal = harness.journal
    assert journal
    for _ in range(500):  # bounded: the engine requests the cancel on its next tick
        if (await journal.fetch("SELECT order_status FROM intents"))[0][0] == "PENDING_CANCEL":
            break
        await asyncio.sleep(0.01)
    assert (await journal.fetch("SELECT order_status FROM intents"))[0][0] == "PENDING_CANCEL"
    broker.core.set_price(HEDGE, 9000)  # the market drops through the limit while the cancel is in flight
    await broker.step()  # one lot fills, then the cancel completes
    await broker.step()
    assert await engine.wait_settled(10)
    nodes = await _nodes(harness)
    assert (nodes[0]["target_qty"], nodes[0]["filled_qty"]) == (150, 75)
    assert nodes[1]["target_qty"] == 75, "only the unfilled remainder is re-hedged"
    assert (await harness.document())["positions"] == await broker.positions()


async def test_interim_exposure_from_confirmed_fills_is_hedged_at_once(harness: Harness) -> None:
    import sqlite3

    engine = await harness.start()
    await engine.launch(group("G1", qty=150), TRADER)
    assert await engine.wait_settled(10)
    await harness.crash()
    # The hedge turns out to have filled only half (a broker-side bust, say) after the risk leg sold
    # 150: the journal now shows 150 short against 75 long.
    conn = sqlite3.connect(harness.db)
    conn.execute("UPDATE intents SET filled_qty=75, fills_qty=75 WHERE role='HEDGE'")
    conn.commit()
    conn.close()

    engine = await harness.start()
    assert await engine.wait_settled(10)
    nodes = [n for n in (await harness.document())["hedge_nodes"] if n["kind"] == "INTERIM"]
    assert [(n["target_qty"], n["filled_qty"], n["status"]) for n in nodes] == [(75, 75, "FILLED")]
    intents = (await harness.document())["intents"]
    hedged = sum(i["filled_qty"] for i in intents if i["role"] == "HEDGE")
    short = sum(i["filled_qty"] for i in intents if i["role"] == "RISK")
    assert hedged == short == 150


async def test_an_exhausted_hedge_that_leaves_a_short_open_is_critical_and_one_that_does_not_is_a_warning(
    harness: Harness,
) -> None:
    import sqlite3

    engine = await harness.start()
    await engine.launch(group("G1", qty=150), TRADER)
    assert await engine.wait_settled(10)
    await harness.crash()
    conn = sqlite3.connect(harness.db)  # 150 short against 75 long, as above
    conn.execute("UPDATE intents SET filled_qty=75, fills_qty=75 WHERE role='HEDGE'")
    conn.commit()
    conn.close()
    assert harness.broker is not None
    harness.broker.core.set_depth("NIFTY26DEC24200CE", lots_per_level=0)  # nothing to buy: it exhausts
    engine = await harness.start()
    assert await engine.wait_settled(10)
    doc = await harness.document()
    (interim,) = [e for e in doc["escalations"] if e["kind"] == "HEDGE_EXHAUSTED"]
    assert interim["unhedged_qty"] == 75 and "NOT hedged" in interim["reason"]
    assert harness.journal is not None
    severity = await harness.journal.fetch("SELECT severity FROM escalations WHERE kind='HEDGE_EXHAUSTED'")
    assert severity == [("CRITICAL",)], "a short no hedge covers"

    # a hedge leg that finds nothing before anything is sold leaves no short: a warning
    await engine.launch(group("G2", qty=150), TRADER)
    assert await engine.wait_settled(10)
    rows = await harness.journal.fetch(
        "SELECT severity FROM escalations WHERE kind='HEDGE_EXHAUSTED' AND group_id='G2'"
    )
    assert rows == [("WARNING",)]
