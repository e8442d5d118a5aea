"""`trading-desk bench`'s quote-load case, in a process of its own (it needs the Qt event loop):
the desk's event-loop lag while the engine it hosts streams quotes of 200 symbols at 10 updates a
second each (2,000 quotes/s) and the option chain shows them at 4 Hz, against the same desk idle.

Run as ``python -m app.bench_desk SECONDS`` (offscreen); prints one JSON object."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SYMBOLS = 200
UPDATES_PER_S = 10


def _catalog() -> dict[str, Any]:
    from engine.catalog import load_catalog

    base = load_catalog()
    template = base["NIFTY26DEC24000CE"]
    out = {}
    for k in range(SYMBOLS // 2):
        strike = 20_000 + 50 * k
        for kind in ("CE", "PE"):
            symbol = f"NIFTY26DEC{strike}{kind}"
            out[symbol] = dataclasses.replace(
                template,
                symbol=symbol,
                strike_paise=strike * 100,
                option_type=kind,
                start_price_paise=max(500, 20_000 + (24_000 - strike) * (1 if kind == "CE" else -1) * 10),
            )
    return out


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


async def _lag(seconds: float, load: bool) -> dict[str, float]:
    from engine.broker.paper import PaperBroker
    from engine.catalog import load_margin_model
    from engine.runtime.engine import Engine
    from engine.store.journal import Journal
    from ui.panels.chain import ChainPanel

    catalog = _catalog()
    with tempfile.TemporaryDirectory(prefix="td-bench-desk-") as d:
        tmp = Path(d)
        broker = await PaperBroker.open(tmp / "x.db", catalog, auto_tick=False)
        journal = await Journal.open(tmp / "j.db", synchronous="NORMAL")
        engine = Engine(journal, broker, catalog, margin_model=load_margin_model())
        await engine.start()
        chain = ChainPanel(catalog, engine.quote, engine.watch_quotes, {"NIFTY": 2_405_000})
        chain.resize(1200, 800)
        chain.show()
        stop = asyncio.Event()

        async def market() -> None:
            while not stop.is_set():
                if load:
                    await broker.step()  # every symbol's price and book move: 200 quotes
                await asyncio.sleep(1 / UPDATES_PER_S)  # the market's pace, not a decision

        lags: list[float] = []
        loop = asyncio.get_running_loop()
        driver = asyncio.create_task(market())
        await asyncio.sleep(0.5)  # the stream subscribes and the first quotes arrive
        seen_before = len(engine.quotes)
        received = engine.quotes_received
        started = time.perf_counter()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            asked = loop.time()
            await asyncio.sleep(0.005)
            lags.append((loop.time() - asked - 0.005) * 1000)
        elapsed = time.perf_counter() - started
        received = engine.quotes_received - received
        stop.set()
        await driver
        refreshes = chain.refreshes
        chain.timer.stop()
        chain.close()
        quotes_seen = len(engine.quotes)
        await engine.stop()
        await broker.close()
        await journal.close()
    return {
        "lag_ms_p50": round(_p(lags, 0.5), 2),
        "lag_ms_p99": round(_p(lags, 0.99), 2),
        "lag_ms_max": round(max(lags), 2),
        "symbols_quoted": quotes_seen,
        "symbols_quoted_at_start": seen_before,
        "chain_refreshes_per_s": round(refreshes / elapsed, 1),
        "quotes_per_s": round(received / elapsed),
    }


def main() -> int:
    import qasync  # type: ignore[import-untyped]
    from PySide6.QtWidgets import QApplication

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # the chain window closes between the two runs

    async def both() -> dict[str, Any]:
        idle = await _lag(seconds, load=False)
        loaded = await _lag(seconds, load=True)
        return {"idle": idle, "quotes_200_symbols_10_per_s": loaded}

    print(json.dumps(qasync.run(both())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
