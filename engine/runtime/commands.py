"""Operator commands on orphaned intents. Roles are enforced here, not only in the GUI, and every
command, refused or not, lands in the append-only audit log."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from engine.core.hedge_tree import NodeKind
from engine.core.model import TERMINAL_GROUP_STATES, GroupState, IntentStatus, OrderStatus, Role, Side
from engine.core.trading_state import TradingState, order_refusal
from engine.runtime import hedging, stops
from engine.runtime.ingest import snapshot_events
from engine.runtime.state import Actor, CommandError, RoleError
from engine.store.rows import IntentRow

if TYPE_CHECKING:
    from engine.runtime.engine import Engine


@asynccontextmanager
async def refusals_audited(
    engine: Engine, actor: Actor, command: str, target: str, detail: dict[str, Any] | None = None
) -> AsyncIterator[None]:
    """A refused command (wrong role, or not possible now) is written to the audit log, then raised."""
    try:
        yield
    except (RoleError, CommandError) as exc:
        await engine.audit(actor, command, target, {**(detail or {}), "refused": str(exc)}, "REFUSED")
        raise


async def _orphan_for(engine: Engine, ident: str) -> IntentRow:
    """Resolve an intent id or client order id to its ORPHANED attempt."""
    candidates = [r for r in engine.book.intents.values() if ident in (r.client_order_id, r.intent_id)]
    if not candidates:
        candidates = await engine.journal.load_intents("client_order_id=? OR intent_id=?", (ident, ident))
    orphans = [r for r in candidates if r.status is IntentStatus.ORPHANED]
    if not orphans:
        found = ", ".join(f"{r.client_order_id} is {r.status.value}" for r in candidates) or "no such intent"
        raise CommandError(f"{ident}: only an ORPHANED intent can be retried or abandoned ({found})")
    return orphans[-1]


async def _guarded(engine: Engine, actor: Actor, command: str, ident: str) -> IntentRow:
    engine.check_running()
    async with refusals_audited(engine, actor, command, ident):
        engine.require(actor, Role.OPERATOR, command)
        row = await _orphan_for(engine, ident)
    return row


async def approve_retry(engine: Engine, ident: str, actor: Actor) -> IntentRow:
    """Send a new attempt (new client id, attempt + 1) for an orphaned intent, exactly once.

    The broker is asked once more first: if it has the order after all, the order is adopted and
    no retry is sent.
    """
    async with engine.exclusive():
        row = await _guarded(engine, actor, "approve_retry", ident)
        group = engine.book.groups.get(row.group_id)
        refusal = engine.refusal_for(row.purpose)
        opening = row.purpose == "LEG" or (
            row.hedge_node_id in engine.book.nodes and engine.book.nodes[row.hedge_node_id].kind is NodeKind.LEG
        )
        if group is not None and group.cancel_requested and opening and not refusal:
            refusal = f"group {row.group_id} was cancelled; an opening order is not retried (abandon the intent)"
        if group is None or group.state in TERMINAL_GROUP_STATES or refusal:
            why = refusal or f"group {row.group_id} is finished; nothing is left to retry (abandon the intent)"
            await engine.audit(actor, "approve_retry", ident, {"refused": why}, "REFUSED")
            raise CommandError(f"{row.client_order_id}: {why}")
        snapshot = await engine.broker.find(row.client_order_id)
        if snapshot is not None:
            await engine.ingest_locked(snapshot_events(snapshot))
            why = f"{row.client_order_id}: the broker has this order after all; adopted it, no retry sent"
            await engine.audit(actor, "approve_retry", ident, {"refused": why}, "REFUSED")
            raise CommandError(why)
        now = engine.now_ns()
        attempts = await engine.journal.fetch("SELECT MAX(attempt) FROM intents WHERE intent_id=?", (row.intent_id,))
        retry = dataclasses.replace(
            row,
            client_order_id=engine.new_id(),
            attempt=int(attempts[0][0]) + 1,
            status=IntentStatus.PENDING,
            order_status=OrderStatus.INTENT,
            broker_order_id=None,
            filled_qty=0,
            fills_qty=0,
            reason="",
            ts_created_local_ns=now,
            ts_ack_exchange_ms=None,
            ts_updated_local_ns=now,
            last_query_local_ns=0,
        )
        # Closing the orphan and journaling its retry commit together: a crash can never leave an
        # approval whose attempt does not exist.
        note = f"retry approved as {retry.client_order_id}"
        await _close(engine, row, IntentStatus.RETRY_APPROVED, actor, note, retry=retry)
        await engine.journal_and_send(retry, journaled=True)
        await engine.advance_group(row.group_id)
        engine.refresh_settled()
        return retry


async def abandon(engine: Engine, ident: str, actor: Actor) -> IntentRow:
    """Close an orphaned intent without sending anything. Its leg sends no further orders."""
    async with engine.exclusive():
        row = await _guarded(engine, actor, "abandon", ident)
        await _close(engine, row, IntentStatus.ABANDONED, actor, "abandoned by operator")
        await engine.advance_group(row.group_id)
        engine.refresh_settled()
        return row


async def _close(
    engine: Engine, row: IntentRow, status: IntentStatus, actor: Actor, note: str, retry: IntentRow | None = None
) -> None:
    now = engine.now_ns()
    before = row.status
    row.status, row.reason, row.ts_updated_local_ns = status, note, now
    async with engine.journal.transaction():
        await engine.journal.update_intent(row)
        await engine.journal.record_transition(
            "INTENT",
            row.client_order_id,
            before.value,
            status.value,
            filled_qty=None,
            cause=f"{note} by {actor.os_user} ({actor.role.value})",
            ts_exchange_ms=None,
            now_ns=now,
        )
        for esc in await engine.journal.open_escalations_for(row.client_order_id):
            await engine.journal.resolve_escalation(esc, actor.os_user, note, now)
        await engine.audit_in_tx(actor, status.value.lower(), row.client_order_id, {"note": note}, "OK")
        if retry is not None:
            await engine.journal.insert_intent(retry)
            engine.crash("before_retry_commit")
    engine.book.add(row)
    engine.emit({"type": "intent_closed", "client_order_id": row.client_order_id, "status": status.value})


async def acknowledge(engine: Engine, escalation_id: int, actor: Actor) -> None:
    """Risk staff acknowledge an escalation: who, in which role, and when is recorded."""
    async with engine.exclusive():
        engine.check_running()
        async with refusals_audited(engine, actor, "acknowledge", str(escalation_id)):
            engine.require(actor, Role.RISK, "acknowledge")
            rows = await engine.journal.fetch("SELECT status FROM escalations WHERE escalation_id=?", (escalation_id,))
            if not rows:
                raise CommandError(f"escalation {escalation_id} does not exist")
            if rows[0][0] != "OPEN":
                raise CommandError(f"escalation {escalation_id} is {rows[0][0]}; only an OPEN one is acknowledged")
        now = engine.now_ns()
        async with engine.journal.transaction():
            await engine.journal.acknowledge_escalation(escalation_id, actor.os_user, actor.role.value, now)
            await engine.audit_in_tx(actor, "acknowledge", str(escalation_id), {}, "OK")
        engine.emit({"type": "escalation_acknowledged", "escalation_id": escalation_id, "by": actor.os_user})


async def manual_hedge(engine: Engine, group_id: str, symbol: str, side: Side, qty: int, actor: Actor) -> str:
    """A trader's manual hedge: a depth-0 MANUAL node through the journal and the hedge tree."""
    async with engine.exclusive():
        engine.check_running()
        detail = {"group_id": group_id, "symbol": symbol, "side": side.value, "qty": qty}
        async with refusals_audited(engine, actor, "manual_hedge", group_id, detail):
            engine.require(actor, Role.TRADER, "manual_hedge")
            if group_id not in engine.book.groups and group_id not in await engine.journal.group_ids():
                raise CommandError(f"group {group_id} does not exist")
            inst = engine.catalog.get(symbol)
            if inst is None:
                raise CommandError(f"unknown symbol {symbol!r}")
            if side is not Side.BUY:
                raise CommandError("a manual hedge buys protection; selling goes through close_group")
            problem = inst.check_qty(qty)
            if problem:
                raise CommandError(problem)
            refusal = order_refusal(engine.trading_state, reduces_exposure=True)
            if refusal:
                raise CommandError(refusal)
        await engine.audit(actor, "manual_hedge", group_id, detail, "OK")
        node = await hedging.start_node(engine, group_id, NodeKind.MANUAL, symbol, side, qty)
        engine.refresh_settled()
        return node.node_id


