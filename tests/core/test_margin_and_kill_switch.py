"""Worst-case margin (SPAN-like grid) and the kill switch, both pure."""

from __future__ import annotations

from engine.catalog import load_catalog, load_margin_model
from engine.core.groups import parse_group
from engine.core.margin import group_margin_paise, worst_loss_paise
from engine.core.trading_state import TradingState, order_refusal


def spread(hedge: str, risk: str, qty: int = 150):
    return parse_group(
        {
            "group_id": "M",
            "legs": [
                {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": qty},
                {"role": "RISK", "symbol": risk, "side": "SELL", "qty": qty},
            ],
        },
        load_catalog(),
    )


def test_a_hedged_vertical_spread_needs_about_the_spread_width() -> None:
    catalog, model = load_catalog(), load_margin_model()
    spec = spread("NIFTY26DEC24200CE", "NIFTY26DEC24000CE")
    margin = group_margin_paise(spec, catalog, model)
    width = (24200 - 24000) * 100 * 150
    credit = (21240 - 11890) * 150
    assert width - credit <= margin <= width * 13 // 10


def test_the_hedge_offsets_the_short_leg() -> None:
    catalog, model = load_catalog(), load_margin_model()
    spec = spread("NIFTY26DEC25000CE", "NIFTY26DEC24000CE")
    naked = worst_loss_paise([spec.risk], catalog, model)
    hedged = worst_loss_paise([spec.hedge, spec.risk], catalog, model)
    assert hedged < naked


def test_the_worst_case_covers_the_hedge_alone_stage() -> None:
    catalog, model = load_catalog(), load_margin_model()
    spec = spread("NIFTY26DEC24200CE", "NIFTY26DEC24000CE")
    premium_paid = 11890 * 150
    assert worst_loss_paise([spec.hedge], catalog, model) == premium_paid


def test_kill_switch_states() -> None:
    assert order_refusal(TradingState.ACTIVE, reduces_exposure=False) == ""
    assert "REDUCING" in order_refusal(TradingState.REDUCING, reduces_exposure=False)
    assert order_refusal(TradingState.REDUCING, reduces_exposure=True) == ""
    assert "HALTED" in order_refusal(TradingState.HALTED, reduces_exposure=True)
