"""`trading-desk bench`, durable ingest against the seed design and the storage floor.

Three ways to take the same offered stream of broker events (an ack, five fills and five status
reports per order, 10% of the stream re-sent duplicates and one event in 20 swapped with its
successor, as a feed reorders them):

- ours: the engine's own cycle (dedupe read, the pure step, input rows, one group commit per
  batch of 100 events), synchronous=FULL as the engine opens its journal;
- the seeds' pattern, implemented as ``IdempotencyManager`` is written in
  ``seeds/001_684b9e3c96c9c08b.txt`` (only its SQLite syntax fixed: an inline ``INDEX`` clause is
  not SQLite, so the two indexes are created after the table): a new connection and a commit per
  event, in ``run_in_executor``. It records dedupe only and applies nothing, so it is a generous
  reference;
- the floor: plain ``sqlite3`` ``executemany`` of the minimum rows (the dedupe key, the order, the
  quantity and the status), ``INSERT OR IGNORE`` on the key, one transaction per batch of 100,
  the journal's pragmas (WAL, synchronous=FULL).

Run as ``python -m app.bench_ingest EVENTS DIR``: one process per size, so its peak RSS is the
case's own (the bench compares 100k against 1M events).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import resource
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from app.bench_data import LOT, LOTS_PER_ORDER
from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog, load_margin_model
from engine.core.book import GroupRuntime, IntentRow
from engine.core.dedupe import dedupe_key
from engine.core.effects import JournalWrites
from engine.core.events import BrokerEvent, FillReport, OrderUpdate
from engine.core.groups import parse_groups
from engine.core.inputs import BrokerEvents
from engine.core.model import GroupState, LegRole, OrderStatus, OrderType, Side
from engine.core.state import EngineState
from engine.runtime.engine import Engine
from engine.store.journal import Journal

PER_ORDER = 1 + 2 * LOTS_PER_ORDER
ORDERS_PER_GROUP = 4  # a group's hedge, its re-hedges and its risk leg: what a live group holds
BATCH = 100


def offered_stream(orders: int, prefix: str = "G") -> tuple[list[IntentRow], list[BrokerEvent]]:
    """``orders`` working orders and their events: 10% duplicates, one in 20 out of order."""
    rows: list[IntentRow] = []
    base: list[BrokerEvent] = []
    for i in range(orders):
        coid = f"{prefix}{i:09d}"
        boid = f"B{coid}"
        rows.append(
            IntentRow(coid, coid, 1, f"BENCH{i // ORDERS_PER_GROUP}", LegRole.HEDGE, 1, "NIFTY26DEC24200CE", Side.BUY,
                      LOTS_PER_ORDER * LOT, OrderType.MARKET, None, broker_order_id=boid)
        )  # fmt: skip
        base.append(OrderUpdate(boid, coid, OrderStatus.ACCEPTED, 0, 1))
        for k in range(1, LOTS_PER_ORDER + 1):
            base.append(FillReport(f"T{coid}{k}", boid, coid, "NIFTY26DEC24200CE", Side.BUY, LOT, 100, 1 + k))
            status = OrderStatus.FILLED if k == LOTS_PER_ORDER else OrderStatus.PARTIALLY_FILLED
            base.append(OrderUpdate(boid, coid, status, k * LOT, 1 + k))
    for i in range(0, len(base) - 1, 20):  # a feed that reorders: a status ahead of its fill
        base[i], base[i + 1] = base[i + 1], base[i]
    offered: list[BrokerEvent] = []
    for i, event in enumerate(base):
        offered.append(event)
        if i % 9 == 8:  # one re-send per nine originals: 10% of what is offered
            offered.append(base[max(0, i - 40)])
    return rows, offered


async def ours(tmp: Path, orders: int, target: str | None = None) -> dict[str, Any]:
    """``target``: a postgresql:// URL of an empty, initialised journal (default: a SQLite file)."""
    rows, offered = offered_stream(orders)
    catalog = load_catalog()
    journal = await Journal.open(target or tmp / f"ours-{orders}.db")
    spec = parse_groups(
        [{"group_id": "BENCH", "legs": [
            {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 75},
            {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 75}]}],
        catalog,
    )[0]  # fmt: skip
    setup = JournalWrites()  # the live orders, written in one batch (not the measurement)
    for gid in dict.fromkeys(r.group_id for r in rows):
        setup.groups_new[gid] = GroupRuntime(dataclasses.replace(spec, group_id=gid), GroupState.HEDGE_SUBMITTED)
    setup.intents_new = {r.client_order_id: dataclasses.replace(r) for r in rows}
    async with journal.transaction():
        await journal.flush(setup)
    broker = await PaperBroker.open(tmp / f"ours-{orders}-exchange.db", catalog, auto_tick=False)
    clock = [1_000_000_000]
    engine = Engine(journal, broker, catalog, monotonic_ns=lambda: clock[0], lockstep=True)
    try:
        await journal.take_lease()
        state = EngineState(catalog, engine.config, load_margin_model(), engine._draw_id)
        for r in rows:
            state.book.add(r)
        for gid in dict.fromkeys(r.group_id for r in rows):
            state.group_ids.add(gid)
        engine.state = state
        await engine._start_checkpoint()
        started = time.perf_counter()
        for i in range(0, len(offered), BATCH):
            clock[0] += 1_000_000
            await engine._cycle([(BrokerEvents(clock[0], tuple(offered[i : i + BATCH])), None)], perform_io=False)
        elapsed = time.perf_counter() - started
        filled = sum(1 for r in state.book.intents.values() if r.order_status is OrderStatus.FILLED)
        if filled != orders:
            raise RuntimeError(f"ingest bench: {filled} of {orders} orders ended FILLED")
    finally:
        await engine.stop()
        await broker.close()
        await journal.close()
    return {"events": len(offered), "events_per_s": len(offered) / elapsed}


