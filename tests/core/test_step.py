"""The engine's decisions, one ``step`` at a time, in the style of h11's test_state.py:
``effects = step(state, input); assert ...``. No event loop, no database, no sleep."""

from __future__ import annotations

import pytest

from engine.core.commands import (
    Abandon,
    ApproveRetry,
    CloseGroup,
    CommandError,
    Launch,
    RoleError,
    SetTradingState,
)
from engine.core.effects import Cancel, Commit, Notify, Place, Query, QueryReason, Reply
from engine.core.inputs import Recover
from engine.core.model import (
    EscalationKind,
    GroupState,
    IntentStatus,
    LegRole,
    NodeKind,
    NodeStatus,
    OrderStatus,
    OrderType,
    Purpose,
    Side,
)
from engine.core.notices import EscalationRaised, GroupStateChanged
from engine.core.placing import send_refusal
from engine.core.state import EngineConfig
from engine.core.trading_state import TradingState
from tests.core.stepkit import OPERATOR, RISK, RISK_SYMBOL, TRADER, Desk, notices, of, reply, spread, writes


def hedged(desk: Desk, spec_qty: int = 150, **extra: object) -> None:
    """Launch G1 and fill both legs completely."""
    (hedge,) = of(desk.give(Launch(spread(qty=spec_qty, **extra), TRADER)), Place)
    desk.ack(hedge)
    (risk,) = of(desk.fill(hedge.request.client_order_id, spec_qty), Place)
    desk.ack(risk)
    desk.fill(risk.request.client_order_id, spec_qty)


# --- launch and the legs ------------------------------------------------------------------------


def test_launch_journals_group_node_and_intent_in_the_batch_that_precedes_the_place() -> None:
    desk = Desk()
    effects = desk.give(Launch(spread(), TRADER))
    assert isinstance(effects[0], Commit), "the journal batch comes first"
    (place,) = of(effects, Place)
    batch = effects[0].writes
    assert set(batch.groups_new) == {"G1"}
    assert place.request.client_order_id in batch.intents_new
    assert [n.kind for n in batch.nodes_new.values()] == [NodeKind.LEG]
    assert (place.request.symbol, place.request.side, place.request.qty) == ("NIFTY26DEC24200CE", Side.BUY, 150)
    assert place.opens_exposure, "the hedge leg opens the position: the kill switch judges it as opening"
    assert reply(effects).value is GroupState.HEDGE_SUBMITTED
    assert any(a[4] == "launch" and a[7] == "OK" for a in batch.audits)


def test_the_risk_leg_is_sold_only_once_the_hedge_is_confirmed_filled() -> None:
    desk = Desk()
    (hedge,) = of(desk.give(Launch(spread(), TRADER)), Place)
    coid = hedge.request.client_order_id
    assert of(desk.ack(hedge), Place) == []
    assert of(desk.fill(coid, 75), Place) == [], "half the hedge: nothing is sold yet"
    effects = desk.fill(coid, 75)
    (risk,) = of(effects, Place)
    assert (risk.request.symbol, risk.request.side, risk.request.qty) == (RISK_SYMBOL, Side.SELL, 150)
    assert risk.request.client_order_id in writes(effects).intents_new
    assert desk.group().state is GroupState.RISK_SUBMITTED
    desk.ack(risk)
    desk.fill(risk.request.client_order_id, 150)
    assert desk.group().state is GroupState.HEDGED


def test_a_duplicate_event_changes_nothing_and_writes_no_effect() -> None:
    desk = Desk()
    (hedge,) = of(desk.give(Launch(spread(), TRADER)), Place)
    desk.ack(hedge)
    first = desk.fill(hedge.request.client_order_id, 75)
    inp = desk.history[-1][0]
    again = desk.step(inp)  # the same two events once more
    assert writes(first).fills and writes(again).fills == []
    assert writes(again).duplicates == 2
    assert desk.state.book.intents[hedge.request.client_order_id].filled_qty == 75


