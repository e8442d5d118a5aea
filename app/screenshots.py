"""``trading-desk screenshots --out DIR``: a scripted session on a fresh paper desk, then a real
screenshot of the window, every panel and every dialog, and a geometry report.

The session: an engine crashes right after journaling an intent (so the restarted desk finds an
orphan); the desk opens on that journal; a trader launches a bear call spread with a stop (it
hedges fully) and one against a thin hedge book (a partial hedge, re-hedges, an escalation); the
market moves; the trader closes nothing; trading is HALTED. Then each panel is raised and
grabbed, each dialog opened and grabbed, and ``geometry.json`` says, for the window and every
dialog, its frame against the screen's available area and every button's width against its
text, so a test can assert that everything fits. Run it under Xvfb for what a person sees
(``xvfb-run -a -s "-screen 0 1366x768x24" trading-desk screenshots --out shots``); the whole
screen is grabbed too when there is one (``screen.png``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.brokers import open_broker
from app.config import defaults
from app.gui import DeskSession
from engine.catalog import load_catalog
from engine.core.commands import Actor, Launch, SetTradingState
from engine.core.groups import GroupSpec, parse_group
from engine.core.model import Role
from engine.core.trading_state import TradingState
from engine.runtime.engine import Engine
from engine.store.journal import Journal
from engine.store.users import os_user

HEDGE, RISK_SYMBOL = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"
THIN_HEDGE, THIN_RISK = "NIFTY26DEC24100PE", "NIFTY26DEC24200PE"


class _StagedCrash(BaseException):
    """The scripted crash: the engine dies right after journaling an intent, before sending it."""


def _spec(group_id: str, hedge: str, risk: str, qty: int, stop: str | None = None) -> GroupSpec:
    raw: dict[str, Any] = {
        "group_id": group_id,
        "legs": [
            {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": qty},
            {"role": "RISK", "symbol": risk, "side": "SELL", "qty": qty},
        ],
    }
    if stop is not None:
        raw["stop_loss"] = {"trigger_price": stop}
    return parse_group(raw, load_catalog())


async def _stage_orphan(db: Path, broker_url: str, actor: Actor) -> None:
    """An engine that journals a group's first intent and dies before sending it."""
    catalog = load_catalog()
    broker = await open_broker(broker_url, catalog)
    journal = await Journal.open(db)
    fired: list[str] = []

    def crash(where: str) -> None:
        if where == "after_intent_commit" and not fired:
            fired.append(where)
            raise _StagedCrash(where)

    engine = Engine(journal, broker, catalog, crash_hook=crash)
    await engine.start()
    with contextlib.suppress(_StagedCrash):
        await engine.launch(_spec("ORPHAN-1", HEDGE, RISK_SYMBOL, 75), actor)
    await engine.stop()
    await journal.abort()  # the process died: nothing below it cleaned up
    await broker.close()


def _buttons(widget: Any) -> list[dict[str, Any]]:
    from PySide6.QtWidgets import QAbstractButton

    out = []
    for b in widget.findChildren(QAbstractButton):
        if not b.isVisibleTo(widget) or not b.text():
            continue
        text_w = b.fontMetrics().horizontalAdvance(b.text().replace("&", ""))
        out.append({"text": b.text(), "width": b.width(), "text_width": text_w})
    return out


def _frame(widget: Any) -> dict[str, Any]:
    screen = widget.screen()
    g, a = widget.frameGeometry(), screen.availableGeometry()
    return {
        "frame": [g.x(), g.y(), g.width(), g.height()],
        "screen": [a.x(), a.y(), a.width(), a.height()],
        "minimum": [widget.minimumSizeHint().width(), widget.minimumSizeHint().height()],
        "buttons": _buttons(widget),
    }


async def _settle(seconds: float) -> None:
    """A scripted pause (not a test's wait): the loop runs Qt's events, the desk's timers repaint."""
    await asyncio.sleep(seconds)


async def _until(check: Any, what: str, within_s: float = 30.0) -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while loop.time() < end:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise RuntimeError(f"scripted session: no {what} within {within_s:.0f} s")


