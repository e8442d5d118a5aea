"""Review finding 1: an approved retry whose lookup is still out is checked again when the answer
comes: never a second live order for one intent, never an abandoned or cancelled one sent."""

from __future__ import annotations

from engine.core.commands import Abandon, ApproveRetry, CancelGroup, CommandError, Launch
from engine.core.effects import Place, Query, QueryReason, Reply
from engine.core.events import OrderUpdate
from engine.core.inputs import LookedUp, PlaceUnsent
from engine.core.model import IntentStatus, OrderStatus
from tests.core.stepkit import OPERATOR, TRADER, Desk, of, spread


def _orphaned_hedge(desk: Desk) -> str:
    effects = desk.give(Launch(spread("G1", 150), TRADER))
    (place,) = of(effects, Place)
    coid = place.request.client_order_id
    desk.step(PlaceUnsent(desk.now_ns, coid, "outcome unknown: test", ambiguous=True))
    for _ in range(3):
        desk.advance(400)
        (q,) = of(desk.tick(), Query)
        desk.looked_up(q, None)
    assert desk.state.book.intents[coid].status is IntentStatus.ORPHANED
    return coid


def test_abandon_while_retry_lookup_is_out_is_refused_and_the_retry_goes_once() -> None:
    desk = Desk()
    coid = _orphaned_hedge(desk)
    (q,) = of(desk.give(ApproveRetry(coid, OPERATOR)), Query)
    assert q.reason is QueryReason.RETRY
    refused = desk.give(Abandon(coid, OPERATOR))  # the approval is waiting on the broker
    (answer,) = of(refused, Reply)
    assert isinstance(answer.error, CommandError) and "waiting on the broker" in str(answer.error)
    assert desk.state.book.intents[coid].status is IntentStatus.ORPHANED
    effects = desk.looked_up(q, None)  # the broker never saw it
    assert len(of(effects, Place)) == 1, "the approved retry, once"
    assert desk.state.book.intents[coid].status is IntentStatus.RETRY_APPROVED


def test_retry_answer_after_the_orphan_showed_up_sends_no_second_order() -> None:
    desk = Desk()
    coid = _orphaned_hedge(desk)
    (q,) = of(desk.give(ApproveRetry(coid, OPERATOR)), Query)
    # the feed reports the order after all (delayed), before the lookup's answer is stepped; its
    # broker id is not confirmed by any answer, so it moves nothing, but it is evidence
    desk.events(OrderUpdate(desk.bid(coid), coid, OrderStatus.ACCEPTED, 0, desk.broker_ms))
    assert desk.state.book.intents[coid].status is IntentStatus.ORPHANED
    effects = desk.step(LookedUp(desk.now_ns, coid, QueryReason.RETRY, None, q.command_id))
    assert of(effects, Place) == [], "a live order was retried: two orders for one intent"
    (again,) = of(effects, Query)
    assert again.broker_order_id is None, "asked again by client id"


def test_retry_answer_after_group_cancelled_sends_no_opening_order() -> None:
    desk = Desk()
    coid = _orphaned_hedge(desk)
    (q,) = of(desk.give(ApproveRetry(coid, OPERATOR)), Query)
    desk.give(CancelGroup("G1", TRADER))
    effects = desk.looked_up(q, None)
    assert of(effects, Place) == [], "an opening order was retried for a cancelled group"
