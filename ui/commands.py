"""Runs person-given commands as tasks, so no slot ever awaits and no dialog blocks the loop.

A refused command (RoleError, CommandError, ...) is an outcome a person must read, not a crash:
it is reported through ``finished`` (status bar and log panel); the engine has already audited it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.core.commands import CommandError, RoleError
from engine.core.groups import GroupSpecError
from engine.core.margin import MarginModelError
from engine.runtime.view import EngineFailure

log = logging.getLogger(__name__)

REFUSALS: tuple[type[BaseException], ...] = (RoleError, CommandError, EngineFailure, GroupSpecError, MarginModelError)


class CommandRunner(QObject):
    finished = Signal(str, bool, str)  # command label, ok, message for a person

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.refusals = REFUSALS
        self._tasks: set[asyncio.Task[Any]] = set()
        self.last: asyncio.Task[Any] | None = None

    def run(self, label: str, factory: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(self._run(label, factory))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.last = task
        return task

    async def _run(self, label: str, factory: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await factory()
        except self.refusals as exc:
            self.finished.emit(label, False, f"{label} refused: {exc}")
            return None
        except Exception as exc:  # unexpected: logged with its traceback, shown, the desk keeps running
            log.exception("%s failed", label)
            self.finished.emit(label, False, f"{label} failed: {exc!r}")
            return None
        self.finished.emit(label, True, f"{label}: done")
        return result

    async def drain(self) -> None:
        """Wait for commands still running (at shutdown, before the engine stops)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