async def set_trading_state(engine: Engine, state: TradingState, actor: Actor) -> None:
    """The kill switch. Anyone may HALT or move to REDUCING; only risk staff may lift a restriction
    back to ACTIVE. Persisted and audited; cancels always pass whatever the state."""
    async with engine.exclusive():
        previous = engine.trading_state
        tightening = _STRICTNESS[state] >= _STRICTNESS[previous]
        try:
            if not tightening:
                engine.require(actor, Role.RISK, f"moving trading from {previous.value} to {state.value}")
        except RoleError as exc:
            await engine.audit(actor, "set_trading_state", state.value, {"refused": str(exc)}, "REFUSED")
            raise
        async with engine.journal.transaction():
            await engine.journal.set_setting("trading_state", state.value)
            await engine.audit_in_tx(actor, "set_trading_state", state.value, {"from": previous.value}, "OK")
        engine.trading_state = state
        engine.emit({"type": "trading_state", "state": state.value, "by": actor.os_user})
        if not tightening:  # groups held back by the switch carry on
            for group_id in sorted(engine.book.groups):
                engine.book.groups[group_id].waiting_on_person = False
                await engine.advance_group(group_id)
            engine.refresh_settled()


_STRICTNESS = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


async def close_group(engine: Engine, group_id: str, actor: Actor) -> None:
    """A trader closes a HEDGED group: its stop is cancelled (confirmed), the short RISK leg is
    bought back, and only then is the HEDGE sold. The group ends COMPLETED."""
    async with engine.exclusive():
        engine.check_running()
        async with refusals_audited(engine, actor, "close_group", group_id):
            engine.require(actor, Role.TRADER, "close_group")
            group = engine.book.groups.get(group_id)
            if group is None or group.state is not GroupState.HEDGED:
                state = group.state.value if group else "not open"
                raise CommandError(f"group {group_id} is {state}; only a HEDGED group can be closed")
        async with engine.journal.transaction():
            await engine.journal.request_close(group_id)
            await engine.audit_in_tx(actor, "close_group", group_id, {}, "OK")
        group.close_requested = True
        await engine.advance_group(group_id)
        engine.refresh_settled()


