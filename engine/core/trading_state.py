"""The kill switch: ACTIVE, REDUCING (only exposure-reducing orders), HALTED (no new orders).
Cancels always pass; this module is only asked about new orders."""

from __future__ import annotations

from enum import StrEnum


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


def order_refusal(state: TradingState, reduces_exposure: bool) -> str:
    """Why a new order may not be sent now, or '' when it may."""
    if state is TradingState.HALTED:
        return "trading is HALTED: no new orders (cancels still pass)"
    if state is TradingState.REDUCING and not reduces_exposure:
        return "trading is REDUCING: only exposure-reducing orders are sent"
    return ""
