"""Actions that send or cancel orders ask first and say exactly what will be sent; Esc cancels,
Enter never means Cancel; precautionary thresholds make a big launch typed; a close while
HALTED is refused with the reason; quitting with orders working asks first."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.config import load
from engine.core.commands import SetTradingState
from engine.core.trading_state import TradingState
from tests.ui.conftest import RISK, TRADER, DeskHarness, confirm_last, until
from tests.ui.test_launch_and_tree import HEDGE, RISK_SYMBOL, _fill_launch
from ui.dialogs.confirm import ConfirmDialog
from ui.precautions import Precautions


async def _hedged(desk: DeskHarness, group_id: str = "G1", lots: int = 2):  # type: ignore[no-untyped-def]
    window = await desk.open()
    _fill_launch(window, group_id, lots=lots).send.click()
    await until(
        lambda: (r := window.groups.model.row(group_id)) is not None and r.state == "HEDGED", what=f"{group_id} HEDGED"
    )
    return window


async def test_close_says_what_it_sends_and_cancel_sends_nothing(desk: DeskHarness) -> None:
    window = await _hedged(desk)
    window.groups.select_group("G1")
    window.close_action.trigger()
    asked = confirm_last(window, action=False)  # Cancel
    assert asked.text().split("<br>") == [
        f"1. BUY 150 {RISK_SYMBOL} MARKET: buy back the short",
        f"2. SELL 150 {HEDGE} MARKET: sell the hedge, once the buy-back has filled",
    ]
    ids_before = set(await desk.exchange_client_ids())
    assert len(ids_before) == 2, "Cancel sent nothing"
    assert await desk.journal_rows("SELECT command FROM audit_log WHERE command='close_group'") == []

    window.close_action.trigger()
    confirm_last(window)
    await window.runner.last
    await until(lambda: (r := window.groups.model.row("G1")) is not None and r.state == "COMPLETED", what="closed")
    assert len(set(await desk.exchange_client_ids()) - ids_before) == 2, "the buy-back and the hedge sale"


async def test_a_close_while_halted_is_refused_with_the_reason(desk: DeskHarness) -> None:
    window = await _hedged(desk)
    window.halt_action.trigger()
    await window.runner.last
    window.groups.select_group("G1")
    await until(lambda: not window.close_action.isEnabled(), what="Close disabled while HALTED")
    for target in (window.close_action, window.groups.close_button):
        assert "HALTED" in target.toolTip() and "REDUCING" in target.toolTip()
    assert not window.cancel_action.isEnabled(), "a HEDGED group is closed, not cancelled (the engine refuses)"
    assert "close it instead" in window.cancel_action.toolTip()
    window.request_close("G1")  # past the disabled button: the engine decides, and says why
    confirm_last(window)
    await window.runner.last
    message = window.status.message.text()
    assert "refused" in message and "HALTED" in message and "REDUCING" in message
    assert "done" not in message
    assert window.escalations.model.rows() == [], "no escalation: nothing was queued"
    assert (row := window.groups.model.row("G1")) is not None and row.state == "HEDGED"


async def test_esc_cancels_and_enter_confirms_never_cancel(desk: DeskHarness) -> None:
    window = await desk.open()
    said: list[str] = []
    dialog = window.confirm("Test", "Send?", ["BUY 75 X MARKET"], "Send", lambda: said.append("yes"))
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible() and said == []
    dialog = window.confirm("Test", "Send?", ["BUY 75 X MARKET"], "Send", lambda: said.append("yes"))
    QTest.keyClick(dialog, Qt.Key.Key_Return)
    assert said == ["yes"]
    assert isinstance(dialog, ConfirmDialog) and not dialog.cancel.autoDefault() and dialog.action.isDefault()
    launch = window.open_launch_dialog()
    (cancel,) = [b for b in launch.findChildren(type(launch.send)) if b.text() == "Cancel"]
    assert launch.send.isDefault() and not cancel.autoDefault() and not cancel.isDefault()
    launch.reject()


async def test_a_launch_above_the_precautions_is_sent_only_once_its_quantity_is_typed(desk: DeskHarness) -> None:
    window = await desk.open()
    dialog = _fill_launch(window, "BIG", lots=26)
    assert "above 25 lots" in dialog.precaution.text()
    assert not dialog.send.isEnabled() and dialog.typed_qty.isVisibleTo(dialog)
    assert "Type 1950 to confirm: 26 lots is above 25" in dialog.preview.text()
    dialog.typed_qty.setText("1590")  # a slip
    assert not dialog.send.isEnabled()
    dialog.typed_qty.setText("1950")
    assert dialog.send.isEnabled() and "Confirmed 1950 units" in dialog.preview.text()
    dialog.lots.setValue(27)  # the quantity changed after it was typed: type it again
    assert not dialog.send.isEnabled()
    dialog.lots.setValue(2)
    assert dialog.send.isEnabled() and not dialog.typed_qty.isVisibleTo(dialog), "small: no typing"
    dialog.reject()


def test_precautions_come_from_the_config_and_bad_values_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "desk.toml"
    toml.write_text('precaution_lots = 5\nprecaution_notional = "1000000"\nprecaution_margin = "250000.50"\n')
    config = load(str(toml), {})
    assert config.precautions() == Precautions(5, 1_000_000_00, 25_000_050)
    assert Precautions(5, 1_000_000_00, 25_000_050).exceeded(6, 2_000_000_00, 0) == [
        "6 lots is above 5",
        "notional ₹20,00,000.00 is above ₹10,00,000.00",
    ]
    for bad, why in (("precaution_margin = 1.5\n", "not 1.5"), ('precaution_notional = "ten"\n', "rupees")):
        toml.write_text(bad)
        try:
            load(str(toml), {})
        except Exception as exc:
            assert why in str(exc)
        else:
            raise AssertionError(f"{bad!r} was accepted")


async def test_resume_and_quit_ask_first(desk: DeskHarness) -> None:
    window = await desk.open(RISK)
    assert not window.resume_action.isEnabled() and "already ACTIVE" in window.resume_action.toolTip()
    await window.commander.execute(SetTradingState(TradingState.HALTED, RISK))
    await until(window.resume_action.isEnabled, what="Resume enabled once HALTED")
    assert not window.halt_action.isEnabled() and "already HALTED" in window.halt_action.toolTip()
    window.resume_action.trigger()
    asked = confirm_last(window, action=False)
    assert "now HALTED" in asked.head.text() and "no order is queued" in asked.text()
    assert window.view.trading_state is TradingState.HALTED, "Cancel: still HALTED"
    window.resume_action.trigger()
    confirm_last(window)
    await window.runner.last
    assert window.view.trading_state is TradingState.ACTIVE

    window.set_actor(TRADER)
    broker = await desk.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=0)  # the hedge rests: an order stays working
    dialog = window.open_launch_dialog()
    dialog.select("bear call spread", "NIFTY", 24000, 24200, 2)
    dialog.group_id.setText("W1")
    dialog.hedge_limit.setText("100.00")
    dialog.send.click()
    await until(lambda: any(i.order_status == "ACCEPTED" for i in window.intents.model.rows()), what="working")
    window.close()
    assert window.isVisible(), "not closed: it asks first"
    asked = confirm_last(window, action=False)
    assert "1 order(s) working" in asked.text()
    assert window.isVisible()
    window.close()
    confirm_last(window)
    await window.wait_closed()
