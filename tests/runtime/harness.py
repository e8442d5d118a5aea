"""A real engine on a real journal file and a real paper exchange state file, restartable."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.broker.paper import PaperBroker
from engine.core.groups import GroupSpec, parse_group
from engine.core.instruments import Instrument
from engine.core.model import Role
from engine.paper.faults import FaultProfile
from engine.runtime.engine import Engine
from engine.runtime.state import Actor, EngineConfig
from engine.store.journal import Journal
from engine.store.report import journal_document
from engine.store.rows import IntentRow

TRADER = Actor("tina", Role.TRADER)
RISK = Actor("rita", Role.RISK)
OPERATOR = Actor("omar", Role.OPERATOR)


class SimulatedCrash(BaseException):
    """Stands for the process dying: nothing below it gets to clean up."""


def crash_at(point: str) -> Callable[[str], None]:
    fired = []

    def hook(where: str) -> None:
        if where == point and not fired:
            fired.append(where)
            raise SimulatedCrash(where)

    return hook


def group(
    group_id: str,
    hedge: str = "NIFTY26DEC24200CE",
    risk: str = "NIFTY26DEC24000CE",
    qty: int = 150,
    catalog: dict[str, Instrument] | None = None,
) -> GroupSpec:
    from engine.catalog import load_catalog

    return parse_group(
        {
            "group_id": group_id,
            "legs": [
                {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": qty},
                {"role": "RISK", "symbol": risk, "side": "SELL", "qty": qty},
            ],
        },
        catalog or load_catalog(),
    )


class Harness:
    def __init__(self, tmp_path: Path, catalog: dict[str, Instrument]) -> None:
        self.db = tmp_path / "journal.db"
        self.exchange_db = tmp_path / "exchange.db"
        self.catalog = catalog
        self.broker: PaperBroker | None = None
        self.journal: Journal | None = None
        self.engine: Engine | None = None
        self._ids = itertools.count(1)
        self.clock_ns = 1_000_000_000

    def now_ns(self) -> int:
        return self.clock_ns

    def next_id(self) -> str:
        return f"TEST{next(self._ids):016d}"

    async def open_broker(self, faults: FaultProfile | None = None, **kw: Any) -> PaperBroker:
        self.broker = await PaperBroker.open(
            self.exchange_db, self.catalog, faults or FaultProfile(), auto_tick=False, **kw
        )
        return self.broker

    async def start(
        self,
        crash_hook: Callable[[str], None] | None = None,
        config: EngineConfig | None = None,
        fake_clock: bool = False,
        wall_ms: Callable[[], int] | None = None,
    ) -> Engine:
        if self.broker is None:
            await self.open_broker()
        assert self.broker is not None
        self.journal = await Journal.open(self.db)
        kwargs: dict[str, Any] = {"id_factory": self.next_id}
        if crash_hook:
            kwargs["crash_hook"] = crash_hook
        if fake_clock:
            kwargs["monotonic_ns"] = self.now_ns
        if wall_ms:
            kwargs["wall_ms"] = wall_ms
        self.engine = Engine(self.journal, self.broker, self.catalog, config or EngineConfig(), **kwargs)
        await self.engine.start()
        return self.engine

    async def crash(self) -> None:
        """Discard the engine and drop the journal connection without committing."""
        assert self.engine and self.journal
        await self.engine.stop()
        await self.journal.abort()
        self.engine = self.journal = None

    async def stop(self) -> None:
        if self.engine:
            await self.engine.stop()
        if self.journal:
            await self.journal.close()
        if self.broker:
            await self.broker.close()
        self.engine = self.journal = self.broker = None

    async def document(self) -> dict[str, Any]:
        assert self.journal
        return await journal_document(self.journal)

    def first_intent_id(self) -> str:
        """The first intent the journal holds (read from the file; the engine may be gone)."""
        import sqlite3

        with sqlite3.connect(self.db) as conn:
            return str(conn.execute("SELECT client_order_id FROM intents ORDER BY rowid LIMIT 1").fetchone()[0])

    async def exchange_client_ids(self) -> list[str]:
        assert self.broker
        return [o.client_order_id for o in await self.broker.orders()]


async def seed_resting_order(harness: Harness, engine: Engine, broker_order_id: str = "PX77") -> IntentRow:
    """A group HEDGE_SUBMITTED with one known LIMIT hedge order 'C1' of 300, written straight into
    the journal and the engine's book (no exchange involved): for feeding hand-made events."""
    from engine.core.model import GroupState, LegRole, OrderType, Side

    spec = group("G1")
    journal = harness.journal
    assert journal
    row = IntentRow(
        "C1",
        "C1",
        1,
        "G1",
        LegRole.HEDGE,
        1,
        spec.hedge.symbol,
        Side.BUY,
        300,
        OrderType.LIMIT,
        500,
        broker_order_id=broker_order_id,
    )
    async with journal.transaction():
        await journal.insert_group(spec, GroupState.HEDGE_SUBMITTED, "", 1)
        await journal.insert_intent(row)
    engine.book.add(row)
    return row
