"""Escalations in the window: a risk user acknowledges (the audit shows who), a trader's manual
hedge needs the qty typed twice, and role-gated buttons say which role they need."""

from __future__ import annotations

from PySide6.QtCore import Qt

from engine.catalog import load_catalog
from engine.core.groups import parse_group
from tests.ui.conftest import RISK, TRADER, DeskHarness, until
from ui.dialogs.resolve import ResolveDialog
from ui.main_window import MainWindow
from ui.viewmodels.rows import EscalationRow

HEDGE = "NIFTY26DEC24200CE"


async def _exhausted_group(desk: DeskHarness) -> tuple[MainWindow, EscalationRow]:
    broker = await desk.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=0, levels=1)  # nothing to buy: the tree exhausts
    window = await desk.open(TRADER)
    spec = parse_group(
        {
            "group_id": "G1",
            "legs": [
                {"role": "HEDGE", "symbol": HEDGE, "side": "BUY", "qty": 150},
                {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )
    await window.launch(spec)
    (row,) = await until(lambda: window.escalations.model.rows(), what="escalation")
    return window, row


async def test_a_risk_user_acknowledges_and_the_audit_trail_names_them(desk: DeskHarness, qtbot) -> None:
    window, esc = await _exhausted_group(desk)
    ack = window.escalations.buttons["acknowledge"]
    assert not ack.isEnabled() and "Needs the risk role" in ack.toolTip()

    window.set_actor(RISK)
    assert not ack.isEnabled() and "Select an escalation first" in ack.toolTip()
    assert window.escalations.select(esc.escalation_id)
    assert ack.isEnabled() and not window.escalations.buttons["manual_hedge"].isEnabled()
    assert "Needs the trader role" in window.escalations.buttons["manual_hedge"].toolTip()
    assert not window.escalations.buttons["approve_retry"].isEnabled()
    qtbot.mouseClick(ack, Qt.MouseButton.LeftButton)

    row = await until(
        lambda: (r := window.escalations.model.row(esc.escalation_id)) and r.status == "ACKNOWLEDGED" and r,
        what="acknowledged row",
    )
    assert row.handled_by == "rita (risk)"
    # acknowledged: Acknowledge is done with (it says by whom); Resolve is what is left
    await until(lambda: not ack.isEnabled(), what="Acknowledge disabled on an acknowledged row")
    assert "already ACKNOWLEDGED (rita (risk))" in ack.toolTip()
    assert window.escalations.buttons["resolve"].isEnabled()
    assert await desk.journal_rows("SELECT acknowledged_by, acknowledged_role FROM escalations") == [("rita", "risk")]
    window.groups.select_group("G1")
    trail = await until(
        lambda: [a for a in window.detail.audit.rows() if a.change == "acknowledge OK"], what="audit line"
    )
    assert trail[0].who == "rita (risk)" and trail[0].entity_id == str(esc.escalation_id)
    assert window.docks["escalations"].windowTitle() == "Escalations"


async def test_a_mistyped_manual_hedge_is_refused_and_the_right_one_goes_through_the_journal(
    desk: DeskHarness, qtbot
) -> None:
    window, esc = await _exhausted_group(desk)
    desk.broker.core.set_depth(HEDGE, lots_per_level=20, levels=5)  # type: ignore[union-attr]
    assert window.escalations.select(esc.escalation_id)
    qtbot.mouseClick(window.escalations.buttons["manual_hedge"], Qt.MouseButton.LeftButton)
    dialog = window.dialogs[-1]
    # nothing was bought and so nothing was sold: net exposure is 0, and buying 150 would over-hedge
    assert dialog.qty.value() == 0 and esc.unhedged_qty == 150
    assert "net exposure is +0" in dialog.plan.text() and "over-hedge" in dialog.plan.text()
    assert not dialog.send.isEnabled() and "nothing to send" in dialog.message.text()
    dialog.qty.setValue(100)  # not a whole number of lots of 75
    assert not dialog.send.isEnabled() and "not a whole number of lots of 75" in dialog.message.text()
    dialog.qty.setValue(150)  # the trader decides to buy the protection anyway
    assert dialog.send.isEnabled()

    dialog.confirm.setText("15")
    qtbot.mouseClick(dialog.send, Qt.MouseButton.LeftButton)
    assert "does not match quantity 150; nothing was sent" in dialog.message.text()
    assert dialog.isVisible()
    assert "manual hedge refused" in window.status.message.text()
    assert await desk.journal_rows("SELECT COUNT(*) FROM hedge_nodes WHERE kind='MANUAL'") == [(0,)]

    dialog.confirm.setText("150")
    qtbot.mouseClick(dialog.send, Qt.MouseButton.LeftButton)
    await window.runner.last
    rows = await until(
        lambda: [n for n in window.tree.model.children_of("G1") if n.kind == "MANUAL" and n.status == "FILLED"],
        what="filled manual node",
    )
    assert (rows[0].target_qty, rows[0].filled_qty) == (150, 150)
    (coid,) = await desk.journal_rows(
        "SELECT client_order_id FROM intents WHERE hedge_node_id=? AND status='FILLED'", (rows[0].node_id,)
    )
    assert coid[0] in await desk.exchange_client_ids()
    audit = await desk.journal_rows("SELECT os_user, role, outcome FROM audit_log WHERE command='manual_hedge'")
    assert audit == [("tina", "trader", "OK")]


async def test_risk_resolves_an_escalation_with_a_required_note(desk: DeskHarness) -> None:
    window, esc = await _exhausted_group(desk)
    window.set_actor(RISK)
    assert window.escalations.select(esc.escalation_id)
    resolve = window.escalations.buttons["resolve"]
    assert resolve.isEnabled() and resolve.text() == "Resolve…"
    resolve.click()
    dialog = window.dialogs[-1]
    assert isinstance(dialog, ResolveDialog) and not dialog.resolve.isEnabled(), "no note, no resolve"
    dialog.note.setPlainText("   ")
    assert not dialog.resolve.isEnabled()
    dialog.note.setPlainText("bought 150 by phone with the broker's desk")
    dialog.resolve.click()
    await window.runner.last
    await until(
        lambda: (r := window.escalations.model.row(esc.escalation_id)) is not None and r.status == "RESOLVED",
        what="RESOLVED",
    )
    rows = await desk.journal_rows("SELECT status, resolved_by, resolution FROM escalations")
    assert rows == [("RESOLVED", "rita", "bought 150 by phone with the broker's desk")]
    await until(lambda: not resolve.isEnabled(), what="nothing left to do on a RESOLVED row")
    assert "is RESOLVED" in resolve.toolTip()
