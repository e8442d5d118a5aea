"""A person's commands, decided. Roles are enforced here, not only in the GUI, and every command,
refused or not, lands in the append-only audit log in the same journal batch as its effects.

A handler validates first and changes nothing until every check has passed: a refusal raises
RoleError or CommandError, and the step records the refusal and answers the caller with it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from engine.core.book import GroupRuntime, IntentRow
from engine.core.cancels import cancel_working
from engine.core.commands import (
    Abandon,
    Acknowledge,
    Actor,
    ApproveRetry,
    CancelGroup,
    CloseGroup,
    Command,
    CommandError,
    Launch,
    ManualHedge,
    Resolve,
    RoleError,
    SetTradingState,
)
from engine.core.context import StepContext
from engine.core.effects import QueryReason
from engine.core.hedge_tree import start_node
from engine.core.ingest import apply_events, snapshot_events
from engine.core.inputs import Given, LookedUp
from engine.core.instruments import paise_to_str
from engine.core.margin import group_margin_paise
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    EscalationStatus,
    GroupState,
    IntentStatus,
    NodeKind,
    OrderStatus,
    Purpose,
    Role,
    Side,
)
from engine.core.notices import EscalationAcknowledged, GroupLaunched, IntentClosed, TradingStateChanged
from engine.core.recovery import trusted_snapshot
from engine.core.state import PendingRetry
from engine.core.trading_state import TradingState, order_refusal

_STRICTNESS = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


def require(actor: Actor, role: Role, command: str) -> None:
    if actor.role is not role:
        raise RoleError(f"{command} needs the {role.value} role; {actor.os_user} has role {actor.role.value}", role)


def command_name(command: Command) -> tuple[str, str, dict[str, Any]]:
    """(audit name, target, detail) of a command, for the audit log."""
    if isinstance(command, Launch):
        return "launch", command.spec.group_id, {}
    if isinstance(command, CancelGroup):
        return "cancel_group", command.group_id, {}
    if isinstance(command, CloseGroup):
        return "close_group", command.group_id, {}
    if isinstance(command, ManualHedge):
        detail = {"group_id": command.group_id, "symbol": command.symbol, "side": command.side.value}
        return "manual_hedge", command.group_id, {**detail, "qty": command.qty}
    if isinstance(command, Acknowledge):
        return "acknowledge", str(command.escalation_id), {}
    if isinstance(command, Resolve):
        return "resolve", str(command.escalation_id), {"note": command.note}
    if isinstance(command, ApproveRetry):
        return "approve_retry", command.ident, {}
    if isinstance(command, Abandon):
        return "abandon", command.ident, {}
    return "set_trading_state", command.state.value, {}


def given(ctx: StepContext, inp: Given) -> None:
    """Decide a command; a refusal is audited and answered, and nothing else is written."""
    command = inp.command
    name, target, detail = command_name(command)
    handler = _HANDLERS[type(command)]
    staged = (bool(ctx.writes), len(ctx.io), len(ctx.notices))
    ctx.command_seq = inp.command_id
    try:
        if command.actor.role not in inp.held:
            # Identity comes from the system that authenticated the person (the OS user, the
            # database login); the role they asked to act in must be one they hold.
            held = ", ".join(sorted(r.value for r in inp.held)) or "no desk role"
            raise RoleError(
                f"{command.actor.os_user} does not hold the {command.actor.role.value} role on this journal"
                f" (holds {held})",
                command.actor.role,
            )
        facts = {"command_seq": inp.command_id, "by": command.actor.os_user, "role": command.actor.role.value}
        with ctx.because(f"command.{name}", **facts):
            handler(ctx, inp)
    except (RoleError, CommandError) as exc:
        ctx.audit(command.actor, name, target, {**detail, "refused": str(exc)}, "REFUSED", inp.wall_ms)
        ctx.reply(inp.command_id, error=exc)
    except ValueError as exc:
        # Bad input found while checking (a margin model without a price for this underlying,
        # say): a refusal for this one command, not a reason to stop trading. Only if the handler
        # had already staged something is it the engine's own fault (re-raised: crash-only).
        if (bool(ctx.writes), len(ctx.io), len(ctx.notices)) != staged:
            raise
        refusal = CommandError(f"{name} {target}: {exc}")
        ctx.audit(command.actor, name, target, {**detail, "refused": str(refusal)}, "REFUSED", inp.wall_ms)
        ctx.reply(inp.command_id, error=refusal)


# --- groups -------------------------------------------------------------------------------------


def _launch(ctx: StepContext, inp: Given) -> None:
    assert isinstance(inp.command, Launch)
    spec, actor = inp.command.spec, inp.command.actor
    state = ctx.state
    require(actor, Role.TRADER, "launching a group")
    if spec.group_id in state.group_ids:
        raise CommandError(f"group {spec.group_id} already exists; a group is launched once")
    if state.trading_state is not TradingState.ACTIVE:
        raise CommandError(f"trading is {state.trading_state.value}: no new groups (cancels and hedges still pass)")
    margin = group_margin_paise(spec, state.catalog, state.margin_model)
    available = state.margin_model.available_paise - state.margin_in_use_paise()
    group = GroupRuntime(spec, GroupState.CREATED, margin_paise=margin)
    state.group_ids.add(spec.group_id)
    ctx.book.groups[spec.group_id] = group
    ctx.writes.groups_new[spec.group_id] = group
    ctx.writes.group_causes[spec.group_id] = ctx.seq
    ctx.audit(actor, "launch", spec.group_id, spec.to_json(), "OK", inp.wall_ms)
    ctx.notify(GroupLaunched(spec.group_id, margin))
    if margin > available:
        why = (
            f"worst-case margin {paise_to_str(margin)} exceeds available margin "
            f"{paise_to_str(max(0, available))}; nothing was sent"
        )
        ctx.set_group_state(group, GroupState.REJECTED, why)
    else:
        ctx.touch(spec.group_id)
    ctx.reply(inp.command_id, lambda: group.state)


def _open_group(ctx: StepContext, group_id: str) -> GroupRuntime:
    group = ctx.book.groups.get(group_id)
    if group is None or group.state in TERMINAL_GROUP_STATES:
        raise CommandError(f"group {group_id} is not open")
    return group


def _cancel_group(ctx: StepContext, inp: Given) -> None:
    """A trader cancels a group that is still building: nothing new is sent for it, every working
    order of it (never a stop-loss) is cancelled through the confirmed-cancel path, and once no
    order may still fill it ends CANCELLED (or HEDGED, when a matched spread already exists, for
    the trader to close). Interim-exposure hedges still run: a cancel never leaves exposure."""
    assert isinstance(inp.command, CancelGroup)
    cmd = inp.command
    require(cmd.actor, Role.TRADER, "cancel_group")
    group = _open_group(ctx, cmd.group_id)
    if group.state is GroupState.HEDGED:
        raise CommandError(f"group {cmd.group_id} is HEDGED; close it instead (risk leg first)")
    group.cancel_requested = True
    ctx.writes.group(group)
    ctx.audit(cmd.actor, "cancel_group", cmd.group_id, {}, "OK", inp.wall_ms)
    cause = f"group cancelled by {cmd.actor.os_user} ({cmd.actor.role.value})"
    ctx.reply(inp.command_id, cancel_working(ctx, cmd.group_id, cause))
    ctx.touch(cmd.group_id)


def _close_group(ctx: StepContext, inp: Given) -> None:
    """A trader closes a HEDGED group: its stop is cancelled (confirmed), the short RISK leg is
    bought back, and only then is the HEDGE sold. The group ends COMPLETED."""
    assert isinstance(inp.command, CloseGroup)
    cmd = inp.command
    require(cmd.actor, Role.TRADER, "close_group")
    group = ctx.book.groups.get(cmd.group_id)
    if group is None or group.state is not GroupState.HEDGED:
        state = group.state.value if group else "not open"
        raise CommandError(f"group {cmd.group_id} is {state}; only a HEDGED group can be closed")
    refusal = order_refusal(ctx.state.trading_state, reduces_exposure=True)
    if refusal:
        # One honest rule: exits reduce exposure, so REDUCING lets them through; HALTED sends
        # nothing new, so a close is refused now rather than accepted and fired later unannounced.
        raise CommandError(
            f"close {cmd.group_id} refused: {refusal}; exits reduce exposure: set trading to REDUCING to close"
        )
    group.close_requested = True
    ctx.writes.group(group)
    ctx.audit(cmd.actor, "close_group", cmd.group_id, {}, "OK", inp.wall_ms)
    ctx.touch(cmd.group_id)
    ctx.reply(inp.command_id)


def _manual_hedge(ctx: StepContext, inp: Given) -> None:
    """A trader's manual hedge: a depth-0 MANUAL node through the journal and the hedge tree."""
    assert isinstance(inp.command, ManualHedge)
    cmd = inp.command
    require(cmd.actor, Role.TRADER, "manual_hedge")
    if cmd.group_id not in ctx.state.group_ids:
        raise CommandError(f"group {cmd.group_id} does not exist")
    inst = ctx.state.catalog.get(cmd.symbol)
    if inst is None:
        raise CommandError(f"unknown symbol {cmd.symbol!r}")
    if cmd.side is not Side.BUY:
        raise CommandError("a manual hedge buys protection; selling goes through close_group")
    problem = inst.check_qty(cmd.qty)
    if problem:
        raise CommandError(problem)
    refusal = order_refusal(ctx.state.trading_state, reduces_exposure=True)
    if refusal:
        raise CommandError(refusal)
    _, target, detail = command_name(cmd)
    ctx.audit(cmd.actor, "manual_hedge", target, detail, "OK", inp.wall_ms)
    node = start_node(ctx, cmd.group_id, NodeKind.MANUAL, cmd.symbol, cmd.side, cmd.qty)
    ctx.reply(inp.command_id, node.node_id)


