"""Regression guard (found in review). The failure it guards against:
A trader closes a group whose triggered stop's cancel is never confirmed. close_requested makes
service_stops treat the stop as 'fallback_sent' (DONE), so the SL_UNCONFIRMED escalation never
fires; advance_exit waits for the stop forever. The short stays open, the group never completes,
nothing is escalated."""

import asyncio
from pathlib import Path

from engine.catalog import load_catalog
from engine.runtime import commands
from tests.runtime.harness import TRADER, Harness
from tests.runtime.test_stop_loss import Clocks, triggered_partly


async def test_close_with_an_unconfirmed_stop_cancel_is_escalated(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    clocks = Clocks(h)
    try:
        await triggered_partly(h, clocks, cancel_latency_steps=1_000_000)
        await commands.close_group(h.engine, "G1", TRADER)
        for _ in range(10):
            clocks.advance(10_000)
            await asyncio.sleep(0.1)
        print(await h.journal.fetch("SELECT purpose, order_status, filled_qty FROM intents WHERE role='RISK'"))
        print(await h.journal.fetch("SELECT state, close_requested FROM groups"))
        esc = await h.journal.fetch("SELECT kind, unhedged_qty FROM escalations")
        print(esc)
        assert esc, "75 short left open 100 s of broker time after close, with no escalation"
    finally:
        await h.stop()
