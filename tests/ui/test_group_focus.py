"""Selecting a group brings up its detail and filters the hedge tree and the intent journal to it;
clearing the journal's group filter shows every group again."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex

from tests.ui.conftest import DeskHarness, until
from tests.ui.test_launch_and_tree import _fill_launch


async def test_selecting_a_group_filters_the_tree_and_the_journal(desk: DeskHarness) -> None:
    window = await desk.open()
    _fill_launch(window, "A1", lots=1).send.click()
    _fill_launch(window, "B2", lots=1).send.click()
    await until(lambda: all((r := window.groups.model.row(g)) and r.state == "HEDGED" for g in ("A1", "B2")), what="2")
    await until(lambda: window.tree.model.rowCount() == 2, what="both trees")
    window.groups.select_group("B2")
    await until(lambda: window.detail.group_id == "B2", what="detail")
    assert {r.group_id for r in window.intents.visible_rows()} == {"B2"}
    shown = [
        window.tree.model.index(r, 0).data()
        for r in range(window.tree.model.rowCount())
        if not window.tree.view.isRowHidden(r, QModelIndex())
    ]
    assert shown == ["B2"]
    window.intents.group.setText("")
    assert {r.group_id for r in window.intents.visible_rows()} == {"A1", "B2"}
    assert not any(window.tree.view.isRowHidden(r, QModelIndex()) for r in range(window.tree.model.rowCount()))
