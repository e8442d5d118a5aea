"""Errors a person must see reach the status bar and log panel; an unhandled exception is logged
to a file and shown without blocking; `trading-desk` opens and closes the desk with no hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import Qt

from engine.catalog import load_catalog
from engine.core.groups import parse_group
from engine.paper.faults import FaultProfile
from tests.ui.conftest import DeskHarness, until
from ui.errors import excepthook, install_error_handling, reporter

ROOT = Path(__file__).resolve().parents[2]


async def test_a_broker_reject_reaches_the_status_bar_and_log_panel(desk: DeskHarness) -> None:
    await desk.open_broker(faults=FaultProfile(reject_rate=1.0))
    window = await desk.open()
    spec = parse_group(
        {
            "group_id": "G1",
            "legs": [
                {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 150},
                {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )
    await window.launch(spec)
    await until(lambda: any("rejected: broker rejected" in m for _, m in window.log.lines), what="reject in log")
    assert any(level == "error" and "rejected" in m for level, m in window.log.lines)
    await until(lambda: (r := window.groups.model.row("G1")) and r.family == "failed", what="red group")


async def test_an_unhandled_exception_is_logged_to_a_file_and_shown_without_blocking(desk: DeskHarness) -> None:
    window = await desk.open()
    installed = install_error_handling(desk.tmp_path / "logs")
    reporter().show_dialogs = True
    try:
        try:
            raise ZeroDivisionError("a bug in a slot")
        except ZeroDivisionError as exc:
            excepthook(type(exc), exc, exc.__traceback__)
        box = reporter().dialogs[-1]  # excepthook returned: the dialog was opened, not exec()'d
        assert box.isVisible() and box.windowModality() != Qt.WindowModality.ApplicationModal
        assert "ZeroDivisionError: a bug in a slot" in window.status.message.text()
        assert installed.log_file is not None
        assert installed.handler is not None
        installed.handler.flush()
        assert "Traceback" in installed.log_file.read_text() and "a bug in a slot" in installed.log_file.read_text()
        box.close()
    finally:
        reporter().show_dialogs = False
        installed.uninstall()
    assert window.view.failure is None, "the desk keeps running"


def test_trading_desk_with_no_arguments_opens_the_window_and_exits_cleanly(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path),
    }
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "--exit-after", "2", "--screenshot", str(shot)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a hang at exit fails here instead of blocking the suite
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "trading-desk" / "journal.db").is_file()
    assert (tmp_path / "data" / "trading-desk" / "paper-exchange.db").is_file()
    assert shot.stat().st_size > 10_000


def test_a_bad_config_file_is_refused_with_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "desk.toml"
    bad.write_text("db = \n")
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "--config", str(bad)],
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "is not valid TOML" in done.stderr
