"""The kill switch from the toolbar blocks new launches while cancels pass; the dock layout
survives a restart (QSettings in a temp ini file) and can be restored to the default."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.ui.conftest import DeskHarness, confirm_last, until
from tests.ui.test_launch_and_tree import _fill_launch


async def test_halt_blocks_a_new_launch_while_cancels_still_work(desk: DeskHarness) -> None:
    window = await desk.open()
    assert window.halt_action.shortcut().toString() == "Ctrl+Shift+H"
    _fill_launch(window, "R1", lots=2, limit="0.05").send.click()  # rests far below the market
    await window.runner.last
    (resting,) = await until(
        lambda: [i for i in window.intents.model.rows() if i.order_status == "ACCEPTED"], what="resting order"
    )

    window.halt_action.trigger()
    await window.runner.last
    await until(lambda: window.status.trading.text() == "trading HALTED", what="HALTED in the status bar")
    _fill_launch(window, "G2", lots=2).send.click()
    await window.runner.last
    assert "launch G2 refused: trading is HALTED" in window.status.message.text()
    assert await desk.journal_rows("SELECT group_id FROM groups") == [("R1",)]

    assert window.groups.select_group("R1")
    window.cancel_action.trigger()
    asked = confirm_last(window)
    assert f"({resting.client_order_id})" in asked.text() and asked.text().startswith("cancel BUY ")
    await window.runner.last
    await until(lambda: window.intents.model.row(resting.client_order_id).order_status == "CANCELLED", what="cancelled")
    (order,) = await desk.broker.orders()  # type: ignore[union-attr]
    assert (order.client_order_id, order.status.value) == (resting.client_order_id, "CANCELLED")
    nodes = await until(
        lambda: [n for n in window.tree.model.children_of("R1") if n.status == "EXHAUSTED"], what="hedge node closed"
    )
    assert window.tree.model.children_of(nodes[0].node_id) == [], "a cancelled group's remainder is never re-sent"
    await until(lambda: (r := window.groups.model.row("R1")) is not None and r.state == "CANCELLED", what="CANCELLED")
    assert [r[0] for r in await desk.journal_rows("SELECT outcome FROM audit_log WHERE command='cancel_group'")] == [
        "OK"
    ]
    assert window.resume_action.isEnabled() is False and "risk role" in window.resume_action.toolTip()


async def test_the_dock_layout_survives_a_restart_and_the_default_can_be_restored(desk: DeskHarness) -> None:
    window = await desk.open()
    assert window.dockWidgetArea(window.docks["escalations"]) == Qt.DockWidgetArea.BottomDockWidgetArea
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, window.docks["escalations"])
    window.docks["charts"].hide()
    await desk.close(window)

    window = await desk.open()
    assert window.dockWidgetArea(window.docks["escalations"]) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert window.docks["charts"].isHidden()

    window.layout_action.trigger()
    assert window.dockWidgetArea(window.docks["escalations"]) == Qt.DockWidgetArea.BottomDockWidgetArea
    assert not window.docks["charts"].isHidden()
