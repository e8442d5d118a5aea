"""Timers, in broker time (deadlines) and local monotonic time (when to ask again): resolve
ambiguous outcomes, cancel orders past their deadline, re-ask about cancels and missing fill
reports, and drive stops. Only the orders the book watches are visited."""

from __future__ import annotations

from engine.core.book import IntentRow
from engine.core.clock import deadline_passed
from engine.core.context import StepContext
from engine.core.effects import AnchorClock, QueryReason
from engine.core.exits import service_stops
from engine.core.model import EscalationKind, IntentStatus, OrderStatus, Purpose, Severity
from engine.core.notices import BrokerUsability


def on_tick(ctx: StepContext) -> None:
    state = ctx.state
    if not state.resumed:
        return  # recovery is still asking the broker; nothing is decided on half an answer
    if not state.clock.anchored and not state.anchoring:
        state.anchoring = True
        ctx.io.append(AnchorClock())
    _broker_usability(ctx)
    now = ctx.now_ns
    resolve_ns = ctx.config.resolve_after_ms * 1_000_000
    stops: list[IntentRow] = []
    for row in list(ctx.book.watched.values()):
        if row.purpose is Purpose.STOP:
            stops.append(row)
        status = row.order_status
        if status is OrderStatus.PENDING_CANCEL and row.purpose is not Purpose.STOP and _cancel_overdue(ctx, row):
            continue  # asked again and re-sent once, or escalated: see _cancel_overdue
        if now - row.last_query_local_ns < resolve_ns or row.status is IntentStatus.ORPHANED:
            continue
        may_ask = now >= row.next_query_local_ns  # failed or fruitless lookups back off
        if status is OrderStatus.UNKNOWN:
            if may_ask:
                ctx.query(row, QueryReason.UNKNOWN)
        elif (
            row.purpose is not Purpose.STOP
            and status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
            and _past_deadline(ctx, row)
        ):
            row.last_query_local_ns = now
            facts = {
                "acked_at_broker_ms": row.ts_ack_exchange_ms,
                "broker_now_ms": ctx.broker_now_ms(),
                "order_timeout_ms": ctx.config.order_timeout_ms,
                "status": status.value,
                "filled_qty": row.filled_qty,
            }
            with ctx.because("timeout.cancel_after_deadline", **facts):
                ctx.request_cancel(row, "deadline passed in broker time")
        elif (status is OrderStatus.PENDING_CANCEL or row.fills_qty < row.filled_qty) and may_ask:
            ctx.query(row, QueryReason.RECONCILE)
    service_stops(ctx, stops)


def _past_deadline(ctx: StepContext, row: IntentRow) -> bool:
    """Elapsed broker time since the broker acknowledged the order, on the continuous line: an
    exchange clock step either way moves neither the ack nor now."""
    clock = ctx.state.clock
    base = row.deadline_base_ms if row.deadline_base_ms is not None else row.ts_ack_exchange_ms
    if base is None or not clock.anchored:
        return False
    return deadline_passed(base, ctx.config.order_timeout_ms, clock.now_ms(ctx.now_ns))


def _cancel_overdue(ctx: StepContext, row: IntentRow) -> bool:
    """A leg or hedge cancel the broker has not confirmed within ``cancel_confirm_ms`` of broker
    time: ask again and re-send it once; another ``cancel_confirm_ms`` later, escalate with the
    quantity that may still fill. True when this took care of the row for this tick."""
    asked = row.ts_cancel_requested_exchange_ms
    if asked is None:
        return False
    now_ms = ctx.broker_now_ms()
    wait = ctx.config.cancel_confirm_ms
    if now_ms < asked + wait:
        return False
    if not row.cancel_resent:
        row.cancel_resent = True
        ctx.query(row, QueryReason.RECONCILE)
        if row.broker_order_id:
            ctx.send_cancel(row)
        return True
    if now_ms < asked + 2 * wait:
        return False  # re-sent (here, or by a lookup that found it live): wait for the answer
    if now_ms >= asked + 2 * wait and row.client_order_id not in ctx.book.cancel_escalated:
        ctx.book.cancel_escalated.add(row.client_order_id)
        open_qty = row.qty - row.filled_qty
        why = (
            f"cancel of {row.client_order_id} ({row.side.value} {row.qty} {row.symbol}, {row.filled_qty} filled) not "
            f"confirmed {2 * wait} ms of broker time after it was asked, once re-sent; {open_qty} may still fill. "
            "Nothing more is sent for this order; check it at the broker"
        )
        facts = {"cancel_requested_at_broker_ms": asked, "broker_now_ms": now_ms, "cancel_confirm_ms": wait}
        with ctx.because("cancel.unconfirmed_after_resend", **facts):
            ctx.escalate_once(
                row.group_id, row.client_order_id, EscalationKind.CANCEL_UNCONFIRMED, row.symbol, open_qty, why
            )
        ctx.touch(row.group_id)
        return True
    return False


def _broker_usability(ctx: StepContext) -> None:
    """A broker that has failed every answer for ``broker_unusable_after_ms`` is unusable: shown,
    journaled, escalated; opening orders wait (cancels and lookups go on) until it answers."""
    state = ctx.state
    since = state.broker_failing_since_ns
    if state.broker_unusable or since is None:
        return
    if ctx.now_ns - since < ctx.config.broker_unusable_after_ms * 1_000_000:
        return
    state.broker_unusable = True
    why = f"the broker has not answered for {ctx.config.broker_unusable_after_ms} ms; opening orders wait"
    ctx.writes.settings["broker_state"] = "UNUSABLE"
    with ctx.because(
        "broker.unusable_after_silence", failing_since_local_ns=since, after_ms=ctx.config.broker_unusable_after_ms
    ):
        ctx.writes.transition("BROKER", "broker", "USABLE", "UNUSABLE", None, why, None, ctx.now_ns)
        ctx.escalate(EscalationKind.BROKER_UNUSABLE, Severity.CRITICAL, None, None, "", 0, why)
    ctx.notify(BrokerUsability(False, why))
