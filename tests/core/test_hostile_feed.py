"""Trust nothing the broker says (issue 9), decided in ``step``: each class of hostile input, and
its neighbours, as synchronous step tests."""

from __future__ import annotations

import itertools

from engine.core.commands import Launch
from engine.core.effects import AnchorClock, Cancel, Commit, Place, Query, QueryReason
from engine.core.events import CancelAck, FillReport, MalformedEvent, OrderSnapshot, OrderUpdate, PlaceAck
from engine.core.inputs import BrokerEvents, BrokerTime, CancelAnswered, LookedUp, Placed, PlaceUnsent
from engine.core.model import EscalationKind, GroupState, OrderStatus, Side
from engine.core.notices import BrokerUsability, ClockStepped, EscalationRaised
from engine.core.state import EngineConfig
from tests.core.stepkit import TRADER, Desk, notices, of, spread, writes


def launched(desk: Desk, qty: int = 375) -> str:
    (hedge,) = of(desk.give(Launch(spread(qty=qty), TRADER)), Place)
    desk.ack(hedge)
    return hedge.request.client_order_id


def rejected_reasons(effects: list) -> list[str]:
    return [r[3] for r in writes(effects).rejected]


# --- 1. an event that contradicts the journal -------------------------------------------------


def test_a_status_with_a_foreign_broker_id_is_refused_and_the_known_order_is_asked_about() -> None:
    desk = Desk()
    coid = launched(desk)
    desk.fill(coid, 150)
    ghost = OrderUpdate("HX00000001", coid, OrderStatus.FILLED, 375, desk.broker_ms)
    effects = desk.events(ghost)
    row = desk.state.book.intents[coid]
    assert (row.order_status, row.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 150), "the journal did not move"
    assert any("contradicts the journal" in r for r in rejected_reasons(effects))
    (query,) = of(effects, Query)
    assert (query.client_order_id, query.broker_order_id) == (coid, desk.bid(coid)), "asks about the order it knows"
    assert of(effects, Place) == [], "nothing sold against a lie"


def test_an_event_with_a_known_broker_id_but_another_client_id_is_refused() -> None:
    """Found by the simulator (chaos seed 29): the book looks an event up by client id, then by
    broker id. An event naming a client id the book does not hold (a finished group's order is
    not loaded after a restart) with the broker id of a live order moved that live order."""
    desk = Desk()
    coid = launched(desk)
    desk.fill(coid, 150)
    ghost = OrderUpdate(desk.bid(coid), "TDNOTINTHISBOOK00000", OrderStatus.FILLED, 375, desk.broker_ms)
    effects = desk.events(ghost)
    row = desk.state.book.intents[coid]
    assert (row.order_status, row.filled_qty) == (OrderStatus.PARTIALLY_FILLED, 150), "the live order did not move"
    assert any("does not match" in r for r in rejected_reasons(effects))
    assert of(effects, Place) == []


def test_a_fill_with_a_foreign_broker_id_is_refused_too() -> None:
    desk = Desk()
    coid = launched(desk)
    fill = FillReport("TGHOST", "HX00000001", coid, "NIFTY26DEC24200CE", Side.BUY, 375, 100, desk.broker_ms)
    effects = desk.events(fill)
    assert desk.state.book.intents[coid].fills_qty == 0 and of(effects, Query)
    assert of(effects, Place) == []


def test_a_fill_for_another_symbol_or_side_is_refused() -> None:
    desk = Desk()
    coid = launched(desk)
    wrong = FillReport("TX", desk.bid(coid), coid, "NIFTY26DEC24000CE", Side.SELL, 75, 100, desk.broker_ms)
    effects = desk.events(wrong)
    assert desk.state.book.intents[coid].fills_qty == 0
    assert any("but" in r and "is BUY" in r for r in rejected_reasons(effects))


def test_a_status_ahead_of_its_fills_never_sizes_the_risk_leg_and_the_fills_are_fetched() -> None:
    desk = Desk()
    coid = launched(desk)
    desk.fill(coid, 150)
    effects = desk.events(OrderUpdate(desk.bid(coid), coid, OrderStatus.FILLED, 375, desk.broker_ms))
    row = desk.state.book.intents[coid]
    assert (row.order_status, row.filled_qty, row.fills_qty) == (OrderStatus.FILLED, 375, 150)
    assert of(effects, Place) == [], "a status report's cumulative qty alone sizes nothing"
    desk.advance(301)
    (query,) = of(desk.tick(), Query)
    assert query.reason is QueryReason.RECONCILE, "the broker is asked for the order's fills"
    fills = tuple(
        FillReport(f"T{k}", desk.bid(coid), coid, row.symbol, Side.BUY, 75, 100, desk.broker_ms) for k in range(1, 6)
    )
    snapshot = OrderSnapshot(
        desk.bid(coid), coid, row.symbol, row.side, 375, row.order_type, OrderStatus.FILLED, 375, desk.broker_ms, fills
    )
    answer = desk.step(LookedUp(desk.now_ns, coid, QueryReason.RECONCILE, snapshot))
    (risk,) = of(answer, Place)
    assert risk.request.qty == 375 and row.fills_qty == 375


