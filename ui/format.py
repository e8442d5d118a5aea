"""Numbers a trader reads at a glance: rupees with Indian digit grouping (₹3,13,200.00), a sign
on every P&L figure (never colour alone), quantities in lots and units."""

from __future__ import annotations

import re

PROFIT = "#3fb950"  # green, told apart from LOSS by a blue-leaning hue and always by the sign
LOSS = "#ff7b72"


def indian_grouping(n: int) -> str:
    """12345678 -> '1,23,45,678' (the last three digits, then pairs)."""
    digits = str(abs(n))
    if len(digits) <= 3:
        grouped = digits
    else:
        head, tail = digits[:-3], digits[-3:]
        pairs: list[str] = []
        while len(head) > 2:
            pairs.insert(0, head[-2:])
            head = head[:-2]
        grouped = ",".join([head, *pairs, tail]) if head else ",".join([*pairs, tail])
    return ("-" if n < 0 else "") + grouped


def rupees(paise: int | None, *, signed: bool = False) -> str:
    """₹3,13,200.00 from 31320000 paise; ``signed``: +₹… / −₹… (a P&L figure); None: '—'."""
    if paise is None:
        return "—"
    whole, frac = divmod(abs(paise), 100)
    text = f"₹{indian_grouping(whole)}.{frac:02d}"
    if paise < 0:
        return "−" + text
    return ("+" + text) if signed and paise > 0 else text


def pnl_colour(paise: int | None) -> str | None:
    if not paise:
        return None
    return PROFIT if paise > 0 else LOSS


def lots(units: int, lot_size: int) -> str:
    """'4 lots (300)' for 300 units of a 75-lot; a part lot shows as units only."""
    if lot_size <= 0 or units % lot_size:
        return f"{units:+d} units" if units else "0"
    n = units // lot_size
    return f"{n:+d} lot{'s' if abs(n) != 1 else ''} ({units:+d})" if units else "0"


_EXPIRY = re.compile(r"^[A-Z]+?(\d{2}[A-Z]{3})\d+(CE|PE)$")


def expiry_of(symbol: str) -> str:
    """'26DEC' from NIFTY26DEC24000CE (the catalog's monthly expiry code); '' if none."""
    m = _EXPIRY.match(symbol)
    return m.group(1) if m else ""
