"""Roles are enforced by the engine's command API, every command is audited, and the kill switch
stops new orders while cancels and hedges keep their place (seed defect 15: escalations are
persisted and acknowledged by a named person)."""

from __future__ import annotations

import sqlite3

import pytest

from engine.core.model import Side
from engine.core.trading_state import TradingState
from engine.runtime import commands
from engine.runtime.state import CommandError, RoleError
from tests.runtime.harness import OPERATOR, RISK, TRADER, Harness, group

HEDGE = "NIFTY26DEC24200CE"


async def _with_escalation(harness: Harness) -> int:
    broker = await harness.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=0, levels=1)  # nothing to buy: the tree exhausts
    engine = await harness.start()
    await engine.launch(group("G1"), TRADER)
    assert await engine.wait_settled(10)
    (esc,) = (await harness.document())["escalations"]
    return int(esc["escalation_id"])


async def test_defect15_an_escalation_is_persisted_and_acknowledged_by_a_named_risk_user(harness: Harness) -> None:
    esc_id = await _with_escalation(harness)
    engine = harness.engine
    assert engine
    for actor in (TRADER, OPERATOR):
        with pytest.raises(RoleError, match="acknowledge needs the risk role"):
            await commands.acknowledge(engine, esc_id, actor)
    await commands.acknowledge(engine, esc_id, RISK)
    with pytest.raises(CommandError, match="only an OPEN one"):
        await commands.acknowledge(engine, esc_id, RISK)
    row = await harness.journal.fetch(  # type: ignore[union-attr]
        "SELECT status, acknowledged_by, acknowledged_role, ts_acknowledged_local_ns FROM escalations"
    )
    assert row[0][:3] == ("ACKNOWLEDGED", "rita", "risk") and row[0][3] > 0
    doc = await harness.document()
    assert doc["escalations"][0]["acknowledged_by"] == "rita"


async def test_each_role_can_give_exactly_its_own_commands(harness: Harness) -> None:
    esc_id = await _with_escalation(harness)
    engine = harness.engine
    assert engine
    allowed = {
        "launch": TRADER,
        "manual_hedge": TRADER,
        "acknowledge": RISK,
        "approve_retry": OPERATOR,
        "abandon": OPERATOR,
    }

    async def give(command: str, actor) -> None:
        if command == "launch":
            await engine.launch(group(f"L{actor.role.value}"), actor)
        elif command == "manual_hedge":
            await commands.manual_hedge(engine, "G1", HEDGE, Side.BUY, 75, actor)
        elif command == "acknowledge":
            await commands.acknowledge(engine, esc_id, actor)
        else:
            await getattr(commands, command)(engine, "NOSUCHINTENT", actor)

    for command, owner in allowed.items():
        for actor in (TRADER, RISK, OPERATOR):
            if actor is owner:
                continue
            with pytest.raises(RoleError, match=f"needs the {owner.role.value} role"):
                await give(command, actor)
    await give("acknowledge", RISK)
    node_id = await commands.manual_hedge(engine, "G1", HEDGE, Side.BUY, 75, TRADER)
    assert node_id
    with pytest.raises(CommandError, match="only an ORPHANED intent"):
        await give("approve_retry", OPERATOR)  # the role passes; there is simply nothing to approve
    refused = await harness.journal.fetch(  # type: ignore[union-attr]
        "SELECT COUNT(*) FROM audit_log WHERE outcome='REFUSED'"
    )
    assert refused[0][0] >= 10
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with harness.journal.transaction():  # type: ignore[union-attr]
            await harness.journal.fetch("UPDATE audit_log SET outcome='OK'")  # type: ignore[union-attr]


async def test_manual_hedge_goes_through_the_journal_and_the_hedge_tree(harness: Harness) -> None:
    await _with_escalation(harness)
    harness.broker.core.set_depth(HEDGE, lots_per_level=20, levels=5)  # type: ignore[union-attr]
    engine = harness.engine
    assert engine
    with pytest.raises(CommandError, match="not a multiple of lot size 75"):
        await commands.manual_hedge(engine, "G1", HEDGE, Side.BUY, 100, TRADER)
    node_id = await commands.manual_hedge(engine, "G1", HEDGE, Side.BUY, 150, TRADER)
    assert await engine.wait_settled(10)
    doc = await harness.document()
    node = next(n for n in doc["hedge_nodes"] if n["node_id"] == node_id)
    assert (node["kind"], node["depth"], node["status"], node["filled_qty"]) == ("MANUAL", 0, "FILLED", 150)
    (intent,) = [i for i in doc["intents"] if i["hedge_node_id"] == node_id]
    assert intent["status"] == "FILLED" and intent["client_order_id"] in await harness.exchange_client_ids()