# --- 2. a broker id adopted only from the broker's own answer ----------------------------------


def test_after_a_lost_ack_an_unsolicited_broker_id_is_not_adopted_the_answer_to_find_is() -> None:
    desk = Desk()
    (hedge,) = of(desk.give(Launch(spread(), TRADER)), Place)
    coid = hedge.request.client_order_id
    desk.step(PlaceUnsent(desk.now_ns, coid, "outcome unknown: ack lost", ambiguous=True))
    effects = desk.events(OrderUpdate("GHOST1", coid, OrderStatus.PARTIALLY_FILLED, 75, desk.broker_ms))
    row = desk.state.book.intents[coid]
    assert row.broker_order_id is None and row.filled_qty == 0
    assert any("not confirmed by the broker" in r for r in rejected_reasons(effects))
    (query,) = of(effects, Query)
    assert query.broker_order_id is None, "asked by our client id, never by the id the event claims"
    real = OrderSnapshot("B-REAL", coid, row.symbol, row.side, 150, row.order_type, OrderStatus.ACCEPTED, 0, 1)
    desk.step(LookedUp(desk.now_ns, coid, QueryReason.RECONCILE, real))
    assert row.broker_order_id == "B-REAL" and row.order_status is OrderStatus.ACCEPTED
    assert desk.state.book.by_broker == {"B-REAL": coid}


def test_a_cancel_ack_naming_a_ghost_id_is_refused_and_an_unknown_order_is_settled_by_client_id() -> None:
    desk = Desk()
    coid = launched(desk)
    desk.fill(coid, 75)
    desk.advance(5_001)
    (cancel,) = of(desk.tick(), Cancel)
    assert cancel.client_order_id == coid
    ghost = desk.step(CancelAnswered(desk.now_ns, coid, CancelAck("GHOST", OrderStatus.CANCELLED, desk.broker_ms)))
    assert any("names broker id GHOST" in r for r in rejected_reasons(ghost)) and of(ghost, Query)
    row = desk.state.book.intents[coid]
    row.query_in_flight = False  # the venue answered that query (not modelled here)
    unknown = desk.step(CancelAnswered(desk.now_ns, coid, None, "UnknownOrder: no such order", unknown_order=True))
    (query,) = of(unknown, Query)
    assert query.broker_order_id is None and query.client_order_id == coid
    assert row.order_status is OrderStatus.PENDING_CANCEL, "nothing concluded from a broker's error"


# --- 3. no broker reply stops the engine ------------------------------------------------------


def test_failed_lookups_back_off_and_a_broker_that_never_answers_becomes_unusable_and_escalated() -> None:
    desk = Desk(EngineConfig(broker_unusable_after_ms=10_000, cancel_confirm_ms=60_000))
    coid = launched(desk)
    desk.fill(coid, 75)
    desk.advance(5_001)
    (cancel,) = of(desk.tick(), Cancel)
    desk.cancel_answered(cancel)
    asked_at = []
    for _ in range(60):  # 15 s of ticks, every lookup failing
        desk.advance(250)
        for query in of(desk.tick(), Query):
            asked_at.append(desk.now_ns)
            desk.step(LookedUp(desk.now_ns, query.client_order_id, query.reason, None, None, "INTERNAL: try later"))
    gaps = [b - a for a, b in itertools.pairwise(asked_at)]
    assert gaps == sorted(gaps) and gaps[-1] > 4 * gaps[0], f"lookups back off: {gaps}"
    assert desk.state.broker_unusable
    escalations = [e for e in desk.state.escalations.values() if e.kind is EscalationKind.BROKER_UNUSABLE]
    assert len(escalations) == 1
    history = [e for _, effects in desk.history for e in effects]
    assert notices(history, BrokerUsability)[-1].usable is False
    assert any(w.settings.get("broker_state") == "UNUSABLE" for w in (c.writes for c in of(history, Commit)))
    # the broker answers again: usable, resolved, and the group goes on
    effects = desk.step(BrokerTime(desk.now_ns, desk.broker_ms))
    assert not desk.state.broker_unusable and notices(effects, BrokerUsability)[-1].usable
    assert desk.group().state is not GroupState.FAILED