def test_a_partly_filled_risk_leg_gets_a_second_wave_for_exactly_the_rest() -> None:
    desk = Desk()
    (hedge,) = of(desk.give(Launch(spread(), TRADER)), Place)
    desk.ack(hedge)
    (risk,) = of(desk.fill(hedge.request.client_order_id, 150), Place)
    desk.ack(risk)
    desk.fill(risk.request.client_order_id, 75)
    desk.advance(5_001)
    (cancel,) = of(desk.tick(), Cancel)
    assert cancel.client_order_id == risk.request.client_order_id
    assert desk.state.book.intents[cancel.client_order_id].order_status is OrderStatus.PENDING_CANCEL
    effects = desk.report(cancel.client_order_id, OrderStatus.CANCELLED)
    (wave2,) = of(effects, Place)
    assert wave2.request.qty == 75 and desk.state.book.intents[wave2.request.client_order_id].wave == 2
    assert desk.group().state is GroupState.RISK_PARTIAL


# --- the hedge tree -----------------------------------------------------------------------------


def test_a_partial_hedge_is_cancelled_at_its_deadline_and_a_child_covers_exactly_the_rest() -> None:
    desk = Desk()
    (hedge,) = of(desk.give(Launch(spread(qty=225), TRADER)), Place)
    coid = hedge.request.client_order_id
    desk.ack(hedge)
    desk.fill(coid, 75)
    desk.advance(4_999)
    assert of(desk.tick(), Cancel) == [], "not before the broker-time deadline"
    desk.advance(2)
    (cancel,) = of(desk.tick(), Cancel)
    assert of(desk.cancel_answered(cancel), Place) == [], "a requested cancel is not a confirmed one"
    racing = desk.fill(coid, 75)  # a fill racing the cancel counts
    assert of(racing, Place) == []
    effects = desk.report(coid, OrderStatus.CANCELLED)
    (child,) = of(effects, Place)
    assert child.request.qty == 75, "exactly the confirmed remainder: 225 - 75 - 75"
    root, node = desk.nodes()
    assert (root.status, root.filled_qty) == (NodeStatus.CHILDED, 150)
    assert (node.parent_id, node.depth, node.target_qty) == (root.node_id, 1, 75)


def test_an_exhausted_tree_escalates_the_exact_remainder_and_the_risk_leg_sells_what_filled() -> None:
    desk = Desk(EngineConfig(max_hedge_depth=1))
    (hedge,) = of(desk.give(Launch(spread(qty=150), TRADER)), Place)
    desk.ack(hedge)
    desk.fill(hedge.request.client_order_id, 75)
    desk.advance(5_001)
    (cancel,) = of(desk.tick(), Cancel)
    (child,) = of(desk.report(cancel.client_order_id, OrderStatus.CANCELLED), Place)
    desk.ack(child)
    desk.advance(5_001)
    (cancel2,) = of(desk.tick(), Cancel)
    effects = desk.report(cancel2.client_order_id, OrderStatus.CANCELLED)
    (escalation,) = notices(effects, EscalationRaised)
    assert (escalation.kind, escalation.unhedged_qty) == (EscalationKind.HEDGE_EXHAUSTED, 75)
    (risk,) = of(effects, Place)
    assert risk.request.qty == 75, "sold only against the 75 that filled"
    assert [n.status for n in desk.nodes()] == [NodeStatus.CHILDED, NodeStatus.EXHAUSTED]
    assert escalation.escalation_id in desk.state.escalations


# --- stop-loss and close ------------------------------------------------------------------------


