"""What a spread costs: the figures equal the closed forms of a credit spread, computed here from
the leg prices independently; with a price missing, nothing is guessed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.catalog import load_catalog
from engine.core.groups import parse_group
from engine.core.quotes import Quote
from engine.core.spread import spread_figures
from tests.cli.test_cli import td

CAT = load_catalog()


def q(symbol: str, bid: int, ask: int) -> Quote:
    return Quote(symbol, bid, ask, 750, 750, bid, 0, 1)


def spec(hedge: str, risk: str, qty: int):  # type: ignore[no-untyped-def]
    return parse_group(
        {
            "group_id": "G",
            "legs": [
                {"role": "HEDGE", "symbol": hedge, "side": "BUY", "qty": qty},
                {"role": "RISK", "symbol": risk, "side": "SELL", "qty": qty},
            ],
        },
        CAT,
    )


@pytest.mark.parametrize(
    ("hedge", "risk", "kind"),
    [("NIFTY26DEC24200CE", "NIFTY26DEC24000CE", "call"), ("NIFTY26DEC23800PE", "NIFTY26DEC24000PE", "put")],
)
def test_credit_spread_figures_equal_the_closed_forms(hedge: str, risk: str, kind: str) -> None:
    qty = 150
    hb, ha, rb, ra = 11_885, 11_890, 21_235, 21_240
    figures = spread_figures(spec(hedge, risk, qty), CAT, {hedge: q(hedge, hb, ha), risk: q(risk, rb, ra)})
    credit_per_unit = rb - ha  # sell the risk leg at its bid, buy the hedge at its ask
    width = abs(CAT[hedge].strike_paise - CAT[risk].strike_paise)
    assert figures.net_credit_paise == credit_per_unit * qty
    assert figures.max_profit_paise == credit_per_unit * qty
    assert figures.max_loss_paise == (width - credit_per_unit) * qty
    short = CAT[risk].strike_paise
    assert figures.breakevens_paise == ((short + credit_per_unit) if kind == "call" else (short - credit_per_unit),)
    assert [leg.expected_paise for leg in figures.legs] == [ha, rb]


def test_a_missing_price_gives_no_figures() -> None:
    hedge, risk = "NIFTY26DEC24200CE", "NIFTY26DEC24000CE"
    figures = spread_figures(spec(hedge, risk, 75), CAT, {risk: q(risk, 21_235, 21_240)})
    assert figures.net_credit_paise is None and figures.max_loss_paise is None and figures.breakevens_paise == ()


def test_headless_dry_run_prints_the_figures_and_sends_nothing(tmp_path: Path) -> None:
    groups = tmp_path / "g.json"
    groups.write_text(
        json.dumps(
            [
                {
                    "group_id": "D1",
                    "stop_loss": {"trigger_price": "250.00"},
                    "legs": [
                        {"role": "HEDGE", "symbol": "NIFTY26DEC24200CE", "side": "BUY", "qty": 150},
                        {"role": "RISK", "symbol": "NIFTY26DEC24000CE", "side": "SELL", "qty": 150},
                    ],
                }
            ]
        )
    )
    db, ex = tmp_path / "j.db", tmp_path / "x.db"
    run = td("headless", "--db", str(db), "--broker", f"paper:{ex}", "--groups", str(groups), "--dry-run")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    (g,) = doc["groups"]
    hedge, risk = g["legs"]
    credit = (risk["bid_paise"] - hedge["ask_paise"]) * 150
    assert g["net_credit_paise"] == credit and g["max_loss_paise"] == 20_000 * 150 - credit
    assert g["breakevens_paise"] == [2_400_000 + credit // 150]
    assert g["stop_loss"] == {
        "order_type": "SL", "side": "BUY", "qty": 150, "symbol": "NIFTY26DEC24000CE",
        "trigger_paise": 25_000, "limit_paise": 25_125,
    }  # fmt: skip
    assert g["margin_required_paise"] > 0 and g["fits"] and doc["sent"] == 0
    assert not db.exists(), "a dry run journals nothing"
