"""`trading-desk bench`: intent-to-wire, ten sliced children, and HALT latency.

- intent-to-wire: from the step that decides an order (its output holds the ``Place``) to
  ``Broker.place`` being called, the intent committed at synchronous=FULL in between; against a
  bare one-row FULL commit on the same disk, measured in the same run;
- ten children sliced at the freeze quantity in one decision: from that step to the tenth
  ``place``, against one bare commit;
- HALT: with the broker answering nothing (every ``place`` hangs), steps and milliseconds from
  the HALT command's submission to the first step that refuses an opening order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import engine.runtime.engine as runtime
from app.bench_data import _spread, bench_login
from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog
from engine.core.commands import CommandError, Launch, SetTradingState
from engine.core.effects import Place
from engine.core.events import OrderRequest, PlaceAck
from engine.core.groups import parse_groups
from engine.core.model import GroupState, Role
from engine.core.trading_state import TradingState
from engine.runtime.engine import Engine
from engine.runtime.state import Actor
from engine.store.journal import Journal
from engine.store.users import os_user

FREEZE_NIFTY = 1800


def _pct(samples: list[float], q: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, len(ordered) * q // 100)]


class _Timed:
    """Wraps the runtime's ``step`` (when a Place is decided) and the broker's ``place`` (when it
    reaches the wire); restores both on exit."""

    def __init__(self, broker: PaperBroker) -> None:
        self.decided: dict[str, float] = {}
        self.wired: dict[str, float] = {}
        self.steps = 0  # steps of a person's command: clock ticks landing in between are not counted
        self.halt_step: int | None = None  # the step count when a HALT command was stepped
        self._broker, self._place, self._step = broker, broker.place, runtime.step  # type: ignore[attr-defined]

    def __enter__(self) -> _Timed:
        inner = self._step

        def timed_step(*args: Any, **kw: Any) -> Any:
            out = inner(*args, **kw)
            command = getattr(args[1], "command", None)
            if command is not None:
                self.steps += 1
            if isinstance(command, SetTradingState) and command.state is TradingState.HALTED:
                self.halt_step = self.steps
            now = time.perf_counter()
            for effect in out:
                if isinstance(effect, Place):
                    self.decided.setdefault(effect.request.client_order_id, now)
            return out

        place = self._place

        async def timed_place(order: OrderRequest) -> PlaceAck:
            self.wired.setdefault(order.client_order_id, time.perf_counter())
            return await place(order)

        runtime.step = timed_step  # type: ignore[attr-defined]  # the runtime calls its module-level step
        self._broker.place = timed_place  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        runtime.step = self._step  # type: ignore[attr-defined]
        self._broker.place = self._place  # type: ignore[method-assign]

    def wire_us(self) -> list[float]:
        return [(self.wired[c] - t) * 1e6 for c, t in self.decided.items() if c in self.wired]


async def bare_full_commit_us(journal: Journal, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        async with journal.transaction():
            await journal.db.execute("UPDATE counters SET value=value WHERE name='duplicate_events'")
        out.append((time.perf_counter() - started) * 1e6)
    return out


async def wire_figures(tmp: Path, groups: int, target: str | None = None) -> dict[str, Any]:
    """``target``: a postgresql:// URL of an empty, initialised journal (default: a SQLite file)."""
    catalog = load_catalog()
    journal = await Journal.open(target or tmp / "wire.db")  # synchronous=FULL, as the engine opens it
    broker = await PaperBroker.open(tmp / f"wire-exchange-{journal.dialect}.db", catalog, auto_tick=False)
    engine = Engine(journal, broker, catalog)
    actor = Actor(await bench_login(journal), Role.TRADER)
    try:
        await engine.start()
        bare = await bare_full_commit_us(journal, 200)
        with _Timed(broker) as timed:
            for g in range(groups):
                spec = parse_groups([_spread(f"W{g}", 150)], catalog)[0]
                await engine.launch(spec, actor)
                while engine.book.groups[spec.group_id].state is not GroupState.HEDGED:
                    await broker.step()
                    await engine.quiesce()
                    await asyncio.sleep(0.005)  # the paper feed delivers on its own task
            wire = timed.wire_us()
        # an account big enough for ten freeze-sized children (the bundled model's is a retail one)
        engine.state.margin_model = dataclasses.replace(engine.state.margin_model, available_paise=10**12)
        with _Timed(broker) as timed:
            spec = parse_groups([_spread("SLICED", 10 * FREEZE_NIFTY)], catalog)[0]
            await engine.execute(Launch(spec, actor))
            await engine.quiesce()
            hedges = [r for r in engine.book.of_group("SLICED") if r.role.value == "HEDGE" and r.wave == 1]
            stamps = sorted(timed.wired[r.client_order_id] for r in hedges if r.client_order_id in timed.wired)
            decided = min(timed.decided[r.client_order_id] for r in hedges)
            same_step = len({timed.decided[r.client_order_id] for r in hedges}) == 1
    finally:
        await engine.stop()
        await broker.close()
        await journal.close()
    b50, b99 = _pct(bare, 50), _pct(bare, 99)
    w50, w99 = _pct(wire, 50), _pct(wire, 99)
    tenth_us = (stamps[-1] - decided) * 1e6 if len(stamps) == 10 else float("nan")
    return {
        "bare_full_commit_us_p50": round(b50, 1),
        "bare_full_commit_us_p99": round(b99, 1),
        "intent_to_wire_us_p50": round(w50, 1),
        "intent_to_wire_us_p99": round(w99, 1),
        "intent_to_wire_over_bare_commit_p50": round(w50 / b50, 2),
        "intent_to_wire_over_bare_commit_p99": round(w99 / b99, 2),
        "intent_to_wire_orders": len(wire),
        "sliced_children": len(hedges),
        "sliced_children_decided_in_one_step": same_step,
        "sliced_10th_on_wire_us": round(tenth_us, 1),
        "sliced_10th_on_wire_over_bare_commit_p50": round(tenth_us / b50, 2),
    }


