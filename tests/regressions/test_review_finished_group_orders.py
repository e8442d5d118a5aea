"""Review finding 5: an order that may still move is watched by the timers even when its group
has finished (a manual hedge of a FAILED group, say)."""

from __future__ import annotations

from engine.core.commands import Launch, ManualHedge
from engine.core.effects import Place, Query
from engine.core.inputs import PlaceUnsent
from engine.core.model import GroupState, OrderStatus, Side
from tests.core.stepkit import HEDGE_SYMBOL, TRADER, Desk, of, spread


def _failed_group(desk: Desk) -> None:
    effects = desk.give(Launch(spread("G1", 150), TRADER))
    while places := of(effects, Place):
        effects = []
        for p in places:
            effects += desk.step(PlaceUnsent(desk.now_ns, p.request.client_order_id, "broker rejected: test"))
    assert desk.group().state is GroupState.FAILED


def test_an_ambiguous_manual_hedge_on_a_finished_group_is_still_resolved() -> None:
    desk = Desk()
    _failed_group(desk)
    effects = desk.give(ManualHedge("G1", HEDGE_SYMBOL, Side.BUY, 75, TRADER))
    (place,) = of(effects, Place)
    coid = place.request.client_order_id
    desk.step(PlaceUnsent(desk.now_ns, coid, "outcome unknown: test", ambiguous=True))
    assert desk.state.book.intents[coid].order_status is OrderStatus.UNKNOWN
    queries = []
    for _ in range(5):
        desk.advance(400)
        queries += of(desk.tick(), Query)
    # old runtime/recovery.on_tick walked every intent and looked an UNKNOWN one up
    assert queries, "an UNKNOWN order of a finished group is never looked up (and never orphaned)"
