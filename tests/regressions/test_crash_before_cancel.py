"""Regression guard (found in review). The failure it guards against:
Crash (or a broker/ws error) after request_cancel commits PENDING_CANCEL but before
broker.cancel() reaches the venue. After restart the order is PENDING_CANCEL locally, ACCEPTED at
the exchange; nothing ever re-sends the cancel. A resting hedge LIMIT keeps the hedge node WORKING
forever: the group never settles and nothing is escalated."""

import asyncio
from pathlib import Path

from engine.catalog import load_catalog
from engine.core.groups import parse_group
from engine.runtime.state import EngineConfig
from tests.runtime.harness import TRADER, Harness, SimulatedCrash

HEDGE, SHORT = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"


async def test_a_cancel_lost_in_a_crash_is_sent_again(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    ex = [1_800_000_000_000]
    broker = await h.open_broker(exchange_clock=lambda: ex[0])
    cfg = EngineConfig(order_timeout_ms=1000)
    engine = await h.start(fake_clock=True, config=cfg)
    real_cancel = broker.cancel

    async def dying_cancel(boid):
        raise SimulatedCrash("between PENDING_CANCEL commit and the venue")

    broker.cancel = dying_cancel
    spec = parse_group(
        {
            "group_id": "G1",
            "legs": [
                {"role": "HEDGE", "symbol": HEDGE, "side": "BUY", "qty": 150, "limit_price": "100.00"},
                {"role": "RISK", "symbol": SHORT, "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )
    await engine.launch(spec, TRADER)
    ex[0] += 1500
    h.clock_ns += 1_500_000_000
    for _ in range(20):
        await asyncio.sleep(0.05)
    print("engine failure:", repr(engine.failure))
    await h.crash()
    broker.cancel = real_cancel
    engine = await h.start(fake_clock=True, config=cfg)
    try:
        for _ in range(10):
            ex[0] += 1000
            h.clock_ns += 1_000_000_000
            await asyncio.sleep(0.1)
        print("journal:", await h.journal.fetch("SELECT order_status FROM intents"))
        print("exchange:", [(o.status.value) for o in await broker.orders()])
        print("group:", await h.journal.fetch("SELECT state FROM groups"))
        print("escalations:", await h.journal.fetch("SELECT kind FROM escalations"))
        print("rejected events:", (await h.journal.fetch("SELECT COUNT(*), MIN(reason) FROM rejected_events")))
        print("settled:", await engine.wait_settled(1))
        assert [o.status.value for o in await broker.orders()] != ["ACCEPTED"], "cancel never re-sent"
    finally:
        await h.stop()
