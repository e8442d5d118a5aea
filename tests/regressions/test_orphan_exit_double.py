"""Regression guard (found in review). The failure it guards against:
An exit-side order (EXIT/FALLBACK) that becomes ORPHANED is treated as 'not open' by
stops._open, so advance_exit immediately sends another EXIT wave for the same short. The
ORPHANED_INTENT escalation stays open and an operator's approve_retry then sends the buy-back a
second time: the short is exited twice (net long afterwards)."""

import asyncio
from pathlib import Path

from engine.catalog import load_catalog
from engine.core.events import Ambiguous
from engine.core.model import Side
from engine.runtime import commands
from tests.runtime.harness import OPERATOR, TRADER, Harness, group

HEDGE, SHORT = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"


async def test_an_orphaned_exit_is_neither_replaced_nor_retried_twice(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    ex = [1_800_000_000_000]
    broker = await h.open_broker(exchange_clock=lambda: ex[0])
    real_place = broker.place
    dropped = []

    async def place(req):
        if req.symbol == SHORT and req.side is Side.BUY and not dropped:
            dropped.append(req.client_order_id)
            raise Ambiguous("timeout: request never reached the venue")
        return await real_place(req)

    broker.place = place
    engine = await h.start(fake_clock=True)
    try:
        await engine.launch(group("G1"), TRADER)
        assert await engine.wait_settled(5)
        await commands.close_group(engine, "G1", TRADER)
        for _ in range(20):
            h.clock_ns += 400_000_000
            await asyncio.sleep(0.05)
        print(await h.journal.fetch("SELECT client_order_id, purpose, role, side, qty, status FROM intents"))
        print(await h.journal.fetch("SELECT state, reason FROM groups"))
        print(await h.journal.fetch("SELECT kind, status, client_order_id FROM escalations"))
        await commands.approve_retry(engine, dropped[0], OPERATOR)
        for _ in range(10):
            await asyncio.sleep(0.05)
        pos = await broker.positions()
        print("exchange positions:", pos)
        assert pos.get(SHORT, 0) == 0, "short bought back twice"
    finally:
        await h.stop()
