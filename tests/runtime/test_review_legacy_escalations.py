"""Review finding 8: escalations of a kind the engine no longer raises (UNKNOWN_OUTCOME, from
old journals) are still loaded: shown, acknowledged and resolved like any other."""

from __future__ import annotations

from engine.runtime import commands
from tests.runtime.harness import RISK, Harness


async def test_a_risk_user_can_still_acknowledge_an_open_legacy_escalation(harness: Harness) -> None:
    engine = await harness.start()
    assert harness.journal is not None
    async with harness.journal.transaction():
        await harness.journal.db.execute(
            "INSERT INTO escalations (kind, severity, status, reason, ts_created_local_ns)"
            " VALUES ('UNKNOWN_OUTCOME', 'CRITICAL', 'OPEN', 'from an older engine', 1)"
        )
    await harness.stop()
    engine = await harness.start()
    (esc_id,) = [r[0] for r in await harness.journal.fetch("SELECT escalation_id FROM escalations")]  # type: ignore[union-attr]
    await commands.acknowledge(engine, int(esc_id), RISK)  # CommandError: "does not exist"
    rows = await harness.journal.fetch("SELECT status FROM escalations")  # type: ignore[union-attr]
    assert rows == [("ACKNOWLEDGED",)]
