"""`trading-desk screenshots` after a scripted session (orphan, full hedge, partial hedge and
escalation, HALT): every panel and dialog is captured, and on a 1366×768 laptop screen and a
1920×1080 one the window and every dialog fit the screen and no button is wider than its text
needs. Run in its own process on an offscreen screen of that size (Qt's offscreen configfile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PANELS = {"groups", "detail", "intents", "tree", "escalations", "charts", "log", "positions", "chain"}
DIALOGS = {"launch", "confirm-close", "confirm-approve-retry", "resolve", "manual-hedge", "why"}
BUTTON_PADDING_PX = 48  # a button's frame and margins around its text; more means it was stretched


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_every_panel_and_dialog_is_shot_and_fits_the_screen(tmp_path: Path, size: tuple[int, int]) -> None:
    width, height = size
    screens = tmp_path / "screens.json"
    screens.write_text(
        json.dumps({"screens": [{"name": "desk", "x": 0, "y": 0, "width": width, "height": height, "logicalDpi": 96}]})
    )
    out = tmp_path / "shots"
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screens}", "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "screenshots", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "geometry.json").read_text())
    shots = set(report["shots"])
    assert {f"panel-{p}.png" for p in PANELS} | {f"dialog-{d}.png" for d in DIALOGS} | {"desk.png"} <= shots
    for name in shots:
        assert (out / name).stat().st_size > 2_000, f"{name} is an empty picture"

    def fits(what: str, g: dict[str, list[int]]) -> None:
        x, y, w, h = g["frame"]
        sx, sy, sw, sh = g["screen"]
        assert (sw, sh) == (width, height)
        assert sx <= x and sy <= y and x + w <= sx + sw and y + h <= sy + sh, f"{what} {g['frame']} off the screen"
        assert g["minimum"][0] <= sw and g["minimum"][1] <= sh, f"{what} cannot shrink to the screen"
        for b in g["buttons"]:
            assert b["width"] <= b["text_width"] + BUTTON_PADDING_PX, f"{what}: button {b} is stretched"

    fits("the window", report["window"])
    fits("the HALTED window", report["halted_window"])
    assert set(report["dialogs"]) == DIALOGS
    for name, geometry in report["dialogs"].items():
        fits(f"dialog {name}", geometry)
