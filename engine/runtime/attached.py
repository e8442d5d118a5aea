"""A desk attached to a journal whose engine runs in another process (the shared desk).

It implements the same two ports as the engine hosted in a desk: ``EngineView`` from what the
engine committed, and ``Commander`` by submitting command rows and waiting for their outcome.
It follows the journal by the lease row's ``commit_seq``, which every engine transaction bumps:
woken by LISTEN/NOTIFY on PostgreSQL, and polled (every 50 ms on SQLite, every 2 s on
PostgreSQL as the safety net for notifications lost while disconnected). When the sequence moved,
it reloads the engine's state through the engine's own loader, so both show the same book."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.catalog import load_margin_model
from engine.core.book import Book
from engine.core.commands import Command, CommandError, RoleError
from engine.core.instruments import Instrument
from engine.core.margin import MarginModel
from engine.core.model import EscalationKind, EscalationStatus, Role, Severity
from engine.core.notices import EngineEvent, EscalationAcknowledged, EscalationRaised, TradingStateChanged
from engine.core.pnl import Mark
from engine.core.quotes import Quote
from engine.core.state import EngineConfig, EngineState
from engine.core.trading_state import TradingState
from engine.runtime import command_rows
from engine.runtime.loader import load_state
from engine.runtime.view import ConnectionState, EngineFailure, Touched
from engine.store.db import listen
from engine.store.journal import Journal
from engine.store.lease import Holder, read_holder
from engine.store.report import latest_marks
from engine.store.users import os_user

log = logging.getLogger(__name__)


@dataclass
class EngineSeen:
    """What the status bar says about the engine this desk is attached to."""

    holder: Holder | None = None
    alive: bool = False
    commit_seq: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    seen_at_ms: int = 0

    def describe(self) -> str:
        if self.holder is None:
            return "no engine has run on this journal"
        h = self.holder
        state = "alive" if self.alive else "NOT RUNNING"
        return f"engine pid {h.pid} on {h.host} (epoch {h.epoch}): {state}"


class AttachedEngine:
    def __init__(
        self,
        journal: Journal,
        catalog: Mapping[str, Instrument],
        *,
        margin_model: MarginModel | None = None,
        poll_ms: int | None = None,
    ) -> None:
        self.journal = journal
        self.catalog = dict(catalog)
        self.margin_model = margin_model or load_margin_model()
        self.config = EngineConfig()
        self.state = EngineState(self.catalog, self.config, self.margin_model, lambda: "")
        self.engine = EngineSeen()
        self.failure: BaseException | None = None
        self.reloads = 0
        self._listeners: list[Callable[[EngineEvent], None]] = []
        self._poll_s = (poll_ms if poll_ms is not None else (2000 if journal.dialect == "postgresql" else 50)) / 1000
        self._wake = asyncio.Event()
        self._io = asyncio.Lock()  # one connection: a snapshot read and a submit never interleave
        self._tasks: list[asyncio.Task[None]] = []
        self.changed = asyncio.Event()
        self.marks: dict[str, Mark] = {}  # the newest journaled mark of each symbol

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.journal.dialect == "postgresql":
            # LISTEN first, then read: nothing committed in between is missed.
            url = self.journal.db.url  # type: ignore[attr-defined]
            self._tasks.append(asyncio.create_task(listen(url, "td_journal", self._wake), name="desk-listen"))
        await self.refresh(force=True)
        self._tasks.append(asyncio.create_task(self._follow(), name="desk-follow"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: say so, keep trying
                log.warning("reading the journal failed: %s", exc)
                self.engine.alive = False

    async def refresh(self, *, force: bool = False) -> bool:
        """Re-read the journal if the engine committed since the last look; True if it did.

        The sequence and the state are read in one snapshot (a read-only transaction), and both
        are published together after it: a desk never shows a state that mixes two commits, nor
        a sequence newer than the state it shows (the desk re-reads its rows when the sequence
        moves, so a sequence published early would leave it on the older state)."""
        async with self._io:
            db = self.journal.db
            await db.begin_snapshot()
            try:
                rows = await db.fetch("SELECT commit_seq, status_json FROM lease WHERE id=1")
                seq = int(rows[0][0]) if rows else 0
                holder = await read_holder(db)
                state = None
                if force or seq != self.engine.commit_seq:
                    state = await load_state(
                        self.journal, self.catalog, self.config, self.margin_model, lambda: "", everything=True
                    )
                    marks = await latest_marks(self.journal)
            finally:
                await db.rollback()
            alive = await self.journal.engine_alive()
        self.engine.holder, self.engine.alive = holder, alive
        self.engine.seen_at_ms = time.time_ns() // 1_000_000
        try:
            self.engine.status = json.loads(rows[0][1]) if rows else {}
        except ValueError:
            self.engine.status = {}
        if state is None:
            return False
        before, self.state, self.engine.commit_seq = self.state, state, seq
        self.marks = marks
        self.reloads += 1
        self._emit_differences(before, self.state)
        self.changed.set()
        return True

    def _emit_differences(self, before: EngineState, after: EngineState) -> None:
        for esc_id, record in after.escalations.items():
            old = before.escalations.get(esc_id)
            if old is None and record.status is EscalationStatus.OPEN:
                self.emit(
                    EscalationRaised(
                        esc_id,
                        record.kind,
                        _severity(record.kind),
                        record.group_id,
                        record.client_order_id,
                        "",
                        0,
                        "raised by the engine",
                    )
                )
            elif old is not None and old.status is not record.status:
                self.emit(EscalationAcknowledged(esc_id, "another desk"))
        if before.trading_state is not after.trading_state:
            self.emit(TradingStateChanged(after.trading_state.value, "the desk's engine"))

    # --- EngineView ----------------------------------------------------------------------------

    def watch_quotes(self, symbols: Iterable[str]) -> None:
        """An attached desk has no broker: it shows the marks the engine journals (at most a
        second old, of the symbols open groups trade)."""

    def quote(self, symbol: str) -> Quote | None:
        m = self.marks.get(symbol)
        if m is None:
            return None
        return Quote(symbol, m.bid_paise, m.ask_paise, 0, 0, m.last_paise, 0, m.ts_exchange_ms)

    def subscribe(self, listener: Callable[[EngineEvent], None]) -> None:
        self._listeners.append(listener)

    def emit(self, event: EngineEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("listener failed on %s", event.type)

    def snapshot(self) -> Book:
        return self.state.book

    def committed(self) -> bool:
        return True  # this book is rebuilt from committed rows only

    @property
    def book(self) -> Book:
        return self.state.book

    @property
    def trading_state(self) -> TradingState:
        return self.state.trading_state

    def clock_offset_ms(self) -> int | None:
        value = self.engine.status.get("clock_offset_ms")
        return int(value) if isinstance(value, int) else None

    def event_count(self) -> int:
        return self.engine.commit_seq  # changes whenever the engine committed: the desk re-reads rows

    def take_touched(self) -> Touched | None:
        return None  # the book is rebuilt from the journal: every row may have changed

    def commit_latency_us(self) -> tuple[int, int] | None:
        value = self.engine.status.get("commit_us")
        return (int(value[0]), int(value[1])) if isinstance(value, list) and len(value) == 2 else None

    def connection(self) -> ConnectionState:
        if not self.engine.alive:
            return ConnectionState.CLOSED
        try:
            return ConnectionState(str(self.engine.status.get("connection", "IN_PROCESS")))
        except ValueError:
            return ConnectionState.CLOSED

    def broker_usable(self) -> bool:
        return bool(self.engine.status.get("broker_usable", True))

    def attached_to(self) -> str:
        return self.engine.describe()

    # --- Commander -----------------------------------------------------------------------------

    async def execute(self, command: Command, *, wait_s: float = 15.0) -> Any:
        """Submit the command as a row and wait for the engine's outcome. The person is who the
        database or the OS says this process runs as, whatever the command's actor says; only the
        role is taken from it (it must be one the person holds, which the engine checks)."""
        action, args = command_rows.encode(command)
        cid = command_rows.new_command_id()
        role: Role = command.actor.role
        async with self._io:
            await command_rows.submit(self.journal.db, cid, action, args, role, os_user())
        self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            self.changed.clear()
            async with self._io:
                row = await command_rows.by_id(self.journal.db, cid)
            if row is not None and row.status == "DONE":
                self._wake.set()
                value = json.loads(row.outcome_json or "{}").get("value")
                return value
            if row is not None and row.status == "REFUSED":
                if row.role_needed:
                    raise RoleError(row.error or "refused", Role(row.role_needed))
                raise CommandError(row.error or "refused")
            if loop.time() >= deadline:
                who = self.engine.describe()
                raise EngineFailure(
                    f"no answer from the engine within {wait_s:g} s ({who}); command {cid} stays queued"
                )
            # The outcome commits with a journal change: woken by it (NOTIFY on PostgreSQL), or
            # after 10 ms (a poll of the row; the deadline bounds it).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.01):
                    await self.changed.wait()


def _severity(kind: EscalationKind) -> Severity:
    critical = (EscalationKind.ORPHANED_INTENT, EscalationKind.HEDGE_EXHAUSTED, EscalationKind.UNKNOWN_OUTCOME)
    return Severity.CRITICAL if kind in critical else Severity.WARNING