async def halt_figures(tmp: Path, in_flight: int = 20) -> dict[str, Any]:
    catalog = load_catalog()
    journal = await Journal.open(tmp / "halt.db")
    broker = await PaperBroker.open(tmp / "halt-exchange.db", catalog, auto_tick=False)
    hung: list[asyncio.Future[PlaceAck]] = []

    async def never(order: OrderRequest) -> PlaceAck:
        future: asyncio.Future[PlaceAck] = asyncio.get_running_loop().create_future()
        hung.append(future)
        return await future

    engine = Engine(journal, broker, catalog)
    trader, risk = Actor(os_user(), Role.TRADER), Actor(os_user(), Role.RISK)
    try:
        await engine.start()
        broker.place = never  # type: ignore[method-assign]
        with _Timed(broker) as timed:
            broker.place = never  # type: ignore[method-assign]
            for g in range(in_flight):
                await engine.execute(Launch(parse_groups([_spread(f"H{g}", 75)], catalog)[0], trader))
            started = time.perf_counter()
            await engine.execute(SetTradingState(TradingState.HALTED, risk))
            halted_ms = (time.perf_counter() - started) * 1000
            refused_after: int | None = None
            try:
                await engine.execute(Launch(parse_groups([_spread("AFTER", 75)], catalog)[0], trader))
            except CommandError:
                assert timed.halt_step is not None
                refused_after = timed.steps - timed.halt_step  # 1: the very next step refuses
            refused_ms = (time.perf_counter() - started) * 1000
    finally:
        for f in hung:
            f.cancel()
        await engine.stop()
        await broker.close()
        await journal.close()
    return {
        "halt_orders_hung_at_broker": len(hung),
        "halt_steps_after_halt_to_first_refusal": refused_after if refused_after is not None else "not refused",
        "halt_ms_submitted_to_halted": round(halted_ms, 3),
        "halt_ms_to_first_refusal": round(refused_ms, 3),
    }
