"""Timers, in broker time (deadlines) and local monotonic time (when to ask again): resolve
ambiguous outcomes, cancel orders past their deadline, re-ask about cancels and missing fill
reports, and drive stops. Only the orders the book watches are visited."""

from __future__ import annotations

from engine.core.book import IntentRow
from engine.core.clock import deadline_passed
from engine.core.context import StepContext
from engine.core.effects import AnchorClock, QueryReason
from engine.core.exits import service_stops
from engine.core.model import IntentStatus, OrderStatus, Purpose


def on_tick(ctx: StepContext) -> None:
    state = ctx.state
    if not state.resumed:
        return  # recovery is still asking the broker; nothing is decided on half an answer
    if not state.clock.anchored and not state.anchoring:
        state.anchoring = True
        ctx.io.append(AnchorClock())
    now = ctx.now_ns
    resolve_ns = ctx.config.resolve_after_ms * 1_000_000
    stops: list[IntentRow] = []
    for row in list(ctx.book.watched.values()):
        if row.purpose is Purpose.STOP:
            stops.append(row)
        if now - row.last_query_local_ns < resolve_ns or row.status is IntentStatus.ORPHANED:
            continue
        status = row.order_status
        if status is OrderStatus.UNKNOWN:
            ctx.query(row, QueryReason.UNKNOWN)
        elif (
            row.purpose is not Purpose.STOP
            and status in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)
            and _past_deadline(ctx, row)
        ):
            row.last_query_local_ns = now
            ctx.request_cancel(row, "deadline passed in broker time")
        elif status is OrderStatus.PENDING_CANCEL or row.fills_qty < row.filled_qty:
            ctx.query(row, QueryReason.RECONCILE)
    service_stops(ctx, stops)


def _past_deadline(ctx: StepContext, row: IntentRow) -> bool:
    clock = ctx.state.clock
    if row.ts_ack_exchange_ms is None or not clock.anchored:
        return False
    return deadline_passed(row.ts_ack_exchange_ms, ctx.config.order_timeout_ms, clock.now_ms(ctx.now_ns))
