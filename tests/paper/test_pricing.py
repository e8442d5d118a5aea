"""The paper exchange's spot processes and Black–Scholes option prices (engine.paper.pricing):
the formula against known values and parity, the calibration to the catalog, options following
their underlying by delta, the day's open, and a saved exchange resuming the same price path."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.broker.paper import PaperBroker
from engine.catalog import load_market_model
from engine.core.instruments import Instrument
from engine.paper.exchange import ExchangeCore
from engine.paper.pricing import (
    MarketModelError,
    black_scholes,
    expiry_ms,
    implied_vol,
    parse_market_model,
)

T0 = int(datetime(2026, 12, 2, 4, 0, tzinfo=UTC).timestamp() * 1000)  # 09:30 IST, 27 days to expiry
STEP_MS = 50
CE, PE = "NIFTY26DEC24000CE", "NIFTY26DEC24000PE"


def test_black_scholes_matches_the_textbook_and_put_call_parity() -> None:
    # Hull's example 15.6: S=42, K=40, r=10%, sigma=20%, T=0.5 -> c=4.76, p=0.81
    assert black_scholes(42, 40, 0.5, 0.2, 0.1, "CE") == pytest.approx(4.759, abs=1e-3)
    assert black_scholes(42, 40, 0.5, 0.2, 0.1, "PE") == pytest.approx(0.8086, abs=1e-3)
    for spot in (90.0, 100.0, 120.0):
        c = black_scholes(spot, 100, 0.25, 0.3, 0.05, "CE")
        p = black_scholes(spot, 100, 0.25, 0.3, 0.05, "PE")
        assert c - p == pytest.approx(spot - 100 * math.exp(-0.05 * 0.25), abs=1e-9)
    assert black_scholes(110, 100, 0, 0.3, 0, "CE") == 10 and black_scholes(110, 100, 0, 0.3, 0, "PE") == 0
    price = black_scholes(24050, 24100, 0.07, 0.11, 0.0, "PE")
    assert implied_vol(price, 24050, 24100, 0.07, 0.0, "PE") == pytest.approx(0.11, abs=1e-9)


def test_expiry_is_the_last_tuesday_of_the_symbols_month_at_1530_ist() -> None:
    assert expiry_ms("NIFTY26DEC24000CE") == int(datetime(2026, 12, 29, 10, 0, tzinfo=UTC).timestamp() * 1000)
    assert expiry_ms("BANKNIFTY27JAN52000PE") == int(datetime(2027, 1, 26, 10, 0, tzinfo=UTC).timestamp() * 1000)
    assert expiry_ms("NIFTYFUT") is None and expiry_ms("NIFTY26XYZ24000CE") is None


def _core(catalog: dict[str, Instrument], seed: int = 7) -> ExchangeCore:
    return ExchangeCore(catalog, seed, market=load_market_model())


def test_the_day_opens_at_the_catalog_prices_and_options_follow_the_spot(catalog: dict[str, Instrument]) -> None:
    core = _core(catalog)
    core.step(T0)
    options = [i for i in catalog.values() if i.option_type]
    for inst in options:  # calibrated: the model reproduces every catalog price, smile and all
        assert abs(core.last_price(inst.symbol) - inst.start_price_paise) <= inst.tick_paise, inst.symbol
    nifty = core.quote("NIFTY", T0)
    assert nifty.bid_paise == nifty.ask_paise == nifty.last_paise == 2_405_000 == nifty.open_paise
    assert nifty.bid_qty == nifty.ask_qty == 0

    # the index gaps up 1%: calls rise and puts fall, each by about its delta x the move
    before = {i.symbol: core.last_price(i.symbol) for i in options}
    core.set_spot("NIFTY", 2_429_050)
    core.step(T0 + STEP_MS)
    spot_move = core.quote("NIFTY", T0).last_paise - 2_405_000  # type: ignore[operator]
    assert abs(spot_move - 24_050) < 500  # one 50 ms step of diffusion on top of the gap
    for inst in (i for i in options if i.underlying == "NIFTY"):
        moved = core.last_price(inst.symbol) - before[inst.symbol]
        assert (moved > 0) == (inst.option_type == "CE"), inst.symbol
        assert abs(moved) < spot_move, "no option moves more than its underlying"
    ce_move = core.last_price(CE) - before[CE]
    pe_move = before[PE] - core.last_price(PE)
    assert ce_move + pe_move == pytest.approx(spot_move, rel=0.1)  # delta(CE) - delta(PE) = 1
    # the book is built around the model price exactly as before, and quotes carry the open
    q = core.quote(CE, T0)
    assert (q.bid_paise, q.ask_paise) == core.best_bid_ask(CE) and q.open_paise == before[CE]
    assert core.quote("BANKNIFTY", T0).last_paise != core.quote("NIFTY", T0).last_paise


def test_the_spot_diffuses_by_exchange_time_and_options_decay(catalog: dict[str, Instrument]) -> None:
    core = _core(catalog, seed=3)
    core.step(T0)
    spots = []
    for k in range(1, 1201):  # one minute of 50 ms steps
        core.step(T0 + k * STEP_MS)
        spots.append(core.quote("NIFTY", T0).last_paise)
    returns = [math.log(b / a) for a, b in itertools.pairwise(spots) if a and b]
    per_step = math.sqrt(sum(r * r for r in returns) / len(returns))
    expected = 0.12 * math.sqrt(STEP_MS / (365 * 24 * 3600 * 1000))
    assert 0.5 * expected < per_step < 2 * expected  # 12% a year, by the clock (rounding to 5 paise adds some)
    # a week later at the same spot, an at-the-money straddle is worth less: time decay
    straddle_now = core.last_price(CE) + core.last_price(PE)
    spot = core.quote("NIFTY", T0).last_paise
    assert spot is not None
    core.set_spot("NIFTY", spot)
    week = 7 * 24 * 3600 * 1000
    core.step(T0 + week)
    first_of_day = core.last_price(CE)
    core.set_spot("NIFTY", spot)
    core.step(T0 + week + 1)
    assert core.last_price(CE) + core.last_price(PE) < straddle_now
    # and that new IST day has its own open: the price at its first step
    assert core.quote(CE, 0).open_paise == first_of_day != catalog[CE].start_price_paise


def test_a_saved_exchange_resumes_the_same_price_path_and_keeps_a_gap(catalog: dict[str, Instrument]) -> None:
    a = _core(catalog, seed=11)
    for k in range(50):
        a.step(T0 + k * STEP_MS)
    a.set_price(CE, a.last_price(CE) + 1000)  # a gap through a stop: kept as an offset
    b = ExchangeCore.from_state(catalog, json.loads(json.dumps(a.to_state())))
    for k in range(50, 150):
        a.step(T0 + k * STEP_MS)
        b.step(T0 + k * STEP_MS)
        assert a.quote(CE, 0) == b.quote(CE, 0) and a.quote("NIFTY", 0) == b.quote("NIFTY", 0)
    fresh = _core(catalog, seed=11)
    for k in range(150):
        fresh.step(T0 + k * STEP_MS)
    gap = a.last_price(CE) - fresh.last_price(CE)
    assert 900 <= gap <= 1100  # the same spot path; the gap stays (up to a tick of rounding either way)
    assert _core(catalog, seed=12).to_state() != _core(catalog, seed=11).to_state()


def test_without_a_market_model_prices_walk_alone_and_there_is_no_spot(catalog: dict[str, Instrument]) -> None:
    core = ExchangeCore(catalog, 7)
    core.step(T0)
    assert core.spot("NIFTY") is None and not core.quotable("NIFTY") and core.quotable(CE)
    with pytest.raises(KeyError, match="does not name it"):
        core.set_spot("NIFTY", 2_400_000)


def test_a_bad_market_model_is_refused_with_the_reason() -> None:
    good = {"underlyings": {"NIFTY": {"spot": "24050", "annual_vol_pct": "12"}}}
    assert parse_market_model(good).underlyings["NIFTY"].spot_paise == 2_405_000
    cases = [
        ({}, "at least one underlying"),
        ({"underlyings": {"NIFTY": {"spot": "24050"}}}, "annual_vol_pct"),
        ({"underlyings": {"NIFTY": {"spot": 24050.5, "annual_vol_pct": "12"}}}, "not 24050.5"),
        ({"underlyings": {"NIFTY": {"spot": "24050.01", "annual_vol_pct": "12"}}}, "steps of 0.05"),
        ({"underlyings": {"NIFTY": {"spot": "24050", "annual_vol_pct": "0"}}}, "above 0"),
        ({"underlyings": {"NIFTY": {"spot": "abc", "annual_vol_pct": "12"}}}, "not a number"),
        ({**good, "rate_pct": "90"}, "plausible"),
    ]
    for raw, message in cases:
        with pytest.raises(MarketModelError, match=message):
            parse_market_model(raw)


async def test_the_paper_broker_streams_the_spot_beside_the_options(
    tmp_path: Path, catalog: dict[str, Instrument]
) -> None:
    broker = await PaperBroker.open(
        tmp_path / "x.db", catalog, auto_tick=False, market=load_market_model(), exchange_clock=lambda: T0
    )
    try:
        stream = broker.quotes(["NIFTY", CE])
        first = {q.symbol: q for q in [await anext(stream), await anext(stream)]}
        assert first["NIFTY"].last_paise == 2_405_000 and first[CE].ask_paise is not None
        with pytest.raises(ValueError, match="no such instrument: NOPE"):
            broker.quotes(["NOPE"])
    finally:
        await broker.close()
    # reopened without a model argument, it keeps the model it was saved with
    again = await PaperBroker.open(tmp_path / "x.db", catalog, auto_tick=False)
    try:
        assert again.core.spot("NIFTY") == 2_405_000
    finally:
        await again.close()