async def take(out: Path, home: Path | None = None) -> dict[str, Any]:
    """Run the scripted session and write the screenshots and geometry.json into ``out``."""
    from PySide6.QtWidgets import QApplication

    from ui.dialogs.confirm import ConfirmDialog
    from ui.main_window import MainWindow, open_settings

    home = home or Path(tempfile.mkdtemp(prefix="td-shots-"))
    user = os_user()
    config = replace(
        defaults(),
        db=home / "journal.db",
        broker=f"paper:{home / 'exchange.db'}",
        settings_file=home / "settings.ini",
        user=user,
        log_dir=home / "logs",
    )
    await _stage_orphan(home / "journal.db", config.broker, Actor(user, Role.TRADER))
    session = await DeskSession.open(config)
    window = MainWindow(session.desk_context(), open_settings(config.settings_file))
    report: dict[str, Any] = {"shots": [], "dialogs": {}}

    def shot(name: str, widget: Any) -> None:
        path = out / f"{name}.png"
        widget.grab().save(str(path))
        report["shots"].append(path.name)

    try:
        await window.start()
        window.show()
        broker = session.broker
        assert broker is not None and hasattr(broker, "core")
        await _until(lambda: window.escalations.model.rows(), "orphan escalation")
        trader = Actor(user, Role.TRADER)
        await window.commander.execute(Launch(_spec("NIFTY-CE-1", HEDGE, RISK_SYMBOL, 150, "250.00"), trader))
        broker.core.set_depth(THIN_HEDGE, lots_per_level=1, levels=1)  # a thin hedge book: a lot per order
        # One more lot than the hedge tree's waves (depth 0..max_hedge_depth, a lot each) can fill,
        # so the escalation is certain; with exactly as many, a book refilled in time hedged it all.
        thin_lots = config.max_hedge_depth + 2
        thin_qty = thin_lots * load_catalog()[THIN_HEDGE].lot_size
        await window.commander.execute(Launch(_spec("NIFTY-PE-2", THIN_HEDGE, THIN_RISK, thin_qty), trader))
        await _until(lambda: (r := window.groups.model.row("NIFTY-CE-1")) is not None and r.state == "HEDGED", "HEDGED")
        await _until(
            lambda: any(r.kind == "HEDGE_EXHAUSTED" for r in window.escalations.model.rows()),
            "the thin hedge's escalation",
        )
        await _settle(3.0)  # the market moves: quotes, marks and P&L
        window.groups.select_group("NIFTY-CE-1")
        await _settle(1.0)
        report["window"] = _frame(window)
        shot("desk", window)
        for name, dock in window.docks.items():
            dock.raise_()
            await _settle(0.3)
            shot(f"panel-{name}", dock)
        dialogs: list[tuple[str, Any]] = []
        launch = window.open_launch_dialog()
        launch.select("bear call spread", "NIFTY", 24000, 24200, 3)
        launch.stop_trigger.setText("250.00")
        dialogs.append(("launch", launch))
        dialogs.append(("confirm-close", window.request_close("NIFTY-CE-1")))
        escalation = next(r for r in window.escalations.model.rows() if r.kind == "ORPHANED_INTENT")
        dialogs.append(("confirm-approve-retry", window.request_approve_retry(escalation)))
        dialogs.append(("resolve", window.open_resolve(escalation)))
        exhausted = next(r for r in window.escalations.model.rows() if r.kind == "HEDGE_EXHAUSTED")
        dialogs.append(("manual-hedge", window.open_manual_hedge(exhausted)))
        why = await window.why(escalation.client_order_id)
        if why is not None:
            dialogs.append(("why", why))
        for name, dialog in dialogs:
            await _settle(0.5)
            report["dialogs"][name] = _frame(dialog)
            shot(f"dialog-{name}", dialog)
            dialog.reject() if not isinstance(dialog, ConfirmDialog) else dialog.cancel.click()
        await window.commander.execute(SetTradingState(TradingState.HALTED, trader))
        await _until(lambda: window.banner_bar.isVisible(), "HALT banner")
        await _settle(0.5)
        report["halted_window"] = _frame(window)
        shot("desk-halted", window)
        screen = window.screen()
        if QApplication.platformName() == "xcb":  # a real X screen (Xvfb): what a person sees
            screen.grabWindow(0).save(str(out / "screen.png"))
            report["shots"].append("screen.png")
    finally:
        window.quit_confirmed = True
        window.close()
        await window.shutdown()
        await session.close()
    (out / "geometry.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return report


def run(out: Path) -> int:
    """The CLI entry: a Qt application on a qasync loop, the session, the files."""
    import sys

    import qasync  # type: ignore[import-untyped]
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    from ui.gui_gc import collect_on_gui_thread

    collect_on_gui_thread(app)  # worker threads run Python code: never a collection there
    out.mkdir(parents=True, exist_ok=True)
    report = qasync.run(take(out))
    print(f"{len(report['shots'])} screenshots and geometry.json in {out}")
    return 0
