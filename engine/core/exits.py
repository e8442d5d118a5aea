"""Closing a HEDGED group: by its stop-loss or by a trader's close. The short RISK leg is always
bought back first; the protective HEDGE is sold only once the short is closed, so the hedge is
never removed while the short is open. Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ExitView:
    risk_short_qty: int  # the RISK leg's confirmed fill
    risk_bought_qty: int  # stop, fallback and exit buys, confirmed
    hedge_long_qty: int  # every confirmed hedge buy (leg tree, interim, manual)
    hedge_sold_qty: int  # exit sells of the hedge, confirmed
    stop_exists: bool
    stop_open: bool  # the stop (or its fallback) may still fill
    stop_triggered: bool  # the exchange reported the stop triggered (or it filled)
    stop_cancel_requested: bool
    risk_exit_working: bool
    risk_exit_waves: int
    hedge_exit_working: bool
    hedge_exit_waves: int
    close_requested: bool


@dataclass(frozen=True, slots=True)
class ExitDecision:
    place_stop_qty: int = 0
    cancel_stop: bool = False
    risk_exit_qty: int = 0
    hedge_exit_qty: int = 0
    completed: bool = False
    stuck_qty: int = 0  # exits exhausted: a person must act on this open short
    reason: str = ""


def decide_exit(view: ExitView, has_stop: bool, max_waves: int) -> ExitDecision:
    open_short = view.risk_short_qty - view.risk_bought_qty
    if open_short > 0:
        # A stop that ended without ever triggering (cancelled or rejected by the venue) is not a
        # reason to buy back: the stop manager escalates it and a person decides.
        buying_back = view.close_requested or (view.stop_exists and not view.stop_open and view.stop_triggered)
        if not buying_back:
            if has_stop and not view.stop_exists:
                return ExitDecision(place_stop_qty=open_short)
            return ExitDecision()
        if view.stop_open:
            return ExitDecision(cancel_stop=not view.stop_cancel_requested)
        if view.risk_exit_working:
            return ExitDecision()
        if view.risk_exit_waves < max_waves:
            return ExitDecision(risk_exit_qty=open_short)
        return ExitDecision(stuck_qty=open_short, reason=f"short {open_short} not bought back in {max_waves} waves")
    if view.risk_bought_qty == 0:
        return ExitDecision()  # nothing has started closing
    open_long = view.hedge_long_qty - view.hedge_sold_qty
    how = "closed by trader" if view.close_requested else "stop-loss executed"
    if open_long > 0:
        if view.hedge_exit_working:
            return ExitDecision()
        if view.hedge_exit_waves < max_waves:
            return ExitDecision(hedge_exit_qty=open_long)
        return ExitDecision(completed=True, reason=f"{how}; hedge long {open_long} left open (no exposure)")
    return ExitDecision(completed=True, reason=how)
