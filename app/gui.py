"""`trading-desk` with no subcommand: the desk window, with the engine on the qasync loop in the
same process. Shutdown runs in order: the window stops refreshing, running commands finish, the
engine stops, then the broker, the desk's reader and the journal close (no thread left behind)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from app.brokers import open_broker
from app.config import GuiConfig
from app.errors import UsageError
from engine.broker.paper import PaperBroker
from engine.broker.ws import WsBroker
from engine.catalog import load_catalog, load_margin_model
from engine.core.instruments import Instrument
from engine.core.margin import MarginModel
from engine.runtime.attached import AttachedEngine
from engine.runtime.engine import Engine
from engine.runtime.state import Actor, EngineConfig
from engine.store.journal import Journal
from engine.store.users import os_user
from ui.context import DeskContext

log = logging.getLogger(__name__)


@dataclass
class DeskSession:
    """Everything the window drives, opened and closed as one unit."""

    config: GuiConfig
    catalog: dict[str, Instrument]
    margin_model: MarginModel
    journal: Journal
    broker: PaperBroker | WsBroker | None  # None: attached to an engine in another process
    engine: Engine | AttachedEngine
    actor: Actor

    @classmethod
    async def open(
        cls,
        config: GuiConfig,
        *,
        broker: PaperBroker | WsBroker | None = None,
        margin_model: MarginModel | None = None,
        synchronous: str = "FULL",
        **engine_kwargs: Any,
    ) -> DeskSession:
        catalog = load_catalog()
        model = margin_model or _margin_model(config)
        # Who is at the desk is the OS user of this process: ``user`` is no config key or flag
        # (tests set it in code to act as their desk users), and the engine checks the roles held.
        actor = Actor(config.user or os_user(), config.role)
        if isinstance(config.db, Path) and not config.db.parent.is_dir():
            raise UsageError(f"directory {config.db.parent} for the journal does not exist")
        journal = await Journal.open(config.db, synchronous=synchronous)
        if journal.dialect == "postgresql" or await journal.engine_alive():
            # The journal's engine runs elsewhere (always so on PostgreSQL, where the engine has
            # its own login): this window attaches to it and never starts a second one.
            if journal.dialect == "postgresql":  # the person is the database login
                login = await journal.fetch("SELECT session_user")
                actor = Actor(str(login[0][0]), config.role)
            view = AttachedEngine(journal, catalog, margin_model=model)
            try:
                await view.start()
            except BaseException:
                await journal.close()
                raise
            return cls(config, catalog, model, journal, None, view, actor)
        try:
            if broker is None:
                broker = await open_broker(config.broker, catalog)
            engine_config = EngineConfig(
                max_hedge_depth=config.max_hedge_depth, order_timeout_ms=config.order_timeout_ms
            )
            engine = Engine(journal, broker, catalog, engine_config, margin_model=model, **engine_kwargs)
            try:
                await engine.start()
            except BaseException:
                await engine.stop()
                raise
        except BaseException:
            if broker is not None:
                await broker.close()
            await journal.close()
            raise
        return cls(config, catalog, model, journal, broker, engine, actor)

    def desk_context(self) -> DeskContext:
        """What the window is given: the engine as its two ports, and the session's facts."""
        return DeskContext(
            view=self.engine,
            commander=self.engine,
            actor=self.actor,
            journal_path=self.config.db,
            catalog=self.catalog,
            margin_model=self.margin_model,
            theme=self.config.theme,
            precautions=self.config.precautions(),
        )

    async def close(self) -> None:
        try:
            await self.engine.stop()
        finally:
            try:
                if self.broker is not None:
                    await self.broker.close()
            finally:
                await self.journal.close()


def _margin_model(config: GuiConfig) -> MarginModel:
    model = load_margin_model()
    if config.available_margin is None:
        return model
    try:
        available = int(Decimal(config.available_margin) * 100)
    except InvalidOperation as exc:
        raise UsageError(f"available_margin {config.available_margin!r} is not a number of rupees") from exc
    return dataclasses.replace(model, available_paise=available)


NO_DISPLAY = "no display: run under a desktop session or `xvfb-run -a trading-desk`"


def check_display(env: Mapping[str, str], platform: str) -> None:
    """Say plainly when there is no display to open a window on (instead of Qt's xcb abort)."""
    if not platform.startswith("linux"):
        return
    qpa = env.get("QT_QPA_PLATFORM", "")
    if qpa.split(":")[0] in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return  # a platform that needs no X or Wayland server
    if qpa.startswith("wayland") and env.get("WAYLAND_DISPLAY"):
        return
    if env.get("DISPLAY") or (not qpa and env.get("WAYLAND_DISPLAY")):
        return
    raise UsageError(NO_DISPLAY)


def run_gui(config: GuiConfig, *, exit_after_s: float | None = None, screenshot: Path | None = None) -> int:
    """Open the desk and run until its window closes. Returns the process exit code."""
    import qasync  # type: ignore[import-untyped]
    from PySide6.QtWidgets import QApplication

    from ui.errors import install_error_handling

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("trading-desk")
    app.setOrganizationName("trading-desk")
    app.setQuitOnLastWindowClosed(False)  # the coroutine below owns the shutdown order
    from ui.gui_gc import collect_on_gui_thread

    collect_on_gui_thread(app)  # worker threads run Python code: never a collection there
    handler = install_error_handling(config.log_dir)
    try:
        return int(qasync.run(_run(config, exit_after_s, screenshot)))
    finally:
        handler.uninstall()


async def _run(config: GuiConfig, exit_after_s: float | None, screenshot: Path | None) -> int:
    from ui.errors import loop_exception_handler
    from ui.main_window import MainWindow, open_settings

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(loop_exception_handler)
    session = await DeskSession.open(config)
    window: MainWindow | None = None
    try:
        window = MainWindow(session.desk_context(), open_settings(config.settings_file))
        await window.start()
        window.show()
        if screenshot is not None:
            loop.call_later(max(0.5, (exit_after_s or 2.0) - 0.5), window.save_screenshot, screenshot)
        if exit_after_s is not None:
            # --exit-after is an unattended run: no one is there to answer "quit with orders working?"
            window.quit_confirmed = True
            loop.call_later(exit_after_s, window.close)
        await window.wait_closed()
    finally:
        if window is not None:
            await window.shutdown()
        await session.close()
    return 0
