"""A market quote, as the broker port streams it: best bid and ask with their quantities, the
last trade, and the exchange's timestamp. Prices in integer paise; a side with nothing on it is
None."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid_paise: int | None
    ask_paise: int | None
    bid_qty: int
    ask_qty: int
    last_paise: int | None
    last_qty: int
    ts_exchange_ms: int
    open_paise: int | None = None  # the day's opening price, when the broker says

    def __post_init__(self) -> None:
        for name in ("bid_paise", "ask_paise", "last_paise", "open_paise"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"quote for {self.symbol}: {name} {value!r} is not a positive number of paise")
        for name in ("bid_qty", "ask_qty", "last_qty", "ts_exchange_ms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"quote for {self.symbol}: {name} {value!r} is not a count")
        if self.bid_paise and self.ask_paise and self.bid_paise > self.ask_paise:
            raise ValueError(f"quote for {self.symbol}: bid {self.bid_paise} above ask {self.ask_paise}")


def spot_of(underlying: str, quote: Callable[[str], Quote | None], fallback: Mapping[str, int]) -> int | None:
    """The underlying's spot as the broker quotes it, else the margin model's reference price."""
    q = quote(underlying)
    if q is not None and q.last_paise is not None:
        return q.last_paise
    return fallback.get(underlying)
