"""Marks and P&L: the engine journals the quotes of what open groups trade; `journal --json`'s
``pnl`` equals an independent recomputation from its ``fills`` and ``marks`` (here unit by unit,
against the module's running average), on a session with partial fills, a re-hedge and a closed
group."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from typing import Any

from engine.core.commands import CloseGroup
from engine.core.pnl import Fill, Mark, Position, book_pnl, day_start_ms, round_half_away
from tests.runtime.harness import TRADER, Harness, group

HEDGE = "NIFTY26DEC24200CE"
BANK_HEDGE, BANK_RISK = "BANKNIFTY26DEC52500CE", "BANKNIFTY26DEC52000CE"


def unit_by_unit(fills: list[dict[str, Any]], marks: dict[str, Any]) -> dict[str, Any]:
    """Average cost, one unit at a time: a unit that adds to the position adds its price to the
    cost; a unit that reduces it takes the average out and realises the difference."""
    book: dict[str, list[Fraction]] = {}  # symbol -> [qty, cost, realised]
    for f in fills:
        qty, cost, realised = book.setdefault(f["symbol"], [Fraction(0), Fraction(0), Fraction(0)])
        step = 1 if f["side"] == "BUY" else -1
        for _ in range(f["qty"]):
            if qty == 0 or (qty > 0) == (step > 0):
                qty += step
                cost += step * f["price_paise"]
            else:
                average = cost / qty
                realised += -step * (f["price_paise"] - average)
                qty += step
                cost -= -step * average
        book[f["symbol"]] = [qty, cost, realised]
    out = {}
    for symbol, (qty, cost, realised) in sorted(book.items()):
        mark = marks.get(symbol, {}).get("mark_paise")
        unrealised = Fraction(0) if qty == 0 else (None if mark is None else qty * mark - cost)
        out[symbol] = {
            "qty": int(qty),
            "avg_price_paise": None if qty == 0 else round_half_away(cost / qty),
            "realised_paise": round_half_away(realised),
            "unrealised_paise": None if unrealised is None else round_half_away(unrealised),
            "exact": (realised, unrealised),
        }
    return out


async def test_journal_pnl_equals_an_independent_recomputation_from_fills_and_marks(harness: Harness) -> None:
    broker = await harness.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=2, levels=1)  # G1: 2 of 5 lots fill; children re-hedge
    engine = await harness.start()
    await engine.launch(group("G1", qty=375), TRADER)
    await engine.launch(group("G2", hedge=BANK_HEDGE, risk=BANK_RISK, qty=70), TRADER)
    assert await engine.wait_settled(10)
    await broker.step()  # prices move after the fills
    await engine.execute(CloseGroup("G2", TRADER))
    assert await engine.wait_settled(10)
    journal = harness.journal
    assert journal
    held = {HEDGE, "NIFTY26DEC24000CE"}
    for _ in range(500):  # the quote pump journals a mark of each symbol G1 still trades
        await broker.step()
        rows = await journal.fetch("SELECT DISTINCT symbol FROM marks")
        if held <= {r[0] for r in rows}:
            break
        await asyncio.sleep(0.01)
    doc = await harness.document()
    states = {g["group_id"]: g["state"] for g in doc["groups"]}
    assert states == {"G1": "HEDGED", "G2": "COMPLETED"}
    nodes = [n for n in doc["hedge_nodes"] if n["group_id"] == "G1"]
    assert len(nodes) >= 2 and nodes[0]["filled_qty"] == 150, "a partial fill, then a re-hedge"
    assert any(i["filled_qty"] and i["filled_qty"] < i["qty"] for i in doc["intents"]), "a partially filled order"
    assert held <= set(doc["marks"]), doc["marks"]

    pnl = doc["pnl"]
    mine = unit_by_unit(doc["fills"], doc["marks"])
    for symbol, expected in mine.items():
        got = pnl["symbols"][symbol]
        assert {k: got[k] for k in ("qty", "avg_price_paise", "realised_paise", "unrealised_paise")} == {
            k: expected[k] for k in ("qty", "avg_price_paise", "realised_paise", "unrealised_paise")
        }, symbol
        assert got["mark_paise"] == doc["marks"].get(symbol, {}).get("mark_paise")
    for gid in ("G1", "G2"):
        own = [f for f in doc["fills"] if f["group_id"] == gid]
        credit = sum(f["qty"] * f["price_paise"] * (1 if f["side"] == "SELL" else -1) for f in own)
        per = unit_by_unit(own, doc["marks"])
        realised = sum((p["exact"][0] for p in per.values()), Fraction(0))
        unrealised = sum((p["exact"][1] for p in per.values()), Fraction(0))
        g = pnl["groups"][gid]
        assert g["credit_received_paise"] == credit
        assert g["realised_paise"] == round_half_away(realised) and g["unrealised_paise"] == round_half_away(unrealised)
        assert g["total_paise"] == round_half_away(realised + unrealised)
    assert pnl["groups"]["G2"]["unrealised_paise"] == 0 and not pnl["groups"]["G2"]["open_qty"], "closed: flat"
    # Total P&L does not depend on how it is split: cash from every fill plus open qty at the mark.
    cash = sum(f["qty"] * f["price_paise"] * (1 if f["side"] == "SELL" else -1) for f in doc["fills"])
    open_value = sum(p["qty"] * doc["marks"][s]["mark_paise"] for s, p in mine.items() if p["qty"])
    assert pnl["desk"]["total_paise"] == cash + open_value
    assert pnl["symbols"][HEDGE]["unrealised_paise"] != 0, "prices moved after the fills: marks matter"


def test_average_cost_through_a_reversal_and_an_unmarked_position() -> None:
    p = Position("X")
    p.apply("BUY", 100, 1_000)
    p.apply("BUY", 50, 1_300)  # average 1,100
    p.apply("SELL", 200, 1_200)  # closes 150 (+15,000), opens 50 short at 1,200
    assert (p.qty, p.average(), p.realised) == (-50, 1_200, 15_000)
    assert p.unrealised(1_150) == 2_500  # a short gains as the price falls
    doc = book_pnl([Fill("X", "BUY", 75, 101, "G", "HEDGE"), Fill("Y", "SELL", 75, 99, "G", "RISK")], {})
    assert doc["desk"]["unrealised_paise"] is None, "no mark: unknown, never guessed"  # type: ignore[index]
    assert doc["groups"]["G"]["credit_received_paise"] == 75 * 99 - 75 * 101  # type: ignore[index]


def test_the_days_pnl_counts_from_the_previous_close() -> None:
    day = day_start_ms(1_796_235_246_226)  # 2026-12-02 in IST
    assert day % 1000 == 0 and (day + 19_800_000) % 86_400_000 == 0  # 00:00 IST is 18:30 UTC
    assert day_start_ms(day) == day and day_start_ms(day - 1) == day - 86_400_000
    yesterday, today = day - 3_600_000, day + 3_600_000
    fills = [
        Fill("X", "BUY", 100, 1_000, "G", "HEDGE", yesterday),  # carried overnight
        Fill("Y", "BUY", 50, 2_000, "G", "HEDGE", yesterday),
        Fill("Y", "SELL", 50, 2_100, "G", "HEDGE", yesterday),  # +5,000 realised yesterday
        Fill("X", "SELL", 40, 1_250, "G", "HEDGE", today),  # sells 40 of the carried 100 today
    ]
    close = {"X": Mark("X", None, None, 1_200, yesterday)}
    now = {"X": Mark("X", None, None, 1_300, today)}
    doc = book_pnl(fills, now, day_start=day, marks_at_day_start=close)
    desk = doc["desk"]
    # today: the 100 carried at the close (1,200) -> 40 sold at 1,250 (+2,000), 60 held at 1,300 (+6,000)
    assert desk["day_paise"] == 40 * (1_250 - 1_200) + 60 * (1_300 - 1_200)  # type: ignore[index]
    # total since inception: 5,000 + 40 x 250 + 60 x 300
    assert desk["total_paise"] == 5_000 + 40 * 250 + 60 * 300  # type: ignore[index]
    # a position carried with no mark before the day: the day's P&L is unknown, not guessed
    assert book_pnl(fills, now, day_start=day, marks_at_day_start={})["desk"]["day_paise"] is None  # type: ignore[index]
    # nothing carried: the day's P&L is the whole P&L of today's trades
    only_today = [Fill("X", "BUY", 10, 1_000, ts_exchange_ms=today)]
    assert book_pnl(only_today, now, day_start=day, marks_at_day_start={})["desk"]["day_paise"] == 3_000  # type: ignore[index]
