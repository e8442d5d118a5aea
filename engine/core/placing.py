"""The broker's answer to a place, as an input: acked, definitely rejected, ambiguous, or held
back by the kill switch at the moment of sending. Events about the order may have arrived first
(the feed does not wait for the answer), so every answer is offered to the order FSM, which
keeps what it already knows."""

from __future__ import annotations

from engine.core import order_fsm
from engine.core.book import HELD_REASON, IntentRow
from engine.core.context import StepContext
from engine.core.effects import Place, QueryReason
from engine.core.ingest import adopt_broker_id
from engine.core.inputs import Placed, PlaceUnsent
from engine.core.model import OrderType
from engine.core.notices import OrderOutcome
from engine.core.order_fsm import Trigger
from engine.core.state import EngineState
from engine.core.trading_state import order_refusal

HELD = HELD_REASON  # the reason's prefix of an order the kill switch held back at the moment of sending


def send_refusal(state: EngineState, place: Place) -> str:
    """The kill switch's word at the moment of sending ('' = send). A HALT given after the order
    was decided, but before it went out, still stops it."""
    return order_refusal(state.trading_state, reduces_exposure=not place.opens_exposure)


def _sent(row: IntentRow) -> order_fsm.OrderState:
    outcome = order_fsm.apply(row.order_state, Trigger.SEND)
    return outcome.state if outcome.accepted else row.order_state


def placed(ctx: StepContext, answer: Placed) -> None:
    row = ctx.book.intents.get(answer.client_order_id)
    if row is None:
        return
    ack = answer.ack
    if not adopt_broker_id(ctx, row, ack.broker_order_id, "place"):
        ctx.query(row, QueryReason.RECONCILE)
        return
    ctx.broker_answered(True)
    ctx.observe(ack.ts_exchange_ms, fresh=True)
    row.ts_ack_exchange_ms = ack.ts_exchange_ms
    row.deadline_base_ms = ctx.state.clock.continuous(ack.ts_exchange_ms)
    # A stop is acknowledged as resting untriggered; only the exchange's trigger report makes it
    # a working order (and starts its broker-time deadline).
    trigger = Trigger.TRIGGER_PENDING if row.order_type in (OrderType.SL, OrderType.SL_M) else Trigger.ACK
    current = _sent(row)
    outcome = order_fsm.apply(current, trigger)
    ctx.set_order_state(row, outcome.state if outcome.accepted else current, "ack", ack.ts_exchange_ms)


def unsent(ctx: StepContext, answer: PlaceUnsent) -> None:
    """Rejected, ambiguous or held: the order is not known to be live."""
    row = ctx.book.intents.get(answer.client_order_id)
    if row is None:
        return
    if answer.ambiguous:
        ctx.broker_answered(False, answer.reason)
        row.last_query_local_ns = ctx.now_ns
        trigger = Trigger.AMBIGUOUS
    else:
        trigger = Trigger.REJECTED
    current = _sent(row)
    outcome = order_fsm.apply(current, trigger)
    if not outcome.accepted:
        return  # the feed already told us more than this answer does
    row.reason = answer.reason
    ctx.set_order_state(row, outcome.state, answer.reason, None)
    ctx.notify(OrderOutcome(row.client_order_id, row.order_status, answer.reason))
