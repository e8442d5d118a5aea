"""The time-travel audit in the desk: right-click an order, a hedge node or an escalation, then
*Why?*, and read the causal chain as a timeline; scrub a group through time with the slider on
the group-detail panel and see its orders as the engine held them then."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QMenu

from tests.ui.conftest import DeskHarness, until
from tests.ui.test_launch_and_tree import HEDGE, _fill_launch
from ui.dialogs.why import WhyDialog
from ui.main_window import MainWindow
from ui.models.table import ROW_ROLE


def _ask_why(window: MainWindow, view: QAbstractItemView, row_matches) -> None:  # type: ignore[no-untyped-def]
    model = view.model()
    for r in range(model.rowCount()):
        index = model.index(r, 0)
        if row_matches(index):
            view.customContextMenuRequested.emit(view.visualRect(index).center())
            menu = view.findChildren(QMenu, "whyMenu")[-1]
            (action,) = [a for a in menu.actions() if a.text() == "Why?"]
            action.trigger()
            menu.close()
            return
    raise AssertionError("no such row in the view")


def _dialogs(window: MainWindow) -> list[WhyDialog]:
    return [d for d in window.dialogs if isinstance(d, WhyDialog)]


async def test_why_on_a_child_hedge_order_and_on_its_escalation_shows_the_chain(desk: DeskHarness) -> None:
    broker = await desk.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=2, levels=1)  # 2 of 5 lots fill, then children
    window = await desk.open()
    _fill_launch(window, "G1", lots=5).send.click()
    await until(lambda: window.escalations.model.rows(), what="the exhausted hedge's escalation")
    ((child,),) = await desk.journal_rows(
        "SELECT client_order_id FROM intents WHERE rule='hedge.child_for_remainder' ORDER BY rowid LIMIT 1"
    )
    await until(lambda: any(r.client_order_id == child for r in window.intents.model.rows()), what="child row")

    _ask_why(window, window.intents.view, lambda i: i.data(ROW_ROLE).client_order_id == child)
    dialog = (await until(lambda: _dialogs(window), what="why window"))[0]
    assert dialog.isVisible() and not dialog.isModal()
    assert dialog.link.title.startswith(f"order {child}") and dialog.link.rule == "hedge.child_for_remainder"
    shown = dialog.shown().strip()  # what the window displays, as text
    assert shown.startswith(f"order {child}") and "rule hedge.child_for_remainder" in shown
    assert "parent confirmed filled qty 150" in shown and "local, broker" in shown
    assert "confirmed by fills, then its cancel was confirmed" in shown
    assert "launched by tina (trader)" in shown

    _ask_why(window, window.escalations.view, lambda i: i.data(ROW_ROLE).kind == "HEDGE_EXHAUSTED")
    await until(lambda: len(_dialogs(window)) == 2, what="second why window")
    escalation = _dialogs(window)[1]
    assert escalation.link.title.startswith("escalation E1") and escalation.link.rule == "hedge.exhausted_at_depth"
    assert escalation.link.facts["node_depth"] == 3 and escalation.link.facts["max_depth"] == 3
    assert "rule hedge.exhausted_at_depth" in escalation.shown()


async def test_the_time_slider_shows_the_group_as_the_engine_held_it_after_each_input(desk: DeskHarness) -> None:
    window = await desk.open()
    _fill_launch(window, "G1", lots=2).send.click()
    await until(lambda: (r := window.groups.model.row("G1")) is not None and r.state == "HEDGED", what="HEDGED")
    window.groups.select_group("G1")
    detail = window.detail
    await until(lambda: detail.loads and detail.slider.isEnabled(), what="slider")
    assert detail.slider.value() == detail.slider.maximum() == len(detail.inputs) >= 3
    assert detail.when.text() == "live" and len(detail.orders.rows()) == 2

    detail.slider.setValue(0)  # the launch: the hedge's intent journaled, nothing sent yet
    await until(lambda: detail.rebuilds == 1, what="state rebuilt at the launch")
    first = detail.inputs[0][0]
    assert f"after input #{first} (command" in detail.header.text() and "HEDGE_SUBMITTED" in detail.header.text()
    (hedge,) = detail.orders.rows()
    assert (hedge.role, hedge.order_status, hedge.filled_qty) == ("HEDGE", "INTENT", 0)
    assert detail.live_button.isEnabled() and detail.when.text().startswith(f"#{first} ")

    detail.live_button.click()
    assert detail.when.text() == "live" and len(detail.orders.rows()) == 2 and "HEDGED" in detail.header.text()
