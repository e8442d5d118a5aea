"""The desk rebuilds only the rows the engine's commits touched (``Engine.take_touched``). What it
shows must equal a rebuild of every row, at every refresh: groups on thin depth with partial
fills, re-hedges, a HALT and exhausted hedges that escalate, while the market moves."""

from __future__ import annotations

import dataclasses

from engine.catalog import load_margin_model
from engine.core.commands import SetTradingState
from engine.core.trading_state import TradingState
from tests.runtime.harness import group
from tests.ui.conftest import RISK, DeskHarness, until
from ui.viewmodels.desk import DeskViewModel

HEDGE, RISK_SYMBOL = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"


def _whole(window) -> DeskViewModel:  # type: ignore[no-untyped-def]
    """A view model seeded as the window's was, then refreshed from every row of the book."""
    shown = window.bridge.desk
    whole = DeskViewModel()
    whole.escalations = dict(shown.escalations)
    whole.groups = {k: v for k, v in shown.groups.items() if k not in window.bridge.view.snapshot().groups}
    whole.intents = {k: v for k, v in shown.intents.items() if k not in window.bridge.view.snapshot().intents}
    whole.nodes = {k: v for k, v in shown.nodes.items() if k not in window.bridge.view.snapshot().nodes}
    whole.refresh(window.bridge.view.snapshot(), None)
    return whole


async def test_rows_rebuilt_from_touched_keys_equal_a_rebuild_of_every_row(desk: DeskHarness) -> None:
    broker = await desk.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=1, levels=2)  # thin: partial fills and re-hedges
    margin = dataclasses.replace(load_margin_model(), available_paise=10**15)
    window = await desk.open(margin_model=margin, synchronous="NORMAL")
    bridge = window.bridge
    assert bridge is not None
    engine = desk.sessions[-1][0].engine
    touched_reads = 0
    original = bridge.view.take_touched

    def counted():  # type: ignore[no-untyped-def]
        nonlocal touched_reads
        touched = original()
        touched_reads += touched is not None
        return touched

    bridge.view.take_touched = counted  # type: ignore[method-assign]
    compared = 0
    for i in range(12):
        await window.launch(group(f"R{i:02d}", qty=300, catalog=desk.catalog))
        if i == 6:
            await engine.execute(SetTradingState(TradingState.HALTED, RISK))
            await engine.execute(SetTradingState(TradingState.ACTIVE, RISK))
        for _ in range(3):
            await broker.step()
            await engine.quiesce()
            bridge.tick()
            if bridge.view.committed():
                whole = _whole(window)
                assert bridge.desk.groups == whole.groups
                assert bridge.desk.intents == whole.intents
                assert bridge.desk.nodes == whole.nodes
                compared += 1
    await until(lambda: touched_reads > 10, what="refreshes from touched keys")
    assert compared >= 30
    assert len(bridge.desk.groups) == 12 and len(bridge.desk.nodes) >= 12
