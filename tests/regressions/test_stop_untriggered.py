"""Regression guard (found in review). The failure it guards against:
A stop that ends without ever triggering (cancelled by the venue/another terminal, or rejected
by the broker RMS) must not become a MARKET buy-back: stops.py escalates MANUAL_ACTION saying
exactly that, yet exits.decide_exit treats 'stop exists and is not open' as 'the stop fired' and
buys the short back at MARKET and sells the hedge."""

import asyncio
import sys
from pathlib import Path

from engine.catalog import load_catalog
from engine.core.events import Rejected
from engine.core.model import OrderType
from tests.runtime.harness import TRADER, Harness

sys.path.insert(0, "/work/main")
from tests.runtime.test_stop_loss import stop_group, until


async def _settle(h):
    for _ in range(30):
        await asyncio.sleep(0.05)


async def test_a_stop_cancelled_before_trigger_buys_nothing_back(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    ex = [1_800_000_000_000]
    broker = await h.open_broker(exchange_clock=lambda: ex[0])
    engine = await h.start(fake_clock=True)
    try:
        await engine.launch(stop_group(), TRADER)
        await until(h, "SELECT order_status FROM intents WHERE purpose='STOP'", [("TRIGGER_PENDING",)])
        ((boid,),) = await h.journal.fetch("SELECT broker_order_id FROM intents WHERE purpose='STOP'")
        await broker.cancel(boid)  # the venue (or the broker's EOD job / another terminal) cancels it
        await _settle(h)
        print(await h.journal.fetch("SELECT purpose, role, side, qty, order_type, order_status FROM intents"))
        print(await h.journal.fetch("SELECT kind, unhedged_qty, reason FROM escalations"))
        print(await h.journal.fetch("SELECT state, reason FROM groups"))
        exits = await h.journal.fetch("SELECT COUNT(*) FROM intents WHERE purpose IN ('EXIT','FALLBACK')")
        assert exits == [(0,)], "short bought back at MARKET although the stop never triggered"
    finally:
        await h.stop()


async def test_a_rejected_stop_buys_nothing_back(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    ex = [1_800_000_000_000]
    broker = await h.open_broker(exchange_clock=lambda: ex[0])
    real_place = broker.place

    async def place(req):
        if req.order_type is OrderType.SL:
            raise Rejected("Trigger price for stoploss buy orders should be higher than LTP")
        return await real_place(req)

    broker.place = place
    engine = await h.start(fake_clock=True)
    try:
        await engine.launch(stop_group(), TRADER)
        await _settle(h)
        print(await h.journal.fetch("SELECT purpose, role, side, qty, order_type, order_status FROM intents"))
        print(await h.journal.fetch("SELECT kind, unhedged_qty, reason FROM escalations"))
        print(await h.journal.fetch("SELECT state, reason FROM groups"))
        exits = await h.journal.fetch("SELECT COUNT(*) FROM intents WHERE purpose IN ('EXIT','FALLBACK')")
        assert exits == [(0,)], "short bought back at MARKET because the stop was rejected"
    finally:
        await h.stop()
