"""Crash at every step of the place path, restart on the same journal and the same exchange:
at most one exchange order per attempt, every intent accounted for, positions agree."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.core.model import GroupState, IntentStatus
from tests.runtime.harness import TRADER, Harness, SimulatedCrash, crash_at, group

POINTS = ["before_intent_commit", "after_intent_commit", "after_broker_accept", "after_ack_recorded"]
ACCOUNTED = {s.value for s in IntentStatus} - {"PENDING", "UNKNOWN"}


@pytest.mark.parametrize("point", POINTS)
async def test_crash_in_the_place_path_then_restart_is_consistent(harness: Harness, point: str) -> None:
    engine = await harness.start(crash_hook=crash_at(point))
    with pytest.raises(SimulatedCrash):
        await engine.launch(group("G1"), TRADER)
    await harness.crash()

    engine = await harness.start()
    if point == "before_intent_commit":
        # The launch and its first intent are one step, so one transaction: the crash lost both,
        # nothing reached the exchange, and the trader (who got an error) launches again.
        assert (await harness.document())["groups"] == [] and await harness.exchange_client_ids() == []
        await engine.launch(group("G1"), TRADER)
    assert await engine.wait_settled(10)

    doc = await harness.document()
    client_ids = await harness.exchange_client_ids()
    assert all(n == 1 for n in Counter(client_ids).values()), client_ids
    journal_ids = {i["client_order_id"] for i in doc["intents"]}
    assert set(client_ids) <= journal_ids, "every exchange order has a journaled intent"
    assert all(i["status"] in ACCOUNTED for i in doc["intents"]), doc["intents"]
    assert doc["positions"] == await harness.broker.positions()  # type: ignore[union-attr]
    state = doc["groups"][0]["state"]
    if point == "after_intent_commit":
        # journaled, never sent: an orphan for an operator, never re-sent by itself
        first = doc["intents"][0]
        assert first["status"] == "ORPHANED" and first["client_order_id"] not in client_ids
        assert [e["kind"] for e in doc["escalations"]] == ["ORPHANED_INTENT"]
        assert engine.book.groups["G1"].waiting_on_person
    else:
        assert state == GroupState.HEDGED.value
        assert doc["positions"] == {"NIFTY26DEC24000CE": -150, "NIFTY26DEC24200CE": 150}


async def test_defect3_accepted_but_unrecorded_order_is_adopted_not_resent(harness: Harness) -> None:
    engine = await harness.start(crash_hook=crash_at("after_broker_accept"))
    with pytest.raises(SimulatedCrash):
        await engine.launch(group("G1"), TRADER)
    await harness.crash()
    engine = await harness.start()
    assert await engine.wait_settled(10)
    hedge_orders = [o for o in await harness.broker.orders() if o.symbol == "NIFTY26DEC24200CE"]  # type: ignore[union-attr]
    assert len(hedge_orders) == 1
    doc = await harness.document()
    adopted = doc["intents"][0]
    assert adopted["client_order_id"] == hedge_orders[0].client_order_id
    assert adopted["broker_order_id"] == hedge_orders[0].broker_order_id
    assert adopted["status"] == "FILLED" and adopted["attempt"] == 1
