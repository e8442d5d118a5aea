"""Column declarations of every table (vn.py's ``headers`` idea, typed) and the state colours."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.audit.why import fmt_ms
from engine.core.instruments import Instrument
from engine.core.model import TERMINAL_GROUP_STATES
from ui.format import expiry_of, pnl_colour, rupees
from ui.models.table import Column
from ui.reader import AuditLine
from ui.viewmodels.rows import EscalationRow, GroupRow, IntentView

FAMILY_COLOURS = {
    "pending": "#9fd3ff",  # light blue
    "working": "#7fd18b",  # green
    "pending_cancel": "#e07ce0",  # magenta
    "failed": "#ff6b6b",  # red
    "escalated": "#ffbf47",  # amber
    "done": None,
}

INTENT_STATUS_COLOURS = {
    "REJECTED": "#ff6b6b",
    "ORPHANED": "#ffbf47",
    "UNKNOWN": "#ffbf47",
    "PENDING": "#9fd3ff",
}


def _pct(v: float) -> str:
    return f"{v:.0f}%"


TERMINAL_STATES = {s.value for s in TERMINAL_GROUP_STATES}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def group_columns(
    launch_wall_ms: dict[str, int],
    wall_ms: Callable[[], int] | None = None,
    catalog: Mapping[str, Instrument] | None = None,
    pnl: Callable[[str], Mapping[str, Any] | None] | None = None,
    finished_wall_ms: Mapping[str, int] | None = None,
) -> list[Column[GroupRow]]:
    """``catalog``: what a group is (underlying, expiry, strikes, lots); ``pnl``: a group's credit
    and P&L (the Positions panel's latest read of the journal); ``finished_wall_ms``: when a
    finished group finished (its age stops there)."""
    finished = finished_wall_ms if finished_wall_ms is not None else {}
    now_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
    cat = catalog or {}
    figures = pnl or (lambda _gid: None)

    def inst(symbol: str) -> Instrument | None:
        return cat.get(symbol)

    def strikes(r: GroupRow) -> str:
        risk, hedge = inst(r.risk_symbol), inst(r.hedge_symbol)
        if risk is None or hedge is None or not risk.strike_paise:
            return ""
        return f"{risk.strike_paise // 100}/{hedge.strike_paise // 100} {risk.option_type}"

    def lot_count(r: GroupRow) -> int | None:
        risk = inst(r.risk_symbol)
        return None if risk is None or not risk.lot_size else r.risk_qty // risk.lot_size

    def money(key: str) -> Callable[[GroupRow], int | None]:
        def value(r: GroupRow) -> int | None:
            f = figures(r.group_id)
            return None if f is None else f.get(key)

        return value

    def age(r: GroupRow) -> float | None:
        t = launch_wall_ms.get(r.group_id)
        end = finished.get(r.group_id) if r.state in TERMINAL_STATES else None
        return None if t is None else max(0.0, ((end or now_ms()) - t) / 1000)

    credit, total = money("credit_received_paise"), money("total_paise")
    return [
        Column("Group", lambda r: r.group_id),
        Column("State", lambda r: r.state, background=lambda r: FAMILY_COLOURS.get(r.family)),
        Column("Underlying", lambda r: getattr(inst(r.risk_symbol), "underlying", "")),
        Column("Expiry", lambda r: expiry_of(r.risk_symbol)),
        Column("Strikes", strikes),
        Column("Lots", lot_count, lambda v: "" if v is None else str(v), align_right=True),
        Column("Credit", credit, lambda v: "" if v is None else rupees(int(v)), align_right=True),
        Column(
            "P&L",
            total,
            lambda v: "" if v is None else rupees(int(v), signed=True),
            align_right=True,
            foreground=lambda r: pnl_colour(total(r)),
        ),
        Column("Hedge fill", lambda r: r.hedge_fill_pct, _pct, align_right=True),
        Column("Risk fill", lambda r: r.risk_fill_pct, _pct, align_right=True),
        Column("Net exposure", lambda r: r.net_cover_qty, align_right=True),
        Column("Stop", lambda r: r.stop_trigger_paise, lambda v: "" if v is None else rupees(int(v)), align_right=True),
        Column("Age", age, _age, align_right=True),
        Column("Template", lambda r: r.template),
        Column("Reason", lambda r: r.reason),
    ]


AGE_COLUMN = 12  # the trader's order: what and how it stands first, then the detail


def intent_columns() -> list[Column[IntentView]]:
    return [
        Column("Client order id", lambda r: r.client_order_id, mono=True),
        Column("Group", lambda r: r.group_id),
        Column("Role", lambda r: r.role),
        Column("Purpose", lambda r: r.purpose),
        Column("Attempt", lambda r: r.attempt, align_right=True),
        Column("Side", lambda r: r.side),
        Column("Qty", lambda r: r.qty, align_right=True),
        Column("Filled", lambda r: r.filled_qty, align_right=True),
        Column("Symbol", lambda r: r.symbol),
        Column("Type", lambda r: r.order_type),
        Column("Limit", lambda r: r.limit_paise, _money, align_right=True),
        Column("Trigger", lambda r: r.trigger_paise, _money, align_right=True),
        Column("Status", lambda r: r.status, background=lambda r: INTENT_STATUS_COLOURS.get(r.status)),
        Column(
            "Order status", lambda r: r.order_status, lambda v: "not at the broker yet" if v == "INTENT" else str(v)
        ),
        Column("Broker order id", lambda r: r.broker_order_id, mono=True),
        Column("Reason", lambda r: r.reason),
    ]


def escalation_columns() -> list[Column[EscalationRow]]:
    return [
        Column("#", lambda r: r.escalation_id, align_right=True),
        Column("Severity", lambda r: r.severity),
        Column("Kind", lambda r: r.kind),
        Column("Status", lambda r: r.status, background=lambda r: "#ffbf47" if r.is_open else None),
        Column("Group", lambda r: r.group_id),
        Column("Symbol", lambda r: r.symbol),
        Column("Unhedged qty", lambda r: r.unhedged_qty, align_right=True),
        Column("Order", lambda r: r.client_order_id, mono=True),
        Column("Handled by", lambda r: r.handled_by),
        Column("Reason", lambda r: r.reason),
    ]


def _order_status(v: object) -> str:
    return "not at the broker yet" if v == "INTENT" else str(v)  # INTENT: journaled, not yet sent


def _money(v: object) -> str:
    return "" if v is None else rupees(int(str(v)))


def _opt(v: object) -> str:
    return "" if v is None else str(v)


def _clock(v: object) -> str:
    return "" if v is None else fmt_ms(int(str(v)))


def _offset(r: AuditLine) -> int | None:
    return None if r.ts_broker_ms is None or r.ts_wall_ms is None else r.ts_broker_ms - r.ts_wall_ms


def audit_columns() -> list[Column[AuditLine]]:
    """Times as people read them: local HH:MM:SS.mmm, the broker's beside it, and the offset
    (raw epoch milliseconds and monotonic nanoseconds stay in the journal)."""
    return [
        Column("Time", lambda r: r.ts_wall_ms, _clock),
        Column("Broker time", lambda r: r.ts_broker_ms, _clock),
        Column("Offset", _offset, lambda v: "" if v is None else f"{int(str(v)):+d} ms", align_right=True),
        Column("Source", lambda r: r.source),
        Column("Entity", lambda r: r.entity),
        Column("Id", lambda r: r.entity_id, mono=True),
        Column("Change", lambda r: r.change),
        Column("Who", lambda r: r.who),
        Column("Detail", lambda r: r.detail),
    ]
