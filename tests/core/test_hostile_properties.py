"""Hypothesis interleaves the true events of a venue with contradicting ones: foreign broker ids
on statuses and fills, statuses ahead of their fills, negative quantities, undecodable payloads
and exchange clock steps. Whatever the interleaving, the risk sold never exceeds the hedge
bought, and once the true events are all in, the engine's positions equal the venue's."""

from __future__ import annotations

import os
from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.commands import Command, Launch
from engine.core.events import CancelAck, FillReport, MalformedEvent, OrderUpdate, PlaceAck
from engine.core.inputs import BrokerEvents, CancelAnswered, Input, LookedUp, Placed
from engine.core.model import OrderStatus
from tests.core.stepkit import TRADER, Desk, spread
from tests.core.test_step_properties import Invariants, Venue, VenueOrder, venue_step


def hostile(venue: Venue, data: st.DataObject) -> Input | None:
    desk = venue.desk
    known = sorted(venue.orders)
    if not known:
        return None
    coid = data.draw(st.sampled_from(known))
    row = desk.state.book.intents[coid]
    kind = data.draw(st.sampled_from(["ghost_status", "ghost_fill", "ahead", "negative", "garbage", "step"]))
    ts = desk.broker_ms
    if kind == "ghost_status":
        return BrokerEvents(desk.now_ns, (OrderUpdate("HX0001", coid, OrderStatus.FILLED, row.qty, ts),))
    if kind == "ghost_fill":
        fill = FillReport("TGHOST", "HX0001", coid, row.symbol, row.side, row.qty, 100, ts)
        return BrokerEvents(desk.now_ns, (fill,))
    if kind == "ahead":  # a true-looking status that claims fills the venue never made
        return BrokerEvents(desk.now_ns, (OrderUpdate(desk.bid(coid), coid, OrderStatus.FILLED, row.qty, ts),))
    if kind == "negative":
        fill = FillReport("TNEG", desk.bid(coid), coid, row.symbol, row.side, -75, 100, ts)
        return BrokerEvents(desk.now_ns, (fill,))
    if kind == "garbage":
        return BrokerEvents(desk.now_ns, (MalformedEvent.of({"qty": float("nan")}, "NaN qty", 9),))
    desk.broker_ms += data.draw(st.sampled_from([-60_000, 60_000]))  # the venue's clock steps
    return None


def drain(desk: Desk, venue: Venue) -> None:
    """Everything true is delivered and every question answered truthfully, until quiet."""
    for _ in range(60):
        for place in venue.places:
            coid = place.request.client_order_id
            venue.orders.setdefault(coid, VenueOrder(place.request.qty))
            venue.absorb(desk.step(Placed(desk.now_ns, coid, PlaceAck(desk.bid(coid), coid, desk.broker_ms))))
        venue.places.clear()
        for cancel in venue.cancels:
            order = venue.orders.get(cancel.client_order_id)
            if order is not None and order.status not in (OrderStatus.FILLED, OrderStatus.CANCELLED):
                order.status = OrderStatus.CANCELLED
            ack = CancelAck(cancel.broker_order_id, OrderStatus.CANCELLED, desk.broker_ms)
            venue.absorb(desk.step(CancelAnswered(desk.now_ns, cancel.client_order_id, ack)))
        venue.cancels.clear()
        for query in list(venue.queries):
            venue.queries.remove(query)
            snap = venue.snapshot(query.client_order_id)
            venue.absorb(desk.step(LookedUp(desk.now_ns, query.client_order_id, query.reason, snap, query.command_id)))
        for coid, order in venue.orders.items():
            if coid in desk.state.book.intents:
                venue.absorb(desk.step(BrokerEvents(desk.now_ns, (*order.fills, venue.update(coid)))))
        desk.advance(400)
        venue.absorb(desk.tick())
        if not (venue.places or venue.cancels or venue.queries):
            return


def positions(desk: Desk) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for row in desk.state.book.intents.values():
        out[row.symbol] += row.side.sign * row.fills_qty
    return {k: v for k, v in out.items() if v}


def venue_positions(desk: Desk, venue: Venue) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for coid, order in venue.orders.items():
        row = desk.state.book.intents[coid]
        out[row.symbol] += row.side.sign * sum(f.qty for f in order.fills)
    return {k: v for k, v in out.items() if v}


@settings(
    max_examples=int(os.environ.get("STEP_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_contradicting_events_never_move_positions_away_from_the_truth(data: st.DataObject) -> None:
    desk = Desk()
    venue = Venue(desk)
    invariants = Invariants()
    for gid, qty in (("G1", 375), ("G2", 150)):
        effects = desk.give(Launch(spread(gid, qty), TRADER))
        invariants.check(desk, effects)
        venue.absorb(effects)
    for _ in range(data.draw(st.integers(10, 60))):
        one_in_four = data.draw(st.integers(0, 3)) == 0
        happening = hostile(venue, data) if one_in_four else venue_step(venue, data)
        if happening is None:
            effects = desk.tick()
        elif isinstance(happening, Command):  # type: ignore[misc, arg-type]
            effects = desk.give(happening)
        else:
            effects = desk.step(happening)
        venue.absorb(effects)
        invariants.check(desk, effects)
    drain(desk, venue)
    assert positions(desk) == venue_positions(desk, venue)
    assert not venue.places, "quiet at the end"
