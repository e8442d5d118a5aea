"""The per-order state machine. Every rule that moves an order lives in this module.

Rules:
1. Transitions are data: ``TRANSITIONS[state][trigger] -> state``. A miss is a rejection with a
   named reason, never an exception and never a silent change.
2. Cumulative filled qty never decreases and never exceeds the order qty.
3. Terminal states (FILLED, CANCELLED, REJECTED) absorb status *labels*. But a larger cumulative
   qty is a fact, whatever label carries it: it is taken (the status stays, or becomes FILLED once
   the whole qty is filled), and the fill reports behind it are then fetched. A terminal label
   that arrives with a stale, lower qty (CANCELLED after a later partial fill) is taken with the
   qty kept. So the same reports end in the same state whatever order they arrive in.
4. Fills are facts, not status reports: a fill with a new trade id always raises the filled qty
   (within the order qty), even on a CANCELLED order whose cancel raced it. Dropping a real fill
   would make our position differ from the exchange's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine.core.model import TERMINAL_ORDER_STATUSES, OrderStatus

S = OrderStatus


class Trigger(StrEnum):
    SEND = "SEND"  # we are about to call Broker.place
    ACK = "ACK"  # Broker.place returned
    AMBIGUOUS = "AMBIGUOUS"  # Broker.place timed out / disconnected
    CANCEL_REQUEST = "CANCEL_REQUEST"  # we asked the broker to cancel
    # broker-reported statuses
    TRIGGER_PENDING = "TRIGGER_PENDING"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


T = Trigger

# Broker reports that an order still in our hands (INTENT/SUBMITTED/UNKNOWN) can receive: after a
# crash or a lost ack the first thing we hear may be any of them.
_FIRST_REPORTS = {
    T.ACK: S.ACCEPTED,
    T.TRIGGER_PENDING: S.TRIGGER_PENDING,
    T.ACCEPTED: S.ACCEPTED,
    T.PARTIALLY_FILLED: S.PARTIALLY_FILLED,
    T.FILLED: S.FILLED,
    T.PENDING_CANCEL: S.PENDING_CANCEL,
    T.CANCELLED: S.CANCELLED,
    T.REJECTED: S.REJECTED,
}

TRANSITIONS: dict[OrderStatus, dict[Trigger, OrderStatus]] = {
    S.INTENT: {T.SEND: S.SUBMITTED, **_FIRST_REPORTS},
    S.SUBMITTED: {T.AMBIGUOUS: S.UNKNOWN, **_FIRST_REPORTS},
    S.UNKNOWN: {**_FIRST_REPORTS},
    # A resting stop: triggering makes it a working order (ACCEPTED), reported at the trigger time.
    S.TRIGGER_PENDING: {
        T.ACK: S.TRIGGER_PENDING,
        T.ACCEPTED: S.ACCEPTED,
        T.PARTIALLY_FILLED: S.PARTIALLY_FILLED,
        T.FILLED: S.FILLED,
        T.CANCEL_REQUEST: S.PENDING_CANCEL,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.CANCELLED: S.CANCELLED,
        T.REJECTED: S.REJECTED,
    },
    S.ACCEPTED: {
        T.ACK: S.ACCEPTED,
        T.ACCEPTED: S.ACCEPTED,
        T.PARTIALLY_FILLED: S.PARTIALLY_FILLED,
        T.FILLED: S.FILLED,
        T.CANCEL_REQUEST: S.PENDING_CANCEL,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.CANCELLED: S.CANCELLED,
        T.REJECTED: S.REJECTED,  # RMS rejects after acceptance happen (Kite: OPEN -> REJECTED)
    },
    S.PARTIALLY_FILLED: {
        T.ACK: S.PARTIALLY_FILLED,  # the ack can trail the first fills
        T.PARTIALLY_FILLED: S.PARTIALLY_FILLED,
        T.FILLED: S.FILLED,
        T.CANCEL_REQUEST: S.PENDING_CANCEL,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.CANCELLED: S.CANCELLED,
    },
    S.PENDING_CANCEL: {
        T.ACK: S.PENDING_CANCEL,
        T.CANCEL_REQUEST: S.PENDING_CANCEL,
        T.PENDING_CANCEL: S.PENDING_CANCEL,
        T.PARTIALLY_FILLED: S.PENDING_CANCEL,  # a fill racing the cancel: qty moves, state stays
        T.FILLED: S.FILLED,  # the fill won the race; legal
        T.CANCELLED: S.CANCELLED,
        T.REJECTED: S.REJECTED,  # rejected before our cancel request reached the venue
    },
    S.FILLED: {T.ACK: S.FILLED},
    S.CANCELLED: {T.ACK: S.CANCELLED},
    S.REJECTED: {T.ACK: S.REJECTED},
}


@dataclass(frozen=True, slots=True)
class OrderState:
    status: OrderStatus
    qty: int
    filled_qty: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of offering a trigger to an order. ``accepted`` False means: keep ``state``, record
    ``reason`` with the event."""

    accepted: bool
    state: OrderState
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.accepted


