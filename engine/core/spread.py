"""What a spread costs, before it is sent: each leg's bid and ask, the net credit expected at the
current prices (the risk leg sold at its bid, the hedge bought at its ask), and at expiry the
payoff, max profit, max loss and breakeven(s). All in integer paise.

The payoff at expiry is piecewise linear in the underlying's price with kinks at the strikes, so
it is exact to evaluate it at 0, at each strike and far above the highest strike (its slope
there says whether it is bounded); breakevens are where it crosses zero between those points."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from engine.core.groups import GroupSpec
from engine.core.instruments import Instrument
from engine.core.model import Side
from engine.core.quotes import Quote

__all__ = ["LegPrice", "SpreadFigures", "payoff_paise", "spread_figures"]


@dataclass(frozen=True, slots=True)
class LegPrice:
    symbol: str
    side: str
    qty: int
    strike_paise: int
    option_type: str  # CE or PE
    bid_paise: int | None
    ask_paise: int | None

    @property
    def expected_paise(self) -> int | None:
        """The price this leg should trade at now: a sell at the bid, a buy at the ask."""
        return self.bid_paise if self.side == "SELL" else self.ask_paise


@dataclass(frozen=True, slots=True)
class SpreadFigures:
    legs: tuple[LegPrice, ...]
    net_credit_paise: int | None  # for the whole group (positive: a credit)
    max_profit_paise: int | None  # None: unbounded, or no prices
    max_loss_paise: int | None  # a positive number: what can be lost; None: unbounded, or no prices
    breakevens_paise: tuple[int, ...]  # underlying prices at expiry (rounded to the paisa)

    def to_json(self) -> dict[str, object]:
        return {
            "legs": [
                {
                    "symbol": leg.symbol,
                    "side": leg.side,
                    "qty": leg.qty,
                    "bid_paise": leg.bid_paise,
                    "ask_paise": leg.ask_paise,
                    "expected_price_paise": leg.expected_paise,
                }
                for leg in self.legs
            ],
            "net_credit_paise": self.net_credit_paise,
            "max_profit_paise": self.max_profit_paise,
            "max_loss_paise": self.max_loss_paise,
            "breakevens_paise": list(self.breakevens_paise),
        }


def payoff_paise(legs: tuple[LegPrice, ...], underlying_paise: Fraction | int) -> Fraction | None:
    """The group's P&L at expiry for an underlying price: each leg's intrinsic value, signed by
    its side, less what it cost (or plus what it took in) at the expected price."""
    total = Fraction(0)
    s = Fraction(underlying_paise)
    for leg in legs:
        price = leg.expected_paise
        if price is None:
            return None
        intrinsic = (
            max(Fraction(0), s - leg.strike_paise)
            if leg.option_type == "CE"
            else max(Fraction(0), leg.strike_paise - s)
        )
        sign = 1 if leg.side == "BUY" else -1
        total += sign * leg.qty * (intrinsic - price)
    return total


def spread_figures(spec: GroupSpec, catalog: Mapping[str, Instrument], quotes: Mapping[str, Quote]) -> SpreadFigures:
    legs = []
    for leg in spec.legs:
        inst = catalog[leg.symbol]
        q = quotes.get(leg.symbol)
        legs.append(
            LegPrice(
                leg.symbol,
                leg.side.value,
                leg.qty,
                inst.strike_paise,
                inst.option_type,
                None if q is None else q.bid_paise,
                None if q is None else q.ask_paise,
            )
        )
    priced = tuple(legs)
    if any(leg.expected_paise is None for leg in priced):
        return SpreadFigures(priced, None, None, None, ())
    credit = sum((leg.expected_paise or 0) * leg.qty * (1 if leg.side == Side.SELL.value else -1) for leg in priced)
    strikes = sorted({leg.strike_paise for leg in priced})
    far = strikes[-1] * 2 + 100_000
    points = [Fraction(0), *map(Fraction, strikes), Fraction(far)]
    values = [payoff_paise(priced, p) for p in points]
    assert all(v is not None for v in values)
    vals = [v for v in values if v is not None]
    slope_above = sum((1 if leg.side == "BUY" else -1) * leg.qty for leg in priced if leg.option_type == "CE")
    bounded_above = slope_above == 0
    top, bottom = max(vals), min(vals)
    max_profit = round(top) if bounded_above or slope_above < 0 else None
    max_loss = round(-bottom) if (bounded_above or slope_above > 0) and bottom < 0 else (0 if bottom >= 0 else None)
    breakevens = []
    for (x0, y0), (x1, y1) in zip(zip(points, vals, strict=True), zip(points[1:], vals[1:], strict=True), strict=False):
        if y0 == 0:
            breakevens.append(x0)
        elif (y0 < 0) != (y1 < 0) and y1 != 0:
            breakevens.append(x0 + (x1 - x0) * (-y0) / (y1 - y0))
    if vals[-1] == 0:
        breakevens.append(points[-1])
    return SpreadFigures(priced, int(credit), max_profit, max_loss, tuple(sorted({round(b) for b in breakevens})))
