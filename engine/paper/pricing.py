"""The paper exchange's underlying prices and the option prices that follow them.

Every underlying named in the market model (``resources/paper_market.json``) has a spot price that
moves as a geometric Brownian motion, driven by its own seeded random stream and by the exchange
time between steps (so a lockstep run replays exactly). Each option on it is priced by
Black–Scholes (European, no dividends, the model's interest rate) at that spot, with a volatility
of its own: the volatility implied by its catalog start price at the start spot, at the first step.
So at the open the chain shows the catalog's prices, with their smile, and from then on every
strike moves with the underlying by its own delta and decays with time. Time to expiry runs to
15:30 IST on the contract's expiry day (NSE: the last Tuesday of the month in the symbol), floored
at one hour so a stale catalog still quotes. The model price is rounded to the nearest tick; the
book is built around it exactly as for an unpriced symbol, so quotes and fills agree with it.
A run-time ``set_price`` (a gap through a stop) is kept as an offset from the model price.
"""

from __future__ import annotations

import calendar
import math
import random
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.core.instruments import Instrument

YEAR_MS = 365 * 24 * 3600 * 1000
MIN_YEARS = 3600 * 1000 / YEAR_MS  # one hour
VOL_FLOOR, VOL_CAP = 0.01, 3.0
IST = timezone(timedelta(hours=5, minutes=30))
SPOT_TICK_PAISE = 5
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_EXPIRY_RE = re.compile(r"^[A-Z]+(\d{2})([A-Z]{3})\d+(?:CE|PE)$")


class MarketModelError(ValueError):
    """The paper market model is malformed."""


@dataclass(frozen=True, slots=True)
class UnderlyingSpec:
    name: str
    spot_paise: int
    annual_vol: float  # of the spot process, e.g. 0.14


@dataclass(frozen=True, slots=True)
class MarketModel:
    underlyings: Mapping[str, UnderlyingSpec]
    rate: float = 0.0  # annual, continuously compounded

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "underlyings": {
                u.name: {"spot_paise": u.spot_paise, "annual_vol": u.annual_vol} for u in self.underlyings.values()
            },
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> MarketModel:
        return cls(
            {
                name: UnderlyingSpec(name, int(u["spot_paise"]), float(u["annual_vol"]))
                for name, u in raw["underlyings"].items()
            },
            float(raw["rate"]),
        )


