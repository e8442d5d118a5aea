"""What an action will send, in the words a confirmation shows: side, qty, symbol, order type.
Pure functions of the desk's rows (so they are tested without a window)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.core.model import TERMINAL_INTENT_STATUSES, TERMINAL_ORDER_STATUSES, IntentStatus
from ui.viewmodels.rows import EscalationRow, GroupRow, IntentView

_DONE = {s.value for s in TERMINAL_ORDER_STATUSES} | {s.value for s in TERMINAL_INTENT_STATUSES}


def working(intents: Iterable[IntentView]) -> list[IntentView]:
    """Orders that may still fill: at the broker, or journaled and about to be sent (an orphan
    waits on an operator, so it is not working)."""
    return [
        i
        for i in intents
        if i.order_status not in _DONE and i.status not in _DONE and i.status != IntentStatus.ORPHANED.value
    ]


def order_words(i: IntentView, qty: int | None = None) -> str:
    price = ""
    if i.order_type in ("LIMIT", "SL") and i.limit_paise is not None:
        price = f" limit ₹{i.limit_paise / 100:,.2f}"
    if i.trigger_paise is not None:
        price += f" trigger ₹{i.trigger_paise / 100:,.2f}"
    return f"{i.side} {i.qty if qty is None else qty} {i.symbol} {i.order_type}{price}"


def cancel_lines(intents: Iterable[IntentView]) -> list[str]:
    rows = [i for i in working(intents) if i.purpose in ("LEG", "HEDGE")]
    return [f"cancel {order_words(i, i.qty - i.filled_qty)} ({i.client_order_id})" for i in rows]


def _net(intents: Iterable[IntentView], role: str) -> tuple[int, str]:
    net, symbol = 0, ""
    for i in intents:
        if i.role == role:
            net += i.filled_qty if i.side == "BUY" else -i.filled_qty
            symbol = symbol or i.symbol
    return net, symbol


def close_lines(intents: list[IntentView]) -> list[str]:
    """A close: the stop cancelled (confirmed first), the short bought back at MARKET, then the
    hedge sold at MARKET once the buy-back has filled."""
    lines = [f"cancel the stop {order_words(i)} ({i.client_order_id})" for i in working(intents) if i.purpose == "STOP"]
    short, risk_symbol = _net(intents, "RISK")
    long, hedge_symbol = _net(intents, "HEDGE")
    if short < 0:
        lines.append(f"BUY {-short} {risk_symbol} MARKET: buy back the short")
    if long > 0:
        lines.append(f"SELL {long} {hedge_symbol} MARKET: sell the hedge, once the buy-back has filled")
    return [f"{n}. {line}" for n, line in enumerate(lines, 1)]


def retry_lines(orphan: IntentView) -> list[str]:
    return [
        f"{order_words(orphan)}: attempt {orphan.attempt + 1} of {orphan.client_order_id}, with a new client"
        " order id, sent once only if the broker, asked once more, still does not have the original"
    ]


@dataclass(frozen=True, slots=True)
class HedgePlan:
    """What Manual hedge… pre-fills: the order that brings the group's net exposure to zero."""

    symbol: str
    qty: int  # 0: nothing is needed
    why: str


def manual_hedge_plan(group: GroupRow | None, row: EscalationRow, intents: list[IntentView]) -> HedgePlan:
    """An exit or a stop that did not buy the short back: the missing buy-back of the short leg.
    A short the hedge does not cover: the hedge for the uncovered units. Otherwise the short is
    covered (net exposure zero or long): nothing, and it says so, rather than over-buy."""
    if group is None:
        return HedgePlan(row.symbol, row.unhedged_qty, f"group {row.group_id} is not in this desk's book")
    # A manual hedge is always booked as the group's HEDGE (engine.core.hedge_tree), so it only
    # ever buys the hedge symbol: a buy of the short leg here would be counted as hedge and a
    # later close would buy the short back a second time.
    if group.net_cover_qty < 0:
        qty = -group.net_cover_qty
        return HedgePlan(group.hedge_symbol, qty, f"covers the {qty} of the short the hedge does not")
    return HedgePlan(
        group.hedge_symbol,
        0,
        f"net exposure is {group.net_cover_qty:+d}: the short is covered; buying more would over-hedge",
    )
