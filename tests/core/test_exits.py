"""Closing a group: risk leg first, hedge only after the short is closed."""

from __future__ import annotations

from engine.core.exits import ExitDecision, ExitView, decide_exit


def v(**kw: int | bool) -> ExitView:
    base: dict[str, int | bool] = dict(
        risk_short_qty=150,
        risk_bought_qty=0,
        hedge_long_qty=150,
        hedge_sold_qty=0,
        stop_exists=False,
        stop_triggered=False,
        stop_open=False,
        stop_cancel_requested=False,
        risk_exit_working=False,
        risk_exit_waves=0,
        hedge_exit_working=False,
        hedge_exit_waves=0,
        close_requested=False,
    )
    base.update(kw)
    return ExitView(**base)  # type: ignore[arg-type]


def test_a_hedged_group_with_a_stop_trigger_places_its_stop_for_the_open_short() -> None:
    assert decide_exit(v(), has_stop=True, max_waves=3) == ExitDecision(place_stop_qty=150)
    assert decide_exit(v(stop_exists=True, stop_open=True), has_stop=True, max_waves=3) == ExitDecision()


def test_close_cancels_the_stop_first_then_buys_back_the_short_then_sells_the_hedge() -> None:
    d = decide_exit(v(stop_exists=True, stop_open=True, close_requested=True), True, 3)
    assert d.cancel_stop and not d.risk_exit_qty and not d.hedge_exit_qty
    d = decide_exit(v(stop_exists=True, close_requested=True), True, 3)
    assert d.risk_exit_qty == 150 and d.hedge_exit_qty == 0, "the hedge stays while the short is open"
    d = decide_exit(v(risk_bought_qty=150, close_requested=True), True, 3)
    assert d.hedge_exit_qty == 150
    d = decide_exit(v(risk_bought_qty=150, hedge_sold_qty=150, close_requested=True), True, 3)
    assert d.completed and d.reason == "closed by trader"


def test_a_stop_that_filled_completes_the_group_after_the_hedge_is_sold() -> None:
    d = decide_exit(v(risk_bought_qty=150, stop_exists=True), True, 3)
    assert d.hedge_exit_qty == 150
    d = decide_exit(v(risk_bought_qty=150, hedge_sold_qty=150, stop_exists=True), True, 3)
    assert d.completed and d.reason == "stop-loss executed"


def test_a_partly_filled_fallback_buys_back_the_rest_before_the_hedge_is_touched() -> None:
    d = decide_exit(v(risk_bought_qty=75, stop_exists=True, stop_triggered=True), True, 3)
    assert d.risk_exit_qty == 75 and d.hedge_exit_qty == 0


def test_a_stop_that_ended_without_triggering_buys_nothing_back() -> None:
    assert decide_exit(v(stop_exists=True, stop_triggered=False), True, 3) == ExitDecision()


def test_exhausted_exit_waves_report_the_stuck_short() -> None:
    d = decide_exit(v(close_requested=True, stop_exists=True, risk_exit_waves=3), True, 3)
    assert d.stuck_qty == 150 and not d.risk_exit_qty
