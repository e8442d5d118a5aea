"""Worst-case margin, SPAN-like, checked before a group's first order. Pure integer arithmetic.

Model (README "Margin model"): each option is valued in a grid of scenarios, the underlying moved
from -scan% to +scan% in steps and the option's time value scaled down to zero or up and down by
the volatility shock. Value = intrinsic at the scenario price + scaled time value, where time
value = premium - intrinsic at the reference price (never negative). The margin of a set of legs
is its largest loss over the grid, measured from the premiums paid and received. A long hedge
offsets the short leg scenario by scenario, so a fully hedged vertical spread needs about the
spread width times qty, less the net credit. The group is checked at every stage of its execution
(hedge alone, then hedge + risk) and the larger figure is its worst case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from engine.core.groups import GroupSpec, LegSpec
from engine.core.instruments import Instrument


class MarginModelError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class MarginModel:
    available_paise: int
    underlying_ref_paise: Mapping[str, int]
    price_scan_pct: int = 10
    price_step_pct: int = 1
    vol_shock_pct: int = 25

    def scenarios(self) -> list[tuple[int, int]]:
        """(price move %, time-value factor %) pairs."""
        moves = range(-self.price_scan_pct, self.price_scan_pct + 1, self.price_step_pct)
        factors = (0, 100 - self.vol_shock_pct, 100, 100 + self.vol_shock_pct)
        return [(m, f) for m in moves for f in factors]


def parse_margin_model(raw: Any) -> MarginModel:
    try:
        refs = {u: int(Decimal(str(v["ref_price"])) * 100) for u, v in raw["underlyings"].items()}
        model = MarginModel(
            available_paise=int(Decimal(str(raw["available_margin"])) * 100),
            underlying_ref_paise=refs,
            price_scan_pct=int(raw.get("price_scan_pct", 10)),
            price_step_pct=int(raw.get("price_step_pct", 1)),
            vol_shock_pct=int(raw.get("vol_shock_pct", 25)),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise MarginModelError(f"margin model is malformed: {exc!r}") from exc
    if model.price_step_pct <= 0 or model.price_scan_pct < 0 or not 0 <= model.vol_shock_pct <= 100:
        raise MarginModelError("margin model: price_step_pct > 0, price_scan_pct >= 0, 0 <= vol_shock_pct <= 100")
    return model


def _intrinsic(inst: Instrument, underlying_paise: int) -> int:
    if inst.option_type == "CE":
        return max(0, underlying_paise - inst.strike_paise)
    if inst.option_type == "PE":
        return max(0, inst.strike_paise - underlying_paise)
    raise MarginModelError(f"{inst.symbol} is not an option symbol the margin model understands")


def _premium(leg: LegSpec, inst: Instrument) -> int:
    return leg.limit_price_paise or inst.start_price_paise


def worst_loss_paise(legs: Sequence[LegSpec], catalog: Mapping[str, Instrument], model: MarginModel) -> int:
    """Largest loss of the legs over the scenario grid (0 when no scenario loses)."""
    if not legs:
        return 0
    underlyings = {catalog[leg.symbol].underlying for leg in legs}
    if len(underlyings) != 1:
        raise MarginModelError(f"legs span several underlyings {sorted(underlyings)}; no offset is assumed")
    (underlying,) = underlyings
    ref = model.underlying_ref_paise.get(underlying)
    if ref is None:
        raise MarginModelError(f"margin model has no reference price for {underlying}")
    worst = 0
    for move_pct, factor_pct in model.scenarios():
        price = ref * (100 + move_pct) // 100
        pnl = 0
        for leg in legs:
            inst = catalog[leg.symbol]
            premium = _premium(leg, inst)
            time_value = max(0, premium - _intrinsic(inst, ref))
            value = _intrinsic(inst, price) + time_value * factor_pct // 100
            pnl += leg.side.sign * leg.qty * (value - premium)
        worst = max(worst, -pnl)
    return worst


def group_margin_paise(spec: GroupSpec, catalog: Mapping[str, Instrument], model: MarginModel) -> int:
    """Worst case over the execution path: the hedge alone, then hedge and risk together."""
    return max(
        worst_loss_paise([spec.hedge], catalog, model),
        worst_loss_paise([spec.hedge, spec.risk], catalog, model),
    )
