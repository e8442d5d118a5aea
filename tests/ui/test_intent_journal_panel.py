"""The intent journal panel: filters by status, group and text, and exports what it shows as CSV."""

from __future__ import annotations

import csv

from PySide6.QtWidgets import QFileDialog, QLineEdit

from engine.core.model import Role
from engine.runtime.state import Actor
from tests.runtime.harness import group
from tests.ui.conftest import DeskHarness, until


async def test_intent_filters_narrow_the_rows_and_csv_exports_exactly_them(desk: DeskHarness, tmp_path) -> None:
    window = await desk.open()
    engine = desk.sessions[-1][0].engine
    for gid in ("ALPHA", "BETA"):
        await engine.launch(group(gid), Actor("tina", Role.TRADER))
    rows = window.intents.model.rows
    await until(lambda: len(rows()) == 4 and {r.status for r in rows()} == {"FILLED"}, what="four filled intents")
    panel = window.intents

    panel.group.setText("alp")
    assert {r.group_id for r in panel.visible_rows()} == {"ALPHA"} and len(panel.visible_rows()) == 2
    panel.group.setText("")
    panel.text.setText("NIFTY26DEC24000CE")  # the short leg's symbol
    assert sorted((r.group_id, r.symbol) for r in panel.visible_rows()) == [
        ("ALPHA", "NIFTY26DEC24000CE"),
        ("BETA", "NIFTY26DEC24000CE"),
    ]
    panel.text.setText("")
    panel.status.setCurrentText("ORPHANED")
    assert panel.visible_rows() == []
    panel.status.setCurrentText("FILLED")
    assert len(panel.visible_rows()) == 4

    panel.group.setText("BETA")
    out = tmp_path / "intents.csv"
    assert panel.export_csv(out) == 2
    with out.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    ids = {r.client_order_id for r in panel.visible_rows()}
    assert len(body) == 2
    id_col = next(i for i, title in enumerate(header) if "client" in title.lower() or title.lower() == "id")
    assert {r[id_col] for r in body} == ids
    assert {r[header.index("Order status")] for r in body} == {"FILLED"}, "the order's status, never INTENT"


async def test_the_export_dialog_never_blocks_the_engine_and_writes_off_the_gui_thread(
    desk: DeskHarness, tmp_path
) -> None:
    window = await desk.open()
    engine = desk.sessions[-1][0].engine
    panel = window.intents
    panel._ask_export()
    dialog = panel._dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.testOption(QFileDialog.Option.DontUseNativeDialog), "Qt's own dialog: no platform exec loop"
    # while the dialog is up the loop runs: the engine launches and fills a group
    await engine.launch(group("WHILE"), Actor("tina", Role.TRADER))
    await until(lambda: len(panel.model.rows()) == 2, what="the engine kept working behind the dialog")
    out = tmp_path / "while.csv"
    dialog.setDirectory(str(tmp_path))
    name = dialog.findChild(QLineEdit, "fileNameEdit")  # what a person types in Qt's own dialog
    assert name is not None
    name.setText(out.name)
    dialog.accept()
    assert dialog.selectedFiles() == [str(out)]
    assert await panel.export_task == 2 and out.read_text(encoding="utf-8").count("WHILE") == 2
