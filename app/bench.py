"""`trading-desk bench`: performance as ratios measured in the same run, on this machine.

- ingest: broker events applied with group commit (one transaction per batch of 100) versus one
  transaction per event;
- intent commit: the write-ahead intent commit with synchronous=FULL versus NORMAL;
- end to end: 20 groups launched against the in-process paper exchange until every one settles.
"""

from __future__ import annotations

import getpass
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog, load_margin_model
from engine.core.effects import Commit, JournalWrites
from engine.core.events import BrokerEvent, FillReport, OrderUpdate
from engine.core.groups import GroupSpec, parse_groups
from engine.core.inputs import BrokerEvents
from engine.core.model import GroupState, LegRole, OrderStatus, OrderType, Role, Side
from engine.core.state import EngineConfig, EngineState
from engine.core.step import step
from engine.runtime.engine import Engine
from engine.runtime.ids import seeded_ids
from engine.runtime.state import Actor
from engine.store.journal import Journal
from engine.store.rows import IntentRow

ORDERS = 200
LOTS_PER_ORDER = 5
LOT = 75


def _rows(prefix: str) -> list[IntentRow]:
    return [
        IntentRow(
            f"{prefix}{i:08d}",
            f"{prefix}{i:08d}",
            1,
            "BENCH",
            LegRole.HEDGE,
            1,
            "NIFTY26DEC24200CE",
            Side.BUY,
            LOTS_PER_ORDER * LOT,
            OrderType.MARKET,
            None,
            broker_order_id=f"B{prefix}{i}",
        )
        for i in range(ORDERS)
    ]


def _events(rows: list[IntentRow]) -> list[BrokerEvent]:
    out: list[BrokerEvent] = []
    for r in rows:
        assert r.broker_order_id
        out.append(OrderUpdate(r.broker_order_id, r.client_order_id, OrderStatus.ACCEPTED, 0, 1))
        for k in range(1, LOTS_PER_ORDER + 1):
            out.append(
                FillReport(
                    f"T{r.client_order_id}{k}",
                    r.broker_order_id,
                    r.client_order_id,
                    r.symbol,
                    Side.BUY,
                    LOT,
                    100,
                    1 + k,
                )
            )
            out.append(
                OrderUpdate(
                    r.broker_order_id,
                    r.client_order_id,
                    OrderStatus.FILLED if k == LOTS_PER_ORDER else OrderStatus.PARTIALLY_FILLED,
                    k * LOT,
                    1 + k,
                )
            )
    return out


async def _journal_with(path: Path, rows: list[IntentRow], spec: GroupSpec, synchronous: str = "FULL") -> Journal:
    journal = await Journal.open(path, synchronous=synchronous)
    async with journal.transaction():
        await journal.insert_group(spec, GroupState.HEDGE_SUBMITTED, "", 1)
        for r in rows:
            await journal.insert_intent(r)
    return journal


async def _ingest_rate(tmp: Path, batch: int, spec: GroupSpec) -> float:
    rows = _rows(f"I{batch}x")
    journal = await _journal_with(tmp / f"ingest{batch}.db", rows, spec)
    state = EngineState(load_catalog(), EngineConfig(), load_margin_model(), seeded_ids(0))
    for r in rows:
        state.book.add(r)
    events = _events(rows)
    started = time.perf_counter()
    for i in range(0, len(events), batch):
        chunk = tuple(events[i : i + batch])
        known = frozenset(await journal.known_keys([f"F:{e.trade_id}" for e in chunk if isinstance(e, FillReport)]))
        writes = JournalWrites()
        for effect in step(state, BrokerEvents(time.monotonic_ns(), chunk, known)):
            if isinstance(effect, Commit):
                writes.merge(effect.writes)
        async with journal.transaction():
            await journal.flush(writes)
    elapsed = time.perf_counter() - started
    await journal.close()
    return len(events) / elapsed


async def _intent_commit_us(tmp: Path, synchronous: str, spec: GroupSpec) -> float:
    journal = await _journal_with(tmp / f"intent{synchronous}.db", [], spec, synchronous)
    rows = _rows(f"C{synchronous[0]}")
    started = time.perf_counter()
    for r in rows:
        async with journal.transaction():
            await journal.insert_intent(r)
    elapsed = time.perf_counter() - started
    await journal.close()
    return elapsed / len(rows) * 1e6


async def _end_to_end_s(tmp: Path) -> float:
    catalog = load_catalog()
    shapes = [
        ("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", 150),
        ("NIFTY26DEC23800PE", "NIFTY26DEC24000PE", 2250),
        ("BANKNIFTY26DEC52500CE", "BANKNIFTY26DEC52000CE", 1050),
        ("NIFTY26DEC25000CE", "NIFTY26DEC24100CE", 750),
    ]
    specs = parse_groups(
        [
            {
                "group_id": f"E{i}",
                "legs": [
                    {"role": "HEDGE", "symbol": shapes[i % 4][0], "side": "BUY", "qty": shapes[i % 4][2]},
                    {"role": "RISK", "symbol": shapes[i % 4][1], "side": "SELL", "qty": shapes[i % 4][2]},
                ],
            }
            for i in range(20)
        ],
        catalog,
    )
    journal = await Journal.open(tmp / "e2e.db")
    broker = await PaperBroker.open(tmp / "e2e-exchange.db", catalog)
    engine = Engine(journal, broker, catalog)
    started = time.perf_counter()
    try:
        await engine.start()
        actor = Actor(getpass.getuser(), Role.TRADER)
        for spec in specs:
            await engine.launch(spec, actor)
        if not await engine.wait_settled(120):
            raise RuntimeError(f"bench groups did not settle: {engine.unsettled_groups()}")
        return time.perf_counter() - started
    finally:
        await engine.stop()
        await broker.close()
        await journal.close()


async def run_bench(as_json: bool) -> int:
    spec = parse_groups(
        [
            {
                "group_id": "BENCH",
                "legs": [
                    {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 75},
                    {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 75},
                ],
            }
        ],
        load_catalog(),
    )[0]
    with tempfile.TemporaryDirectory(prefix="td-bench-") as d:
        tmp = Path(d)
        grouped = await _ingest_rate(tmp, 100, spec)
        single = await _ingest_rate(tmp, 1, spec)
        full_us = await _intent_commit_us(tmp, "FULL", spec)
        normal_us = await _intent_commit_us(tmp, "NORMAL", spec)
        e2e = await _end_to_end_s(tmp)
    result: dict[str, Any] = {
        "ingest_events_per_s_group_commit": round(grouped),
        "ingest_events_per_s_commit_per_event": round(single),
        "ingest_group_commit_speedup": round(grouped / single, 2),
        "intent_commit_us_full": round(full_us, 1),
        "intent_commit_us_normal": round(normal_us, 1),
        "intent_commit_full_over_normal": round(full_us / normal_us, 2),
        "end_to_end_20_groups_s": round(e2e, 3),
    }
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        for key, value in result.items():
            print(f"{key:<40} {value}")
    return 0
