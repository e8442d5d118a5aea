"""After a crash leaves an intent the broker never saw, the restarted desk shows the orphan; an
operator approves one retry (sent once), and a trader's attempt is refused by the engine."""

from __future__ import annotations

import pytest

from engine.runtime.engine import Engine
from engine.store.journal import Journal
from tests.runtime.harness import TRADER as ENGINE_TRADER
from tests.runtime.harness import SimulatedCrash, crash_at, group
from tests.ui.conftest import OPERATOR, TRADER, DeskHarness, confirm_last, until


async def _crash_with_an_orphan(desk: DeskHarness) -> str:
    broker = await desk.open_broker()
    journal = await Journal.open(desk.config.db)
    engine = Engine(journal, broker, desk.catalog, id_factory=desk.next_id, crash_hook=crash_at("after_intent_commit"))
    await engine.start()
    with pytest.raises(SimulatedCrash):
        await engine.launch(group("G1"), ENGINE_TRADER)
    await engine.stop()
    (committed,) = await journal.fetch("SELECT client_order_id FROM intents")  # journaled, never sent
    await journal.abort()
    return str(committed[0])


async def test_operator_approves_the_retry_once_and_a_trader_is_refused(desk: DeskHarness) -> None:
    coid = await _crash_with_an_orphan(desk)
    window = await desk.open(TRADER)  # the restart: recovery finds the orphan
    (esc,) = await until(lambda: window.escalations.model.rows(), what="orphan escalation")
    assert (esc.kind, esc.client_order_id, esc.status) == ("ORPHANED_INTENT", coid, "OPEN")
    assert window.intents.model.row(coid).status == "ORPHANED"
    approve = window.escalations.buttons["approve_retry"]
    assert not approve.isEnabled() and "Needs the operator role" in approve.toolTip()

    assert window.escalations.select(esc.escalation_id)
    window.escalations.trigger("approve_retry")  # past the disabled button: the engine decides
    asked = confirm_last(window)
    assert coid in asked.text() and "attempt 2" in asked.text()
    await window.runner.last
    assert "refused: approve_retry needs the operator role" in window.status.message.text()
    assert await desk.exchange_client_ids() == []

    window.set_actor(OPERATOR)
    assert approve.isEnabled()
    window.escalations.trigger("approve_retry")
    confirm_last(window, action=False)  # Cancel: nothing is sent
    assert await desk.exchange_client_ids() == []
    window.escalations.trigger("approve_retry")
    confirm_last(window)
    retry = await window.runner.last
    assert retry is not None and retry.client_order_id != coid

    await until(lambda: (r := window.groups.model.row("G1")) and r.state == "HEDGED", what="G1 HEDGED")
    ids = await desk.exchange_client_ids()
    assert ids.count(retry.client_order_id) == 1 and coid not in ids
    await until(lambda: window.intents.model.row(coid).status == "RETRY_APPROVED", what="orphan closed in view")
    await until(lambda: window.escalations.model.row(esc.escalation_id).status == "RESOLVED", what="resolved")
    audit = await desk.journal_rows("SELECT os_user, role, command, outcome FROM audit_log WHERE command!='launch'")
    assert audit == [
        ("tina", "trader", "approve_retry", "REFUSED"),
        ("omar", "operator", "retry_approved", "OK"),
    ]
