"""Regression guard (found in review). The failure it guards against:
HALTED while a group with a stop-loss becomes HEDGED: stops._send refuses the stop (escalates)
but advance_exit still returns True ('sent an order, plan again'), so advance_group spins 100
passes and raises EngineFailure -- the whole engine stops, for every group."""

import asyncio
from pathlib import Path

from engine.catalog import load_catalog
from engine.core.groups import parse_group
from engine.core.trading_state import TradingState
from engine.runtime import commands
from tests.runtime.harness import TRADER, Harness

HEDGE, SHORT = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"


async def test_halt_while_a_stop_is_due_does_not_stop_the_engine(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    ex = [1_800_000_000_000]
    broker = await h.open_broker(exchange_clock=lambda: ex[0])
    engine = await h.start(fake_clock=True)
    try:
        spec = parse_group(
            {
                "group_id": "G1",
                "stop_loss": {"trigger_price": "250.00"},
                "legs": [
                    {"role": "HEDGE", "symbol": HEDGE, "side": "BUY", "qty": 150, "limit_price": "100.00"},
                    {"role": "RISK", "symbol": SHORT, "side": "SELL", "qty": 150},
                ],
            },
            load_catalog(),
        )
        await engine.launch(spec, TRADER)
        await commands.set_trading_state(engine, TradingState.HALTED, TRADER)
        broker.core.set_price(HEDGE, 9000)
        await broker.step()
        for _ in range(40):
            await asyncio.sleep(0.05)
        print("failure:", repr(engine.failure))
        print(await h.journal.fetch("SELECT kind, reason FROM escalations"))
        print(await h.journal.fetch("SELECT state FROM groups"))
        assert engine.failure is None
    finally:
        await h.stop()