async def test_halt_blocks_new_groups_but_cancels_still_pass_and_only_risk_resumes(harness: Harness) -> None:
    exchange_ms = [1_800_000_000_000]
    await harness.open_broker(exchange_clock=lambda: exchange_ms[0])
    from engine.catalog import load_catalog
    from engine.core.groups import parse_group
    from engine.runtime.state import EngineConfig

    engine = await harness.start(config=EngineConfig(order_timeout_ms=1000, max_hedge_depth=0), fake_clock=True)
    resting = parse_group(
        {
            "group_id": "R1",
            "legs": [
                {"role": "HEDGE", "symbol": HEDGE, "side": "BUY", "qty": 150, "limit_price": "0.05"},
                {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )
    await engine.launch(resting, TRADER)
    await commands.set_trading_state(engine, TradingState.HALTED, TRADER)  # anyone may halt
    with pytest.raises(CommandError, match="trading is HALTED"):
        await engine.launch(group("G2"), TRADER)
    exchange_ms[0] += 1500
    harness.clock_ns += 1_500_000_000
    assert await engine.wait_settled(10)  # the resting order's cancel went through while halted
    doc = await harness.document()
    assert [i["order_status"] for i in doc["intents"]] == ["CANCELLED"]
    assert doc["trading_state"] == "HALTED"
    with pytest.raises(RoleError, match="needs the risk role"):
        await commands.set_trading_state(engine, TradingState.ACTIVE, TRADER)
    await commands.set_trading_state(engine, TradingState.ACTIVE, RISK)
    await engine.launch(group("G2"), TRADER)
    assert await engine.wait_settled(10)


async def test_trading_state_survives_a_restart(harness: Harness) -> None:
    engine = await harness.start()
    await commands.set_trading_state(engine, TradingState.REDUCING, RISK)
    await harness.crash()
    engine = await harness.start()
    assert engine.trading_state is TradingState.REDUCING
    with pytest.raises(CommandError, match="REDUCING"):
        await engine.launch(group("G1"), TRADER)


async def test_a_trader_cancels_a_building_group_and_nothing_more_is_sent(harness: Harness) -> None:
    from engine.catalog import load_catalog
    from engine.core.groups import parse_group

    broker = await harness.open_broker()
    broker.core.set_depth(HEDGE, lots_per_level=1, levels=1)  # one of two lots fills at once
    engine = await harness.start()
    building = parse_group(
        {
            "group_id": "B1",
            "legs": [
                {"role": "HEDGE", "symbol": HEDGE, "side": "BUY", "qty": 150, "limit_price": "200.00"},
                {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
            ],
        },
        load_catalog(),
    )
    await engine.launch(building, TRADER)
    with pytest.raises(RoleError, match="cancel_group needs the trader role"):
        await commands.cancel_group(engine, "B1", RISK)
    cancelled = await commands.cancel_group(engine, "B1", TRADER)
    assert len(cancelled) == 1
    assert await engine.wait_settled(10)
    doc = await harness.document()
    assert (doc["groups"][0]["state"], doc["groups"][0]["reason"]) == (
        "CANCELLED",
        "cancelled by trader; hedge long 75 left open (no exposure)",
    )
    assert [o.status.value for o in await harness.broker.orders()] == ["CANCELLED"]  # type: ignore[union-attr]
    assert [(n["depth"], n["status"]) for n in doc["hedge_nodes"]] == [(0, "EXHAUSTED")]
    assert not [i for i in doc["intents"] if i["role"] == "RISK"], "nothing is sold for a cancelled group"
    await engine.launch(group("G2", hedge="BANKNIFTY26DEC52500CE", risk="BANKNIFTY26DEC52000CE", qty=70), TRADER)
    assert await engine.wait_settled(10)
    with pytest.raises(CommandError, match="is HEDGED; close it instead"):
        await commands.cancel_group(engine, "G2", TRADER)


async def test_a_cancelled_group_never_retries_its_opening_order(harness: Harness) -> None:
    from tests.runtime.harness import SimulatedCrash, crash_at

    engine = await harness.start(crash_hook=crash_at("after_intent_commit"))
    with pytest.raises(SimulatedCrash):
        await engine.launch(group("G1"), TRADER)
    await harness.crash()
    engine = await harness.start()
    await commands.cancel_group(engine, "G1", TRADER)
    (orphan,) = [r for r in engine.book.intents.values() if r.status.value == "ORPHANED"]
    with pytest.raises(CommandError, match="was cancelled; an opening order is not retried"):
        await commands.approve_retry(engine, orphan.client_order_id, OPERATOR)
    assert await harness.exchange_client_ids() == []
    await commands.abandon(engine, orphan.client_order_id, OPERATOR)
    assert await engine.wait_settled(10)
    assert engine.book.groups["G1"].state.value == "CANCELLED"


async def test_a_hedge_must_protect_its_risk_leg(harness: Harness) -> None:
    from engine.catalog import load_catalog
    from engine.core.groups import GroupSpecError, parse_group

    with pytest.raises(GroupSpecError, match="same underlying and option type"):
        parse_group(
            {
                "group_id": "X",
                "legs": [
                    {"role": "HEDGE", "symbol": "NIFTY26DEC24200PE", "side": "BUY", "qty": 75},
                    {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 75},
                ],
            },
            load_catalog(),
        )
