"""`trading-desk bench`, case 5: the desk under load, in a process of its own (the Qt event loop,
offscreen). The real main window on the engine it hosts, connected to the paper exchange as its own process
(``trading-desk exchange``, over its websocket, as a desk reaches a broker: the exchange's own
work is not the desk's), 1,000 live groups (each hedge resting at the exchange, far below the
market), then for the same number of seconds:

- idle: nothing offered (the window's own timers and repaints only);
- loaded: 2,000 broker events/s offered to the engine's intake, as its feed hands them over (one
  event per inbox item): partial fills of the resting hedges and their status reports, 10% of them
  re-sent duplicates. The engine answers them as it would live (each filled hedge lot lets it sell
  risk against it, at the exchange). Meanwhile the exchange moves 200 symbols 10 times a second
  (``--tick-ms 100``: 2,000 quotes/s), which the engine streams to the desk.

Reported: event-loop lag p50/p99/max (a 5 ms probe), the view's refresh rate and the events the
engine applied per second, against what was offered (the backlog left when the window closes).

Run as ``python -m app.bench_load SECONDS GROUPS``; prints one JSON object."""

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

EVENTS_PER_S = 2_000
PACE_S = 0.05  # the offered stream arrives in 20 bursts a second (100 events each)
HEDGE_LOTS = 20  # a hedge of 20 lots (under the freeze quantity) takes 1-lot fills and stays live
LAUNCH_WAVE = 50
REST_PRICE = "0.05"  # one tick: the hedge rests untouched by the market


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def _offered(rows: list[Any], per_order: int) -> list[Any]:
    """For each resting hedge: ``per_order`` 1-lot fills, each followed by its cumulative status
    report; one re-send per nine originals."""
    from engine.core.events import FillReport, OrderUpdate
    from engine.core.model import OrderStatus

    base: list[Any] = []
    for k in range(1, per_order + 1):  # round-robin over the groups, as a busy market would fill them
        for r in rows:
            ts = (r.ts_ack_exchange_ms or 0) + k
            lot = r.qty // HEDGE_LOTS
            base.append(FillReport(f"L{r.client_order_id}{k}", r.broker_order_id, r.client_order_id, r.symbol,
                                   r.side, lot, 5, ts))  # fmt: skip
            base.append(OrderUpdate(r.broker_order_id, r.client_order_id, OrderStatus.PARTIALLY_FILLED, k * lot, ts))
    offered = []
    for i, event in enumerate(base):
        offered.append(event)
        if i % 9 == 8:
            offered.append(base[max(0, i - 40)])
    return offered


