"""Cancels: asked for through the order FSM (PENDING_CANCEL until the broker confirms), sent as
I/O, and always allowed, whatever the kill switch says."""

from __future__ import annotations

from engine.core.context import StepContext
from engine.core.effects import QueryReason
from engine.core.inputs import CancelAnswered
from engine.core.model import OrderStatus, Purpose
from engine.core.notices import CancelRequested, FeedError

CANCELLABLE = (OrderStatus.TRIGGER_PENDING, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


def cancel_working(ctx: StepContext, group_id: str, cause: str) -> list[str]:
    """Ask for the cancel of every working entry order (LEG or hedge-tree) of a group that has a
    broker id and is not already PENDING_CANCEL. Idempotent: run it again after a restart or once a
    lost ack's order shows up, and it catches what the first pass could not reach."""
    rows = [
        r
        for r in ctx.book.of_group(group_id)
        if r.purpose in (Purpose.LEG, Purpose.HEDGE) and r.order_status in CANCELLABLE and r.broker_order_id
    ]
    for row in rows:
        ctx.request_cancel(row, cause)
    return [r.client_order_id for r in rows]


def cancel_answered(ctx: StepContext, answer: CancelAnswered) -> None:
    """The broker took the cancel (or did not hear it). Either way the order's fate arrives as
    events; a cancel that did not get through is sent again by the next status lookup."""
    row = ctx.book.intents.get(answer.client_order_id)
    if answer.ack is None:
        ctx.notify(FeedError(f"cancel of {answer.client_order_id} not sent: {answer.error}"))
        if answer.unknown_order and row is not None:
            # The broker says it never issued that id: settle it by the id only we gave.
            ctx.query(row, QueryReason.RECONCILE, by_client_id=True)
        elif not answer.unknown_order:
            ctx.broker_answered(False, answer.error)
        return
    ctx.broker_answered(True)
    if row is not None and answer.ack.broker_order_id != row.broker_order_id:
        why = (
            f"cancel ack for {answer.client_order_id} names broker id {answer.ack.broker_order_id}, "
            f"not {row.broker_order_id}"
        )
        ctx.writes.reject(
            row.client_order_id, None, {"broker_order_id": answer.ack.broker_order_id}, why, None, ctx.now_ns
        )
        ctx.state.stats.rejected += 1
        ctx.query(row, QueryReason.RECONCILE)
        return
    ctx.observe(answer.ack.ts_exchange_ms, fresh=True)
    ctx.notify(CancelRequested(answer.client_order_id, answer.ack.status))
