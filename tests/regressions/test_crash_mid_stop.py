"""Regression guard (found in review). The failure it guards against:
Crash while a triggered stop is working (partly filled, market ran away). After the restart the
recovery snapshot is a duplicate of what the journal knows, so it never anchors the BrokerClock;
nothing else arrives, clock.now_ms() stays 0 and the stop's 2 s fallback never fires."""

import asyncio
from pathlib import Path

from engine.catalog import load_catalog
from tests.runtime.harness import Harness
from tests.runtime.test_stop_loss import Clocks, triggered_partly


async def test_stop_fallback_still_fires_after_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    clocks = Clocks(h)
    try:
        await triggered_partly(h, clocks)
        await asyncio.sleep(0.2)
        await h.crash()
        clocks.advance(500)
        engine = await h.start(fake_clock=True, wall_ms=lambda: clocks.wall_ms)
        for _ in range(20):
            clocks.advance(1000)
            await asyncio.sleep(0.05)
        print("anchored:", engine.clock.anchored, "broker now:", engine.clock.now_ms(h.clock_ns))
        print(
            await h.journal.fetch(
                "SELECT purpose, order_status, filled_qty, ts_triggered_exchange_ms FROM intents WHERE role='RISK'"
            )
        )
        print(await h.journal.fetch("SELECT kind FROM escalations"))
        fb = await h.journal.fetch("SELECT COUNT(*) FROM intents WHERE purpose='FALLBACK'")
        assert fb == [(1,)], "20 s of broker time after the trigger, no cancel, no fallback, no escalation"
    finally:
        await h.stop()
