"""The one hop from the engine to Qt: engine events are queued (cheap, synchronous), and a
coalescing QTimer turns everything queued since the last tick into one batch of row changes.

At most one refresh per ``interval_ms`` (50 ms: 20 Hz), whatever the event rate; a quiet engine
costs nothing because a tick with nothing dirty does no work.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from engine.core.notices import EngineEvent
from engine.runtime.view import EngineView
from ui.reader import JournalReader
from ui.viewmodels.desk import Changes, DeskViewModel, Notice

log = logging.getLogger(__name__)


class EngineBridge(QObject):
    changes = Signal(object)  # Changes
    notice = Signal(object)  # Notice
    escalations_opened = Signal(object)  # list[EscalationRow] newly seen OPEN

    def __init__(self, view: EngineView, reader: JournalReader, interval_ms: int = 50, parent: Any = None) -> None:
        super().__init__(parent)
        self.view = view
        self.reader = reader
        self.desk = DeskViewModel()
        self.refreshes = 0
        self.messages_seen = 0
        self._inbox: list[EngineEvent] = []
        self._closed = False
        self._last_events = -1
        self._esc_task: asyncio.Task[None] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.tick)
        view.subscribe(self._on_event)

    async def seed(self) -> None:
        """Load what the engine book does not hold (closed groups, finished intents)."""
        escalations = await self.reader.escalations()
        intents = await self.reader.intents()
        escalated = {e.group_id for e in escalations if e.is_open}
        groups = await self.reader.groups(intents, escalated)
        seeded = self.desk.seed(groups, intents, await self.reader.nodes(), escalations)
        self.desk.escalations_dirty = False
        self.changes.emit(seeded)

    def start(self) -> None:
        self._timer.start()

    async def close(self) -> None:
        self._closed = True
        self._timer.stop()
        if self._esc_task is not None:
            await asyncio.gather(self._esc_task, return_exceptions=True)

    def _on_event(self, event: EngineEvent) -> None:
        if not self._closed:  # called by the engine task: queue only, never touch a widget here
            self._inbox.append(event)

    def tick(self) -> None:
        if self._closed:
            return
        events, self._inbox = self._inbox, []
        self.messages_seen += len(events)
        for notice in self.desk.absorb(events):
            self.notice.emit(notice)
        broker_events = self.view.event_count()
        if broker_events != self._last_events:
            self._last_events = broker_events
            self.desk.book_dirty = True
        if self.desk.escalations_dirty and self._esc_task is None:
            self.desk.escalations_dirty = False
            self._esc_task = asyncio.ensure_future(self._load_escalations())
        if self.desk.book_dirty and self.view.committed():  # else the next tick, after the commit
            changes = self.desk.refresh(self.view.snapshot(), self.view.take_touched())
            if changes:
                self.refreshes += 1
                self.changes.emit(changes)

    async def _load_escalations(self) -> None:
        try:
            rows = await self.reader.escalations()
            changed, new_open = self.desk.apply_escalations(rows)
            if changed and not self._closed:
                self.desk.book_dirty = True  # group colours follow open escalations
                self.desk.whole_refresh_due = True
                self.changes.emit(Changes(escalations=changed))
            if new_open and not self._closed:
                self.escalations_opened.emit(new_open)
        except Exception as exc:  # a failed read must not stop the desk; the next event retries
            log.exception("reading escalations failed")
            self.desk.escalations_dirty = True
            self.notice.emit(Notice("error", f"could not read escalations: {exc}"))
        finally:
            self._esc_task = None