# --- escalations and the kill switch ------------------------------------------------------------


def _acknowledge(ctx: StepContext, inp: Given) -> None:
    """Risk staff acknowledge an escalation: who, in which role, and when is recorded."""
    assert isinstance(inp.command, Acknowledge)
    cmd = inp.command
    require(cmd.actor, Role.RISK, "acknowledge")
    record = ctx.state.escalations.get(cmd.escalation_id)
    if record is None:
        raise CommandError(f"escalation {cmd.escalation_id} does not exist")
    if record.status is not EscalationStatus.OPEN:
        raise CommandError(f"escalation {cmd.escalation_id} is {record.status.value}; only an OPEN one is acknowledged")
    record.status = EscalationStatus.ACKNOWLEDGED
    ctx.writes.acknowledgements.append((cmd.escalation_id, cmd.actor.os_user, cmd.actor.role.value, ctx.now_ns))
    ctx.audit(cmd.actor, "acknowledge", str(cmd.escalation_id), {}, "OK", inp.wall_ms)
    ctx.notify(EscalationAcknowledged(cmd.escalation_id, cmd.actor.os_user))
    ctx.reply(inp.command_id)


def _resolve(ctx: StepContext, inp: Given) -> None:
    """Risk staff resolve an escalation (OPEN or ACKNOWLEDGED), with a note saying how."""
    assert isinstance(inp.command, Resolve)
    cmd = inp.command
    require(cmd.actor, Role.RISK, "resolve")
    note = cmd.note.strip()
    if not note:
        raise CommandError("resolving an escalation needs a note saying how its cause was dealt with")
    record = ctx.state.escalations.get(cmd.escalation_id)
    if record is None:
        raise CommandError(f"escalation {cmd.escalation_id} does not exist")
    if record.status is EscalationStatus.RESOLVED:
        raise CommandError(f"escalation {cmd.escalation_id} is already RESOLVED")
    ctx.resolve_escalation(cmd.escalation_id, cmd.actor.os_user, note)
    ctx.audit(cmd.actor, "resolve", str(cmd.escalation_id), {"note": note}, "OK", inp.wall_ms)
    ctx.notify(EscalationAcknowledged(cmd.escalation_id, cmd.actor.os_user))
    ctx.reply(inp.command_id)


