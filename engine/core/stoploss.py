"""The hybrid stop-loss, decided in broker time (seed gap 5, defects 10, 11, 12).

The risk leg's stop is an SL-LIMIT order. Once the exchange reports it triggered, it has
``timeout_ms`` of *broker* time to fill. Past that deadline the order's status is first asked
again (the event loop may have stalled while a fill arrived), then the rest is cancelled, and only
when the cancel is *confirmed* is a MARKET order sent, for exactly the unfilled remainder. If the
cancel cannot be confirmed in time, no MARKET order is ever sent: a person is told instead,
because the stop may still fill and a MARKET order would exit twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.core.instruments import round_to_tick
from engine.core.model import OrderStatus, Side


def stop_limit_price_paise(trigger_paise: int, side: Side, tick_paise: int, buffer_bps: int = 50) -> int:
    """The SL limit on the correct side of the trigger, on the tick grid.

    A BUY stop (closing a short) may pay up to ``buffer_bps`` above the trigger, rounded up; a SELL
    stop may sell down to ``buffer_bps`` below it, rounded down, never below one tick.
    """
    if side is Side.BUY:
        return round_to_tick(trigger_paise * (10_000 + buffer_bps) // 10_000, tick_paise, up=True)
    raw = -(-trigger_paise * (10_000 - buffer_bps) // 10_000)
    return max(tick_paise, round_to_tick(raw, tick_paise, up=False))


class StopAction(StrEnum):
    WAIT = "WAIT"
    REQUERY = "REQUERY"  # ask the broker for the order's status before any fallback
    CANCEL = "CANCEL"
    MARKET = "MARKET"  # send a MARKET order for ``qty``, the confirmed unfilled remainder
    ESCALATE = "ESCALATE"  # the cancel is not confirmed: never send MARKET; tell a person
    DONE = "DONE"


@dataclass(frozen=True, slots=True)
class StopView:
    status: OrderStatus
    qty: int
    filled_qty: int
    ts_triggered_ms: int | None
    ts_cancel_requested_ms: int | None
    last_query_ms: int | None  # broker time when the order's status was last asked of the broker
    fallback_sent: bool
    escalated: bool


def stop_step(view: StopView, broker_now_ms: int, timeout_ms: int, cancel_confirm_ms: int) -> tuple[StopAction, int]:
    remainder = view.qty - view.filled_qty
    if view.status is OrderStatus.FILLED or view.fallback_sent:
        return StopAction.DONE, 0
    if view.status is OrderStatus.REJECTED:
        # the broker refused the stop: the short is unprotected and a person must know
        return (StopAction.WAIT, 0) if view.escalated or remainder <= 0 else (StopAction.ESCALATE, remainder)
    if view.status is OrderStatus.CANCELLED:
        # Only a confirmed cancel reaches here: the cumulative fill is final.
        if remainder <= 0:
            return StopAction.DONE, 0
        if view.ts_triggered_ms is None:
            # cancelled by the venue before it ever triggered: the short is unprotected, and
            # buying at market on no trigger would be a trade nobody asked for
            return (StopAction.WAIT, 0) if view.escalated else (StopAction.ESCALATE, remainder)
        return StopAction.MARKET, remainder
    if view.status is OrderStatus.PENDING_CANCEL:
        asked = view.ts_cancel_requested_ms
        if view.escalated or asked is None or broker_now_ms < asked + cancel_confirm_ms:
            return StopAction.WAIT, 0
        return (
            (StopAction.ESCALATE, remainder)
            if _asked_since(view, asked + cancel_confirm_ms)
            else (
                StopAction.REQUERY,
                0,
            )
        )
    if view.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED) or view.ts_triggered_ms is None:
        return StopAction.WAIT, 0  # untriggered, or not yet known to the broker
    deadline = view.ts_triggered_ms + timeout_ms
    if broker_now_ms < deadline:
        return StopAction.WAIT, 0
    return (StopAction.CANCEL, 0) if _asked_since(view, deadline) else (StopAction.REQUERY, 0)


def _asked_since(view: StopView, deadline_ms: int) -> bool:
    return view.last_query_ms is not None and view.last_query_ms >= deadline_ms
