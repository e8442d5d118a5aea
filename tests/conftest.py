"""Test setup: offscreen Qt and the qasync loop for every async test (see shared QT_STACK.md),
a loop exception handler so background-task errors fail the test, and journal/exchange fixtures
on real SQLite files."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before any Qt import

import asyncio
import contextlib
import gc
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from engine.broker.paper import PaperBroker
from engine.catalog import load_catalog
from engine.core.instruments import Instrument
from engine.core.model import Role
from engine.store import users
from engine.store.journal import Journal
from ui.gui_gc import collect_on_gui_thread, collector_installed

_LOOP_ERRORS: list[dict[str, Any]] = []


def _dump_tasks(signum: int, frame: Any) -> None:
    """`kill -USR1 <pytest pid>` prints every asyncio task's stack: a hung test shows where."""
    with contextlib.suppress(RuntimeError):
        for task in asyncio.all_tasks(asyncio.get_event_loop()):
            print(f"--- task {task.get_name()}", file=sys.stderr)
            task.print_stack(file=sys.stderr)
    sys.stderr.flush()


signal.signal(signal.SIGUSR1, _dump_tasks)


def _record(loop: Any, context: dict[str, Any]) -> None:
    _LOOP_ERRORS.append(context)
    loop.default_exception_handler(context)


def _qasync_loop_factory() -> qasync.QEventLoop:
    app = QApplication.instance() or QApplication([])
    collect_on_gui_thread(app)  # never a collection in a worker thread while Qt objects exist
    loop = qasync.QEventLoop(app)
    loop.set_exception_handler(_record)
    return loop


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]] | None:
    """GUI tests run on the qasync loop (Qt timers and signals must fire during an await). Engine
    tests run on the plain asyncio loop, which is what the headless engine runs on in production;
    they need no Qt, and keeping Qt out of them keeps a Qt fault from masquerading as an engine one."""
    if "ui" in Path(str(item.path)).relative_to(Path(__file__).parent).parts[:1]:
        return {"qasync": _qasync_loop_factory}
    return {"asyncio": _asyncio_loop_factory}


def _asyncio_loop_factory() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_record)
    return loop


@pytest.fixture(autouse=True)
def _fail_on_loop_errors() -> Any:
    _LOOP_ERRORS.clear()
    yield
    if _LOOP_ERRORS:
        pytest.fail(f"asyncio loop errors: {[str(c.get('exception') or c.get('message')) for c in _LOOP_ERRORS]}")


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread() -> Any:
    """Once a GUI test has run, automatic collection stays off (ui.gui_gc): after each test the
    main thread collects what the thresholds call for, so tests without a Qt loop stay bounded."""
    yield
    if not gc.isenabled() and collector_installed():
        collect_on_gui_thread(QApplication.instance()).check()  # type: ignore[arg-type]


# The desk's three test users. The journal's owner (the OS user running the tests) holds every
# role; these people hold what the owner grants them, as on a real desk's journal.
DESK_USERS = (("tina", Role.TRADER), ("rita", Role.RISK), ("omar", Role.OPERATOR))


@pytest.fixture(autouse=True)
def _desk_users_granted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SQLite journal a test opens in-process has tina, rita and omar granted one role each."""
    opened = Journal.open.__func__  # type: ignore[attr-defined]

    async def open_and_grant(cls: type[Journal], target: Any, **kwargs: Any) -> Journal:
        j: Journal = await opened(cls, target, **kwargs)
        if j.dialect == "sqlite" and j.schema_version >= 6:  # (tests of the migrations use other dirs)
            for user, role in DESK_USERS:
                await users.grant(j.db, user, role, "test owner")
        return j

    monkeypatch.setattr(Journal, "open", classmethod(open_and_grant))


@pytest.fixture
def catalog() -> dict[str, Instrument]:
    return load_catalog()


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    j = await Journal.open(tmp_path / "journal.db")
    yield j
    await j.close()


@pytest.fixture
async def paper(tmp_path: Path, catalog: dict[str, Instrument]) -> AsyncIterator[PaperBroker]:
    broker = await PaperBroker.open(tmp_path / "exchange.db", catalog, auto_tick=False)
    yield broker
    await broker.close()
