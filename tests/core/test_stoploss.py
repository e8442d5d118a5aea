"""Seed defects 11 and 12, pure: the stop's limit side and tick, and the fallback rules."""

from __future__ import annotations

import pytest

from engine.core.model import OrderStatus, Side
from engine.core.stoploss import StopAction, StopView, stop_limit_price_paise, stop_step

S = OrderStatus


def test_defect12_buy_stop_limit_is_above_the_trigger_rounded_up_to_the_tick() -> None:
    assert stop_limit_price_paise(26000, Side.BUY, 5) == 26130  # 260.00 * 1.005 = 261.30
    assert stop_limit_price_paise(26003, Side.BUY, 5) == 26135  # 261.33 -> up to 261.35


def test_defect12_sell_stop_limit_is_below_the_trigger_rounded_down_to_the_tick() -> None:
    assert stop_limit_price_paise(26000, Side.SELL, 5) == 25870  # 258.70
    assert stop_limit_price_paise(26003, Side.SELL, 5) == 25870  # 258.73 -> down to 258.70
    assert stop_limit_price_paise(5, Side.SELL, 5) == 5  # never below one tick


def view(
    status: OrderStatus,
    filled: int = 0,
    trig: int | None = 1000,
    asked: int | None = None,
    queried: int | None = None,
    fallback: bool = False,
    escalated: bool = False,
) -> StopView:
    return StopView(status, 300, filled, trig, asked, queried, fallback, escalated)


@pytest.mark.parametrize("now, action", [(2999, StopAction.WAIT), (3000, StopAction.REQUERY)])
def test_defect10_the_deadline_is_trigger_time_plus_timeout_in_broker_time(now: int, action: StopAction) -> None:
    assert stop_step(view(S.ACCEPTED), now, 2000, 1000)[0] is action


def test_defect10_after_the_deadline_the_status_is_asked_again_before_cancelling() -> None:
    assert stop_step(view(S.ACCEPTED), 5000, 2000, 1000) == (StopAction.REQUERY, 0)
    assert stop_step(view(S.ACCEPTED, queried=2500), 5000, 2000, 1000) == (StopAction.REQUERY, 0)
    assert stop_step(view(S.ACCEPTED, queried=3000), 5000, 2000, 1000) == (StopAction.CANCEL, 0)


def test_defect11_market_only_after_a_confirmed_cancel_and_only_for_the_remainder() -> None:
    assert stop_step(view(S.PENDING_CANCEL, 75, asked=3000), 3500, 2000, 1000) == (StopAction.WAIT, 0)
    assert stop_step(view(S.CANCELLED, 75, asked=3000), 3500, 2000, 1000) == (StopAction.MARKET, 225)
    assert stop_step(view(S.CANCELLED, 300), 3500, 2000, 1000) == (StopAction.DONE, 0)


def test_defect11_an_unconfirmed_cancel_escalates_and_never_sends_market() -> None:
    pending = view(S.PENDING_CANCEL, 75, asked=3000)
    assert stop_step(pending, 4000, 2000, 1000) == (StopAction.REQUERY, 0)
    stale = view(S.PENDING_CANCEL, 75, asked=3000, queried=3000)  # asked before the cancel deadline
    assert stop_step(stale, 4000, 2000, 1000) == (StopAction.REQUERY, 0)
    requeried = view(S.PENDING_CANCEL, 75, asked=3000, queried=4000)
    assert stop_step(requeried, 4000, 2000, 1000) == (StopAction.ESCALATE, 225)
    escalated = view(S.PENDING_CANCEL, 75, asked=3000, queried=4000, escalated=True)
    for now in (4000, 10_000, 10**9):
        assert stop_step(escalated, now, 2000, 1000)[0] is StopAction.WAIT


def test_an_untriggered_stop_waits_forever() -> None:
    assert stop_step(view(S.TRIGGER_PENDING, trig=None), 10**12, 2000, 1000) == (StopAction.WAIT, 0)
