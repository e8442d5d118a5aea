"""The intent status machine: which intent status follows from an order status, as a table.

Rules:
1. An operator's outcome (RETRY_APPROVED, ABANDONED) is sticky: nothing the broker says moves it.
2. ORPHANED is left only by an operator, or by the broker reporting the order after all (then the
   order's own status decides); a report that the order is still ours to send keeps it ORPHANED.
3. Otherwise the order status decides through ``FOLLOWS``; a status not in the table (INTENT,
   SUBMITTED) leaves the intent where it is.
"""

from __future__ import annotations

from engine.core.model import IntentStatus, OrderStatus

IS = IntentStatus
OS = OrderStatus

FOLLOWS: dict[OrderStatus, IntentStatus] = {
    OS.TRIGGER_PENDING: IS.SENT,
    OS.ACCEPTED: IS.SENT,
    OS.PARTIALLY_FILLED: IS.SENT,
    OS.PENDING_CANCEL: IS.SENT,
    OS.FILLED: IS.FILLED,
    OS.CANCELLED: IS.CANCELLED,
    OS.REJECTED: IS.REJECTED,
    OS.UNKNOWN: IS.UNKNOWN,
}

OPERATOR_OUTCOMES = frozenset({IS.RETRY_APPROVED, IS.ABANDONED})
_STILL_OURS = frozenset({OS.INTENT, OS.SUBMITTED, OS.UNKNOWN})

# Moves that only a person (or the engine's own recovery) makes; the broker never does.
OPERATOR_MOVES: dict[IntentStatus, frozenset[IntentStatus]] = {
    IS.ORPHANED: frozenset({IS.RETRY_APPROVED, IS.ABANDONED}),
}
ORPHANABLE = frozenset({IS.PENDING, IS.SENT, IS.UNKNOWN})


def next_intent_status(current: IntentStatus, order_status: OrderStatus) -> IntentStatus:
    if current in OPERATOR_OUTCOMES:
        return current
    if current is IS.ORPHANED and order_status in _STILL_OURS:
        return current
    return FOLLOWS.get(order_status, IS.SENT if current is IS.ORPHANED else current)


def operator_move_problem(current: IntentStatus, new: IntentStatus) -> str:
    if new in OPERATOR_MOVES.get(current, frozenset()):
        return ""
    return f"an intent moves to {new.value} only from ORPHANED (it is {current.value})"
