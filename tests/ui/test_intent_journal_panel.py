"""The intent journal panel: filters by status, group and text, and exports what it shows as CSV."""

from __future__ import annotations

import csv

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
