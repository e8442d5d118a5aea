"""`trading-desk bench`, the shared desk: a desk's command round trip and its view lag, beside a
bare one-row durable commit on the same backend (SQLite here; PostgreSQL in ``app.bench_pg``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from app.bench_data import bench_login
from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog
from engine.core.commands import SetTradingState
from engine.core.model import Role
from engine.core.trading_state import TradingState
from engine.runtime.attached import AttachedEngine
from engine.runtime.engine import Engine
from engine.runtime.state import Actor
from engine.store.journal import Journal


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, len(ordered) * 99 // 100)]


async def _shared_desk(engine_target: Path | str, desk_target: Path | str, tmp: Path, n: int = 60) -> dict[str, float]:
    """On one backend: a bare one-row durable commit; a desk's command round trip (the attached
    desk submits a row, the engine executes it, the desk reads the outcome); and the view lag
    (engine commit to the attached desk's model holding it). All in milliseconds."""
    catalog = load_catalog()
    journal = await Journal.open(engine_target)
    bare = []
    for _ in range(n):
        started = time.perf_counter()
        async with journal.transaction():
            await journal.db.execute("UPDATE counters SET value=value WHERE name='duplicate_events'")
        bare.append((time.perf_counter() - started) * 1000)
    broker = await PaperBroker.open(tmp / f"x-{journal.dialect}.db", catalog)
    engine = Engine(journal, broker, catalog)
    await engine.start()
    desk = AttachedEngine(await Journal.open(desk_target), catalog)
    await desk.start()
    actor = Actor(await bench_login(journal), Role.RISK)
    round_trip, lag = [], []
    try:
        states = [TradingState.REDUCING, TradingState.ACTIVE]
        for i in range(n):
            started = time.perf_counter()
            await desk.execute(SetTradingState(states[i % 2], actor))
            round_trip.append((time.perf_counter() - started) * 1000)
        for i in range(n):
            await engine.execute(SetTradingState(states[i % 2], actor))
            committed = time.perf_counter()  # the engine's commit is done when execute returns
            while desk.trading_state is not states[i % 2]:
                desk.changed.clear()
                if desk.trading_state is states[i % 2]:
                    break
                await desk.changed.wait()
            lag.append((time.perf_counter() - committed) * 1000)
    finally:
        await desk.stop()
        await desk.journal.close()
        await engine.stop()
        await broker.close()
        await journal.close()
    b50, b99 = _p50_p99(bare)
    r50, r99 = _p50_p99(round_trip)
    l50, l99 = _p50_p99(lag)
    return {
        "bare_commit_ms_p50": b50,
        "bare_commit_ms_p99": b99,
        "command_round_trip_ms_p50": r50,
        "command_round_trip_ms_p99": r99,
        "command_round_trip_over_bare_commit_p50": r50 / b50,
        "view_lag_ms_p50": l50,
        "view_lag_ms_p99": l99,
        "view_lag_over_bare_commit_p50": l50 / b50,
    }


async def shared_desk_figures(tmp: Path) -> dict[str, Any]:
    """SQLite's shared-desk figures; PostgreSQL's are case 7 (``app.bench_pg``)."""
    sqlite = await _shared_desk(tmp / "shared.db", tmp / "shared.db", tmp)
    return {f"sqlite_{k}": round(v, 3) for k, v in sqlite.items()}
