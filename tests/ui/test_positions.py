"""The Positions panel: after fills and marks, its average prices and P&L equal an independent
computation from the journal's fills and marks, to the paisa; an attached desk on the same
journal shows the same figures as the desk that hosts the engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from engine.store.report import journal_document
from tests.runtime.test_pnl import unit_by_unit
from tests.ui.conftest import RISK, DeskHarness, until
from tests.ui.test_launch_and_tree import HEDGE, RISK_SYMBOL, _fill_launch
from ui.format import indian_grouping, rupees
from ui.panels.positions import PositionsPanel


async def test_positions_equal_an_independent_computation_and_an_attached_desk_agrees(
    desk: DeskHarness, tmp_path: Path
) -> None:
    window = await desk.open()
    _fill_launch(window, "G1", lots=2).send.click()
    await until(lambda: (r := window.groups.model.row("G1")) is not None and r.state == "HEDGED", what="HEDGED")
    broker = await desk.open_broker()
    session = desk.sessions[-1][0]
    for _ in range(200):  # the market moves; the engine journals marks of what G1 holds
        await broker.step()
        rows = await desk.journal_rows("SELECT DISTINCT symbol FROM marks")
        if {HEDGE, RISK_SYMBOL} <= {r[0] for r in rows}:
            break
        await asyncio.sleep(0.01)
    doc = await journal_document(session.journal)
    assert {HEDGE, RISK_SYMBOL} <= set(doc["marks"]), "marks journaled"
    expected = unit_by_unit(doc["fills"], doc["marks"])
    assert expected[HEDGE]["qty"] == 150 and expected[RISK_SYMBOL]["qty"] == -150

    panel = window.positions
    loads = panel.loads
    await panel.refresh()
    assert panel.loads == loads + 1
    legs = {r.symbol: r for r in panel.model.rows() if r.leg}
    for symbol in (HEDGE, RISK_SYMBOL):
        row, want = legs[symbol], expected[symbol]
        assert (row.qty, row.avg_paise, row.unrealised_paise, row.realised_paise) == (
            want["qty"],
            want["avg_price_paise"],
            want["unrealised_paise"],
            want["realised_paise"],
        ), symbol
        assert row.mark_paise == doc["marks"][symbol]["mark_paise"]
    (group,) = [r for r in panel.model.rows() if not r.leg]
    credit = sum(f["qty"] * f["price_paise"] * (1 if f["side"] == "SELL" else -1) for f in doc["fills"])
    assert group.credit_paise == credit
    assert rupees(panel.desk["total_paise"], signed=True) in panel.totals.text()
    # what the table shows: rupees with Indian grouping, a sign on P&L, lots and units
    hedge_index = next(
        panel.proxy.index(r, 0) for r in range(panel.proxy.rowCount()) if panel.visible_rows()[r].symbol == HEDGE
    )
    titles = [c.title for c in panel.model.columns]
    shown = {t: panel.proxy.index(hedge_index.row(), c).data() for c, t in enumerate(titles)}
    assert shown["Lots"] == "+2 lots (+150)" and shown["Avg price"] == rupees(expected[HEDGE]["avg_price_paise"])
    assert shown["Unrealised"][0] in "+−" or shown["Unrealised"] == "₹0.00"
    assert shown["P&L"] == rupees(expected[HEDGE]["realised_paise"] + expected[HEDGE]["unrealised_paise"], signed=True)

    # the order-group grid says what the group is, and its credit and P&L
    grid = window.groups.model
    titles = [c.title for c in grid.columns]
    g1 = grid.rows().index(grid.row("G1"))
    cell = {t: grid.data(grid.index(g1, i)) for i, t in enumerate(titles)}
    assert (cell["Underlying"], cell["Expiry"], cell["Strikes"], cell["Lots"]) == (
        "NIFTY",
        "26DEC",
        "24000/24200 CE",
        "2",
    )
    assert cell["Credit"] == rupees(credit) and cell["P&L"] == rupees(panel.group_pnl("G1")["total_paise"], signed=True)
    # the trading charts took a point from that read: desk P&L in rupees, on clock time
    _, pnl_values = window.sampler.series["desk_pnl"].view()
    assert pnl_values[-1] == panel.desk["total_paise"] / 100
    window.charts.redraw()
    assert [window.charts.tabs.tabText(i) for i in range(window.charts.tabs.count())] == ["Trading", "System"]
    assert "uncovered:NIFTY" in window.charts.curves  # hedged: 0 lots uncovered, drawn per underlying
    assert type(window.charts.plots["desk_pnl"].getAxis("bottom")).__name__ == "DateAxisItem"
    attached = await desk.open(RISK)  # the engine is hosted by the first window: this one attaches
    assert desk.sessions[-1][0].broker is None

    def figures(p: PositionsPanel) -> list[tuple[object, ...]]:
        return [(r.key, r.qty, r.avg_paise, r.unrealised_paise, r.realised_paise) for r in p.model.rows()]

    # the engine may journal one more mark between two reads: both desks read the journal again
    # until one read of each sees the same marks (then they must show the same figures)
    for _ in range(50):
        seen = await desk.journal_rows("SELECT MAX(id) FROM marks")
        await attached.positions.refresh()
        await panel.refresh()
        if await desk.journal_rows("SELECT MAX(id) FROM marks") == seen:
            break  # no mark landed between the two reads
    assert figures(attached.positions) == figures(panel)
    assert attached.positions.desk == panel.desk

    panel.filter.setText("RISK")
    assert {r.leg for r in panel.visible_rows()} == {"RISK"}
    out = tmp_path / "positions.csv"
    assert panel.export_csv(out) == 1 and RISK_SYMBOL in out.read_text(encoding="utf-8")


def test_rupees_use_indian_grouping_and_signed_pnl() -> None:
    assert indian_grouping(31320000) == "3,13,20,000" and indian_grouping(999) == "999"
    assert rupees(31320000) == "₹3,13,200.00" and rupees(-35000, signed=True) == "−₹350.00"
    assert rupees(22500, signed=True) == "+₹225.00" and rupees(0, signed=True) == "₹0.00" and rupees(None) == "—"