class SeedIdempotencyManager:
    """``IdempotencyManager`` as the seed writes it; only its SQLite syntax is fixed."""

    def __init__(self, db_path: str):
        self.db_path = db_path
        self.processed_event_ids: set[str] = set()
        self.lock = asyncio.Lock()
        self._create_table_if_needed()
        self._load_processed_events()

    def _create_table_if_needed(self) -> None:
        conn = sqlite3.connect(self.db_path)
        try:
            conn.execute("""
                CREATE TABLE IF NOT EXISTS processed_events (
                    event_id TEXT PRIMARY KEY,
                    group_id TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP
                )
            """)
            conn.execute("CREATE INDEX IF NOT EXISTS idx_group ON processed_events (group_id)")
            conn.execute("CREATE INDEX IF NOT EXISTS idx_time ON processed_events (timestamp)")
            conn.commit()
        finally:
            conn.close()

    def _load_processed_events(self) -> None:
        conn = sqlite3.connect(self.db_path)
        try:
            cursor = conn.cursor()
            cursor.execute("""
                SELECT event_id FROM processed_events
                WHERE timestamp > datetime('now', '-24 hours')
            """)
            self.processed_event_ids = set(row[0] for row in cursor.fetchall())
            logging.info(f"Loaded {len(self.processed_event_ids)} processed event IDs")
        finally:
            conn.close()

    async def mark_processed(self, event_id: str, group_id: str, event_type: str) -> bool:
        async with self.lock:
            if event_id in self.processed_event_ids:
                logging.warning(f"Duplicate event detected: {event_id}")
                return False
            self.processed_event_ids.add(event_id)
        await asyncio.get_event_loop().run_in_executor(
            None, self._persist_processed_event, event_id, group_id, event_type
        )
        return True

    def _persist_processed_event(self, event_id: str, group_id: str, event_type: str) -> None:
        conn = sqlite3.connect(self.db_path)
        try:
            conn.execute(
                """
                INSERT OR IGNORE INTO processed_events
                (event_id, group_id, event_type)
                VALUES (?, ?, ?)
            """,
                (event_id, group_id, event_type),
            )
            conn.commit()
        except sqlite3.IntegrityError:
            pass
        finally:
            conn.close()


async def seed_pattern(tmp: Path, orders: int) -> dict[str, Any]:
    _, offered = offered_stream(orders, "S")
    path = tmp / f"seed-{orders}.db"
    # the seed's connections use sqlite3's defaults (a rollback journal, synchronous=FULL)
    manager = SeedIdempotencyManager(str(path))
    logging.getLogger().setLevel(logging.ERROR)  # its duplicate warnings are not the measurement
    started = time.perf_counter()
    for event in offered:
        await manager.mark_processed(dedupe_key(event), "BENCH", type(event).__name__)
    elapsed = time.perf_counter() - started
    return {"events": len(offered), "events_per_s": len(offered) / elapsed}


def floor(tmp: Path, orders: int) -> dict[str, Any]:
    _, offered = offered_stream(orders, "F")
    conn = sqlite3.connect(tmp / f"floor-{orders}.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE events (key TEXT PRIMARY KEY, order_id TEXT NOT NULL, qty INTEGER, status TEXT)")
    started = time.perf_counter()
    for i in range(0, len(offered), BATCH):
        chunk = [_floor_row(e) for e in offered[i : i + BATCH]]
        conn.execute("BEGIN")
        conn.executemany("INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)", chunk)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return {"events": len(offered), "events_per_s": len(offered) / elapsed}


def floor_pg(url: str, orders: int) -> dict[str, Any]:
    """The floor on PostgreSQL: psycopg ``executemany`` of the same minimum rows, ``ON CONFLICT DO
    NOTHING`` on the key, one transaction per batch, synchronous_commit=on (as the journal sets)."""
    import psycopg

    _, offered = offered_stream(orders, "F")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = on")
        conn.execute(
            "CREATE TABLE floor_events (key TEXT PRIMARY KEY, order_id TEXT NOT NULL, qty BIGINT, status TEXT)"
        )
        started = time.perf_counter()
        for i in range(0, len(offered), BATCH):
            chunk = [_floor_row(e) for e in offered[i : i + BATCH]]
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany("INSERT INTO floor_events VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING", chunk)
        elapsed = time.perf_counter() - started
    return {"events": len(offered), "events_per_s": len(offered) / elapsed}


def _floor_row(e: BrokerEvent) -> tuple[str, str, int, str | None]:
    if isinstance(e, FillReport):
        return (dedupe_key(e), e.client_order_id, e.qty, None)
    assert isinstance(e, OrderUpdate)
    return (dedupe_key(e), e.client_order_id, e.filled_qty, e.status.value)


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM, which belongs to the address space exec made. Not
    ``ru_maxrss``: Linux carries the forking parent's RSS across exec into it (a child started
    by a 300 MB bench reported 287 MB, whatever it did)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: an upper bound


async def _main(events: int, tmp: Path) -> None:
    orders = max(1, round(events / (PER_ORDER * 10 / 9)))
    out = await ours(tmp, orders)
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]), Path(sys.argv[2])))