def apply(state: OrderState, trigger: Trigger, filled_qty: int | None = None) -> Outcome:
    """Offer ``trigger`` (with the broker's cumulative ``filled_qty`` when it reports one)."""
    if _restates(state, trigger, filled_qty):
        return Outcome(True, state)  # a report of what we already know: applied, changes nothing
    if state.status in TERMINAL_ORDER_STATUSES and trigger in REPORTS and filled_qty is not None:
        return _more_fill_after_terminal(state, trigger, filled_qty)
    target = TRANSITIONS[state.status].get(trigger)
    if target is None:
        if state.status in TERMINAL_ORDER_STATUSES:
            why = f"{trigger.value} after terminal {state.status.value}: terminal states absorb"
        else:
            why = f"{trigger.value} is not a valid transition from {state.status.value} (out of order)"
        return Outcome(False, state, why)
    new_filled = state.filled_qty if filled_qty is None else filled_qty
    if target in (S.CANCELLED, S.REJECTED) and new_filled < state.filled_qty:
        return Outcome(True, OrderState(target, state.qty, state.filled_qty))  # the label is news; the qty stale
    problem = _qty_problem(state, target, trigger, new_filled)
    if problem:
        return Outcome(False, state, problem)
    return Outcome(True, OrderState(target, state.qty, new_filled))


REPORTS = frozenset(
    {T.TRIGGER_PENDING, T.ACCEPTED, T.PARTIALLY_FILLED, T.FILLED, T.PENDING_CANCEL, T.CANCELLED, T.REJECTED}
)


def _more_fill_after_terminal(state: OrderState, trigger: Trigger, filled_qty: int) -> Outcome:
    if filled_qty <= state.filled_qty:
        why = f"{trigger.value} after terminal {state.status.value}: terminal states absorb"
        return Outcome(False, state, why)
    if filled_qty > state.qty:
        return Outcome(False, state, f"cumulative filled qty {filled_qty} exceeds order qty {state.qty}")
    status = S.FILLED if filled_qty == state.qty else state.status
    return Outcome(True, OrderState(status, state.qty, filled_qty))


def _restates(state: OrderState, trigger: Trigger, filled_qty: int | None) -> bool:
    return trigger.value == state.status.value and filled_qty in (None, state.filled_qty)


def _qty_problem(state: OrderState, target: OrderStatus, trigger: Trigger, new_filled: int) -> str:
    if new_filled < state.filled_qty:
        return f"cumulative filled qty would decrease from {state.filled_qty} to {new_filled}"
    if new_filled > state.qty:
        return f"cumulative filled qty {new_filled} exceeds order qty {state.qty}"
    if trigger is T.FILLED and new_filled != state.qty:
        return f"FILLED reported with filled qty {new_filled} of {state.qty}"
    if trigger is T.PARTIALLY_FILLED and not 0 < new_filled < state.qty:
        return f"PARTIALLY_FILLED reported with filled qty {new_filled} of {state.qty}"
    if target is S.ACCEPTED and trigger is T.ACCEPTED and new_filled > state.filled_qty:
        return f"ACCEPTED cannot carry new fills ({state.filled_qty} -> {new_filled})"
    return ""


def apply_fill(state: OrderState, fills_qty: int, fill_qty: int) -> tuple[Outcome, int]:
    """Apply one execution of ``fill_qty`` to an order whose recorded fills sum to ``fills_qty``.

    Returns the outcome and the new fills sum. The order's filled qty becomes the larger of the
    status-reported cumulative qty and the sum of fills (either may arrive first).
    """
    new_fills = fills_qty + fill_qty
    if fill_qty <= 0:
        return Outcome(False, state, f"fill qty {fill_qty} must be positive"), fills_qty
    if new_fills > state.qty:
        return Outcome(False, state, f"fill would take fills to {new_fills}, above order qty {state.qty}"), (fills_qty)
    new_filled = max(state.filled_qty, new_fills)
    if new_filled == state.filled_qty:
        return Outcome(True, state), new_fills
    trigger = T.FILLED if new_filled == state.qty else T.PARTIALLY_FILLED
    moved = apply(state, trigger, new_filled)
    if moved.accepted:
        return moved, new_fills
    # A fact that the status table does not cover (a fill on an order still in our hands, say):
    # keep the status, take the quantity.
    return Outcome(True, OrderState(state.status, state.qty, new_filled)), new_fills


def is_terminal(status: OrderStatus) -> bool:
    return status in TERMINAL_ORDER_STATUSES


def is_working(status: OrderStatus) -> bool:
    """The order may still fill (or is still in our hands to send)."""
    return status not in TERMINAL_ORDER_STATUSES


def broker_trigger(status: OrderStatus) -> Trigger:
    return Trigger(status.value)