def test_a_triggered_stop_is_asked_again_then_cancelled_and_only_the_remainder_goes_at_market() -> None:
    desk = Desk()
    hedged(desk, stop_loss={"trigger_price": "250.00"})
    assert desk.group().state is GroupState.HEDGED
    (stop,) = [e for _, effects in desk.history[-1:] for e in of(effects, Place)]
    assert (stop.request.order_type, stop.request.qty) == (OrderType.SL, 150)
    desk.ack(stop)
    sid = stop.request.client_order_id
    assert desk.state.book.intents[sid].order_status is OrderStatus.TRIGGER_PENDING
    desk.report(sid, OrderStatus.ACCEPTED)  # the exchange reports the trigger
    desk.advance(1_999)
    assert of(desk.tick(), Query) == of(desk.tick(), Cancel) == [], "2 s of broker time have not passed"
    desk.advance(2)
    (query,) = of(desk.tick(), Query)
    assert query.reason is QueryReason.STOP
    assert of(desk.tick(), Cancel) == [], "no cancel while the re-query is unanswered"
    desk.cum[sid] = 75  # a fill raced the deadline: the venue's answer shows it
    desk.looked_up(query, OrderStatus.PARTIALLY_FILLED)
    (cancel,) = of(desk.tick(), Cancel)
    assert cancel.client_order_id == sid
    assert of(desk.report(sid, OrderStatus.PENDING_CANCEL), Place) == [], "never MARKET before the cancel is confirmed"
    desk.report(sid, OrderStatus.CANCELLED)
    (fallback,) = of(desk.tick(), Place)
    assert (fallback.request.order_type, fallback.request.qty) == (OrderType.MARKET, 75)
    assert desk.state.book.intents[fallback.request.client_order_id].purpose is Purpose.FALLBACK


def test_close_buys_the_short_back_first_then_sells_the_hedge_and_completes() -> None:
    desk = Desk()
    hedged(desk)
    (buy_back,) = of(desk.give(CloseGroup("G1", TRADER)), Place)
    assert (buy_back.request.symbol, buy_back.request.side, buy_back.request.qty) == (RISK_SYMBOL, Side.BUY, 150)
    desk.ack(buy_back)
    (sell_hedge,) = of(desk.fill(buy_back.request.client_order_id, 150), Place)
    assert (sell_hedge.request.side, sell_hedge.request.qty) == (Side.SELL, 150)
    desk.ack(sell_hedge)
    effects = desk.fill(sell_hedge.request.client_order_id, 150)
    assert [n.state for n in notices(effects, GroupStateChanged)] == [GroupState.COMPLETED]


# --- kill switch --------------------------------------------------------------------------------


def test_a_close_while_halted_is_refused_with_the_reason_and_reducing_lets_it_through() -> None:
    desk = Desk()
    hedged(desk)
    desk.give(SetTradingState(TradingState.HALTED, TRADER))
    effects = desk.give(CloseGroup("G1", TRADER))
    error = reply(effects).error
    assert isinstance(error, CommandError) and "HALTED" in str(error) and "REDUCING" in str(error)
    assert of(effects, Place) == [] and not desk.group().close_requested, "refused now, never fired later"
    assert notices(effects, EscalationRaised) == []
    assert reply(desk.give(SetTradingState(TradingState.REDUCING, TRADER))).error is not None, "easing needs risk"
    desk.give(SetTradingState(TradingState.REDUCING, RISK))
    (buy_back,) = of(desk.give(CloseGroup("G1", TRADER)), Place)
    assert (buy_back.request.side, buy_back.request.qty) == (Side.BUY, 150), "exits reduce exposure"


def test_an_exit_held_by_the_kill_switch_says_it_is_queued_and_its_escalation_resolves_when_sent() -> None:
    desk = Desk()
    hedged(desk, stop_loss={"trigger_price": "250.00"})
    (stop,) = [e for _, effects in desk.history[-1:] for e in of(effects, Place)]
    desk.ack(stop)
    sid = stop.request.client_order_id
    desk.report(sid, OrderStatus.ACCEPTED)  # triggered
    desk.advance(2_001)
    (query,) = of(desk.tick(), Query)
    desk.looked_up(query, OrderStatus.ACCEPTED)
    (cancel,) = of(desk.tick(), Cancel)
    assert cancel.client_order_id == sid
    desk.give(SetTradingState(TradingState.HALTED, RISK))
    effects = desk.report(sid, OrderStatus.CANCELLED) + desk.tick()
    assert of(effects, Place) == [], "HALTED: the MARKET for the remainder is not sent"
    (held,) = notices(effects, EscalationRaised)
    assert "not sent" in held.reason and "Queued" in held.reason and "REDUCING" in held.reason
    desk.give(SetTradingState(TradingState.REDUCING, RISK))
    effects = desk.tick()
    (fallback,) = of(effects, Place)
    assert (fallback.request.order_type, fallback.request.qty) == (OrderType.MARKET, 150)
    assert not desk.state.escalation_open(held.escalation_id), "its cause is gone: RESOLVED"
    (resolved,) = writes(effects).resolutions
    assert resolved[0] == held.escalation_id and resolved[1] == "engine" and "sent" in resolved[2]