async def _probe(samples: list[float], seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        asked = loop.time()
        await asyncio.sleep(0.005)
        samples.append(max(0.0, (loop.time() - asked - 0.005) * 1000))


SYMBOLS = 200


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


def _catalog_file(path: Path) -> Path:
    """The 200-symbol chain (100 strikes, calls and puts) as a catalog file, for the exchange."""
    entries = [
        {"symbol": i.symbol, "underlying": "NIFTY", "lot_size": i.lot_size, "tick_size": "0.05",
         "freeze_qty": i.freeze_qty, "start_price": f"{i.start_price_paise / 100:.2f}", "volatility_ticks": 2,
         "depth_levels": 5, "depth_lots_per_level": 20, "spread_ticks": 1}
        for i in _catalog().values()
    ]  # fmt: skip
    path.write_text(json.dumps(entries))
    return path


class _Exchange:
    """``trading-desk exchange`` as a child process on loopback."""

    def __init__(self, tmp: Path, catalog_file: Path) -> None:
        self.args = ["exchange", "--port", "0", "--state", str(tmp / "x.db"), "--instruments", str(catalog_file),
                     "--tick-ms", "100"]  # fmt: skip
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
        if not line.startswith("exchange listening on "):
            raise RuntimeError(f"load bench: the exchange did not start ({line!r})")
        return line.split()[3]

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


async def run(seconds: float, groups: int) -> dict[str, Any]:
    from app.brokers import open_broker
    from app.config import GuiConfig
    from app.gui import DeskSession
    from engine.catalog import load_catalog, load_margin_model
    from engine.core.model import Role
    from engine.core.state import EngineConfig
    from engine.runtime.engine import Engine
    from engine.runtime.state import Actor
    from engine.store.journal import Journal
    from engine.store.users import os_user
    from ui.main_window import MainWindow, open_settings

    with tempfile.TemporaryDirectory(prefix="td-bench-load-") as d:
        tmp = Path(d)
        catalog = load_catalog(_catalog_file(tmp / "chain.json"))
        exchange = _Exchange(tmp, tmp / "chain.json")
        try:
            url = await exchange.start()
            broker = await open_broker(url, catalog)
            journal = await Journal.open(tmp / "j.db")  # FULL, as the desk opens it
            margin = dataclasses.replace(load_margin_model(), available_paise=10**15)
            # an hour of broker time before a resting order is cancelled: the hedges stay live
            engine = Engine(journal, broker, catalog, EngineConfig(order_timeout_ms=3_600_000), margin_model=margin)
            await engine.start()
            actor = Actor(os_user(), Role.TRADER)
            config = GuiConfig(db=tmp / "j.db", broker=url, role=Role.TRADER,
                               settings_file=tmp / "desk.ini", log_dir=tmp / "logs")  # fmt: skip
            session = DeskSession(config, catalog, margin, journal, broker, engine, actor)
            window = MainWindow(session.desk_context(), open_settings(config.settings_file))
            await window.start()
            window.resize(1920, 1080)
            window.show()
            try:
                return await _measure(engine, window, catalog, actor, seconds, groups)
            finally:
                window.quit_confirmed = True
                window.close()
                await window.wait_closed()
                await window.shutdown()
                await session.close()
        finally:
            await exchange.stop()


async def _measure(engine: Any, window: Any, catalog: Any, actor: Any, seconds: float, groups: int) -> dict[str, Any]:
    from engine.core.commands import Launch
    from engine.core.groups import parse_groups
    from engine.core.inputs import BrokerEvents
    from engine.core.model import LegRole

    hedge, risk = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"
    specs = parse_groups(
        [{"group_id": f"LOAD{i:04d}", "legs": [
            {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": 75 * HEDGE_LOTS, "limit_price": REST_PRICE},
            {"role": "RISK", "symbol": risk, "side": "SELL", "qty": 75 * HEDGE_LOTS}]}
         for i in range(groups)],
        catalog,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    for i in range(0, len(specs), LAUNCH_WAVE):  # a desk launches in waves, not 1,000 places at once
        await asyncio.gather(*(engine.execute(Launch(s, actor)) for s in specs[i : i + LAUNCH_WAVE]))
        await engine.quiesce()
    deadline = loop.time() + 30
    while True:  # every hedge acknowledged by the exchange (its acks arrive over the socket)
        await engine.quiesce()
        hedges = [r for r in engine.book.intents.values() if r.role is LegRole.HEDGE and r.broker_order_id]
        if len(hedges) == groups:
            break
        if loop.time() > deadline:
            seen = sorted({(r.order_status.value, r.reason) for r in engine.book.intents.values()})[:5]
            raise RuntimeError(f"load bench: {len(hedges)} of {groups} hedges acknowledged within 120 s ({seen})")
        await asyncio.sleep(0.1)  # polling the acks in, bounded above
    live = sum(1 for g in engine.book.groups.values() if not g.settled)
    if live != groups:
        raise RuntimeError(f"load bench: {live} live groups, not {groups}")
    engine.watch_quotes(catalog)  # every symbol's quotes stream to the desk
    await asyncio.sleep(1.0)  # the window settles after the launches (not a measurement)

    def refreshes() -> int:
        return int(window.bridge.refreshes) if window.bridge else 0

    idle: list[float] = []
    before, quotes_before = refreshes(), engine.quotes_received
    started = time.perf_counter()
    await _probe(idle, seconds)
    idle_s = time.perf_counter() - started
    idle_refreshes, idle_quotes = refreshes() - before, engine.quotes_received - quotes_before

    per_order = max(1, round(EVENTS_PER_S * seconds / groups / 2 / 1.1))
    offered = _offered(hedges, min(per_order, HEDGE_LOTS - 1))
    sent = [0]

    async def feed() -> None:
        burst = round(EVENTS_PER_S * PACE_S)
        due = loop.time()
        while sent[0] < len(offered):
            for event in offered[sent[0] : sent[0] + burst]:
                engine._inbox.put_nowait((BrokerEvents(0, (event,)), None))  # as the feed pump does
            sent[0] += min(burst, len(offered) - sent[0])
            due += PACE_S
            await asyncio.sleep(max(0.0, due - loop.time()))  # the offered pace, not a decision

    loaded: list[float] = []
    events_before, quotes_before, before = engine.event_count(), engine.quotes_received, refreshes()
    driver = asyncio.create_task(feed())
    started = time.perf_counter()
    await _probe(loaded, len(offered) / EVENTS_PER_S)
    loaded_s = time.perf_counter() - started
    applied = engine.event_count() - events_before
    backlog = engine._inbox.qsize()
    quotes = engine.quotes_received - quotes_before
    loaded_refreshes = refreshes() - before
    await driver
    await engine.quiesce()
    return {
        "groups_live": groups,
        "idle_lag_ms_p50": round(_p(idle, 0.5), 2),
        "idle_lag_ms_p99": round(_p(idle, 0.99), 2),
        "idle_lag_ms_max": round(max(idle), 2),
        "idle_view_refreshes_per_s": round(idle_refreshes / idle_s, 1),
        "idle_quotes_per_s": round(idle_quotes / idle_s),
        "loaded_lag_ms_p50": round(_p(loaded, 0.5), 2),
        "loaded_lag_ms_p99": round(_p(loaded, 0.99), 2),
        "loaded_lag_ms_max": round(max(loaded), 2),
        "loaded_view_refreshes_per_s": round(loaded_refreshes / loaded_s, 1),
        "offered_events": len(offered),
        "offered_events_per_s": round(sent[0] / loaded_s),
        "applied_events_per_s": round(applied / loaded_s),
        "applied_over_offered": round(applied / max(1, sent[0]), 3),
        "backlog_at_end": backlog,
        "applied_in_the_end": engine.event_count() - events_before,
        "quotes_per_s": round(quotes / loaded_s),
    }


def main() -> int:
    import qasync  # type: ignore[import-untyped]
    from PySide6.QtWidgets import QApplication

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    groups = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    from ui.gui_gc import collect_on_gui_thread

    collect_on_gui_thread(app)  # worker threads run Python code: never a collection there
    print(json.dumps(qasync.run(run(seconds, groups))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
