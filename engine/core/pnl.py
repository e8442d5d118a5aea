"""Positions and P&L from fills and marks, in integer paise, by the **average-cost** method.

Per symbol, fills are taken in journal order. A fill that adds to the position (or opens it)
moves the average price to the quantity-weighted mean of the open units; a fill that reduces it
realises ``(fill price - average) x units`` for a long (the opposite sign for a short) and leaves
the average unchanged; a fill that crosses zero realises the whole old position and opens the
rest at the fill price. Unrealised P&L is ``(mark - average) x open units`` (signed units: a short
gains when the mark falls). The mark is the last traded price of the newest mark, else the
mid of its bid and ask; with no mark, unrealised P&L is unknown (None), never guessed.

Averages are kept as an exact fraction (total cost over units), so nothing rounds until it is
shown: realised P&L is exact; the average price and unrealised P&L are rounded to the paisa
(half away from zero) only in the output.

The day's P&L is the desk's total P&L now less its total P&L at the start of the day (00:00 IST):
what was realised before it plus the positions then open, marked at the newest mark before it
(the previous close). It is unknown (None) when a position was open at the day's start with no
mark before it.

Per group: the credit received is what its RISK-leg sells took in less what its HEDGE-leg buys
paid (exit and stop orders included, so a closed group's credit is net of buying back), its
realised and unrealised P&L are the sums over its own fills, per symbol, by the same method.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

__all__ = ["Fill", "Mark", "Position", "book_pnl", "day_start_ms", "mark_price", "round_half_away"]

IST_OFFSET_MS = (5 * 60 + 30) * 60 * 1000
DAY_MS = 24 * 3600 * 1000


def day_start_ms(now_ms: int) -> int:
    """00:00 IST of the day ``now_ms`` falls in (India has no daylight saving)."""
    return (now_ms + IST_OFFSET_MS) // DAY_MS * DAY_MS - IST_OFFSET_MS


@dataclass(frozen=True, slots=True)
class Fill:
    symbol: str
    side: str  # BUY or SELL
    qty: int
    price_paise: int
    group_id: str = ""
    role: str = ""  # HEDGE or RISK
    ts_exchange_ms: int = 0


@dataclass(frozen=True, slots=True)
class Mark:
    symbol: str
    bid_paise: int | None
    ask_paise: int | None
    last_paise: int | None
    ts_exchange_ms: int


def mark_price(mark: Mark | None) -> int | None:
    """The price positions are marked at: last traded, else the mid of bid and ask."""
    if mark is None:
        return None
    if mark.last_paise:
        return mark.last_paise
    if mark.bid_paise and mark.ask_paise:
        return (mark.bid_paise + mark.ask_paise) // 2
    return None


def round_half_away(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    return sign * int(abs(value) + Fraction(1, 2))


@dataclass
class Position:
    symbol: str
    qty: int = 0  # signed units: + long, - short
    cost: Fraction = field(default_factory=Fraction)  # signed: qty x average price
    realised: Fraction = field(default_factory=Fraction)
    bought_paise: int = 0
    sold_paise: int = 0

    def apply(self, side: str, qty: int, price: int) -> None:
        signed = qty if side == "BUY" else -qty
        if side == "BUY":
            self.bought_paise += qty * price
        else:
            self.sold_paise += qty * price
        if self.qty == 0 or (self.qty > 0) == (signed > 0):
            self.qty += signed
            self.cost += signed * price
            return
        average = self.cost / self.qty
        closing = min(abs(signed), abs(self.qty))
        direction = 1 if self.qty > 0 else -1  # closing a long sells, closing a short buys
        self.realised += direction * closing * (price - average)
        self.qty += direction * -closing
        self.cost = average * self.qty
        rest = abs(signed) - closing
        if rest:
            opened = rest if signed > 0 else -rest
            self.qty += opened
            self.cost = Fraction(opened * price)

    def average(self) -> Fraction | None:
        return None if self.qty == 0 else self.cost / self.qty

    def unrealised(self, mark: int | None) -> Fraction | None:
        if self.qty == 0:
            return Fraction(0)
        if mark is None:
            return None
        return self.qty * mark - self.cost

    def to_json(self, mark: int | None) -> dict[str, object]:
        average = self.average()
        unrealised = self.unrealised(mark)
        return {
            "qty": self.qty,
            "avg_price_paise": None if average is None else round_half_away(average),
            "mark_paise": mark,
            "realised_paise": round_half_away(self.realised),
            "unrealised_paise": None if unrealised is None else round_half_away(unrealised),
            "bought_paise": self.bought_paise,
            "sold_paise": self.sold_paise,
        }


def _positions(fills: Iterable[Fill]) -> dict[str, Position]:
    out: dict[str, Position] = {}
    for f in fills:
        out.setdefault(f.symbol, Position(f.symbol)).apply(f.side, f.qty, f.price_paise)
    return out


def _sum_or_none(values: Iterable[Fraction | None]) -> Fraction | None:
    """The sum, or None when any part is unknown (a position with no mark)."""
    total = Fraction(0)
    for v in values:
        if v is None:
            return None
        total += v
    return total


def _total(positions: Mapping[str, Position], marks: Mapping[str, Mark]) -> Fraction | None:
    realised = sum((p.realised for p in positions.values()), Fraction(0))
    unrealised = _sum_or_none(p.unrealised(mark_price(marks.get(s))) for s, p in positions.items())
    return None if unrealised is None else realised + unrealised


def book_pnl(
    fills: list[Fill],
    marks: Mapping[str, Mark],
    *,
    day_start: int | None = None,
    marks_at_day_start: Mapping[str, Mark] | None = None,
) -> dict[str, object]:
    """``journal --json``'s ``pnl``: per symbol, per group and desk totals (all in paise); with
    ``day_start`` (ms) and the newest marks before it, the desk's day's P&L too."""
    symbols = _positions(fills)
    per_symbol = {s: p.to_json(mark_price(marks.get(s))) for s, p in sorted(symbols.items())}
    groups: dict[str, list[Fill]] = {}
    for f in fills:
        if f.group_id:
            groups.setdefault(f.group_id, []).append(f)
    per_group: dict[str, dict[str, object]] = {}
    for gid, own in sorted(groups.items()):
        positions = _positions(own)
        credit = sum(f.qty * f.price_paise * (1 if f.side == "SELL" else -1) for f in own)
        realised = sum((p.realised for p in positions.values()), Fraction(0))
        unrealised = _sum_or_none(p.unrealised(mark_price(marks.get(s))) for s, p in positions.items())
        roles = {f.symbol: f.role for f in own}
        legs = {
            sym: {**p.to_json(mark_price(marks.get(sym))), "role": roles.get(sym, "")}
            for sym, p in sorted(positions.items())
        }
        per_group[gid] = {
            "legs": legs,
            "credit_received_paise": credit,
            "realised_paise": round_half_away(realised),
            "unrealised_paise": None if unrealised is None else round_half_away(unrealised),
            "total_paise": None if unrealised is None else round_half_away(realised + unrealised),
            "open_qty": {s: p.qty for s, p in sorted(positions.items()) if p.qty},
        }
    realised_all = sum((p.realised for p in symbols.values()), Fraction(0))
    unrealised_all = _sum_or_none(p.unrealised(mark_price(marks.get(s))) for s, p in symbols.items())
    day: int | None = None
    if day_start is not None:
        then = _total(_positions(f for f in fills if f.ts_exchange_ms < day_start), marks_at_day_start or {})
        now = _total(symbols, marks)
        day = None if then is None or now is None else round_half_away(now - then)
    return {
        "method": "average cost, in paise, fills in journal order; mark = last price, else mid",
        "symbols": per_symbol,
        "groups": per_group,
        "desk": {
            "realised_paise": round_half_away(realised_all),
            "unrealised_paise": None if unrealised_all is None else round_half_away(unrealised_all),
            "total_paise": None if unrealised_all is None else round_half_away(realised_all + unrealised_all),
            "credit_received_paise": sum(int(str(g["credit_received_paise"])) for g in per_group.values()),
            "day_paise": day,
            "day_start_ms": day_start,
        },
    }
