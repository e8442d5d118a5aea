"""Review finding 3: a "not found" answer that news overtook never orphans an order the feed
has reported."""

from __future__ import annotations

from engine.core.commands import Launch
from engine.core.effects import Place, Query
from engine.core.events import OrderUpdate
from engine.core.inputs import PlaceUnsent
from engine.core.model import IntentStatus, OrderStatus
from engine.core.notices import EscalationRaised
from tests.core.stepkit import TRADER, Desk, notices, of, spread


def test_a_stale_not_found_answer_never_orphans_an_order_the_feed_has_since_reported() -> None:
    desk = Desk()
    (place,) = of(desk.give(Launch(spread("G1", 150), TRADER)), Place)
    coid = place.request.client_order_id
    desk.step(PlaceUnsent(desk.now_ns, coid, "outcome unknown: ack lost", ambiguous=True))
    for _ in range(2):
        desk.advance(400)
        (q,) = of(desk.tick(), Query)
        desk.looked_up(q, None)  # the venue has not caught up yet
    desk.advance(400)
    (q,) = of(desk.tick(), Query)
    # while the third lookup is out, the feed reports the order: it is live
    desk.events(OrderUpdate(desk.bid(coid), coid, OrderStatus.ACCEPTED, 0, desk.broker_ms))
    row = desk.state.book.intents[coid]
    # its broker id is confirmed by no answer: the report moves nothing, but it is evidence
    assert row.order_status is OrderStatus.UNKNOWN and row.seen_at_broker
    effects = desk.looked_up(q, None)  # the answer was computed before the order showed up
    assert row.status is IntentStatus.UNKNOWN, f"an order the feed reports was marked {row.status.value}"
    assert not notices(effects, EscalationRaised), "an ORPHANED_INTENT escalation for an order the broker has"
    # once the broker's own answer finds it, it is adopted
    desk.advance(10_000)
    (q,) = of(desk.tick(), Query)
    desk.looked_up(q, OrderStatus.ACCEPTED)
    assert row.order_status is OrderStatus.ACCEPTED and row.broker_order_id == desk.bid(coid)
