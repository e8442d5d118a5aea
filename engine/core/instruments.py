"""Instrument catalog: lot size, tick, freeze quantity and the paper market parameters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


class CatalogError(ValueError):
    """The instrument catalog is malformed."""


class PriceError(ValueError):
    """A price is not a positive multiple of the instrument's tick."""


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    underlying: str
    lot_size: int
    tick_paise: int
    freeze_qty: int
    # Paper market parameters: where the seeded price process starts, how much it moves per
    # step, how many book levels there are and how much sits on each (in lots).
    start_price_paise: int
    volatility_ticks: int = 2
    depth_levels: int = 5
    depth_lots_per_level: int = 20
    spread_ticks: int = 1
    strike_paise: int = 0  # 0 when the symbol is not an option
    option_type: str = ""  # "CE" or "PE"

    def check_qty(self, qty: int) -> str | None:
        """Return why ``qty`` is not tradable as one leg, or None when it is."""
        if qty <= 0:
            return f"qty {qty} must be positive"
        if qty % self.lot_size:
            return f"qty {qty} is not a multiple of lot size {self.lot_size} for {self.symbol}"
        return None

    def price_to_paise(self, price: Any) -> int:
        """Convert a rupee price (str, int or Decimal; never a binary float) to tick-aligned paise."""
        if isinstance(price, float):
            price = repr(price)  # the shortest repr is exactly what the user typed in JSON
        text = str(price).strip()
        if not _PLAIN_PRICE.fullmatch(text):
            # "1e9", "NaN", "1,000", "+5": a person's typing slip, never a price to send
            raise PriceError(f"price {price!r} is not a number of rupees like 212.40")
        try:
            paise = Decimal(text) * 100
        except InvalidOperation as exc:
            raise PriceError(f"price {price!r} is not a number") from exc
        if paise != paise.to_integral_value() or paise <= 0:
            raise PriceError(f"price {price} must be positive with at most 2 decimals")
        value = int(paise)
        if value > MAX_PRICE_PAISE:
            raise PriceError(
                f"price {price} is above {paise_to_str(MAX_PRICE_PAISE)}: no option trades there;"
                " check the decimal point"
            )
        if value % self.tick_paise:
            raise PriceError(
                f"price {price} is not a multiple of tick {Decimal(self.tick_paise) / 100} for {self.symbol}"
            )
        return value


_PLAIN_PRICE = re.compile(r"-?\d+(\.\d+)?")
MAX_PRICE_PAISE = 10**8  # Rs 10,00,000 a unit: far above any option premium; a typo guard


def paise_to_str(paise: int) -> str:
    return f"{Decimal(paise) / 100:.2f}"


def round_to_tick(paise: int, tick_paise: int, *, up: bool) -> int:
    """Round to the tick grid, up or down (never to nearest: the side decides which is safe)."""
    q, r = divmod(paise, tick_paise)
    if r == 0:
        return paise
    return (q + 1) * tick_paise if up else q * tick_paise


_OPTION_RE = re.compile(r"^[A-Z]+\d{2}[A-Z]{3}(\d+)(CE|PE)$")

_REQUIRED = ("symbol", "underlying", "lot_size", "tick_size", "freeze_qty", "start_price")


def parse_catalog(raw: Any) -> dict[str, Instrument]:
    """Build the catalog from its JSON form (a list of objects). Raises CatalogError."""
    if not isinstance(raw, list) or not raw:
        raise CatalogError("instrument catalog must be a non-empty JSON list")
    out: dict[str, Instrument] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise CatalogError(f"instruments[{i}] must be an object")
        missing = [k for k in _REQUIRED if k not in item]
        if missing:
            raise CatalogError(f"instruments[{i}] lacks {', '.join(missing)}")
        try:
            tick_paise = int(Decimal(str(item["tick_size"])) * 100)
            start = int(Decimal(str(item["start_price"])) * 100)
            inst = Instrument(
                symbol=str(item["symbol"]),
                underlying=str(item["underlying"]),
                lot_size=_positive_int(item["lot_size"], "lot_size"),
                tick_paise=tick_paise,
                freeze_qty=_positive_int(item["freeze_qty"], "freeze_qty"),
                start_price_paise=start - start % tick_paise if tick_paise > 0 else start,
                volatility_ticks=_positive_int(item.get("volatility_ticks", 2), "volatility_ticks"),
                depth_levels=_positive_int(item.get("depth_levels", 5), "depth_levels"),
                depth_lots_per_level=_positive_int(item.get("depth_lots_per_level", 20), "depth_lots_per_level"),
                spread_ticks=_positive_int(item.get("spread_ticks", 1), "spread_ticks"),
                **_option_terms(str(item["symbol"])),
            )
        except (InvalidOperation, TypeError, ValueError) as exc:
            raise CatalogError(f"instruments[{i}]: {exc}") from exc
        if inst.tick_paise <= 0 or inst.start_price_paise <= 0:
            raise CatalogError(f"instruments[{i}]: tick_size and start_price must be positive")
        if inst.freeze_qty < inst.lot_size:
            raise CatalogError(f"instruments[{i}]: freeze_qty is below one lot")
        if inst.symbol in out:
            raise CatalogError(f"instruments[{i}]: duplicate symbol {inst.symbol}")
        out[inst.symbol] = inst
    return out


def _option_terms(symbol: str) -> dict[str, Any]:
    """Strike and type from an NSE-style option symbol (NIFTY26DEC24000CE)."""
    m = _OPTION_RE.match(symbol)
    if not m:
        return {}
    return {"strike_paise": int(m.group(1)) * 100, "option_type": m.group(2)}


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value
