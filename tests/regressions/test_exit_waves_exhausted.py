"""Regression guard (found in review). The failure it guards against:
When the buy-back of the short runs out of EXIT waves (thin book), decide_exit returns only a
'reason'; advance_exit ignores it. No escalation, the group stays HEDGED with close_requested and
never settles: stuck forever, silently."""

from pathlib import Path

from engine.catalog import load_catalog
from engine.runtime import commands
from tests.runtime.harness import TRADER, Harness, group

HEDGE, SHORT = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"


async def test_exhausted_exit_waves_are_escalated(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    broker = await h.open_broker()
    engine = await h.start()
    try:
        await engine.launch(group("G1"), TRADER)
        assert await engine.wait_settled(5)
        broker.core.set_depth(SHORT, lots_per_level=0)
        await broker.step()
        await commands.close_group(engine, "G1", TRADER)
        settled = await engine.wait_settled(3)
        print("settled:", settled)
        print(
            await h.journal.fetch(
                "SELECT purpose, role, side, qty, filled_qty, order_status FROM intents WHERE purpose='EXIT'"
            )
        )
        print(await h.journal.fetch("SELECT state, reason FROM groups"))
        esc = await h.journal.fetch("SELECT kind, unhedged_qty FROM escalations")
        print("escalations:", esc)
        assert settled or esc, "close failed: never settles and nobody is told"
    finally:
        await h.stop()
