"""Unhedged exposure, the one formula the engine and the desk both use.

A group's short (RISK leg sold, less what was bought back) needs hedge in the group's own ratio:
``ceil(short * hedge_qty / risk_qty)`` hedge units. What it holds is every hedge buy (leg tree,
interim and manual nodes) less the hedge it sold on exit.

Counted against us whatever the broker says: what we *bought* counts only as far as fill reports
(trade ids) confirm it; what we *sold* counts as far as any report says it filled. A status
report ahead of its fills can make exposure look larger, never smaller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from engine.core.model import LegRole, Purpose, Side


class FilledOrder(Protocol):
    @property
    def role(self) -> LegRole: ...
    @property
    def side(self) -> Side: ...
    @property
    def purpose(self) -> Purpose: ...
    @property
    def filled_qty(self) -> int: ...
    @property
    def fills_qty(self) -> int: ...


@dataclass(frozen=True, slots=True)
class GroupFills:
    risk_sold_qty: int = 0
    risk_bought_qty: int = 0
    hedge_bought_qty: int = 0
    hedge_sold_qty: int = 0

    @property
    def short_open_qty(self) -> int:
        return max(0, self.risk_sold_qty - self.risk_bought_qty)

    @property
    def hedge_held_qty(self) -> int:
        return self.hedge_bought_qty - self.hedge_sold_qty


def group_fills(orders: Iterable[FilledOrder]) -> GroupFills:
    risk_sold = risk_bought = hedge_bought = hedge_sold = 0
    for o in orders:
        if o.role is LegRole.RISK:
            if o.purpose is Purpose.LEG:
                risk_sold += o.filled_qty
            else:
                risk_bought += confirmed_qty(o)
        elif o.side is Side.SELL:
            hedge_sold += o.filled_qty
        elif o.purpose in (Purpose.LEG, Purpose.HEDGE):
            hedge_bought += confirmed_qty(o)
    return GroupFills(risk_sold, risk_bought, hedge_bought, hedge_sold)


def confirmed_qty(order: FilledOrder) -> int:
    """What fill reports with trade ids confirm (never more than the status says)."""
    return min(order.fills_qty, order.filled_qty)


def hedge_needed_qty(short_qty: int, hedge_qty: int, risk_qty: int) -> int:
    """Hedge units that cover ``short_qty`` of risk in the group's hedge:risk ratio (rounded up)."""
    return -(-short_qty * hedge_qty // risk_qty) if risk_qty else 0


def net_cover_qty(fills: GroupFills, hedge_qty: int, risk_qty: int) -> int:
    """Signed hedge units: held minus needed. Negative means part of the short is uncovered."""
    return fills.hedge_held_qty - hedge_needed_qty(fills.short_open_qty, hedge_qty, risk_qty)