def _set_trading_state(ctx: StepContext, inp: Given) -> None:
    """The kill switch. Anyone may HALT or move to REDUCING; only risk staff may lift a restriction
    back to ACTIVE. Persisted and audited; cancels always pass whatever the state. It takes
    effect in this step: no order decided later is sent, and the interpreter asks the switch again
    at the moment of sending any order decided earlier."""
    assert isinstance(inp.command, SetTradingState)
    cmd = inp.command
    state = ctx.state
    previous = state.trading_state
    tightening = _STRICTNESS[cmd.state] >= _STRICTNESS[previous]
    if not tightening:
        require(cmd.actor, Role.RISK, f"moving trading from {previous.value} to {cmd.state.value}")
    ctx.writes.settings["trading_state"] = cmd.state.value
    ctx.audit(cmd.actor, "set_trading_state", cmd.state.value, {"from": previous.value}, "OK", inp.wall_ms)
    state.trading_state = cmd.state
    ctx.notify(TradingStateChanged(cmd.state.value, cmd.actor.os_user))
    if not tightening:  # groups held back by the switch carry on
        for group_id, group in sorted(ctx.book.groups.items()):
            if group.state not in TERMINAL_GROUP_STATES:
                group.waiting_on_person = False
                ctx.touch(group_id)
    ctx.reply(inp.command_id)