def parse_market_model(raw: Any) -> MarketModel:
    """From ``paper_market.json``: ``{"rate_pct": "6.5", "underlyings": {"NIFTY": {"spot": "24050",
    "annual_vol_pct": "14"}}}`` (rupees and percents as strings or integers, never floats)."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("underlyings"), Mapping) or not raw["underlyings"]:
        raise MarketModelError("paper market model needs an object 'underlyings' naming at least one underlying")
    out: dict[str, UnderlyingSpec] = {}
    for name, item in raw["underlyings"].items():
        if not isinstance(item, Mapping) or "spot" not in item or "annual_vol_pct" not in item:
            raise MarketModelError(f"underlying {name}: needs 'spot' (rupees) and 'annual_vol_pct'")
        spot = _decimal(item["spot"], f"underlying {name}: spot")
        vol = _decimal(item["annual_vol_pct"], f"underlying {name}: annual_vol_pct")
        if spot <= 0 or (spot * 100) % SPOT_TICK_PAISE:
            raise MarketModelError(f"underlying {name}: spot {spot} must be positive, in steps of 0.05")
        if not 0 < vol <= 300:
            raise MarketModelError(f"underlying {name}: annual_vol_pct {vol} must be above 0 and at most 300")
        out[str(name)] = UnderlyingSpec(str(name), int(spot * 100), float(vol / 100))
    rate = _decimal(raw.get("rate_pct", 0), "rate_pct")
    if not -20 <= rate <= 50:
        raise MarketModelError(f"rate_pct {rate} is not a plausible annual rate")
    return MarketModel(out, float(rate / 100))


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, (bool, float)):
        raise MarketModelError(f"{what} must be a string or an integer, not {value!r}")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise MarketModelError(f"{what} {value!r} is not a number") from exc


def expiry_ms(symbol: str) -> int | None:
    """15:30 IST on the last Tuesday of the month in an NSE option symbol (NIFTY26DEC24000CE)."""
    m = _EXPIRY_RE.match(symbol)
    if not m or m.group(2) not in _MONTHS:
        return None
    year, month = 2000 + int(m.group(1)), _MONTHS[m.group(2)]
    last = calendar.monthrange(year, month)[1]
    day = max(d for d in range(last - 6, last + 1) if calendar.weekday(year, month, d) == calendar.TUESDAY)
    return int(datetime(year, month, day, 15, 30, tzinfo=IST).timestamp() * 1000)


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def black_scholes(spot: float, strike: float, years: float, vol: float, rate: float, kind: str) -> float:
    """European option value (same units as spot and strike)."""
    if years <= 0 or vol <= 0:
        return max(0.0, spot - strike) if kind == "CE" else max(0.0, strike - spot)
    sd = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + vol * vol / 2) * years) / sd
    d2 = d1 - sd
    discount = math.exp(-rate * years)
    if kind == "CE":
        return spot * _norm_cdf(d1) - strike * discount * _norm_cdf(d2)
    return strike * discount * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


def implied_vol(price: float, spot: float, strike: float, years: float, rate: float, kind: str) -> float:
    """The volatility at which Black–Scholes gives ``price``, by bisection, clamped to
    [VOL_FLOOR, VOL_CAP] (a price below the floor's value or above the cap's gets the bound)."""
    lo, hi = VOL_FLOOR, VOL_CAP
    if black_scholes(spot, strike, years, lo, rate, kind) >= price:
        return lo
    if black_scholes(spot, strike, years, hi, rate, kind) <= price:
        return hi
    for _ in range(100):
        mid = (lo + hi) / 2
        if black_scholes(spot, strike, years, mid, rate, kind) < price:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _nearest_tick(paise: float, tick: int) -> int:
    return max(tick, math.floor(paise / tick + 0.5) * tick)


@dataclass
class _Spot:
    spec: UnderlyingSpec
    rng: random.Random
    value: float  # paise, unrounded: rounding only in what is shown


@dataclass
class Pricing:
    """The spot processes and per-option volatilities of one exchange (its state is saved)."""

    model: MarketModel
    seed: int
    spots: dict[str, _Spot] = field(default_factory=dict)
    vols: dict[str, float] = field(default_factory=dict)  # option symbol -> calibrated volatility
    offsets: dict[str, int] = field(default_factory=dict)  # option symbol -> set_price gap, paise
    last_ms: int | None = None

    def __post_init__(self) -> None:
        for name, spec in sorted(self.model.underlyings.items()):
            if name not in self.spots:
                rng = random.Random((self.seed << 32) ^ zlib.crc32(f"spot:{name}".encode()))
                self.spots[name] = _Spot(spec, rng, float(spec.spot_paise))

    def priced(self, inst: Instrument) -> bool:
        return bool(inst.option_type) and inst.underlying in self.spots and expiry_ms(inst.symbol) is not None

    def spot_paise(self, underlying: str) -> int | None:
        spot = self.spots.get(underlying)
        return None if spot is None else _nearest_tick(spot.value, SPOT_TICK_PAISE)

    def advance(self, now_ms: int) -> None:
        """Move every spot by the exchange time since the previous step (none at the first)."""
        if self.last_ms is not None and now_ms > self.last_ms:
            dt = (now_ms - self.last_ms) / YEAR_MS
            for spot in self.spots.values():
                vol = spot.spec.annual_vol
                z = spot.rng.gauss(0.0, 1.0)
                spot.value *= math.exp((self.model.rate - vol * vol / 2) * dt + vol * math.sqrt(dt) * z)
        if self.last_ms is None or now_ms > self.last_ms:
            self.last_ms = now_ms

    def model_price(self, inst: Instrument, now_ms: int) -> int:
        """The option's Black–Scholes value now, in paise, on its tick grid (calibrating its
        volatility to its catalog start price at the start spot the first time)."""
        spot = self.spots[inst.underlying]
        expiry = expiry_ms(inst.symbol)
        assert expiry is not None  # priced() checked it
        years = max(MIN_YEARS, (expiry - now_ms) / YEAR_MS)
        vol = self.vols.get(inst.symbol)
        if vol is None:
            vol = implied_vol(
                float(inst.start_price_paise),
                float(spot.spec.spot_paise),
                float(inst.strike_paise),
                years,
                self.model.rate,
                inst.option_type,
            )
            self.vols[inst.symbol] = vol
        value = black_scholes(spot.value, float(inst.strike_paise), years, vol, self.model.rate, inst.option_type)
        return _nearest_tick(value, inst.tick_paise)

    def to_state(self) -> dict[str, Any]:
        return {
            "model": self.model.to_json(),
            "seed": self.seed,
            "spots": {name: {"value": s.value, "rng": _rng_state(s.rng)} for name, s in sorted(self.spots.items())},
            "vols": dict(sorted(self.vols.items())),
            "offsets": dict(sorted(self.offsets.items())),
            "last_ms": self.last_ms,
        }

    @classmethod
    def from_state(cls, raw: Mapping[str, Any]) -> Pricing:
        pricing = cls(MarketModel.from_json(raw["model"]), int(raw["seed"]))
        for name, s in raw["spots"].items():
            if name in pricing.spots:
                pricing.spots[name].value = float(s["value"])
                version, internal, gauss = s["rng"]
                pricing.spots[name].rng.setstate((version, tuple(internal), gauss))
        pricing.vols = {str(k): float(v) for k, v in raw["vols"].items()}
        pricing.offsets = {str(k): int(v) for k, v in raw["offsets"].items()}
        pricing.last_ms = None if raw["last_ms"] is None else int(raw["last_ms"])
        return pricing


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]
