"""Seed defects 2 and 3: orphans are found whatever their age, never re-sent by themselves, and a
retry needs an operator; each approval creates exactly one new attempt with a new client id."""

from __future__ import annotations

from collections import Counter

import pytest

from engine.runtime import commands
from engine.runtime.state import CommandError, RoleError
from tests.runtime.harness import OPERATOR, RISK, TRADER, Harness, SimulatedCrash, crash_at, group

DAY_NS = 86_400 * 1_000_000_000


async def _orphan_one(harness: Harness) -> str:
    engine = await harness.start(crash_hook=crash_at("after_intent_commit"), fake_clock=True)
    with pytest.raises(SimulatedCrash):
        await engine.launch(group("G1"), TRADER)
    await harness.crash()
    return harness.first_intent_id()


async def test_defect2_an_intent_journaled_days_ago_is_still_found_and_orphaned(harness: Harness) -> None:
    coid = await _orphan_one(harness)
    harness.clock_ns += 3 * DAY_NS  # the restart comes three days later
    engine = await harness.start(fake_clock=True)
    doc = await harness.document()
    row = next(i for i in doc["intents"] if i["client_order_id"] == coid)
    assert row["status"] == "ORPHANED"
    assert engine.book.groups["G1"].waiting_on_person


async def test_defect3_orphans_are_never_resent_across_restarts(harness: Harness) -> None:
    coid = await _orphan_one(harness)
    for _ in range(2):
        engine = await harness.start()
        assert await engine.wait_settled(5)
        await harness.crash()
    assert coid not in await harness.exchange_client_ids()
    assert await harness.exchange_client_ids() == []


async def test_defect3_only_an_operator_may_approve_and_the_retry_is_sent_once(harness: Harness) -> None:
    coid = await _orphan_one(harness)
    engine = await harness.start()
    for actor in (TRADER, RISK):
        with pytest.raises(RoleError, match="approve_retry needs the operator role"):
            await commands.approve_retry(engine, coid, actor)
    assert await harness.exchange_client_ids() == []

    retry = await commands.approve_retry(engine, coid, OPERATOR)
    assert retry.client_order_id != coid and retry.intent_id == coid and retry.attempt == 2
    with pytest.raises(CommandError, match="only an ORPHANED intent"):
        await commands.approve_retry(engine, coid, OPERATOR)
    assert await engine.wait_settled(10)

    ids = await harness.exchange_client_ids()
    assert Counter(ids)[retry.client_order_id] == 1 and coid not in ids
    doc = await harness.document()
    assert doc["groups"][0]["state"] == "HEDGED"
    statuses = {i["client_order_id"]: i["status"] for i in doc["intents"]}
    assert statuses[coid] == "RETRY_APPROVED"
    assert [e["status"] for e in doc["escalations"]] == ["RESOLVED"]
    audit = await harness.journal.fetch(
        "SELECT os_user, role, command, outcome FROM audit_log WHERE command "  # type: ignore[union-attr]
        "!= 'launch' ORDER BY id"
    )
    assert audit == [
        ("tina", "trader", "approve_retry", "REFUSED"),
        ("rita", "risk", "approve_retry", "REFUSED"),
        ("omar", "operator", "retry_approved", "OK"),
        ("omar", "operator", "approve_retry", "REFUSED"),
    ]


async def test_abandon_closes_the_orphan_and_the_leg_sends_nothing_more(harness: Harness) -> None:
    coid = await _orphan_one(harness)
    engine = await harness.start()
    with pytest.raises(RoleError, match="operator"):
        await commands.abandon(engine, coid, TRADER)
    await commands.abandon(engine, coid, OPERATOR)
    assert await engine.wait_settled(5)
    doc = await harness.document()
    assert doc["groups"][0]["state"] == "FAILED"
    assert await harness.exchange_client_ids() == []


async def test_lost_ack_is_resolved_by_lookup_not_by_resending(harness: Harness) -> None:
    from engine.paper.faults import FaultProfile

    await harness.open_broker(FaultProfile(lost_ack_rate=1.0))
    engine = await harness.start()
    await engine.launch(group("G1"), TRADER)
    assert await engine.wait_settled(10)
    doc = await harness.document()
    assert doc["groups"][0]["state"] == "HEDGED"
    assert len(await harness.exchange_client_ids()) == len(doc["intents"]) == 2
    assert all(i["broker_order_id"] for i in doc["intents"])


async def test_definite_reject_closes_the_intent_and_fails_the_group_without_exposure(harness: Harness) -> None:
    from engine.paper.faults import FaultProfile

    await harness.open_broker(FaultProfile(reject_rate=1.0))
    engine = await harness.start()
    await engine.launch(group("G1"), TRADER)
    assert await engine.wait_settled(10)
    doc = await harness.document()
    assert doc["groups"][0]["state"] == "FAILED"
    assert {i["status"] for i in doc["intents"]} == {"REJECTED"}
    assert all(i["role"] == "HEDGE" for i in doc["intents"]), "no risk order without a filled hedge"
    assert doc["positions"] == {}