# --- orphaned intents ---------------------------------------------------------------------------


def _orphan_for(ctx: StepContext, ident: str) -> IntentRow:
    """Resolve an intent id or client order id to its ORPHANED attempt (orphans are always in
    the book: the loader keeps every unfinished intent)."""
    candidates = [r for r in ctx.book.intents.values() if ident in (r.client_order_id, r.intent_id)]
    orphans = [r for r in candidates if r.status is IntentStatus.ORPHANED]
    if not orphans:
        found = ", ".join(f"{r.client_order_id} is {r.status.value}" for r in candidates) or "no such intent"
        raise CommandError(f"{ident}: only an ORPHANED intent can be retried or abandoned ({found})")
    return orphans[-1]


def _opening(ctx: StepContext, row: IntentRow) -> bool:
    node = ctx.book.nodes.get(row.hedge_node_id or "")
    return row.purpose is Purpose.LEG or (node is not None and node.kind is NodeKind.LEG)


def _approve_retry(ctx: StepContext, inp: Given) -> None:
    """Send a new attempt (new client id, attempt + 1) for an orphaned intent, exactly once.

    The broker is asked once more first (the answer comes back as an input): if it has the order
    after all, the order is adopted and no retry is sent.
    """
    assert isinstance(inp.command, ApproveRetry)
    cmd = inp.command
    require(cmd.actor, Role.OPERATOR, "approve_retry")
    row = _orphan_for(ctx, cmd.ident)
    if any(p.row is row for p in ctx.state.pending_retries.values()):
        raise CommandError(f"{row.client_order_id}: a retry is already approved and waiting on the broker")
    _retry_refusal(ctx, row)
    if not ctx.query(row, QueryReason.RETRY, inp.command_id):
        raise CommandError(f"{row.client_order_id}: the broker is still being asked about it; try again")
    ctx.state.pending_retries[inp.command_id] = PendingRetry(row, cmd.actor, cmd.ident, inp.wall_ms)


def _retry_refusal(ctx: StepContext, row: IntentRow) -> None:
    """Raise CommandError when ``row`` may not be retried now (asked at approval and again when the
    broker's answer comes back: anything may have happened meanwhile)."""
    if row.status is not IntentStatus.ORPHANED:
        raise CommandError(f"{row.client_order_id} is {row.status.value} now; only an ORPHANED intent is retried")
    group = ctx.book.groups.get(row.group_id)
    opening = _opening(ctx, row)
    refusal = order_refusal(ctx.state.trading_state, reduces_exposure=not opening)
    if group is not None and group.cancel_requested and opening and not refusal:
        refusal = f"group {row.group_id} was cancelled; an opening order is not retried (abandon the intent)"
    if group is None or group.state in TERMINAL_GROUP_STATES or refusal:
        why = refusal or f"group {row.group_id} is finished; nothing is left to retry (abandon the intent)"
        raise CommandError(f"{row.client_order_id}: {why}")


