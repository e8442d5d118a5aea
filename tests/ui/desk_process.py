"""One person's desk window in its own process, for tests that need several desks at once.

    python -m tests.ui.desk_process --db URL --role ROLE --home DIR

It opens the desk exactly as `trading-desk --db URL --role ROLE` does (the same config loading,
`DeskSession`, main window and qasync loop; offscreen under QT_QPA_PLATFORM=offscreen) and then
takes requests, one JSON object per line on stdin, and answers each with one JSON line on stdout
carrying the request's ``id``. Requests act through the window's widgets (the toolbar's buttons,
the launch dialog, the escalations panel's buttons) and report what the window shows (status bar,
tables), so a test sees what the person at that desk would see. Requests run concurrently, so a
test can ask one desk to watch for something while another desk acts.

Ops: state, wait {what, contains, within_s}, launch {group_id, lots}, halt, resume,
approve {client_order_id}, screenshot {path}, quit. Times are ``time.monotonic()``, which is one
clock for every process on the machine, so a test can subtract one desk's from another's."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QToolBar

from app import config
from app.gui import DeskSession
from ui.dialogs.confirm import ConfirmDialog
from ui.errors import install_error_handling
from ui.main_window import MainWindow, open_settings


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _click_confirmation(window: MainWindow) -> float:
    """Say yes to the confirmation the last click opened, as the person does; when that was."""
    dialog = next(d for d in reversed(window.dialogs) if isinstance(d, ConfirmDialog) and d.isVisible())
    at = time.monotonic()
    QTest.mouseClick(dialog.action, Qt.MouseButton.LeftButton)
    return at


def _click_action(window: MainWindow, action: QAction) -> float:
    """Click the toolbar button of ``action`` as a mouse would; returns when it was clicked."""
    toolbar = window.findChild(QToolBar, "deskToolbar")
    button = toolbar.widgetForAction(action)
    if not button.isEnabled():
        raise RuntimeError(f"{action.text()} is disabled: {action.toolTip()}")
    at = time.monotonic()
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    return at


def _shown(window: MainWindow) -> dict[str, Any]:
    status = window.status
    return {
        "actor": [window.actor.os_user, window.actor.role.value],
        "trading": status.trading.text(),
        "engine": status.engine.text(),
        "message": status.message.text(),
        "launch_enabled": window.launch_action.isEnabled(),
        "seen_commit": window.view.event_count(),
        "reloads": getattr(window.view, "reloads", None),
        "groups": {r.group_id: r.state for r in window.groups.model.rows()},
        "intents": [[r.client_order_id, r.status] for r in window.intents.model.rows()],
        "escalations": [
            {"id": r.escalation_id, "kind": r.kind, "status": r.status, "client_order_id": r.client_order_id}
            for r in window.escalations.model.rows()
        ],
    }


async def _handle(window: MainWindow, req: dict[str, Any]) -> dict[str, Any]:
    op = req["op"]
    if op == "state":
        return _shown(window)
    if op == "wait":
        deadline = time.monotonic() + float(req["within_s"])
        while True:
            text = _shown(window)[req["what"]]
            if req["contains"] in str(text):
                return {"seen_at": time.monotonic(), "text": text}
            if time.monotonic() > deadline:
                raise TimeoutError(f"{req['what']} never showed {req['contains']!r} (it shows {text!r})")
            await asyncio.sleep(0.005)
    if op == "launch":
        dialog = window.open_launch_dialog()
        dialog.select("bear call spread", "NIFTY", 24000, 24200, int(req["lots"]))
        dialog.group_id.setText(req["group_id"])
        if not dialog.send.isEnabled():
            raise RuntimeError(f"the launch dialog cannot send: {dialog.preview.text()}")
        at = time.monotonic()
        QTest.mouseClick(dialog.send, Qt.MouseButton.LeftButton)
        return {"clicked_at": at, "preview": dialog.preview.text()}
    if op == "halt":
        return {"clicked_at": _click_action(window, window.halt_action)}
    if op == "resume":
        _click_action(window, window.resume_action)
        return {"clicked_at": _click_confirmation(window)}
    if op == "approve":
        panel = window.escalations
        row = next(
            (r for r in panel.model.rows() if r.client_order_id == req["client_order_id"] and r.is_open),
            None,
        )
        if row is None:
            raise LookupError(f"no open escalation for {req['client_order_id']}")
        panel.select(row.escalation_id)
        button = panel.buttons["approve_retry"]
        if not button.isEnabled():
            raise RuntimeError(f"Approve retry is disabled: {button.toolTip()}")
        QTest.mouseClick(button, Qt.MouseButton.LeftButton)
        return {"clicked_at": _click_confirmation(window)}
    if op == "screenshot":
        return {"saved": window.save_screenshot(Path(req["path"]))}
    raise ValueError(f"unknown op {op!r}")


async def _serve(cfg: config.GuiConfig) -> int:
    loop = asyncio.get_running_loop()
    session = await DeskSession.open(cfg)
    window = MainWindow(session.desk_context(), open_settings(cfg.settings_file))
    requests: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(requests.put_nowait, line)
        loop.call_soon_threadsafe(requests.put_nowait, None)

    running: set[asyncio.Task[None]] = set()

    async def answer(req: dict[str, Any]) -> None:
        try:
            _say({"id": req.get("id"), **(await _handle(window, req))})
        except Exception as exc:  # the test reads the error; the desk goes on
            _say({"id": req.get("id"), "error": f"{type(exc).__name__}: {exc}"})

    try:
        await window.start()
        window.show()
        threading.Thread(target=read_stdin, daemon=True).start()
        _say({"id": None, "ready": True, **_shown(window)})
        while (line := await requests.get()) is not None:
            req = json.loads(line)
            if req["op"] == "quit":
                break
            task = asyncio.ensure_future(answer(req))
            running.add(task)
            task.add_done_callback(running.discard)
        window.quit_confirmed = True  # quitting is the test's decision
        window.close()
        await window.wait_closed()
    finally:
        await window.shutdown()
        await session.close()
    return 0


def main() -> int:
    import qasync  # type: ignore[import-untyped]

    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--role", required=True)
    parser.add_argument("--home", required=True, type=Path)
    args = parser.parse_args()
    cfg = config.load(None, {"db": args.db, "role": args.role, "broker": None, "theme": None})
    cfg = dataclasses.replace(cfg, settings_file=args.home / "desk.ini", log_dir=args.home / "logs")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    from ui.gui_gc import collect_on_gui_thread

    collect_on_gui_thread(app)  # worker threads run Python code: never a collection there
    handler = install_error_handling(cfg.log_dir)
    try:
        return int(qasync.run(_serve(cfg)))
    finally:
        handler.uninstall()


if __name__ == "__main__":
    sys.exit(main())
