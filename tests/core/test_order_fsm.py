"""Seed defects 7 and 8: monotonic order states by an explicit transition table."""

from __future__ import annotations

import itertools

import pytest

from engine.core.model import GroupState, OrderStatus
from engine.core.order_fsm import TRANSITIONS, OrderState, Trigger, apply, apply_fill

S, T = OrderStatus, Trigger


def test_defect7_out_of_order_accepted_after_partial_is_ignored_with_reason() -> None:
    state = OrderState(S.PARTIALLY_FILLED, qty=300, filled_qty=150)
    outcome = apply(state, T.ACCEPTED, 0)
    assert not outcome.accepted
    assert outcome.state == state
    assert "out of order" in outcome.reason or "decrease" in outcome.reason


def test_defect7_lower_cumulative_qty_is_ignored() -> None:
    state = OrderState(S.PARTIALLY_FILLED, qty=300, filled_qty=225)
    outcome = apply(state, T.PARTIALLY_FILLED, 150)
    assert not outcome.accepted
    assert outcome.state.filled_qty == 225
    assert "decrease from 225 to 150" in outcome.reason


def test_defect7_partial_to_partial_with_higher_qty_is_applied() -> None:
    outcome = apply(OrderState(S.PARTIALLY_FILLED, 300, 75), T.PARTIALLY_FILLED, 150)
    assert outcome.accepted and outcome.state == OrderState(S.PARTIALLY_FILLED, 300, 150)


def test_defect7_late_fill_after_cancel_request_is_applied() -> None:
    pending = apply(OrderState(S.PARTIALLY_FILLED, 300, 75), T.CANCEL_REQUEST).state
    assert pending.status is S.PENDING_CANCEL
    racing = apply(pending, T.PARTIALLY_FILLED, 150)
    assert racing.accepted and racing.state == OrderState(S.PENDING_CANCEL, 300, 150)
    won = apply(racing.state, T.FILLED, 300)
    assert won.accepted and won.state.status is S.FILLED


@pytest.mark.parametrize("terminal", [S.FILLED, S.CANCELLED, S.REJECTED])
@pytest.mark.parametrize("trigger", [T.ACCEPTED, T.PARTIALLY_FILLED, T.PENDING_CANCEL, T.CANCEL_REQUEST])
def test_defect7_terminal_states_absorb_labels(terminal: OrderStatus, trigger: Trigger) -> None:
    """A label after a terminal state changes nothing unless it carries more fill than we know."""
    state = OrderState(terminal, 300, 300 if terminal is S.FILLED else 150)
    outcome = apply(state, trigger, 150)
    assert not outcome.accepted
    assert "terminal" in outcome.reason


@pytest.mark.parametrize("terminal", [S.CANCELLED, S.REJECTED])
@pytest.mark.parametrize("trigger", [T.ACCEPTED, T.PARTIALLY_FILLED, T.PENDING_CANCEL])
def test_a_larger_cumulative_qty_after_a_terminal_state_is_a_fact_and_is_taken(
    terminal: OrderStatus, trigger: Trigger
) -> None:
    outcome = apply(OrderState(terminal, 300, 75), trigger, 150)
    assert outcome.accepted and outcome.state == OrderState(terminal, 300, 150), "the label stays; the qty is taken"
    assert apply(OrderState(terminal, 300, 75), trigger, 301).accepted is False, "never beyond the order qty"


def _replay(state: OrderState, *reports: tuple[Trigger, int]) -> OrderState:
    for trigger, qty in reports:
        state = apply(state, trigger, qty).state
    return state


@pytest.mark.parametrize(
    "reports",
    [
        ((T.CANCELLED, 30), (T.FILLED, 100)),
        ((T.PARTIALLY_FILLED, 60), (T.CANCELLED, 30)),
        ((T.PARTIALLY_FILLED, 60), (T.CANCELLED, 60), (T.PARTIALLY_FILLED, 90)),
    ],
)
def test_the_same_reports_end_in_the_same_state_whatever_their_order(reports: tuple[tuple[Trigger, int], ...]) -> None:
    start = OrderState(S.PENDING_CANCEL, 100, 0)
    ends = {_replay(start, *order) for order in itertools.permutations(reports)}
    assert len(ends) == 1, ends


def test_defect7_restating_the_current_state_changes_nothing_and_is_not_an_anomaly() -> None:
    state = OrderState(S.FILLED, 300, 300)
    outcome = apply(state, T.FILLED, 300)
    assert outcome.accepted and outcome.state == state


def test_defect7_filled_must_carry_the_whole_qty() -> None:
    assert not apply(OrderState(S.ACCEPTED, 300, 0), T.FILLED, 150).accepted


def test_defect7_fill_racing_a_confirmed_cancel_is_counted_without_reopening() -> None:
    cancelled = OrderState(S.CANCELLED, 300, 75)
    outcome, fills = apply_fill(cancelled, fills_qty=75, fill_qty=75)
    assert outcome.accepted
    assert outcome.state == OrderState(S.CANCELLED, 300, 150)
    assert fills == 150


def test_defect7_overfill_is_refused() -> None:
    outcome, fills = apply_fill(OrderState(S.PARTIALLY_FILLED, 150, 75), fills_qty=75, fill_qty=150)
    assert not outcome.accepted and fills == 75


def test_defect7_fill_report_after_status_report_does_not_double_count() -> None:
    filled = apply(OrderState(S.ACCEPTED, 150, 0), T.FILLED, 150).state
    outcome, fills = apply_fill(filled, fills_qty=0, fill_qty=150)
    assert outcome.accepted and outcome.state.filled_qty == 150 and fills == 150


def test_defect8_one_model_order_and_group_states_are_separate_enums() -> None:
    order_names = {s.name for s in OrderStatus}
    group_names = {s.name for s in GroupState}
    assert "PARTIAL_FILL" not in order_names | group_names
    assert {"HEDGE_PARTIAL", "RISK_PARTIAL"} <= group_names
    assert "PARTIALLY_FILLED" in order_names and "PARTIALLY_FILLED" not in group_names
    assert set(TRANSITIONS) == set(OrderStatus)