def test_halt_takes_effect_in_the_next_step_even_for_an_order_decided_before_it() -> None:
    desk = Desk()
    (hedge,) = of(desk.give(Launch(spread(), TRADER)), Place)
    assert send_refusal(desk.state, hedge) == ""
    halt = desk.give(SetTradingState(TradingState.HALTED, TRADER))
    assert writes(halt).settings == {"trading_state": "HALTED"}
    assert "HALTED" in send_refusal(desk.state, hedge), "the interpreter asks again at the moment of sending"
    desk.ack(hedge)
    effects = desk.fill(hedge.request.client_order_id, 150)
    assert of(effects, Place) == [], "no opening order after the HALT"
    assert desk.group().waiting_on_person and "not sent" in desk.group().reason


def test_halt_refuses_a_launch_and_only_risk_may_resume() -> None:
    desk = Desk()
    desk.give(SetTradingState(TradingState.HALTED, TRADER))
    refused = desk.give(Launch(spread(), TRADER))
    assert isinstance(reply(refused).error, CommandError) and of(refused, Place) == []
    assert [a[7] for a in writes(refused).audits] == ["REFUSED"] and not writes(refused).groups_new
    resume = desk.give(SetTradingState(TradingState.ACTIVE, TRADER))
    assert isinstance(reply(resume).error, RoleError)
    assert desk.state.trading_state is TradingState.HALTED


# --- recovery and orphans -----------------------------------------------------------------------


def orphaned(desk: Desk) -> str:
    """A hedge intent journaled, then the process died before it was sent; recovery finds nothing."""
    (hedge,) = of(desk.give(Launch(spread(), TRADER)), Place)
    coid = hedge.request.client_order_id
    desk.state.resumed = False  # a restart: the loader rebuilt this state from the journal
    (query,) = of(desk.step(Recover(desk.now_ns)), Query)
    assert (query.client_order_id, query.reason) == (coid, QueryReason.RECOVERY)
    effects = desk.looked_up(query, None)
    (escalation,) = notices(effects, EscalationRaised)
    assert escalation.kind is EscalationKind.ORPHANED_INTENT and of(effects, Place) == []
    assert desk.state.book.intents[coid].status is IntentStatus.ORPHANED
    assert desk.state.resumed and desk.group().waiting_on_person
    return coid


def test_an_orphan_is_never_resent_by_itself_and_only_an_operator_retries_it() -> None:
    desk = Desk()
    coid = orphaned(desk)
    desk.advance(60_000)
    assert of(desk.tick(), Place) == []
    refused = desk.give(ApproveRetry(coid, TRADER))
    assert isinstance(reply(refused).error, RoleError) and [a[7] for a in writes(refused).audits] == ["REFUSED"]
    (ask,) = of(desk.give(ApproveRetry(coid, OPERATOR)), Query)
    assert ask.reason is QueryReason.RETRY, "the broker is asked once more first"
    effects = desk.looked_up(ask, None)
    (retry,) = of(effects, Place)
    row = desk.state.book.intents[retry.request.client_order_id]
    assert (row.intent_id, row.attempt) == (coid, 2) and retry.request.client_order_id != coid
    assert desk.state.book.intents[coid].status is IntentStatus.RETRY_APPROVED
    batch = writes(effects)
    assert retry.request.client_order_id in batch.intents_new and coid in batch.intents, "one batch"
    assert reply(effects).value is row
    again = desk.give(ApproveRetry(coid, OPERATOR))
    assert isinstance(reply(again).error, CommandError) and of(again, Query) == []


