"""Group lifecycle: derived from orders, forward only; risk sold only against the confirmed fill
of the hedge tree."""

from __future__ import annotations

from engine.catalog import load_catalog
from engine.core.groups import GroupSpec, parse_group
from engine.core.lifecycle import OrderView, TreeProgress, Wave, decide, group_transition_problem
from engine.core.model import GroupState, IntentStatus, LegRole, OrderStatus

G = GroupState
NOT_STARTED = TreeProgress(started=False, working=False, filled_qty=0)


def spec(hedge_qty: int = 300, risk_qty: int = 300) -> GroupSpec:
    return parse_group(
        {
            "group_id": "G1",
            "legs": [
                {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": hedge_qty},
                {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": risk_qty},
            ],
        },
        load_catalog(),
    )


def done(filled: int) -> TreeProgress:
    return TreeProgress(started=True, working=False, filled_qty=filled)


def risk_order(
    qty: int,
    filled: int,
    status: OrderStatus,
    wave: int = 1,
    fills: int | None = None,
    intent: IntentStatus = IntentStatus.SENT,
) -> OrderView:
    return OrderView(
        f"R{wave}{qty}", LegRole.RISK, wave, qty, filled, filled if fills is None else fills, status, intent
    )


def test_a_new_group_starts_its_hedge_tree_first() -> None:
    d = decide(spec(), G.CREATED, [], max_waves=3, hedge=NOT_STARTED)
    assert d.start_hedge and d.place is None and d.state is G.VALIDATED


def test_no_risk_order_while_the_hedge_tree_is_working() -> None:
    d = decide(spec(), G.HEDGE_SUBMITTED, [], 3, TreeProgress(started=True, working=True, filled_qty=150))
    assert d.state is G.HEDGE_PARTIAL and d.place is None


def test_risk_leg_is_sized_to_the_confirmed_hedge_fill_only() -> None:
    d = decide(spec(), G.HEDGE_PARTIAL, [], 3, done(150))
    assert d.state is G.HEDGE_FILLED
    assert d.place == Wave(LegRole.RISK, 1, 150)


def test_risk_is_never_sold_beyond_the_filled_hedge_even_with_a_larger_risk_leg() -> None:
    d = decide(spec(hedge_qty=150, risk_qty=600), G.HEDGE_PARTIAL, [], 3, done(75))
    assert d.place == Wave(LegRole.RISK, 1, 75)


def test_partial_risk_gets_another_wave_for_the_remainder() -> None:
    d = decide(spec(), G.RISK_SUBMITTED, [risk_order(300, 75, OrderStatus.CANCELLED)], 3, done(300))
    assert d.place == Wave(LegRole.RISK, 2, 225)


def test_hedged_needs_every_fill_report() -> None:
    orders = [risk_order(300, 300, OrderStatus.FILLED, fills=225)]
    assert decide(spec(), G.RISK_SUBMITTED, orders, 3, done(300)).state is G.RISK_FILLED
    orders = [risk_order(300, 300, OrderStatus.FILLED)]
    assert decide(spec(), G.RISK_FILLED, orders, 3, done(300)).state is G.HEDGED


def test_unfilled_hedge_fails_the_group_and_sells_nothing() -> None:
    d = decide(spec(), G.HEDGE_SUBMITTED, [], 3, done(0))
    assert d.state is G.FAILED and d.place is None


def test_orphaned_hedge_intent_makes_the_group_wait_on_a_person() -> None:
    d = decide(spec(), G.HEDGE_SUBMITTED, [], 3, TreeProgress(started=True, working=True, filled_qty=0, orphaned=True))
    assert d.waiting_on_person and d.place is None


def test_orphaned_risk_intent_makes_the_group_wait_on_a_person() -> None:
    orders = [risk_order(300, 0, OrderStatus.INTENT, intent=IntentStatus.ORPHANED)]
    d = decide(spec(), G.RISK_SUBMITTED, orders, 3, done(300))
    assert d.waiting_on_person and d.place is None


def test_defect7_group_never_moves_backward_and_failed_is_not_above_completed() -> None:
    assert "backward" in group_transition_problem(G.RISK_SUBMITTED, G.HEDGE_PARTIAL)
    assert group_transition_problem(G.HEDGE_PARTIAL, G.RISK_SUBMITTED) == ""
    assert "absorb" in group_transition_problem(G.COMPLETED, G.FAILED)
    assert "absorb" in group_transition_problem(G.FAILED, G.COMPLETED)
    assert group_transition_problem(G.HEDGE_SUBMITTED, G.FAILED) == ""
    assert "before any order" in group_transition_problem(G.HEDGE_SUBMITTED, G.REJECTED)