def test_while_the_broker_is_unusable_opening_orders_wait() -> None:
    desk = Desk(EngineConfig(broker_unusable_after_ms=1_000))
    coid = launched(desk, 150)
    desk.step(anchor_failure(desk))
    desk.advance(1_001)
    desk.tick()
    assert desk.state.broker_unusable
    effects = desk.fill(coid, 150)  # the hedge is in: a risk wave would open exposure
    assert of(effects, Place) == [] and "broker is unusable" in desk.group().reason
    resumed = desk.step(BrokerTime(desk.now_ns, desk.broker_ms))
    (risk,) = of(resumed, Place)
    assert risk.request.qty == 150


def anchor_failure(desk: Desk) -> BrokerTime:
    return BrokerTime(desk.now_ns, None, "ConnectionError: refused")


# --- 4. broker time that steps --------------------------------------------------------------


def test_an_exchange_clock_stepping_back_does_not_cancel_a_fresh_order_early() -> None:
    desk = Desk(EngineConfig(order_timeout_ms=1_500))
    (hedge,) = of(desk.give(Launch(spread(), TRADER)), Place)
    coid = hedge.request.client_order_id
    stepped_back = desk.broker_ms - 60_000
    effects = desk.step(Placed(desk.now_ns, coid, PlaceAck(desk.bid(coid), coid, stepped_back)))
    (step,) = notices(effects, ClockStepped)
    assert step.delta_ms == -60_000
    assert any(t[0] == "CLOCK" for t in writes(effects).transitions), "the step is journaled"
    desk.advance(1_499)
    assert of(desk.tick(), Cancel) == [], "1,499 ms after its ack: not yet"
    desk.advance(2)
    assert of(desk.tick(), Cancel), "1,501 ms after its ack: cancelled, not 60 s early nor never"


def test_an_exchange_clock_stepping_forward_neither_fires_early() -> None:
    desk = Desk(EngineConfig(order_timeout_ms=1_500))
    coid = launched(desk, 150)
    jumped = desk.broker_ms + 60_000
    effects = desk.events(OrderUpdate(desk.bid(coid), coid, OrderStatus.PARTIALLY_FILLED, 75, jumped))
    assert notices(effects, ClockStepped)[0].delta_ms == 60_000
    desk.advance(1_000)
    assert of(desk.tick(), Cancel) == [], "only 1,000 ms of broker time since the ack"
    desk.advance(501)
    assert of(desk.tick(), Cancel)


def test_a_clock_step_during_a_stop_loss_does_not_bring_the_fallback_forward() -> None:
    desk = Desk()
    (hedge,) = of(desk.give(Launch(spread(stop_loss={"trigger_price": "250.00"}), TRADER)), Place)
    desk.ack(hedge)
    (risk,) = of(desk.fill(hedge.request.client_order_id, 150), Place)
    desk.ack(risk)
    (stop,) = of(desk.fill(risk.request.client_order_id, 150), Place)
    desk.ack(stop)
    sid = stop.request.client_order_id
    desk.report(sid, OrderStatus.ACCEPTED)  # triggered
    desk.events(OrderUpdate(desk.bid(sid), sid, OrderStatus.ACCEPTED, 0, desk.broker_ms + 30_000))  # clock jumps
    desk.advance(1_000)
    assert of(desk.tick(), Query) == [] and of(desk.tick(), Cancel) == [], "1 s after the trigger, not 31 s"


def test_a_late_replayed_event_is_not_a_clock_step() -> None:
    desk = Desk()
    coid = launched(desk, 150)
    effects = desk.events(OrderUpdate(desk.bid(coid), coid, OrderStatus.ACCEPTED, 0, desk.broker_ms - 60_000))
    assert notices(effects, ClockStepped) == []


# --- 5. malformed events are kept ------------------------------------------------------------


def test_a_malformed_event_is_journaled_with_its_raw_payload_reason_and_sequence_number() -> None:
    desk = Desk()
    bad = MalformedEvent.of({"type": "fill", "qty": -75}, "field 'qty' must be an integer >= 1, got -75", 41)
    effects = desk.step(BrokerEvents(desk.now_ns, (bad,)))
    (row,) = writes(effects).rejected
    assert row[3].startswith("field 'qty'") and row[6] == 41 and "-75" in row[2]
    assert desk.state.stats.rejected == 1


