"""Operator commands on orphaned intents. Roles are enforced here, not only in the GUI, and every
command, refused or not, lands in the append-only audit log."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from engine.core.model import IntentStatus, OrderStatus, Role
from engine.runtime.ingest import snapshot_events
from engine.runtime.state import Actor, CommandError, RoleError
from engine.store.rows import IntentRow

if TYPE_CHECKING:
    from engine.runtime.engine import Engine


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
    try:
        engine.require(actor, Role.OPERATOR, command)
        row = await _orphan_for(engine, ident)
    except (RoleError, CommandError) as exc:
        await engine.audit(actor, command, ident, {"refused": str(exc)}, "REFUSED")
        raise
    return row


async def approve_retry(engine: Engine, ident: str, actor: Actor) -> IntentRow:
    """Send a new attempt (new client id, attempt + 1) for an orphaned intent, exactly once.

    The broker is asked once more first: if it has the order after all, the order is adopted and
    no retry is sent.
    """
    async with engine.exclusive():
        row = await _guarded(engine, actor, "approve_retry", ident)
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
        return retry


async def abandon(engine: Engine, ident: str, actor: Actor) -> IntentRow:
    """Close an orphaned intent without sending anything. Its leg sends no further orders."""
    async with engine.exclusive():
        row = await _guarded(engine, actor, "abandon", ident)
        await _close(engine, row, IntentStatus.ABANDONED, actor, "abandoned by operator")
        await engine.advance_group(row.group_id)
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
