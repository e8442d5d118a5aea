"""States a person must not miss: a banner across the window while HALTED (red) or REDUCING
(amber), a red HALT button, the state and the venue in the title bar; an empty desk says what to
do first; REDUCING is reachable from the desk and lets exits through."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontInfo

from tests.ui.conftest import RISK, TRADER, DeskHarness, confirm_last, until
from tests.ui.test_launch_and_tree import _fill_launch
from ui.viewmodels.desk import Notice


async def test_halted_and_reducing_are_unmissable_and_reducing_lets_a_close_through(desk: DeskHarness) -> None:
    window = await desk.open()
    assert window.groups.empty.isVisibleTo(window.groups) and "Ctrl+N" in window.groups.empty.text()
    assert "trading-desk demo" in window.groups.empty.text()
    assert not window.banner_bar.isVisibleTo(window) and "ACTIVE — PAPER" in window.windowTitle()
    halt = window.toolbar.widgetForAction(window.halt_action)
    assert halt is not None and "#b3261e" in halt.styleSheet(), "a red HALT button"

    _fill_launch(window, "G1", lots=2).send.click()
    await until(lambda: (r := window.groups.model.row("G1")) is not None and r.state == "HEDGED", what="HEDGED")
    assert not window.groups.empty.isVisibleTo(window.groups), "the hint goes once there is a group"

    window.halt_action.trigger()
    await window.runner.last
    await until(lambda: window.banner_bar.isVisibleTo(window), what="the HALTED banner")
    assert window.banner.text().startswith("TRADING HALTED") and "#b3261e" in window.banner.styleSheet()
    assert "HALTED — PAPER — tina (trader)" in window.windowTitle()
    assert not window.launch_action.isEnabled() and "no new groups" in window.launch_action.toolTip()

    # a trader may not ease HALTED; risk moves it to REDUCING, where a close goes through
    assert not window.reduce_action.isEnabled() and "risk role" in window.reduce_action.toolTip()
    window.set_actor(RISK)
    assert window.reduce_action.isEnabled()
    window.reduce_action.trigger()
    await window.runner.last
    await until(lambda: window.banner.text().startswith("REDUCING ONLY"), what="the REDUCING banner")
    assert "#ffbf47" in window.banner.styleSheet() and "REDUCING — PAPER" in window.windowTitle()
    window.set_actor(TRADER)
    window.groups.select_group("G1")
    assert window.close_action.isEnabled(), "exits reduce exposure: allowed in REDUCING"
    window.close_action.trigger()
    confirm_last(window)
    await window.runner.last
    await until(lambda: (r := window.groups.model.row("G1")) is not None and r.state == "COMPLETED", what="closed")
    assert not window.launch_action.isEnabled(), "no new groups while REDUCING"


async def test_a_long_message_never_widens_the_window_and_its_whole_text_is_in_the_tooltip(desk: DeskHarness) -> None:
    window = await desk.open()
    before = window.width()
    text = "refused: " + "a very long reason " * 300
    window.notify(Notice("error", text))
    window.notify(Notice("error", text))
    assert window.width() == before, "the message is cut (tooltip), the window keeps its width"
    assert window.status.message.toolTip() == text
    window.notify(Notice("info", "launch G2: done"))  # the next message replaces the error
    assert window.status.message.text() == "launch G2: done"


async def test_a_saved_place_off_this_screen_is_brought_back_and_buttons_follow_the_role(desk: DeskHarness) -> None:
    window = await desk.open(RISK)
    window.move(5000, 4000)  # on a monitor that is not there any more, and saved there
    window.save_layout()
    window.fit_to_screen()
    area, frame = window.screen().availableGeometry(), window.frameGeometry()
    assert area.x() <= frame.x() <= area.right() and area.y() <= frame.y() <= area.bottom()
    again = await desk.open(RISK)  # a second window on the same settings: restored, then clamped
    frame = again.frameGeometry()
    assert area.x() <= frame.x() <= area.right() and area.y() <= frame.y() <= area.bottom()

    # risk may not cancel or close a group: the panel's buttons and the toolbar's say so
    for target in (window.groups.cancel_button, window.groups.close_button, window.cancel_action, window.close_action):
        assert not target.isEnabled() and "Needs the trader role (you are risk)" in target.toolTip()
    assert window.halt_action.isEnabled() and not window.resume_action.isEnabled()


async def test_cells_carry_their_whole_text_and_ids_are_monospace(desk: DeskHarness) -> None:
    window = await desk.open()
    _fill_launch(window, "G1", lots=2).send.click()
    await until(lambda: len(window.intents.model.rows()) == 2, what="two intents")
    model = window.intents.model
    titles = [c.title for c in model.columns]
    cid = model.index(0, titles.index("Client order id"))
    assert cid.data(Qt.ItemDataRole.ToolTipRole) == cid.data()
    font = cid.data(Qt.ItemDataRole.FontRole)
    assert font is not None and QFontInfo(font).fixedPitch()
    assert model.index(0, titles.index("Symbol")).data(Qt.ItemDataRole.FontRole) is None
    dialog = window.open_launch_dialog()
    assert dialog.lots.maximum() >= 10_000, "no silent cap at 999 lots"
    dialog.reject()