def test_a_negative_fill_is_refused_and_kept() -> None:
    desk = Desk()
    coid = launched(desk, 150)
    neg = FillReport("TNEG", desk.bid(coid), coid, "NIFTY26DEC24200CE", Side.BUY, -75, 100, desk.broker_ms)
    effects = desk.events(neg)
    assert desk.state.book.intents[coid].fills_qty == 0 and writes(effects).rejected


def test_an_oversized_payload_is_kept_bounded() -> None:
    bad = MalformedEvent.of("x" * 100_000, "too large", 7)
    assert len(bad.raw) == 2048


# --- 6. a cancel that is never confirmed -----------------------------------------------------


def test_a_never_confirmed_cancel_is_asked_again_resent_once_then_escalated_with_what_may_fill() -> None:
    desk = Desk(EngineConfig(cancel_confirm_ms=3_000))
    coid = launched(desk, 375)
    desk.fill(coid, 150)
    desk.advance(5_001)
    (cancel,) = of(desk.tick(), Cancel)
    desk.cancel_answered(cancel)
    desk.report(coid, OrderStatus.PENDING_CANCEL)
    desk.advance(2_999)
    (poll,) = of(desk.tick(), Query)
    assert of(desk.tick(), Cancel) == []
    desk.looked_up(poll, OrderStatus.PENDING_CANCEL)  # the venue: still pending
    desk.advance(2)
    effects = desk.tick()
    assert len(of(effects, Cancel)) == 1 and of(effects, Query), "asked again, cancel re-sent once"
    desk.state.book.intents[coid].query_in_flight = False
    desk.advance(1_000)
    assert of(desk.tick(), Cancel) == [], "re-sent once, not forever"
    desk.advance(2_000)
    effects = desk.tick()
    (escalation,) = notices(effects, EscalationRaised)
    assert escalation.kind is EscalationKind.CANCEL_UNCONFIRMED and escalation.unhedged_qty == 225
    assert coid in escalation.reason and of(effects, Place) == [], "no child while the first may still fill"
    assert desk.group().waiting_on_person and desk.state.book.settled(), "in front of a person, not silent"
    desk.advance(10_000)
    assert notices(desk.tick(), EscalationRaised) == [], "escalated once"


# --- 7. more fill after CANCELLED ------------------------------------------------------------


def test_more_fill_reported_after_cancelled_is_taken_and_its_fills_are_fetched() -> None:
    desk = Desk()
    coid = launched(desk, 375)
    desk.fill(coid, 150)
    desk.advance(5_001)
    desk.tick()
    desk.report(coid, OrderStatus.CANCELLED)  # CANCELLED with 150
    row = desk.state.book.intents[coid]
    children = [n for n in desk.nodes() if n.depth == 1]
    assert len(children) == 1 and children[0].target_qty == 225
    effects = desk.events(OrderUpdate(desk.bid(coid), coid, OrderStatus.PARTIALLY_FILLED, 225, desk.broker_ms))
    assert (row.order_status, row.filled_qty, row.fills_qty) == (OrderStatus.CANCELLED, 225, 150)
    assert writes(effects).rejected == [], "a larger cumulative qty is a fact, not a refused label"
    desk.advance(301)
    assert any(q.reason is QueryReason.RECONCILE for q in of(desk.tick(), Query)), "its fills are fetched"


def test_anchor_is_asked_only_once_while_its_answer_is_out() -> None:
    desk = Desk()
    desk.state.clock.anchor_exchange_ms = None
    assert len(of(desk.tick(), AnchorClock)) == 1 and of(desk.tick(), AnchorClock) == []


def test_a_status_the_brokers_own_answer_contradicts_is_escalated_and_the_live_order_cancelled() -> None:
    """A FILLED 375 report with the real broker id, while the broker really has 150 filled and the
    rest working: states never move back, so the 225 nobody confirms is put in front of a person,
    nothing is sized on it, and the order the broker says is live is cancelled."""
    desk = Desk()
    coid = launched(desk)
    desk.fill(coid, 150)
    desk.events(OrderUpdate(desk.bid(coid), coid, OrderStatus.FILLED, 375, desk.broker_ms))
    desk.advance(301)
    (query,) = of(desk.tick(), Query)
    effects = desk.looked_up(query, OrderStatus.PARTIALLY_FILLED)  # the truth: 150, still working
    (escalation,) = notices(effects, EscalationRaised)
    assert escalation.kind is EscalationKind.MANUAL_ACTION and escalation.unhedged_qty == 225
    (cancel,) = of(effects, Cancel)
    assert cancel.broker_order_id == desk.bid(coid) and of(effects, Place) == []
    assert desk.group().waiting_on_person and desk.state.book.settled(), "waiting on a person, not silent"