def test_an_orphan_the_broker_has_after_all_is_adopted_not_retried() -> None:
    desk = Desk()
    coid = orphaned(desk)
    (ask,) = of(desk.give(ApproveRetry(coid, OPERATOR)), Query)
    effects = desk.looked_up(ask, OrderStatus.ACCEPTED)
    assert of(effects, Place) == [] and isinstance(reply(effects).error, CommandError)
    assert desk.state.book.intents[coid].status is IntentStatus.SENT


def test_abandon_closes_the_orphan_and_the_leg_sends_nothing_more() -> None:
    desk = Desk()
    coid = orphaned(desk)
    effects = desk.give(Abandon(coid, OPERATOR))
    assert of(effects, Place) == [] and isinstance(reply(effects), Reply)
    assert desk.state.book.intents[coid].status is IntentStatus.ABANDONED
    assert [n.status for n in desk.nodes()] == [NodeStatus.EXHAUSTED]
    assert desk.group().state is GroupState.FAILED


@pytest.mark.parametrize("qty", [75, 1800, 2250])
def test_every_order_is_sliced_at_the_freeze_qty_and_each_slice_has_its_intent(qty: int) -> None:
    desk = Desk()
    effects = desk.give(Launch(spread(qty=qty), TRADER))
    places = of(effects, Place)
    assert sum(p.request.qty for p in places) == qty and all(p.request.qty <= 1800 for p in places)
    assert {p.request.client_order_id for p in places} == set(writes(effects).intents_new)
    assert all(desk.state.book.intents[p.request.client_order_id].role is LegRole.HEDGE for p in places)


def test_notices_follow_the_journal_batch_and_io() -> None:
    effects = Desk().give(Launch(spread(), TRADER))
    kinds = [type(e) for e in effects]
    assert kinds.index(Commit) < kinds.index(Place) < kinds.index(Notify) < kinds.index(Reply)


def test_a_stop_held_by_halt_is_escalated_once_and_planning_does_not_spin() -> None:
    """Found by the property test: the stop's send was refused, yet planning went round again,
    100 times, and the engine stopped. Now the refusal ends the pass; resuming places the stop."""
    desk = Desk()
    (hedge,) = of(desk.give(Launch(spread(stop_loss={"trigger_price": "250.00"}), TRADER)), Place)
    desk.ack(hedge)
    (risk,) = of(desk.fill(hedge.request.client_order_id, 150), Place)
    desk.ack(risk)
    desk.give(SetTradingState(TradingState.HALTED, TRADER))
    effects = desk.fill(risk.request.client_order_id, 150)
    assert desk.group().state is GroupState.HEDGED and of(effects, Place) == []
    (escalation,) = notices(effects, EscalationRaised)
    assert escalation.kind is EscalationKind.MANUAL_ACTION and "STOP" in escalation.reason
    (stop,) = of(desk.give(SetTradingState(TradingState.ACTIVE, RISK)), Place)
    assert stop.request.order_type is OrderType.SL


def test_a_group_from_a_checkpoint_older_than_its_newest_field_loads_with_the_default() -> None:
    import pickle

    from engine.core.book import GroupRuntime

    old = GroupRuntime.__new__(GroupRuntime)  # as a stop-20 checkpoint pickled it: no held_exit_escalations
    old.__dict__.update(spec=None, state=GroupState.HEDGED, reason="", waiting_on_person=False)
    old.__dict__.update(close_requested=False, cancel_requested=False, margin_paise=0)
    assert pickle.loads(pickle.dumps(old)).held_exit_escalations == []
    new = GroupRuntime(None, GroupState.HEDGED)  # type: ignore[arg-type]
    new.held_exit_escalations.append(7)
    assert pickle.loads(pickle.dumps(new)).held_exit_escalations == [7]
