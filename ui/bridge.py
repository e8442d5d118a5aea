"""The one hop from the engine to Qt: engine messages are queued (cheap, synchronous), and a
coalescing QTimer turns everything queued since the last tick into one batch of row changes.

At most one refresh per ``interval_ms`` (50 ms: 20 Hz), whatever the event rate; a quiet engine
costs nothing because a tick with nothing dirty does no work.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from engine.runtime.engine import Engine
from ui.reader import JournalReader
from ui.viewmodels.desk import Changes, DeskViewModel, Notice

log = logging.getLogger(__name__)


class EngineBridge(QObject):
    changes = Signal(object)  # Changes
    notice = Signal(object)  # Notice
    escalations_opened = Signal(object)  # list[EscalationRow] newly seen OPEN

    def __init__(self, engine: Engine, reader: JournalReader, interval_ms: int = 50, parent: Any = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.reader = reader
        self.desk = DeskViewModel()
        self.refreshes = 0
        self.messages_seen = 0
        self._inbox: list[dict[str, Any]] = []
        self._closed = False
        self._last_events = -1
        self._esc_task: asyncio.Task[None] | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.tick)
        engine.subscribe(self._on_message)

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

    def _on_message(self, message: dict[str, Any]) -> None:
        if not self._closed:  # called by the engine task: queue only, never touch a widget here
            self._inbox.append(message)

    def tick(self) -> None:
        if self._closed:
            return
        messages, self._inbox = self._inbox, []
        self.messages_seen += len(messages)
        for notice in self.desk.absorb(messages):
            self.notice.emit(notice)
        events = self.engine.stats["events"]
        if events != self._last_events:
            self._last_events = events
            self.desk.book_dirty = True
        if self.desk.escalations_dirty and self._esc_task is None:
            self.desk.escalations_dirty = False
            self._esc_task = asyncio.ensure_future(self._load_escalations())
        if self.desk.book_dirty:
            changes = self.desk.refresh(self.engine.book)
            if changes:
                self.refreshes += 1
                self.changes.emit(changes)

    async def _load_escalations(self) -> None:
        try:
            rows = await self.reader.escalations()
            changed, new_open = self.desk.apply_escalations(rows)
            if changed and not self._closed:
                self.desk.book_dirty = True  # group colours follow open escalations
                self.changes.emit(Changes(escalations=changed))
            if new_open and not self._closed:
                self.escalations_opened.emit(new_open)
        except Exception as exc:  # a failed read must not stop the desk; the next message retries
            log.exception("reading escalations failed")
            self.desk.escalations_dirty = True
            self.notice.emit(Notice("error", f"could not read escalations: {exc}"))
        finally:
            self._esc_task = None