def retry_answered(ctx: StepContext, answer: LookedUp) -> None:
    """The broker's last word on an approved orphan: adopt it, or send the retry."""
    assert answer.command_id is not None
    pending = ctx.state.pending_retries.pop(answer.command_id, None)
    ctx.command_seq = answer.command_id
    if pending is None:
        return
    row, actor = pending.row, pending.actor
    row.query_in_flight = False
    if answer.error:
        why = f"{row.client_order_id}: the broker did not answer ({answer.error}); nothing was sent, try again"
        ctx.audit(actor, "approve_retry", pending.ident, {"refused": why}, "REFUSED", pending.wall_ms)
        ctx.reply(answer.command_id, error=CommandError(why))
        return
    if answer.snapshot is not None:
        if trusted_snapshot(ctx, row, answer.snapshot):
            apply_events(ctx, snapshot_events(answer.snapshot), answer.known_keys)
        why = f"{row.client_order_id}: the broker has this order after all; adopted it, no retry sent"
        ctx.audit(actor, "approve_retry", pending.ident, {"refused": why}, "REFUSED", pending.wall_ms)
        ctx.reply(answer.command_id, error=CommandError(why))
        return
    try:
        _retry_refusal(ctx, row)
        if row.seen_at_broker:
            ctx.query(row, QueryReason.RECONCILE, by_client_id=True)
            raise CommandError(
                f"{row.client_order_id}: the feed reports this order at the broker, though the broker's lookup "
                "did not find it; asked again, no retry sent"
            )
    except CommandError as exc:
        ctx.audit(actor, "approve_retry", pending.ident, {"refused": str(exc)}, "REFUSED", pending.wall_ms)
        ctx.reply(answer.command_id, error=exc)
        return
    state = ctx.state
    facts = {
        "orphan": row.client_order_id,
        "orphan_attempt": row.attempt,
        "approved_by": actor.os_user,
        "approved_role": actor.role.value,
        "command_seq": answer.command_id,
        "broker_lookup": "not found",
        "trading_state": state.trading_state.value,
    }
    retry = dataclasses.replace(
        row,
        client_order_id=state.new_id(),
        attempt=state.attempts.get(row.intent_id, row.attempt) + 1,
        status=IntentStatus.PENDING,
        order_status=OrderStatus.INTENT,
        broker_order_id=None,
        filled_qty=0,
        fills_qty=0,
        reason="",
        ts_created_local_ns=ctx.now_ns,
        ts_ack_exchange_ms=None,
        ts_updated_local_ns=ctx.now_ns,
        last_query_local_ns=0,
        query_in_flight=False,
        cause_seq=ctx.seq,
        rule="retry.approved_orphan",
        why_json=json.dumps(facts, sort_keys=True),
    )
    # Closing the orphan and journaling its retry go in one batch: a crash can never leave an
    # approval whose attempt does not exist.
    with ctx.because("retry.approved_orphan", **facts):
        note = f"retry approved as {retry.client_order_id}"
        _close(ctx, row, IntentStatus.RETRY_APPROVED, actor, note, pending.wall_ms)
        ctx.journal_and_send(retry, opens_exposure=_opening(ctx, row))
    ctx.reply(answer.command_id, retry)


def _abandon(ctx: StepContext, inp: Given) -> None:
    """Close an orphaned intent without sending anything. Its leg sends no further orders."""
    assert isinstance(inp.command, Abandon)
    cmd = inp.command
    require(cmd.actor, Role.OPERATOR, "abandon")
    row = _orphan_for(ctx, cmd.ident)
    if any(p.row is row for p in ctx.state.pending_retries.values()):
        raise CommandError(f"{row.client_order_id}: an approved retry is waiting on the broker's answer; try again")
    _close(ctx, row, IntentStatus.ABANDONED, cmd.actor, "abandoned by operator", inp.wall_ms)
    ctx.reply(inp.command_id, row)


def _close(ctx: StepContext, row: IntentRow, status: IntentStatus, actor: Actor, note: str, wall_ms: int) -> None:
    ctx.set_intent_status(row, status, f"{note} by {actor.os_user} ({actor.role.value})")
    row.reason = note
    for record in list(ctx.state.escalations.values()):
        if record.client_order_id == row.client_order_id and record.status is not EscalationStatus.RESOLVED:
            ctx.resolve_escalation(record.escalation_id, actor.os_user, note)
    ctx.audit(actor, status.value.lower(), row.client_order_id, {"note": note}, "OK", wall_ms)
    ctx.notify(IntentClosed(row.client_order_id, status))


_HANDLERS: dict[type, Callable[[StepContext, Given], None]] = {
    Launch: _launch,
    CancelGroup: _cancel_group,
    CloseGroup: _close_group,
    ManualHedge: _manual_hedge,
    Acknowledge: _acknowledge,
    Resolve: _resolve,
    ApproveRetry: _approve_retry,
    Abandon: _abandon,
    SetTradingState: _set_trading_state,
}
