"""Regression guard (found in review). The failure it guards against:
HALTED must stop new orders. The RISK leg (an opening SELL) is still sent when the hedge fills
after the halt, because Engine._send_wave/journal_and_send never consult the trading state."""

import asyncio
from pathlib import Path

from engine.catalog import load_catalog
from engine.core.groups import parse_group
from engine.core.trading_state import TradingState
from engine.runtime import commands
from tests.runtime.harness import TRADER, Harness

HEDGE, SHORT = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"


async def test_halt_holds_back_the_opening_risk_leg(tmp_path: Path) -> None:
    h = Harness(tmp_path, load_catalog())
    ex = [1_800_000_000_000]
    broker = await h.open_broker(exchange_clock=lambda: ex[0])
    engine = await h.start(fake_clock=True)
    try:
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
        await commands.set_trading_state(engine, TradingState.HALTED, TRADER)
        broker.core.set_price(HEDGE, 9000)
        await broker.step()
        for _ in range(40):
            await asyncio.sleep(0.05)
        rows = await h.journal.fetch("SELECT role, side, qty, order_status FROM intents ORDER BY ts_created_local_ns")
        print(rows)
        sells = [o for o in await broker.orders() if o.symbol == SHORT]
        print("exchange got while HALTED:", [(o.client_order_id, o.side.value, o.qty, o.status.value) for o in sells])
        assert sells == [], "an opening SELL reached the exchange while trading was HALTED"
    finally:
        await h.stop()
