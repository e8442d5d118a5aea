"""A real desk for GUI tests: real journal file, in-process paper exchange (auto_tick=False, so a
test decides when the market moves), the real main window, QSettings in a temp ini file.

Every async test here runs on the qasync loop (tests/conftest.py). Waiting is bounded polling with
``await asyncio.sleep`` (never qtbot.wait inside a coroutine)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication

from app.config import GuiConfig
from app.gui import DeskSession
from engine.broker.paper import PaperBroker
from engine.core.instruments import Instrument
from engine.core.model import Role
from engine.runtime.state import Actor
from ui.dialogs.confirm import ConfirmDialog
from ui.errors import reporter
from ui.main_window import MainWindow, open_settings

TRADER = Actor("tina", Role.TRADER)
RISK = Actor("rita", Role.RISK)
OPERATOR = Actor("omar", Role.OPERATOR)


async def until(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` on the running loop until it is truthy; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class DeskHarness:
    tmp_path: Path
    catalog: dict[str, Instrument]
    sessions: list[tuple[DeskSession, MainWindow]] = field(default_factory=list)
    broker: PaperBroker | None = None
    ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def config(self) -> GuiConfig:
        return GuiConfig(
            db=self.tmp_path / "journal.db",
            broker=f"paper:{self.tmp_path / 'exchange.db'}",
            role=Role.TRADER,
            user="tina",
            settings_file=self.tmp_path / "desk.ini",
            log_dir=self.tmp_path / "logs",
        )

    def next_id(self) -> str:
        return f"UI{next(self.ids):018d}"

    async def open_broker(self, **kw: Any) -> PaperBroker:
        if self.broker is None:
            self.broker = await PaperBroker.open(self.tmp_path / "exchange.db", self.catalog, auto_tick=False, **kw)
        return self.broker

    async def open(self, actor: Actor = TRADER, **session_kw: Any) -> MainWindow:
        broker = await self.open_broker()
        config = replace(self.config, user=actor.os_user, role=actor.role)
        session = await DeskSession.open(config, broker=broker, id_factory=self.next_id, **session_kw)
        window = MainWindow(session.desk_context(), open_settings(config.settings_file))
        self.sessions.append((session, window))
        await window.start()
        window.show()
        return window

    async def close(self, window: MainWindow) -> None:
        """Close a window the way a person does, then shut down in the app's order."""
        for i, (session, w) in enumerate(self.sessions):
            if w is window:
                window.quit_confirmed = True  # the person said yes to quitting with orders working
                window.close()
                await window.wait_closed()
                await window.shutdown()
                await session.engine.stop()
                await session.journal.close()
                window.deleteLater()
                del self.sessions[i]
                return

    async def aclose(self) -> None:
        for _, window in list(self.sessions):
            await self.close(window)
        if self.broker is not None:
            await self.broker.close()
            self.broker = None

    async def journal_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        session = self.sessions[-1][0]
        return await session.journal.fetch(sql, params)

    async def exchange_client_ids(self) -> list[str]:
        assert self.broker is not None
        return [o.client_order_id for o in await self.broker.orders()]


@pytest.fixture
async def desk(tmp_path: Path, catalog: dict[str, Instrument]) -> AsyncIterator[DeskHarness]:
    reporter().show_dialogs = False
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # as app.gui does: closing the window must not stop the loop
    h = DeskHarness(tmp_path, catalog)
    try:
        yield h
    finally:
        await h.aclose()
        reporter().show_dialogs = True


def confirm_last(window: MainWindow, action: bool = True) -> ConfirmDialog:
    """The confirmation the window just opened, answered as a person would (its action, or Cancel)."""
    dialog = next(d for d in reversed(window.dialogs) if isinstance(d, ConfirmDialog) and d.isVisible())
    (dialog.action if action else dialog.cancel).click()
    return dialog


__all__ = ["OPERATOR", "RISK", "TRADER", "DeskHarness", "confirm_last", "until"]


from tests.integration.shared import pg_cluster, pg_desk  # noqa: E402, F401  (fixtures)