async def cancel_group(engine: Engine, group_id: str, actor: Actor) -> list[str]:
    """A trader cancels a group that is still building: nothing new is sent for it, every working
    order of it (never a stop-loss) is cancelled through the confirmed-cancel path, and once no
    order may still fill it ends CANCELLED (or HEDGED, when a matched spread already exists, for
    the trader to close). Interim-exposure hedges still run: a cancel never leaves exposure."""
    async with engine.exclusive():
        engine.check_running()
        async with refusals_audited(engine, actor, "cancel_group", group_id):
            engine.require(actor, Role.TRADER, "cancel_group")
            group = engine.book.groups.get(group_id)
            if group is None or group.state in TERMINAL_GROUP_STATES:
                raise CommandError(f"group {group_id} is not open")
            if group.state is GroupState.HEDGED:
                raise CommandError(f"group {group_id} is HEDGED; close it instead (risk leg first)")
        async with engine.journal.transaction():
            await engine.journal.request_cancel(group_id)
            await engine.audit_in_tx(actor, "cancel_group", group_id, {}, "OK")
        group.cancel_requested = True
        coids = await stops.cancel_working(engine, group_id, f"group cancelled by {actor.os_user} ({actor.role.value})")
        await engine.advance_group(group_id)
        engine.refresh_settled()
        return coids
