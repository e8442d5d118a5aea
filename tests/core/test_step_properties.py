"""Hypothesis drives ``step`` with group-level input sequences from a truthful but unruly venue:
acks, definite rejects, lost acks, partial fills, stale and duplicated reports, replays, cancels
that race fills, slow lookups, time passing, HALT and resume, closes and cancels. After every
step the invariants of ARCHITECTURE.md are checked on the effects and the state."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.core.book import IntentRow
from engine.core.commands import Abandon, ApproveRetry, CancelGroup, CloseGroup, Command, Launch, SetTradingState
from engine.core.effects import Cancel, Commit, Effect, JournalWrites, Notify, Place, Query
from engine.core.events import CancelAck, FillReport, OrderSnapshot, OrderUpdate, PlaceAck
from engine.core.exposure import group_fills, net_cover_qty
from engine.core.inputs import BrokerEvents, CancelAnswered, Input, LookedUp, Placed, PlaceUnsent
from engine.core.lifecycle import PATH
from engine.core.model import (
    TERMINAL_GROUP_STATES,
    TERMINAL_ORDER_STATUSES,
    EscalationStatus,
    GroupState,
    IntentStatus,
    NodeStatus,
    OrderStatus,
    Purpose,
)
from engine.core.notices import EventRefused
from engine.core.trading_state import TradingState
from tests.core.stepkit import OPERATOR, RISK, TRADER, Desk, of, spread

RANK = {s: i for i, s in enumerate(PATH)}


@dataclass
class VenueOrder:
    qty: int
    cum: int = 0
    status: OrderStatus = OrderStatus.ACCEPTED
    fills: list[FillReport] = field(default_factory=list)


@dataclass
class Venue:
    """What the exchange really did. Reports are always true; only their delivery is unruly."""

    desk: Desk
    orders: dict[str, VenueOrder] = field(default_factory=dict)
    places: list[Place] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    sent: list[Input] = field(default_factory=list)
    trades: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def absorb(self, effects: list[Effect]) -> None:
        self.places += of(effects, Place)
        self.cancels += of(effects, Cancel)
        self.queries += of(effects, Query)

    def update(self, coid: str) -> OrderUpdate:
        o = self.orders[coid]
        return OrderUpdate(self.desk.bid(coid), coid, o.status, o.cum, self.desk.broker_ms)

    def snapshot(self, coid: str) -> OrderSnapshot | None:
        o = self.orders.get(coid)
        if o is None:
            return None
        row = self.desk.state.book.intents[coid]
        return OrderSnapshot(
            self.desk.bid(coid),
            coid,
            row.symbol,
            row.side,
            o.qty,
            row.order_type,
            o.status,
            o.cum,
            self.desk.broker_ms,
            tuple(o.fills),
        )


def venue_step(venue: Venue, data: st.DataObject) -> Input | Command | None:
    """One thing happens at the venue, or a person gives a command; None: time passes (a tick)."""
    desk = venue.desk
    kind = data.draw(st.sampled_from(["answer", "answer", "fill", "fill", "report", "replay", "time", "command"]))
    if kind == "answer" and venue.places:
        place = venue.places.pop(data.draw(st.integers(0, len(venue.places) - 1)))
        coid, qty = place.request.client_order_id, place.request.qty
        outcome = data.draw(st.sampled_from(["ack", "ack", "ack", "reject", "lost_ack", "never_arrived"]))
        if outcome in ("ack", "lost_ack"):
            venue.orders[coid] = VenueOrder(qty)
        if outcome == "ack":
            return Placed(desk.now_ns, coid, PlaceAck(desk.bid(coid), coid, desk.broker_ms))
        if outcome == "reject":
            return PlaceUnsent(desk.now_ns, coid, "broker rejected: test")
        return PlaceUnsent(desk.now_ns, coid, "outcome unknown: test", ambiguous=True)
    if kind == "answer" and venue.cancels:
        cancel = venue.cancels.pop(0)
        o = venue.orders.get(cancel.client_order_id)
        if o is not None and o.status not in TERMINAL_ORDER_STATUSES:
            o.status = OrderStatus.CANCELLED
        status = o.status if o else OrderStatus.CANCELLED
        ack = CancelAck(cancel.broker_order_id, status, desk.broker_ms)
        return CancelAnswered(desk.now_ns, cancel.client_order_id, ack)
    if kind == "answer" and venue.queries:
        query = venue.queries.pop(0)
        snap = venue.snapshot(query.client_order_id)
        return LookedUp(desk.now_ns, query.client_order_id, query.reason, snap, query.command_id)
    live = sorted(c for c, o in venue.orders.items() if o.status not in TERMINAL_ORDER_STATUSES)
    if kind == "fill" and live:
        coid = data.draw(st.sampled_from(live))
        o = venue.orders[coid]
        lot = desk.state.book.intents[coid].qty // (o.qty // 75) if o.qty >= 75 else o.qty
        lots = data.draw(st.integers(1, max(1, (o.qty - o.cum) // lot)))
        row = desk.state.book.intents[coid]
        o.cum += lots * lot
        o.status = OrderStatus.FILLED if o.cum == o.qty else OrderStatus.PARTIALLY_FILLED
        trade = FillReport(
            f"T{next(venue.trades)}", desk.bid(coid), coid, row.symbol, row.side, lots * lot, 100, desk.broker_ms
        )
        o.fills.append(trade)
        events = [trade, venue.update(coid)]
        if data.draw(st.booleans()):
            events.reverse()  # the status may arrive before the fill it sums
        return BrokerEvents(desk.now_ns, tuple(events))
    if kind == "report" and venue.orders:
        coid = data.draw(st.sampled_from(sorted(venue.orders)))
        stale = data.draw(st.booleans())
        update = venue.update(coid)
        if stale:  # an ACCEPTED that lost the race with later news
            update = OrderUpdate(update.broker_order_id, coid, OrderStatus.ACCEPTED, 0, desk.broker_ms)
        return BrokerEvents(desk.now_ns, (update,))
    if kind == "replay" and venue.sent:
        return data.draw(st.sampled_from(venue.sent))
    if kind == "time":
        desk.advance(data.draw(st.sampled_from([50, 400, 1_500, 2_100, 5_100])))
        return None
    if kind == "command":
        orphans = sorted(r.client_order_id for r in desk.state.book.orphans())
        operator: list[Command] = [c for o in orphans for c in (ApproveRetry(o, OPERATOR), Abandon(o, OPERATOR))]
        command: Command = data.draw(
            st.sampled_from(
                [
                    SetTradingState(TradingState.HALTED, TRADER),
                    SetTradingState(TradingState.REDUCING, TRADER),
                    SetTradingState(TradingState.ACTIVE, RISK),
                    CloseGroup("G1", TRADER),
                    CancelGroup("G2", TRADER),
                    *operator,
                ]
            )
        )
        return command
    return None


class Invariants:
    def __init__(self) -> None:
        self.fills_seen: dict[str, int] = {}
        self.escalation_ids: set[int] = set()
        self.placed: set[str] = set()
        self.filled: dict[str, int] = {}
        self.terminal: set[str] = set()
        self.group_rank: dict[str, int] = {}

    def check(self, desk: Desk, effects: list[Effect]) -> None:
        state = desk.state
        commits = of(effects, Commit)
        assert len(commits) <= 1 and (not commits or effects[0] is commits[0]), "one journal batch, first"
        batch = commits[0].writes if commits else JournalWrites()
        new_intents = batch.intents_new
        self._journal_follows_state(desk, effects, batch)
        for place in of(effects, Place):
            coid = place.request.client_order_id
            assert coid in new_intents, f"1: {coid} placed without its intent in the batch before it"
            assert coid not in self.placed, f"2: {coid} sent twice"
            self.placed.add(coid)
            inst = state.catalog[place.request.symbol]
            assert place.request.qty % inst.lot_size == 0 and place.request.qty <= inst.freeze_qty
        for row in state.book.intents.values():
            self._order_forward(row)
        for gid, group in state.book.groups.items():
            self._group_forward(gid, group.state)
            rows = state.book.of_group(gid)
            fills = group_fills(rows)
            risk_leg = sum(r.filled_qty for r in rows if r.purpose is Purpose.LEG and r.role.value == "RISK")
            assert risk_leg * group.spec.hedge.qty <= fills.hedge_bought_qty * group.spec.risk.qty, (
                f"risk sold {risk_leg} beyond the hedge bought {fills.hedge_bought_qty}"
            )
            if net_cover_qty(fills, group.spec.hedge.qty, group.spec.risk.qty) < 0:
                working = any(n.status is NodeStatus.WORKING for n in state.book.nodes_of(gid))
                escalated = any(
                    e.group_id == gid and e.status is not EscalationStatus.RESOLVED for e in state.escalations.values()
                )
                assert working or escalated, f"6: {gid} has uncovered exposure, unhedged and not escalated"
            self._fallbacks(rows)

    def _journal_follows_state(self, desk: Desk, effects: list[Effect], batch: JournalWrites) -> None:
        """What the state learnt in this step is in this step's batch: fills, their dedupe keys
        (3: key and effect together), escalations, and a row for every refused event (4)."""
        keys = {k for k, _, _ in batch.processed}
        journaled: dict[str, int] = {}
        for trade_id, coid, *_rest in batch.fills:
            assert f"F:{trade_id}" in keys, f"3: fill {trade_id} journaled without its dedupe key"
            journaled[coid] = journaled.get(coid, 0) + _rest[2]
        for row in desk.state.book.intents.values():
            grown = row.fills_qty - self.fills_seen.get(row.client_order_id, 0)
            assert grown == journaled.get(row.client_order_id, 0), f"{row.client_order_id}: fills not journaled"
            self.fills_seen[row.client_order_id] = row.fills_qty
        new = set(desk.state.escalations) - self.escalation_ids
        assert new == {e[0] for e in batch.escalations}, "an escalation raised but not journaled"
        self.escalation_ids |= new
        refused = [n for n in of(effects, Notify) if isinstance(n.event, EventRefused)]
        assert len(batch.rejected) >= len(refused), "4: a refused event without its journal row"
        attempts: dict[str, int] = {}
        for row in desk.state.book.intents.values():
            if row.order_status not in TERMINAL_ORDER_STATUSES and row.status not in (
                IntentStatus.RETRY_APPROVED,
                IntentStatus.ABANDONED,
            ):
                attempts[row.intent_id] = attempts.get(row.intent_id, 0) + 1
        assert all(n == 1 for n in attempts.values()), f"2: two live attempts of one intent {attempts}"

    def _order_forward(self, row: IntentRow) -> None:
        coid = row.client_order_id
        assert row.filled_qty >= self.filled.get(coid, 0), f"4: {coid} filled qty went backward"
        assert row.filled_qty <= row.qty and row.fills_qty <= row.qty
        self.filled[coid] = row.filled_qty
        if coid in self.terminal:
            assert row.order_status in TERMINAL_ORDER_STATUSES, f"4: {coid} left a terminal state"
        if row.order_status in TERMINAL_ORDER_STATUSES:
            self.terminal.add(coid)

    def _group_forward(self, gid: str, gstate: GroupState) -> None:
        before = self.group_rank.get(gid)
        rank = 100 if gstate in TERMINAL_GROUP_STATES else RANK[gstate]
        assert before is None or rank >= before, f"4: group {gid} moved backward to {gstate}"
        self.group_rank[gid] = rank

    @staticmethod
    def _fallbacks(rows: list[IntentRow]) -> None:
        fallbacks = [r for r in rows if r.purpose is Purpose.FALLBACK]
        if fallbacks:
            stops = [r for r in rows if r.purpose is Purpose.STOP]
            assert all(s.order_status is OrderStatus.CANCELLED for s in stops), "7: MARKET before a confirmed cancel"
            remainder = sum(s.qty - s.filled_qty for s in stops)
            assert sum(f.qty for f in fallbacks) == remainder, "7: MARKET for more than the remainder"


@settings(
    max_examples=int(os.environ.get("STEP_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_invariants_hold_after_every_step_of_an_unruly_session(data: st.DataObject) -> None:
    desk = Desk()
    venue = Venue(desk)
    invariants = Invariants()
    for gid, qty, stop in (("G1", 225, {"stop_loss": {"trigger_price": "250.00"}}), ("G2", 150, {})):
        effects = desk.give(Launch(spread(gid, qty, **stop), TRADER))  # type: ignore[arg-type]
        invariants.check(desk, effects)
        venue.absorb(effects)
    for _ in range(data.draw(st.integers(10, 80))):
        happening = venue_step(venue, data)
        if happening is None:
            effects = desk.tick()
        elif isinstance(happening, (Launch, CancelGroup, CloseGroup, SetTradingState, ApproveRetry, Abandon)):
            effects = desk.give(happening)
        else:
            effects = desk.step(happening)
            venue.sent.append(happening)
        venue.absorb(effects)
        invariants.check(desk, effects)
